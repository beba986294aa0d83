//! What `dialgate check` says about trunks given by domain name: the targets each address
//! resolves to right now (RFC 3263, the same resolver and settings the gateway uses), in the
//! order a call would try them, or why it does not resolve.

use crate::config::{Config, SipConnection};
use crate::sip::dns::{TrunkHost, TrunkResolver};

/// The trunk's addresses that need DNS, with the key they come from (`address`,
/// `backup_address`) — the same hosts a carrier leg locates.
pub fn domain_hosts(conn: &SipConnection) -> Vec<(&'static str, TrunkHost)> {
    let naptr = !conn.transport_explicit;
    std::iter::once(("address", &conn.address))
        .chain(conn.backup_address.iter().map(|b| ("backup_address", b)))
        .map(|(key, hp)| {
            (
                key,
                TrunkHost::parse(&hp.to_string(), conn.transport, naptr),
            )
        })
        .filter(|(_, h)| !h.is_literal())
        .collect()
}

/// Any trunk is given by domain name (so `check` has something to resolve).
pub fn any_domain(cfg: &Config) -> bool {
    cfg.sip_connections
        .iter()
        .any(|c| !domain_hosts(c).is_empty())
}

/// One block of lines per domain address: its targets numbered in order, or a `WARNING:` line
/// with the resolution error. Each resolution is bounded by `server.dns.timeout_ms`.
pub async fn describe(cfg: &Config) -> Vec<String> {
    let resolver = TrunkResolver::new(&cfg.server.dns);
    let mut out = Vec::new();
    for conn in &cfg.sip_connections {
        for (key, host) in domain_hosts(conn) {
            let what = format!("trunk {} ({}) {key} {host}", conn.id, conn.name);
            match resolver.resolve(&host).await {
                Ok(targets) => {
                    out.push(format!("DNS: {what} resolves to:"));
                    for (i, t) in targets.iter().enumerate() {
                        out.push(format!("  {}. {t}", i + 1));
                    }
                    if targets.iter().any(|t| t.srv.is_some()) {
                        out.push(
                            "  (within one SRV priority the order is drawn again per call, by weight)"
                                .to_owned(),
                        );
                    }
                }
                Err(e) => out.push(format!(
                    "WARNING: {what} does not resolve ({e}); calls through it fail until it does"
                )),
            }
        }
    }
    out
}
