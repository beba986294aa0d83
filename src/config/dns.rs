//! `server.dns`: which DNS servers locate trunks given by domain name, and the bound on one
//! resolution. Read at start (like the SIP listeners).

use super::error::ErrorKind;
use super::raw::RawDns;
use super::validate::Ctx;
use crate::sip::dns::{DEFAULT_TIMEOUT_MS, DnsSettings};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Accepted `server.dns.timeout_ms`.
const TIMEOUT_MS: std::ops::RangeInclusive<u32> = 100..=60_000;

/// `ip` (port 53) or `ip:port`, IPv6 as `[v6]:port` or bare.
fn server(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

impl Ctx<'_> {
    /// Validates `server.dns` (always in source 0).
    pub(super) fn dns(&mut self, raw: &RawDns) -> DnsSettings {
        let mut servers = Vec::new();
        for (i, s) in raw.servers.iter().enumerate() {
            match server(s.trim()) {
                Some(a) if a.port() != 0 => servers.push(a),
                _ => self.err(
                    0,
                    &format!("server.dns.servers[{i}]"),
                    ErrorKind::InvalidValue,
                    format!(
                        "`{s}` is not a DNS server address; write an IP, or IP:port (e.g. 127.0.0.1:53 or [::1]:53)"
                    ),
                ),
            }
        }
        let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS as u32);
        if !TIMEOUT_MS.contains(&timeout_ms) {
            self.err(
                0,
                "server.dns.timeout_ms",
                ErrorKind::InvalidValue,
                format!(
                    "expected a whole number of milliseconds from {} to {}, got {timeout_ms}",
                    TIMEOUT_MS.start(),
                    TIMEOUT_MS.end()
                ),
            );
        }
        DnsSettings {
            servers,
            timeout: Duration::from_millis(u64::from(timeout_ms)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::server;

    #[test]
    fn servers_with_and_without_port() {
        assert_eq!(server("127.0.0.1"), Some("127.0.0.1:53".parse().unwrap()));
        assert_eq!(
            server("127.0.0.1:15353"),
            Some("127.0.0.1:15353".parse().unwrap())
        );
        assert_eq!(server("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(server("[::1]:5353"), Some("[::1]:5353".parse().unwrap()));
        assert_eq!(server("dns.example"), None);
    }
}
