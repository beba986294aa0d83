//! RTP relay benchmark: a bounded loopback load generator ([`run_load`]), a
//! relay process for dialgate driven over a tiny TCP control protocol
//! ([`serve_relay`]), and an rtpengine ng-protocol driver, so the same load
//! can be run, alternating, through both relays. Wire as the hidden CLI
//! subcommand `dialgate bench-rtp {relay|load}`.

mod load;
mod ng;
mod proc_stat;
mod relay_server;

pub use load::{LoadOptions, PointReport, RelayTarget, run_load};
pub use relay_server::serve_relay;

/// Benchmark failures.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Socket or process I/O failed.
    #[error("bench I/O error ({what}): {source}")]
    Io {
        /// What was being done.
        what: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// A relay answered something unexpected.
    #[error("relay control error: {0}")]
    Control(String),
    /// Creating a media session failed.
    #[error(transparent)]
    Media(#[from] super::MediaError),
}

pub(crate) fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        what: what.to_string(),
        source,
    }
}
