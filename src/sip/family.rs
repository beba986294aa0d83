//! IPv4 and IPv6 side by side: which of dialgate's addresses a leg advertises, and the one fix
//! rsipstack needs for a leg of the other family (the Via of its requests).
//!
//! A call may mix families (an IPv6 carrier and an IPv4 bot): every leg picks its own address
//! by its next hop's family — Contact, Via, SDP `o=`/`c=` and the relay's socket all follow.

use std::net::{IpAddr, SocketAddr};

use rsipstack::sip::prelude::ToTypedHeader as _;
use rsipstack::sip::{Header, SipMessage};
use rsipstack::transport::SipAddr;

use super::endpoint::Transport;

/// dialgate's advertised address per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicAddrs {
    /// `server.sip.public_address`: the address of legs whose peer is a name or of that family.
    pub primary: IpAddr,
    /// The address of the other family, when dialgate has one (a listener or a setting).
    pub other: Option<IpAddr>,
}

impl PublicAddrs {
    /// `primary` plus the first address of the other family among `v6` (the explicit setting)
    /// and the listeners' specific (non-wildcard) addresses.
    pub fn new(primary: IpAddr, v6: Option<IpAddr>, listen: &[SocketAddr]) -> PublicAddrs {
        let other = v6
            .into_iter()
            .chain(listen.iter().map(SocketAddr::ip))
            .find(|ip| ip.is_ipv4() != primary.is_ipv4() && !ip.is_unspecified());
        PublicAddrs { primary, other }
    }

    /// The address to advertise to a peer at `peer` (`None`: a name, the primary family).
    pub fn for_peer(&self, peer: Option<IpAddr>) -> IpAddr {
        match (peer, self.other) {
            (Some(p), Some(o)) if p.is_ipv4() == o.is_ipv4() => o,
            _ => self.primary,
        }
    }
}

/// An address as the host part of a SIP URI: IPv6 in brackets (RFC 3261 §25.1 `IPv6reference`).
pub fn uri_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The literal address of a `host[:port]`, `[v6][:port]` or SIP URI's host, if it is one
/// (a domain name gives `None`).
pub fn literal_ip(target: &str) -> Option<IpAddr> {
    let t = target.trim();
    let t = t
        .strip_prefix("sips:")
        .or_else(|| t.strip_prefix("sip:"))
        .unwrap_or(t);
    let t = t.rsplit_once('@').map_or(t, |(_, host)| host);
    let t = t.split([';', '?', '>']).next().unwrap_or(t);
    if let Some(rest) = t.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(sa) = t.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    t.split(':').next()?.parse().ok()
}

/// rsipstack writes the first listener's address into the Via of every request; a request to a
/// peer of the other family gets dialgate's address of that family (and that listener's port)
/// instead, so the peer's responses come back over the family it was reached by.
/// `ours(transport, v6)` is dialgate's advertised `ip:port` of that transport and family.
pub(crate) fn fix_via(
    msg: SipMessage,
    dest: Option<&SipAddr>,
    ours: impl Fn(Transport, bool) -> Option<SocketAddr>,
) -> SipMessage {
    let SipMessage::Request(mut req) = msg else {
        return msg;
    };
    let Some(dest_v6) = dest.and_then(sip_addr_ip).map(|ip| ip.is_ipv6()) else {
        return SipMessage::Request(req);
    };
    for h in req.headers.iter_mut() {
        let Header::Via(via) = h else { continue };
        let Ok(mut typed) = via.typed() else { break };
        let Some(sent_v6) = host_ip(&typed.uri.host_with_port).map(|ip| ip.is_ipv6()) else {
            break;
        };
        if sent_v6 != dest_v6 {
            let transport = match typed.transport {
                rsipstack::sip::Transport::Tcp => Transport::Tcp,
                rsipstack::sip::Transport::Tls => Transport::Tls,
                _ => Transport::Udp,
            };
            if let Some(addr) = ours(transport, dest_v6) {
                typed.uri.host_with_port = addr.into();
                *h = Header::Via(typed.into());
            }
        }
        // Only the top Via is ours.
        break;
    }
    SipMessage::Request(req)
}

fn host_ip(hp: &rsipstack::sip::HostWithPort) -> Option<IpAddr> {
    match &hp.host {
        rsipstack::sip::Host::IpAddr(ip) => Some(*ip),
        rsipstack::sip::Host::Domain(_) => None,
    }
}

fn sip_addr_ip(a: &SipAddr) -> Option<IpAddr> {
    host_ip(&a.addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_of_hops_and_uris() {
        let v6: IpAddr = "::1".parse().unwrap();
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(literal_ip("[::1]:5060"), Some(v6));
        assert_eq!(literal_ip("[::1]"), Some(v6));
        assert_eq!(literal_ip("sip:bot@[::1]:5090;transport=udp"), Some(v6));
        assert_eq!(literal_ip("sips:[::1]"), Some(v6));
        assert_eq!(literal_ip("127.0.0.1:5060"), Some(v4));
        assert_eq!(literal_ip("sip:bot@127.0.0.1"), Some(v4));
        assert_eq!(literal_ip("sip:bot@carrier.example:5060"), None);
        assert_eq!(literal_ip("carrier.example"), None);
    }

    #[test]
    fn each_peer_gets_the_address_of_its_family() {
        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        let v6: IpAddr = "2001:db8::10".parse().unwrap();
        let listen: Vec<SocketAddr> = vec![
            "0.0.0.0:5060".parse().unwrap(),
            "[::]:5060".parse().unwrap(),
            "[::1]:5062".parse().unwrap(),
        ];
        // 1. The setting wins over listeners; wildcards never count.
        let p = PublicAddrs::new(v4, Some(v6), &listen);
        assert_eq!(p.other, Some(v6));
        // 2. Without it, the first specific listener of the other family.
        let p = PublicAddrs::new(v4, None, &listen);
        assert_eq!(p.other, Some("::1".parse().unwrap()));
        // 3. Peers: IPv6 literal → IPv6, IPv4 or a name → primary.
        assert_eq!(p.for_peer(Some(v6)), "::1".parse::<IpAddr>().unwrap());
        assert_eq!(p.for_peer(Some("10.0.0.1".parse().unwrap())), v4);
        assert_eq!(p.for_peer(None), v4);
        // 4. No address of the other family: the primary for everybody.
        let p = PublicAddrs::new(v4, None, &listen[..2]);
        assert_eq!(p.for_peer(Some(v6)), v4);
        assert_eq!(uri_host(v6), "[2001:db8::10]");
        assert_eq!(uri_host(v4), "192.0.2.10");
    }

    #[test]
    fn a_request_to_an_ipv6_peer_carries_our_ipv6_via() {
        let raw = "INVITE sip:b@[::1]:5090 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1;rport\r\n\
             From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@[::1]:5090>\r\nCall-ID: c1\r\n\
             CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let msg = SipMessage::try_from(raw).unwrap();
        let dest = SipAddr {
            r#type: Some(rsipstack::sip::Transport::Udp),
            addr: "[::1]:5090".parse::<SocketAddr>().unwrap().into(),
        };
        let ours = |_t, v6: bool| -> Option<SocketAddr> {
            Some(
                if v6 { "[::1]:5062" } else { "127.0.0.1:5060" }
                    .parse()
                    .unwrap(),
            )
        };
        // 1. IPv6 destination: the Via names [::1]:5062, its parameters kept.
        let fixed = fix_via(msg.clone(), Some(&dest), ours).to_string();
        assert!(
            fixed.contains("Via: SIP/2.0/UDP [::1]:5062;branch=z9hG4bK1;rport"),
            "{fixed}"
        );
        // 2. IPv4 destination: untouched.
        let dest4 = SipAddr {
            r#type: Some(rsipstack::sip::Transport::Udp),
            addr: "127.0.0.1:5090".parse::<SocketAddr>().unwrap().into(),
        };
        let same = fix_via(msg, Some(&dest4), ours).to_string();
        assert!(same.contains("Via: SIP/2.0/UDP 127.0.0.1:5060;"), "{same}");
    }
}
