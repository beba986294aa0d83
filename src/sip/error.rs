//! Errors of the SIP layer.

/// What went wrong starting the endpoint or placing a leg.
#[derive(Debug, thiserror::Error)]
pub enum SipError {
    /// A listen socket could not be bound.
    #[error("cannot listen on {addr} ({transport}): {source}")]
    Bind {
        /// Address that was requested.
        addr: std::net::SocketAddr,
        /// Transport name.
        transport: &'static str,
        /// OS error.
        source: std::io::Error,
    },
    /// TLS certificate or key could not be read.
    #[error("TLS material {path}: {source}")]
    TlsFile {
        /// File path.
        path: String,
        /// OS error.
        source: std::io::Error,
    },
    /// A TLS listener was requested without `tls` cert/key.
    #[error("TLS listener needs a certificate and key")]
    TlsMissing,
    /// A URI or header given by the caller is not valid SIP.
    #[error("invalid {what}: {value}")]
    InvalidInput {
        /// Which input.
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// rsipstack refused the operation.
    #[error("sip stack: {0}")]
    Stack(String),
    /// The endpoint has been shut down.
    #[error("endpoint is shut down")]
    Shutdown,
}

impl SipError {
    /// True when the error is the caller's fault (bad configuration or input), not the network.
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            SipError::InvalidInput { .. } | SipError::TlsMissing | SipError::TlsFile { .. }
        )
    }
}
