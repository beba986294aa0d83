//! The pure parts of RFC 3263 server location: which NAPTR records a SIP client may follow, in
//! what order, and the RFC 2782 order of SRV records (priority, then weighted random). No I/O:
//! the random choice takes its generator as an argument so tests can seed it.

use rand::Rng;

use crate::core::Transport;

/// One NAPTR record as far as SIP cares (RFC 3403 fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    /// Lower first.
    pub order: u16,
    /// Lower first among equal `order`.
    pub preference: u16,
    /// `S` = the replacement is an SRV name (the only flag RFC 3263 uses).
    pub flags: String,
    /// `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, …
    pub services: String,
    /// The SRV name to query next (`_sip._udp.example.com`).
    pub replacement: String,
}

/// One SRV record (RFC 2782).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Lower first.
    pub priority: u16,
    /// Relative share within a priority.
    pub weight: u16,
    /// Port of the SIP server.
    pub port: u16,
    /// Host name of the SIP server (no trailing dot).
    pub target: String,
}

/// The transport a NAPTR service field names, if dialgate can use it (RFC 3263 §4.1).
pub fn naptr_transport(services: &str) -> Option<Transport> {
    match services.to_ascii_uppercase().as_str() {
        "SIP+D2U" => Some(Transport::Udp),
        "SIP+D2T" => Some(Transport::Tcp),
        "SIPS+D2T" => Some(Transport::Tls),
        _ => None,
    }
}

/// The SRV service name of a transport: `_sip._udp`, `_sip._tcp`, `_sips._tcp`.
pub fn srv_prefix(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
    }
}

/// The port of a server found without SRV (RFC 3263 §4.2): 5061 for TLS, else 5060.
pub fn default_port(transport: Transport) -> u16 {
    match transport {
        Transport::Tls => 5061,
        Transport::Udp | Transport::Tcp => 5060,
    }
}

/// The NAPTR records to follow, in order: only `S` records for a transport dialgate speaks,
/// sorted by order then preference (file order on ties). Each comes with its transport.
pub fn usable_naptrs(records: &[Naptr]) -> Vec<(Transport, Naptr)> {
    let mut out: Vec<(Transport, Naptr)> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s"))
        .filter_map(|r| naptr_transport(&r.services).map(|t| (t, r.clone())))
        .collect();
    out.sort_by_key(|(_, r)| (r.order, r.preference));
    out
}

/// SRV records in the order to try them (RFC 2782): by priority, lowest first; within one
/// priority a weighted random order — each next record is drawn with probability proportional
/// to its weight, records of weight 0 placed first in the draw list so they still have a small
/// chance. A target of `.` (service decidedly not available) is dropped.
pub fn order_srv(records: &[Srv], rng: &mut impl Rng) -> Vec<Srv> {
    let mut rest: Vec<Srv> = records
        .iter()
        .filter(|r| !r.target.is_empty() && r.target != ".")
        .cloned()
        .collect();
    // Stable: equal priorities keep their order, zero weights first within them.
    rest.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(rest.len());
    while let Some(first) = rest.first() {
        let priority = first.priority;
        let end = rest
            .iter()
            .position(|r| r.priority != priority)
            .unwrap_or(rest.len());
        let mut group: Vec<Srv> = rest.drain(..end).collect();
        while !group.is_empty() {
            let total: u32 = group.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rng.random_range(0..=total);
            let mut running = 0u32;
            let idx = group
                .iter()
                .position(|r| {
                    running += u32::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(idx));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    fn naptr(order: u16, preference: u16, flags: &str, services: &str, r: &str) -> Naptr {
        Naptr {
            order,
            preference,
            flags: flags.into(),
            services: services.into(),
            replacement: r.into(),
        }
    }

    #[test]
    fn priorities_come_first_whatever_the_weights() {
        // 1. Records listed out of priority order, heavy weights on the later priorities.
        let records = [
            srv(20, 1000, "c"),
            srv(10, 1, "a"),
            srv(30, 0, "d"),
            srv(10, 0, "b"),
        ];
        // 2. Every seed yields priority 10 first, then 20, then 30.
        for seed in 0..200 {
            let order = order_srv(&records, &mut StdRng::seed_from_u64(seed));
            let prios: Vec<u16> = order.iter().map(|r| r.priority).collect();
            assert_eq!(prios, vec![10, 10, 20, 30], "seed {seed}");
        }
    }

    #[test]
    fn weights_share_the_first_place_in_proportion() {
        // 1. Two servers of one priority, weights 3 : 1.
        let records = [srv(10, 75, "heavy"), srv(10, 25, "light")];
        let mut rng = StdRng::seed_from_u64(7);
        let mut heavy_first = 0;
        let n = 4000;
        for _ in 0..n {
            if order_srv(&records, &mut rng)[0].target == "heavy" {
                heavy_first += 1;
            }
        }
        // 2. About three quarters of the draws put the heavy one first (seeded: deterministic).
        assert!((2800..=3200).contains(&heavy_first), "{heavy_first} of {n}");
    }

    #[test]
    fn zero_weights_are_rarely_first_and_never_lost() {
        // 1. A weight-0 server beside a weighted one.
        let records = [srv(10, 0, "zero"), srv(10, 50, "fifty")];
        let mut rng = StdRng::seed_from_u64(3);
        let mut zero_first = 0;
        for _ in 0..1000 {
            let o = order_srv(&records, &mut rng);
            // 2. Both are always there.
            assert_eq!(o.len(), 2);
            if o[0].target == "zero" {
                zero_first += 1;
            }
        }
        // 3. The zero-weight one is first only when the draw is exactly 0 (1 in 51).
        assert!(zero_first < 100, "{zero_first}");
    }

    #[test]
    fn a_dot_target_means_no_service() {
        assert!(order_srv(&[srv(0, 0, ".")], &mut StdRng::seed_from_u64(1)).is_empty());
    }

    #[test]
    fn naptr_keeps_sip_services_in_order_and_preference() {
        // 1. Mixed records: an unknown service, a non-S flag, SIP over TCP, UDP and TLS.
        let records = [
            naptr(20, 10, "s", "SIP+D2U", "_sip._udp.x"),
            naptr(10, 20, "S", "SIP+D2T", "_sip._tcp.x"),
            naptr(10, 10, "s", "SIPS+D2T", "_sips._tcp.x"),
            naptr(5, 10, "s", "SIP+D2S", "_sip._sctp.x"),
            naptr(5, 10, "u", "SIP+D2U", "!^.*$!sip:x!"),
        ];
        // 2. Only the three SIP transports, by (order, preference).
        let got: Vec<(Transport, String)> = usable_naptrs(&records)
            .into_iter()
            .map(|(t, r)| (t, r.replacement))
            .collect();
        assert_eq!(
            got,
            vec![
                (Transport::Tls, "_sips._tcp.x".to_owned()),
                (Transport::Tcp, "_sip._tcp.x".to_owned()),
                (Transport::Udp, "_sip._udp.x".to_owned()),
            ]
        );
    }

    #[test]
    fn service_names_and_default_ports() {
        assert_eq!(srv_prefix(Transport::Udp), "_sip._udp");
        assert_eq!(srv_prefix(Transport::Tcp), "_sip._tcp");
        assert_eq!(srv_prefix(Transport::Tls), "_sips._tcp");
        assert_eq!(default_port(Transport::Tls), 5061);
        assert_eq!(default_port(Transport::Udp), 5060);
        assert_eq!(naptr_transport("sip+d2u"), Some(Transport::Udp));
        assert_eq!(naptr_transport("SIP+D2S"), None);
    }
}
