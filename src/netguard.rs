//! Where dialgate may send a request on a dialer's say-so (`notifyUrl`): not to
//! its own machine or network (loopback, private, link-local — which holds
//! cloud metadata services — shared, multicast, unspecified, broadcast,
//! documentation or reserved ranges) unless the YAML allows a network
//! (`server.notify_allow`). Checked twice: on the URL when the dialout is
//! accepted, and on every address a host name resolves to when the request
//! connects, so a name that changes its answer after the check (DNS
//! rebinding) is still refused. The connect-time check is a DNS resolver for
//! hyper-util's connector that only returns permitted addresses: the
//! connector then connects to exactly what was checked.

use ipnet::IpNet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The URL does not parse or has no host.
    #[error("`{0}` is not an absolute http:// or https:// URL")]
    BadUrl(String),
    /// The host is, or resolves to, an address dialgate does not send to.
    #[error(
        "{0} is a loopback, private, link-local, multicast or reserved address; notifications only go to public addresses unless server.notify_allow lists the network"
    )]
    NotPublic(IpAddr),
    /// The name resolved to nothing permitted (or nothing at all).
    #[error("no permitted address")]
    NoPermittedAddress,
}

/// The networks allowed in spite of not being public, read at each check so a
/// configuration reload applies to the next request.
pub type AllowList = Arc<dyn Fn() -> Vec<IpNet> + Send + Sync>;

/// An IPv4 address on the public internet (RFC 6890 special-purpose ranges
/// excluded).
fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0                                  // "this network"
        || (a == 100 && (64..128).contains(&b))    // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0)          // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19))      // benchmarking
        || a >= 240) // reserved
}

/// An IPv6 address on the public internet; IPv4-mapped and -compatible
/// addresses are judged by their IPv4 address.
fn public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let s = ip.segments();
    if s[..6].iter().all(|&x| x == 0) && !ip.is_loopback() && !ip.is_unspecified() {
        // ::a.b.c.d (deprecated IPv4-compatible)
        return public_v4(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ));
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00          // unique local fc00::/7
        || (s[0] & 0xffc0) == 0xfe80          // link-local fe80::/10
        || (s[0] & 0xffc0) == 0xfec0          // site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || s[0] == 0x0064 && s[1] == 0xff9b) // NAT64: embeds an IPv4 address
}

/// Whether dialgate may connect to `ip` on a dialer's behalf.
pub fn permitted(ip: IpAddr, allow: &[IpNet]) -> bool {
    let public = match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => public_v6(v6),
    };
    // An IPv4-mapped address (`::ffff:127.0.0.1`, how a dual-stack socket sees an IPv4 peer)
    // is the IPv4 address for the allow list too.
    let mapped = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    public
        || allow
            .iter()
            .any(|n| n.contains(&ip) || mapped.is_some_and(|m| n.contains(&m)))
}

/// The acceptance check of a URL: scheme and host, and a literal address (or
/// `localhost`) must be permitted. Other names are checked when resolved.
pub fn check_url(url: &str, allow: &[IpNet]) -> Result<(), GuardError> {
    let parsed = url::Url::parse(url).map_err(|_| GuardError::BadUrl(url.to_owned()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(GuardError::BadUrl(url.to_owned()));
    }
    let ip = match parsed.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                return Ok(());
            }
        }
        None => return Err(GuardError::BadUrl(url.to_owned())),
    };
    if permitted(ip, allow) {
        Ok(())
    } else {
        Err(GuardError::NotPublic(ip))
    }
}

/// A hyper-util DNS resolver that resolves with the system resolver and keeps
/// only permitted addresses (refusing when none is left).
#[derive(Clone)]
pub struct GuardedResolver {
    allow: AllowList,
}

impl GuardedResolver {
    /// A resolver checking against `allow`.
    pub fn new(allow: AllowList) -> Self {
        GuardedResolver { allow }
    }
}

type ResolveFuture =
    Pin<Box<dyn Future<Output = Result<std::vec::IntoIter<SocketAddr>, GuardError>> + Send>>;

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = GuardError;
    type Future = ResolveFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Self::Future {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector sets the URL's port on each address.
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| GuardError::NoPermittedAddress)?;
            let allow = allow();
            let addrs: Vec<SocketAddr> = found.filter(|a| permitted(a.ip(), &allow)).collect();
            if addrs.is_empty() {
                tracing::debug!(%host, "notification host resolves to no permitted address");
                return Err(GuardError::NoPermittedAddress);
            }
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::7f00:1",
        ] {
            assert!(!permitted(ip(s), &[]), "{s} must be refused");
        }
        for s in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(permitted(ip(s), &[]), "{s} is public");
        }
    }

    #[test]
    fn an_allowed_network_opens_only_itself() {
        let allow: Vec<IpNet> = vec!["127.0.0.0/8".parse().unwrap()];
        assert!(permitted(ip("127.0.0.1"), &allow));
        assert!(!permitted(ip("10.0.0.1"), &allow));
        assert!(!permitted(ip("::1"), &allow));
        // IPv6: ::1 only when allowed itself; a mapped IPv4 address follows its IPv4 network.
        assert!(permitted(ip("::ffff:127.0.0.1"), &allow));
        assert!(!permitted(ip("::ffff:10.0.0.1"), &allow));
        let allow6: Vec<IpNet> = vec!["::1/128".parse().unwrap()];
        assert!(permitted(ip("::1"), &allow6));
        assert!(!permitted(ip("127.0.0.1"), &allow6));
        assert!(matches!(check_url("http://[::1]:9/n", &allow6), Ok(())));
        assert!(check_url("http://[::1]:9/n", &allow).is_err());
    }

    #[test]
    fn urls_are_checked_by_their_literal_host() {
        assert!(matches!(
            check_url("http://127.0.0.1:9/n", &[]),
            Err(GuardError::NotPublic(_))
        ));
        assert!(matches!(
            check_url("http://[::1]/n", &[]),
            Err(GuardError::NotPublic(_))
        ));
        assert!(matches!(
            check_url("http://LocalHost./n", &[]),
            Err(GuardError::NotPublic(_))
        ));
        assert!(matches!(
            check_url("http://0x7f.1/n", &[]),
            Err(GuardError::NotPublic(_))
        ));
        assert!(check_url("https://dialer.example.com/n", &[]).is_ok());
        assert!(matches!(
            check_url("ftp://x/", &[]),
            Err(GuardError::BadUrl(_))
        ));
    }

    #[tokio::test]
    async fn the_resolver_drops_what_is_not_permitted() {
        use tower_service::Service;
        // 1. `localhost` resolves to loopback only: refused without an allow-list
        let name: hyper_util::client::legacy::connect::dns::Name = "localhost".parse().unwrap();
        let mut r = GuardedResolver::new(Arc::new(Vec::new));
        assert_eq!(
            r.call(name.clone()).await.err(),
            Some(GuardError::NoPermittedAddress)
        );
        // 2. with 127.0.0.0/8 allowed, the loopback address comes back
        let mut r = GuardedResolver::new(Arc::new(|| vec!["127.0.0.0/8".parse().unwrap()]));
        let addrs: Vec<SocketAddr> = r.call(name).await.unwrap().collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
