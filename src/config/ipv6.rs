//! `server.sip.public_address_v6`: dialgate's address for IPv6 peers beside an IPv4
//! `public_address` (a call may mix an IPv6 carrier and an IPv4 bot).

use super::error::ErrorKind;
use super::raw::RawServer;
use super::types::SipListen;
use super::validate::Ctx;
use std::net::IpAddr;

impl Ctx<'_> {
    /// The explicit setting (must be an IPv6 address), checked; and an IPv6 wildcard listener
    /// next to an IPv4 `public_address` needs it, like a wildcard first listener needs
    /// `public_address` (`[::]` cannot be written into Via, Contact or SDP).
    pub(super) fn public_address_v6(
        &mut self,
        raw: &RawServer,
        listen: &[SipListen],
        public_address: &str,
    ) -> Option<IpAddr> {
        const PATH: &str = "server.sip.public_address_v6";
        if let Some(s) = &raw.sip.public_address_v6 {
            return match s.parse::<IpAddr>() {
                Ok(ip @ IpAddr::V6(v6)) if !v6.is_unspecified() => Some(ip),
                _ => {
                    self.err(
                        0,
                        PATH,
                        ErrorKind::InvalidValue,
                        format!("`{s}` is not a specific IPv6 address (e.g. ::1 or 2001:db8::10)"),
                    );
                    None
                }
            };
        }
        let primary_v6 = public_address
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_ipv6());
        let v6: Vec<_> = listen.iter().filter(|l| l.address.is_ipv6()).collect();
        if !primary_v6
            && !v6.is_empty()
            && v6.iter().all(|l| l.address.ip().is_unspecified())
            && let Some(i) = listen.iter().position(|l| l.address.is_ipv6())
        {
            self.err(
                0,
                &format!("server.sip.listen[{i}].address"),
                ErrorKind::InvalidValue,
                "an IPv6 listener binds a wildcard address; set server.sip.public_address_v6 to the IPv6 address peers should send to",
            );
        }
        None
    }
}
