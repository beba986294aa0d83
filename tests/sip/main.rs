//! The SIP side: dialgate's SIP endpoint and outbound legs against SIPp and Kamailio, orphaned
//! answers, trunk DNS (dnsmasq), the simulators (`dialgate::sim`) and the test peers themselves.
//!
//! One test binary for the area. Fixed SIP ports are distinct per module: `sip_legs`
//! 15000-15099, `sip_endpoint` 15100-15199, `sip_kamailio` 15200-15299, `sip_orphans`
//! 16900-16909, `trunk_dns` 18600-18639 (relay RTP 33600-33899), `bounded_queues` 15300-15303,
//! `trunk_dns_tls` 18650-18651 (relay RTP 35000-35399, PJSIP RTP 49000-49199); `sip_stream_cap`
//! takes free ports.

mod bounded_queues;
#[path = "../common/mod.rs"]
mod common;
mod peers_fixtures;
mod peers_http;
mod peers_sip;
mod sim_callee;
mod sim_http;
mod sim_sipp;
mod sip_endpoint;
mod sip_kamailio;
mod sip_legs;
mod sip_orphans;
mod sip_stream_cap;
mod trunk_dns;
mod trunk_dns_tls;
