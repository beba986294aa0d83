//! Errors of the simulated peers.

use std::net::SocketAddr;

/// Why a simulated peer could not start or do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The sims talk to loopback only: any other address is refused.
    #[error("{0} is not a loopback address (the simulated peers are loopback-only)")]
    NotLoopback(SocketAddr),
    /// A socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// OS error.
        source: std::io::Error,
    },
    /// A WAV file could not be read or written, or has the wrong format.
    #[error("WAV {path}: {reason}")]
    Wav {
        /// File path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// rsipstack refused to start or to act.
    #[error("SIP stack: {0}")]
    Stack(String),
    /// No call with that Call-ID is known.
    #[error("unknown call {0}")]
    UnknownCall(String),
}

impl SimError {
    /// True when the caller's input (address, file, Call-ID) was at fault, false for runtime
    /// failures (bind, stack) that a retry might fix.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            SimError::NotLoopback(_) | SimError::Wav { .. } | SimError::UnknownCall(_)
        )
    }
}

/// Refuse anything but loopback: the sims must never reach the network.
pub(crate) fn check_loopback(addr: SocketAddr) -> Result<(), SimError> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(SimError::NotLoopback(addr))
    }
}
