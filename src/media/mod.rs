//! Media relay: anchors both RTP legs of a call (carrier = callee, bot),
//! forwards every packet through a dedicated epoll thread with reused buffers
//! and in-place header rewriting, and taps decoded PCM for AMD, STT and
//! recording without ever blocking the forwarding path.
//!
//! Entry points: [`MediaEngine`] (one per process), [`MediaSession`] (one per
//! call), [`PortPool`], [`global_metrics`], and the benchmark in [`bench`].

pub mod bench;
mod direct;
pub mod doorbell;
pub mod dtmf;
mod engine;
pub mod g711;
mod inactivity;
pub mod inject;
mod leg;
mod ports;
mod recorder;
mod relay;
pub mod rtp;
pub mod srtp;
mod stats;
mod types;

pub use direct::{DIRECT_FRAME, DIRECT_TICK_MS, DirectPort, ServedLeg};
pub use engine::{MediaEngine, MediaSession};
pub use g711::G711Law;
pub use leg::LatchMode;
pub use ports::{PortPair, PortPool};
pub use recorder::RecordingSummary;
pub use stats::{DropCause, LegStats, MediaStats, MetricsSnapshot, global_metrics};
pub use types::{AudioCodec, Direction, Leg, MediaConfig, MediaEvent, PcmFrame, RemoteMedia};

/// Errors of the media module. Each variant says whether it is the caller's
/// fault, a resource limit, or the host.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The configured port range holds no RTP/RTCP pair.
    #[error(
        "invalid RTP port range {min}..={max}: need even RTP port >= 1024 and RTCP = RTP+1 inside the range"
    )]
    InvalidPortRange {
        /// Configured minimum.
        min: u16,
        /// Configured maximum.
        max: u16,
    },
    /// Every pair of the range is in use (capacity limit reached).
    #[error("RTP ports exhausted: all {pairs} port pairs are in use")]
    PortsExhausted {
        /// Pairs in the pool.
        pairs: usize,
    },
    /// Binding or configuring a socket failed.
    #[error("socket error on {what}: {source}")]
    Socket {
        /// What was being done.
        what: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The relay thread is gone (engine shut down) or the session was stopped.
    #[error("media session or engine stopped")]
    Stopped,
    /// Recording could not be created or written.
    #[error("recording error: {0}")]
    Recording(String),
}

impl MediaError {
    /// True when the error is a capacity limit (callers may answer 503 / retry later).
    pub fn is_capacity(&self) -> bool {
        matches!(self, MediaError::PortsExhausted { .. })
    }
}
