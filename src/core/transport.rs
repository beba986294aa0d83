//! The SIP transport of a listener, a trunk or a leg: one type for the configuration and the SIP
//! layer (it used to be two, mapped in two places).

use serde::Deserialize;
use std::fmt;

/// A SIP transport dialgate listens on or sends over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
    /// SIP over TLS (rustls; listeners need certificates).
    Tls,
}

impl Transport {
    /// Lower-case name used in URIs (`transport=tcp`), the YAML and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
