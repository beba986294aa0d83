//! The RFC 3263 §4 procedure over hickory-resolver: NAPTR, SRV and A/AAAA queries in the
//! order the address calls for (see the module documentation of `sip::dns`).

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, RecordType};
use tracing::debug;

use super::order::{self, Naptr, Srv};
use super::{DnsError, DnsTarget, Found, TrunkHost};
use crate::core::Transport;

/// What one query found: records, nothing, or a failure worth reporting.
enum Answer<T> {
    Records(Vec<T>),
    /// No such name (NXDOMAIN) or no record of this type.
    Nothing {
        nxdomain: bool,
    },
    Failed(String),
}

/// The targets of a domain `host` (not a literal), in the order to try them.
pub(super) async fn locate(
    resolver: &TokioResolver,
    host: &TrunkHost,
) -> Result<Vec<DnsTarget>, DnsError> {
    let name = host.host.clone();
    let mut failure: Option<String> = None;
    let mut note = |f: Option<String>| {
        if failure.is_none() {
            failure = f;
        }
    };
    // 1. An explicit port: the host's addresses only.
    if let Some(port) = host.port {
        return addresses(resolver, host, port).await;
    }
    // 2. No transport configured: NAPTR may choose one.
    if host.naptr {
        match naptrs(resolver, &name).await {
            Answer::Records(records) => {
                let mut out = Vec::new();
                for (transport, r) in order::usable_naptrs(&records) {
                    match srv_targets(resolver, &r.replacement, transport, Found::Naptr).await {
                        Ok(t) => out.extend(t),
                        Err(e) => note(Some(e)),
                    }
                }
                if !out.is_empty() {
                    return Ok(out);
                }
                debug!(%name, "NAPTR records lead to no usable server; trying SRV");
            }
            Answer::Nothing { .. } => {}
            Answer::Failed(e) => note(Some(e)),
        }
    }
    // 3. SRV: of the configured transport, or of each one when none was configured.
    let transports: &[Transport] = if host.naptr {
        &[Transport::Udp, Transport::Tcp, Transport::Tls]
    } else {
        std::slice::from_ref(&host.transport)
    };
    for &t in transports {
        let srv_name = format!("{}.{name}", order::srv_prefix(t));
        match srv_targets(resolver, &srv_name, t, Found::Srv).await {
            Ok(targets) if !targets.is_empty() => return Ok(targets),
            Ok(_) => {}
            Err(e) => note(Some(e)),
        }
    }
    // 4. The host's own addresses on the default port.
    let transport = if host.naptr {
        Transport::Udp
    } else {
        host.transport
    };
    let plain = TrunkHost {
        transport,
        ..host.clone()
    };
    match addresses(resolver, &plain, order::default_port(transport)).await {
        Ok(t) => Ok(t),
        // A query failure met on the way says more than "no records".
        Err(DnsError::NoRecords { .. }) if failure.is_some() => Err(DnsError::Lookup {
            name,
            reason: failure.unwrap_or_default(),
        }),
        Err(e) => Err(e),
    }
}

/// A/AAAA of `host.host` on `port`, as targets of `host.transport`.
async fn addresses(
    resolver: &TokioResolver,
    host: &TrunkHost,
    port: u16,
) -> Result<Vec<DnsTarget>, DnsError> {
    let name = host.host.clone();
    match ips(resolver, &name).await {
        Answer::Records(ips) => Ok(ips
            .into_iter()
            .map(|ip| DnsTarget {
                addr: SocketAddr::new(ip, port),
                transport: host.transport,
                name: name.clone(),
                srv: None,
                found: Found::Address,
            })
            .collect()),
        Answer::Nothing { nxdomain: true } => Err(DnsError::NxDomain { name }),
        Answer::Nothing { nxdomain: false } => Err(DnsError::NoRecords { name }),
        Answer::Failed(reason) => Err(DnsError::Lookup { name, reason }),
    }
}

/// The servers of one SRV name, ordered (RFC 2782), each expanded to its addresses. `Err` is a
/// failed query; an absent name is `Ok(empty)`.
async fn srv_targets(
    resolver: &TokioResolver,
    srv_name: &str,
    transport: Transport,
    found: Found,
) -> Result<Vec<DnsTarget>, String> {
    let records = match srvs(resolver, srv_name).await {
        Answer::Records(r) => r,
        Answer::Nothing { .. } => return Ok(Vec::new()),
        Answer::Failed(e) => return Err(e),
    };
    let ordered = order::order_srv(&records, &mut rand::rng());
    let mut out = Vec::new();
    for s in ordered {
        match ips(resolver, &s.target).await {
            Answer::Records(ips) => out.extend(ips.into_iter().map(|ip| DnsTarget {
                addr: SocketAddr::new(ip, s.port),
                transport,
                name: s.target.clone(),
                srv: Some((s.priority, s.weight)),
                found,
            })),
            // A server without an address is skipped; the others may still answer.
            _ => debug!(target = %s.target, "SRV target has no address"),
        }
    }
    Ok(out)
}

fn nothing_or_failed<T>(e: NetError) -> Answer<T> {
    if e.is_nx_domain() {
        Answer::Nothing { nxdomain: true }
    } else if e.is_no_records_found() {
        Answer::Nothing { nxdomain: false }
    } else {
        Answer::Failed(e.to_string())
    }
}

fn plain_name(n: &hickory_resolver::proto::rr::Name) -> String {
    n.to_utf8().trim_end_matches('.').to_owned()
}

async fn naptrs(resolver: &TokioResolver, name: &str) -> Answer<Naptr> {
    match resolver.lookup(name, RecordType::NAPTR).await {
        Ok(l) => Answer::Records(
            l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::NAPTR(n) => Some(Naptr {
                        order: n.order,
                        preference: n.preference,
                        flags: String::from_utf8_lossy(&n.flags).into_owned(),
                        services: String::from_utf8_lossy(&n.services).into_owned(),
                        replacement: plain_name(&n.replacement),
                    }),
                    _ => None,
                })
                .collect(),
        ),
        Err(e) => nothing_or_failed(e),
    }
}

async fn srvs(resolver: &TokioResolver, name: &str) -> Answer<Srv> {
    match resolver.lookup(name, RecordType::SRV).await {
        Ok(l) => Answer::Records(
            l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::SRV(s) => Some(Srv {
                        priority: s.priority,
                        weight: s.weight,
                        port: s.port,
                        target: plain_name(&s.target),
                    }),
                    _ => None,
                })
                .collect(),
        ),
        Err(e) => nothing_or_failed(e),
    }
}

async fn ips(resolver: &TokioResolver, name: &str) -> Answer<IpAddr> {
    match resolver.lookup_ip(name).await {
        Ok(l) => {
            let ips: Vec<IpAddr> = l.iter().collect();
            if ips.is_empty() {
                Answer::Nothing { nxdomain: false }
            } else {
                Answer::Records(ips)
            }
        }
        Err(e) => nothing_or_failed(e),
    }
}
