//! Plain data types of the media API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::g711::G711Law;
use super::leg::LatchMode;

/// One of the two legs of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Leg {
    /// The carrier side (the person called).
    Carrier = 0,
    /// The bot's media endpoint.
    Bot = 1,
}

impl Leg {
    /// The other leg.
    pub fn other(self) -> Leg {
        match self {
            Leg::Carrier => Leg::Bot,
            Leg::Bot => Leg::Carrier,
        }
    }
    pub(crate) fn idx(self) -> usize {
        self as usize
    }
    pub(crate) fn from_idx(i: usize) -> Leg {
        if i == 0 { Leg::Carrier } else { Leg::Bot }
    }
}

/// The negotiated audio codec of a leg: a G.711 law and its payload type number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioCodec {
    /// µ-law or A-law.
    pub law: G711Law,
    /// RTP payload type used on this leg (0 / 8 static, or a dynamic number).
    pub pt: u8,
}

impl AudioCodec {
    /// PCMU with its static payload type 0.
    pub const PCMU: AudioCodec = AudioCodec {
        law: G711Law::Pcmu,
        pt: 0,
    };
    /// PCMA with its static payload type 8.
    pub const PCMA: AudioCodec = AudioCodec {
        law: G711Law::Pcma,
        pt: 8,
    };
}

/// SDP direction attribute *as declared by the remote party*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Sends and receives.
    #[default]
    SendRecv,
    /// Remote only sends (e.g. plays music on hold): do not forward to it.
    SendOnly,
    /// Remote only receives: it should not send; anything it sends is dropped.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The remote sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
    /// The remote wants to receive media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// What a leg's remote SDP said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Address RTP is sent to (until symmetric latching finds the real source).
    pub rtp: SocketAddr,
    /// RTCP address (`a=rtcp`), default RTP port + 1.
    pub rtcp: Option<SocketAddr>,
    /// Audio codec.
    pub codec: AudioCodec,
    /// telephone-event payload type (RFC 4733), if negotiated.
    pub dtmf_pt: Option<u8>,
    /// Direction declared by the remote.
    pub direction: Direction,
}

/// Engine configuration.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address the relay's sockets bind to (and that goes into SDP).
    pub bind_ip: IpAddr,
    /// Lowest RTP port (even).
    pub port_min: u16,
    /// Highest port (RTCP of the last pair).
    pub port_max: u16,
    /// A leg that should send but stays silent this long fires
    /// [`MediaEvent::InactivityTimeout`]; `None` disables.
    pub inactivity_timeout: Option<Duration>,
    /// Where relative recording paths go.
    pub recording_dir: PathBuf,
    /// Consecutive packets (same address, same SSRC) before the relay latches
    /// to a new source address (symmetric RTP / NAT).
    pub latch_probation: u32,
    /// Default latching policy of both legs; a session may change it per leg
    /// ([`MediaSession::set_latching`](super::MediaSession::set_latching)).
    pub latching: LatchMode,
    /// Socket receive buffer size in bytes (SO_RCVBUF).
    pub recv_buffer_bytes: usize,
    /// IP TOS byte on sent packets (0xb8 = DSCP EF).
    pub tos: u32,
    /// Number of relay threads (sessions are spread over them).
    pub relay_threads: usize,
    /// Sessions a relay thread takes before new ones go to the next thread
    /// (see the placement note in the engine). Default 256 (≈ 25,600 packets/s,
    /// under half of what one thread forwards here).
    pub relay_pack_sessions: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: 20000,
            port_max: 29999,
            inactivity_timeout: Some(Duration::from_secs(30)),
            recording_dir: PathBuf::from("data/recordings"),
            latch_probation: 3,
            latching: LatchMode::Learn,
            recv_buffer_bytes: 256 * 1024,
            tos: 0xb8,
            // one per core (up to 4): a single thread saturates near 55k packets/s here
            relay_threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
            relay_pack_sessions: 256,
        }
    }
}

/// 20 ms of decoded 8 kHz audio from one leg.
#[derive(Debug, Clone, Copy)]
pub struct PcmFrame {
    /// Which leg the audio came from.
    pub leg: Leg,
    /// Frame counter of this tap, from 0 (gaps in it are tap drops).
    pub seq: u64,
    /// 160 linear 16-bit samples.
    pub samples: [i16; 160],
    /// Milliseconds from tap start (or recording start) to the frame's completion.
    pub at_ms: u64,
}

/// Asynchronous notifications of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// The leg sent nothing for the configured timeout (fired once per leg).
    InactivityTimeout {
        /// The silent leg.
        leg: Leg,
    },
}
