//! Where a trunk's INVITE goes when its address is a domain name: RFC 3263 server location
//! (NAPTR → SRV → A/AAAA) with hickory-resolver, whose cache keeps each answer for its TTL.
//!
//! - A literal IP (with or without port) is not resolved: it is used as written, as before.
//! - `name:port`: A/AAAA only (RFC 3263 §4.2: an explicit port skips NAPTR and SRV).
//! - `name` with the trunk's `transport` set: SRV of that transport (`_sip._udp`, `_sip._tcp`,
//!   `_sips._tcp`), else A/AAAA on the default port.
//! - `name` without `transport`: NAPTR first (it may choose the transport), else SRV of each
//!   transport (UDP, TCP, TLS), else A/AAAA over UDP on 5060.
//!
//! The result is an ordered list of [`DnsTarget`]s the leg fails over across (`sip/leg.rs`).
//! Every resolution is bounded by the configured timeout; failures are [`DnsError`]s that end
//! the attempt like an unreachable trunk, never a hang.

mod locate;
pub mod order;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use super::leg_types::FailureKind;
use crate::core::Transport;

/// At most this many targets are tried for one trunk address (each may take up to Timer B).
pub const MAX_TARGETS: usize = 16;

/// Which DNS servers to ask, and how long one resolution may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSettings {
    /// Servers (`ip:port`); empty = the system's (`/etc/resolv.conf`).
    pub servers: Vec<SocketAddr>,
    /// Bound on one whole resolution of a trunk address (all its NAPTR/SRV/A queries).
    pub timeout: Duration,
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            servers: Vec::new(),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
        }
    }
}

/// Default of `server.dns.timeout_ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;

/// A trunk address to locate: the configured `host[:port]` and transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkHost {
    /// Host name or IP (IPv6 without brackets).
    pub host: String,
    /// Port, when the address has one.
    pub port: Option<u16>,
    /// The trunk's transport (used unless NAPTR chooses one).
    pub transport: Transport,
    /// The transport was not configured: NAPTR may choose it (RFC 3263 §4.1).
    pub naptr: bool,
}

impl TrunkHost {
    /// Reads `host`, `host:port`, `[v6]`, `[v6]:port` (or a bare IPv6 address).
    pub fn parse(host_port: &str, transport: Transport, naptr: bool) -> TrunkHost {
        let s = host_port.trim();
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            match rest.split_once(']') {
                Some((h, after)) => (h, after.strip_prefix(':').and_then(|p| p.parse().ok())),
                None => (rest, None),
            }
        } else if s.matches(':').count() == 1 {
            match s.split_once(':') {
                Some((h, p)) => (h, p.parse().ok()),
                None => (s, None),
            }
        } else {
            (s, None)
        };
        TrunkHost {
            host: host.to_owned(),
            port,
            transport,
            naptr,
        }
    }

    /// The host is an IP literal: nothing to resolve.
    pub fn is_literal(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }
}

impl fmt::Display for TrunkHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        Ok(())
    }
}

/// How a target was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// NAPTR → SRV → A/AAAA.
    Naptr,
    /// SRV → A/AAAA.
    Srv,
    /// A/AAAA of the host itself.
    Address,
}

/// One place to send the INVITE, in the order to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTarget {
    /// Where to send.
    pub addr: SocketAddr,
    /// Over what.
    pub transport: Transport,
    /// The server's name (the SRV target, or the host).
    pub name: String,
    /// SRV `(priority, weight)`, when found through SRV.
    pub srv: Option<(u16, u16)>,
    /// Which step of RFC 3263 found it.
    pub found: Found,
}

impl DnsTarget {
    /// `ip:port` as written in a Route (`[v6]:port`).
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }
}

impl fmt::Display for DnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({}", self.transport, self.addr, self.name)?;
        match (self.found, self.srv) {
            (Found::Address, _) | (_, None) => write!(f, ", A/AAAA")?,
            (found, Some((p, w))) => {
                let via = if found == Found::Naptr { "NAPTR, " } else { "" };
                write!(f, ", {via}SRV priority {p} weight {w}")?
            }
        }
        f.write_str(")")
    }
}

/// Why a trunk address could not be resolved. The attempt fails like an unreachable trunk
/// (reasonCode `error`, reason "carrier unreachable: DNS: …").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name does not exist.
    #[error("DNS: {name} does not exist (NXDOMAIN)")]
    NxDomain {
        /// The trunk's host.
        name: String,
    },
    /// The name exists but has no NAPTR, SRV, A or AAAA record a SIP client can use.
    #[error("DNS: no SIP server found for {name} (no usable NAPTR, SRV, A or AAAA record)")]
    NoRecords {
        /// The trunk's host.
        name: String,
    },
    /// The whole resolution took longer than `server.dns.timeout_ms`.
    #[error("DNS: resolving {name} timed out after {ms} ms")]
    Timeout {
        /// The trunk's host.
        name: String,
        /// The bound that expired.
        ms: u128,
    },
    /// A query failed (server failure, refused, network error).
    #[error("DNS: resolving {name} failed: {reason}")]
    Lookup {
        /// The trunk's host.
        name: String,
        /// The resolver's error.
        reason: String,
    },
    /// The resolver could not be set up (e.g. no readable `/etc/resolv.conf`).
    #[error("DNS resolver unusable: {0}")]
    Resolver(String),
}

impl DnsError {
    /// How the leg reports it: the trunk could not be reached.
    pub fn failure_kind(&self) -> FailureKind {
        FailureKind::Transport
    }
}

/// Resolves trunk addresses (one per endpoint: its cache is shared by every call).
pub struct TrunkResolver {
    inner: Result<TokioResolver, String>,
    timeout: Duration,
}

impl fmt::Debug for TrunkResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrunkResolver")
            .field("usable", &self.inner.is_ok())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl TrunkResolver {
    /// A resolver asking `settings.servers` (or the system's). Never fails: an unusable
    /// configuration fails each resolution with [`DnsError::Resolver`] instead.
    pub fn new(settings: &DnsSettings) -> TrunkResolver {
        TrunkResolver {
            inner: build(settings),
            timeout: settings.timeout,
        }
    }

    /// The targets of `host`, in the order to try them (at most [`MAX_TARGETS`]). A literal
    /// IP is returned as is (port and transport as given, port defaulted).
    pub async fn resolve(&self, host: &TrunkHost) -> Result<Vec<DnsTarget>, DnsError> {
        if let Ok(ip) = host.host.parse::<IpAddr>() {
            let port = host
                .port
                .unwrap_or_else(|| order::default_port(host.transport));
            return Ok(vec![DnsTarget {
                addr: SocketAddr::new(ip, port),
                transport: host.transport,
                name: host.host.clone(),
                srv: None,
                found: Found::Address,
            }]);
        }
        let resolver = self
            .inner
            .as_ref()
            .map_err(|e| DnsError::Resolver(e.clone()))?;
        match tokio::time::timeout(self.timeout, locate::locate(resolver, host)).await {
            Ok(r) => r.map(|mut t| {
                t.truncate(MAX_TARGETS);
                t
            }),
            Err(_) => Err(DnsError::Timeout {
                name: host.host.clone(),
                ms: self.timeout.as_millis(),
            }),
        }
    }
}

fn build(settings: &DnsSettings) -> Result<TokioResolver, String> {
    let mut builder = if settings.servers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| format!("system DNS configuration: {e}"))?
    } else {
        let servers = settings
            .servers
            .iter()
            .map(|s| {
                let mut udp = ConnectionConfig::udp();
                udp.port = s.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = s.port();
                NameServerConfig::new(s.ip(), true, vec![udp, tcp])
            })
            .collect();
        TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(servers),
            TokioRuntimeProvider::default(),
        )
    };
    let opts = builder.options_mut();
    // Half the budget per query leaves room for the next step (NAPTR, then SRV, then A) or a
    // second server; the whole resolution is still cut at `timeout`.
    opts.timeout = (settings.timeout / 2).max(Duration::from_millis(50));
    opts.attempts = 1;
    // A first, AAAA only for names without A (hickory's default asks AAAA first and lists it
    // first): the SIP listeners are IPv4 unless configured otherwise. A name's positive answer
    // is then one cached record set, kept for its TTL.
    opts.ip_strategy = LookupIpStrategy::Ipv4thenIpv6;
    builder.build().map_err(|e| format!("DNS resolver: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trunk_hosts_are_read_as_configured() {
        let t = |s: &str| TrunkHost::parse(s, Transport::Udp, false);
        assert_eq!(
            (t("carrier.example").host, t("carrier.example").port),
            ("carrier.example".into(), None)
        );
        assert_eq!(t("carrier.example:5070").port, Some(5070));
        assert_eq!(t("[2001:db8::1]:5080").host, "2001:db8::1");
        assert_eq!(t("[2001:db8::1]:5080").port, Some(5080));
        assert_eq!(t("2001:db8::1").host, "2001:db8::1");
        assert!(t("10.0.0.1:5060").is_literal());
        assert!(!t("carrier.example").is_literal());
        assert_eq!(t("[::1]:5060").to_string(), "[::1]:5060");
    }

    #[test]
    fn targets_say_how_they_were_found() {
        let t = DnsTarget {
            addr: "127.0.0.1:5062".parse().unwrap(),
            transport: Transport::Udp,
            name: "b.carrier.test".into(),
            srv: Some((20, 5)),
            found: Found::Naptr,
        };
        assert_eq!(
            t.to_string(),
            "udp 127.0.0.1:5062 (b.carrier.test, NAPTR, SRV priority 20 weight 5)"
        );
    }

    #[tokio::test]
    async fn literal_addresses_are_not_resolved() {
        // A resolver pointing at a port where nothing answers: literals never ask it.
        let r = TrunkResolver::new(&DnsSettings {
            servers: vec!["127.0.0.1:9".parse().unwrap()],
            timeout: Duration::from_millis(100),
        });
        let got = r
            .resolve(&TrunkHost::parse("10.0.0.1", Transport::Tls, false))
            .await
            .unwrap();
        assert_eq!(got[0].addr, "10.0.0.1:5061".parse().unwrap());
        assert_eq!(got[0].transport, Transport::Tls);
    }
}
