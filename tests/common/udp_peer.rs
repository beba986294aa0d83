//! A UDP test endpoint on loopback for the relay's tests: a blocking socket whose read timeout
//! (3 s) only bounds a failing test, never measures anything (the relay's tests in `tests/media/`).

#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

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
