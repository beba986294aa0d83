//! A UDP test endpoint on loopback for the relay's tests: a blocking socket whose read timeout
//! (3 s) only bounds a failing test, never measures anything (the relay's tests in `tests/media/`),
//! and a relay session between two such endpoints.

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use dialgate::media::{
    AudioCodec, Direction, Leg, MediaConfig, MediaEngine, MediaSession, RemoteMedia,
};

/// A relay engine on 127.0.0.1 owning `pairs` RTP/RTCP port pairs from `port_min`, no inactivity
/// timeout, recordings in the temp directory.
pub fn engine(port_min: u16, pairs: u16) -> MediaEngine {
    MediaEngine::new(MediaConfig {
        port_min,
        port_max: port_min + 2 * pairs - 1,
        inactivity_timeout: None,
        recording_dir: std::env::temp_dir(),
        ..MediaConfig::default()
    })
    .unwrap()
}

/// A peer's media at `addr` (no RTCP), sending and receiving `codec`, DTMF on payload type `dtmf`.
pub fn remote(addr: SocketAddr, codec: AudioCodec, dtmf: Option<u8>) -> RemoteMedia {
    RemoteMedia {
        rtp: addr,
        rtcp: None,
        codec,
        dtmf_pt: dtmf,
        direction: Direction::SendRecv,
    }
}

/// A relay session of its own engine with one [`Peer`] per leg; the test sets the remotes.
pub struct RelayCall {
    pub engine: MediaEngine,
    pub session: MediaSession,
    /// The carrier's endpoint.
    pub carrier: Peer,
    /// The bot's endpoint.
    pub bot: Peer,
}

impl RelayCall {
    /// Session `name` of `engine`, with a fresh peer per leg.
    pub fn new(engine: MediaEngine, name: &str) -> RelayCall {
        let session = engine.create_session(name).unwrap();
        RelayCall {
            engine,
            session,
            carrier: Peer::new(),
            bot: Peer::new(),
        }
    }

    /// The relay's RTP address for the carrier leg (where the carrier sends).
    pub fn carrier_side(&self) -> SocketAddr {
        self.session.local_rtp_addr(Leg::Carrier)
    }

    /// The relay's RTP address for the bot leg (where the bot sends).
    pub fn bot_side(&self) -> SocketAddr {
        self.session.local_rtp_addr(Leg::Bot)
    }
}

/// One RTP endpoint.
pub struct Peer {
    pub sock: UdpSocket,
}

impl Peer {
    pub fn new() -> Peer {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        Peer { sock }
    }

    pub fn addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    pub fn send(&self, to: SocketAddr, pkt: &[u8]) {
        self.sock.send_to(pkt, to).unwrap();
    }

    /// The next packet (panics when none comes within 3 s).
    pub fn recv(&self) -> Vec<u8> {
        let mut b = [0u8; 2048];
        let (n, _) = self.sock.recv_from(&mut b).expect("expected a packet");
        b[..n].to_vec()
    }

    /// Receives with a short timeout; None when nothing came.
    pub fn try_recv(&self) -> Option<Vec<u8>> {
        self.with_short_timeout(|s| {
            let mut b = [0u8; 2048];
            s.recv_from(&mut b).ok().map(|(n, _)| b[..n].to_vec())
        })
    }

    /// Everything that arrives until 200 ms pass without a packet.
    pub fn drain(&self) -> Vec<Vec<u8>> {
        self.with_short_timeout(|s| {
            let mut got = Vec::new();
            let mut b = [0u8; 2048];
            while let Ok((n, _)) = s.recv_from(&mut b) {
                got.push(b[..n].to_vec());
            }
            got
        })
    }

    fn with_short_timeout<T>(&self, f: impl FnOnce(&UdpSocket) -> T) -> T {
        self.sock
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let r = f(&self.sock);
        self.sock
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        r
    }
}
