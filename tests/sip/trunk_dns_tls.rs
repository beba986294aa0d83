//! A TLS trunk given by domain name (issue 16 items 4 and 5 together): dnsmasq serves
//! `_sips._tcp.carrier.test` → `pbx.carrier.test` → 127.0.0.1, PJSIP is the carrier on a TLS
//! listener. Per RFC 3263 §4 and RFC 5922 §4 the TLS connection to the located server is made
//! for the trunk's domain (`carrier.test`: SNI and the name the certificate must carry), not for
//! the SRV target's name nor the address: a certificate for the domain connects, one for the
//! SRV target's name is refused at once with the TLS error on the record.
//!
//! Port plan of this file: PJSIP carrier SIP/TLS 18650-18651, dialgate's relay RTP 35000-35399
//! (200 per test), PJSIP RTP 49000-49199 (100 per test: callee at +0, bot at +50); DNS and the
//! bot's SIP on free ports.

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::flows::*;
use common::peers::{DnsRecords, Dnsmasq};
use serde_json::json;

/// Timer B with the default T1: what a refused handshake used to cost.
const TIMER_B: Duration = Duration::from_secs(32);

/// dnsmasq locating `carrier.test` over TLS at `pbx.carrier.test:<sip_port>`.
async fn dns(sip_port: u16) -> Dnsmasq {
    Dnsmasq::start(
        DnsRecords::default()
            .srv(
                "_sips._tcp.carrier.test",
                "pbx.carrier.test",
                sip_port,
                10,
                0,
            )
            .a("pbx.carrier.test", "127.0.0.1"),
    )
    .await
    .expect("dnsmasq starts (scripts/install-peers)")
}

/// Test `n`'s flow: the carrier (PJSIP on TLS at `sip_port` with `cert`) behind the trunk
/// `carrier.test` (transport tls, trusting `cert`), resolved by `dns`.
fn setup(n: u16, sip_port: u16, cert: &(PathBuf, PathBuf), dns: &Dnsmasq) -> FlowSetup {
    let mut s = FlowSetup::new(35000 + 200 * n, 49000 + 100 * n, "200");
    s.callee.port = sip_port;
    s.tls_carrier(cert, "off");
    s.trunk_address = Some("carrier.test".into());
    s.trunk_extra
        .push(format!("tls_ca_file: {}", cert.0.display()));
    s.server_extra = vec![format!(
        "dns: {{ servers: [\"{}\"], timeout_ms: 3000 }}",
        dns.server()
    )];
    s
}

/// Test `n`'s DNS and flow ([`setup`]) with a carrier certificate (named `name`) for
/// `hosts`; the certificates' directory lives as long as the caller keeps it.
async fn start(
    n: u16,
    sip_port: u16,
    name: &str,
    hosts: &[&str],
) -> (tempfile::TempDir, Dnsmasq, Flow) {
    let certs = tempfile::tempdir().unwrap();
    let cert = cert_files(certs.path(), name, hosts);
    let dns = dns(sip_port).await;
    let flow = Flow::start(setup(n, sip_port, &cert, &dns)).await;
    (certs, dns, flow)
}

#[tokio::test]
async fn a_located_tls_server_is_verified_for_the_trunks_domain() {
    // 1. DNS: carrier.test's SIPS server is pbx.carrier.test; the carrier's certificate names
    //    the domain only (not the SRV target, not 127.0.0.1).
    let (_certs, dns, flow) = start(0, 18650, "domain", &["carrier.test"]).await;

    // 2. Dial: the INVITE reaches the carrier (which listens on TLS only) for the domain.
    let id = flow.dial(json!({})).await;
    let inv = saw(&flow.callee, "incoming", |e| e.is("incoming")).await;
    let ruri = inv.str("request_uri").unwrap_or_default().to_owned();
    assert!(ruri.ends_with("@carrier.test;user=phone"), "{ruri}");
    let via = inv.header("Via").unwrap_or_default();
    assert!(via.starts_with("SIP/2.0/TLS "), "{via}");

    // 3. The call connects (both legs), the API hangs it up: completed.
    flow.wait_status(&id, "connected").await;
    flow.hangup(&id).await;
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["reasonCode"], "api-hangup", "{done:#}");

    // 4. It was located through SRV (the trunk's domain was never a certificate-less guess).
    let asked = dns.queries();
    assert!(
        asked.contains(&("SRV".into(), "_sips._tcp.carrier.test".into())),
        "{asked:?}"
    );
    assert!(
        asked.iter().any(|(_, n)| n == "pbx.carrier.test"),
        "{asked:?}"
    );
    flow.stop().await;
}

#[tokio::test]
async fn a_certificate_for_the_srv_target_only_is_refused_at_once() {
    // 1. The same DNS; the carrier's certificate names the SRV target's host, which DNS (not
    //    the trunk) chose: it does not prove the server speaks for carrier.test.
    let (_certs, _dns, flow) = start(1, 18651, "target", &["pbx.carrier.test"]).await;

    // 2. Dial: the attempt fails at the handshake, long before Timer B.
    let t0 = Instant::now();
    let id = flow.dial(json!({})).await;
    let done = flow.wait_terminal(&id).await;
    let took = t0.elapsed();
    eprintln!(
        "SRV target's certificate: failed after {took:?}: {}",
        done["reason"]
    );
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_eq!(done["reasonCode"], "error", "{done:#}");
    assert!(took < TIMER_B / 2, "took {took:?}");

    // 3. The TLS error is on the record: the certificate is not valid for the domain.
    let r = flow.wait_record_settled(&id).await;
    let reason = r["reason"].as_str().unwrap_or_default();
    assert_eq!(r["reason"], done["reason"]);
    assert!(reason.contains("TLS handshake"), "{reason}");
    // rustls names what it checked: the domain, not the SRV target the certificate carries.
    assert!(
        reason.contains("not valid for name \"carrier.test\""),
        "{reason}"
    );

    // 4. The carrier never saw an INVITE; exactly one terminal notification.
    assert!(flow.callee.events_named("incoming").is_empty());
    flow.assert_notifications(&id, &["failed"]);
    flow.stop().await;
}
