//! TLS and SRTP to trunks (issue 16 item 5) end to end: PJSIP as the carrier on a TLS listener
//! with SRTP mandatory, audio both ways through dialgate's relay (SRTP on the carrier leg,
//! plain RTP to the bot); trunks whose certificate is not trusted or names another host are
//! refused at once with the reason on the record; `tls_verify: false` connects anyway.
//!
//! Port plan of this file: dialgate's relay RTP 33400-34399 (200 per test), PJSIP RTP
//! 48400-48899 (100 per test: callee at +0, bot at +50), SIP ports picked free.

use crate::common;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::flows::*;
use serde_json::json;

/// Relay RTP range and PJSIP RTP base of test number `n` (0-based).
fn ports(n: u16) -> (u16, u16) {
    (33400 + 200 * n, 48400 + 100 * n)
}

/// Timer B with the default T1: what a refused handshake used to cost.
const TIMER_B: Duration = Duration::from_secs(32);

/// A flow whose carrier is PJSIP on TLS with `cert`/`key`, its SRTP use `srtp`, and the
/// trunk's extra keys `trunk`.
fn tls_setup(n: u16, cert: &(PathBuf, PathBuf), srtp: &str, trunk: &[String]) -> FlowSetup {
    let (rtp, peer_rtp) = ports(n);
    let mut s = FlowSetup::new(rtp, peer_rtp, "200");
    s.tls_carrier(cert, srtp);
    s.trunk_extra.extend_from_slice(trunk);
    s
}

#[tokio::test]
async fn srtp_over_tls_carries_audio_both_ways() {
    // 1. The carrier (PJSIP, TLS, SRTP mandatory) loops hello.wav; the bot loops machine.wav
    //    and hangs up 10 s after the answer; both record. The trunk trusts the carrier's
    //    certificate through tls_ca_file and requires SRTP.
    let certs = tempfile::tempdir().unwrap();
    let carrier_cert = cert_files(certs.path(), "carrier", &["localhost", "127.0.0.1"]);
    let (hello, machine) = hello_and_machine();
    let trunk = [
        format!("tls_ca_file: {}", carrier_cert.0.display()),
        "srtp: required".to_owned(),
    ];
    let mut setup = tls_setup(0, &carrier_cert, "mandatory", &trunk);
    setup.talk_both_ways(&hello, &machine);
    let flow = Flow::start(setup).await;
    let id = flow.dial(json!({})).await;

    // 2. The carrier got an RTP/SAVP offer with both SDES suites.
    let inv = saw(&flow.callee, "incoming", |e| e.is("incoming")).await;
    // Its Via names the transport it came over (rsipstack wrote UDP for a Route-only TLS hop).
    let via = inv.header("Via").unwrap_or_default();
    assert!(via.starts_with("SIP/2.0/TLS "), "{via}");
    let sdp = inv.sdp().unwrap_or_default().to_owned();
    assert!(sdp.contains("RTP/SAVP"), "{sdp}");
    assert!(
        sdp.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{sdp}"
    );
    assert!(
        sdp.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"),
        "{sdp}"
    );

    // 3. Both recordings are complete after the bot's BYE.
    let h = heard_both_ways(&flow, &hello, &machine).await;

    // 4. The bot heard the carrier's hello (decrypted by dialgate), the carrier heard the bot's
    //    clip (encrypted by dialgate, decrypted by PJSIP); each matches the other clip less.
    let r = flow.wait_record_settled(&id).await;
    h.assert_crossed("SRTP", &r["media"]);

    // 5. The record says which suite was used; the call completed normally.
    assert_eq!(r["status"], "completed", "{r:#}");
    assert_eq!(r["reasonCode"], "bot-disconnected", "{r:#}");
    let srtp_note = r["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["event"] == "srtp")
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(srtp_note.contains("AES_CM_128_HMAC_SHA1_80"), "{r:#}");
    flow.stop().await;
}

/// Dials a flow whose TLS handshake must fail; returns the terminal's reason and how long it
/// took from the dial.
async fn refused(n: u16, carrier: &(PathBuf, PathBuf), trunk: &[String]) -> (String, Duration) {
    let flow = Flow::start(tls_setup(n, carrier, "off", trunk)).await;
    let t0 = Instant::now();
    let id = flow.dial(json!({})).await;
    let done = flow.wait_terminal(&id).await;
    let took = t0.elapsed();
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_eq!(done["reasonCode"], "error", "{done:#}");
    let r = flow.wait_record_settled(&id).await;
    assert_eq!(r["reason"], done["reason"]);
    // The carrier never saw an INVITE.
    assert!(flow.callee.events_named("incoming").is_empty());
    flow.stop().await;
    (done["reason"].as_str().unwrap_or_default().to_owned(), took)
}

/// [`refused`], well before Timer B would have given up on an unanswered INVITE; returns the
/// terminal's reason.
async fn refused_at_once(
    what: &str,
    n: u16,
    carrier: &(PathBuf, PathBuf),
    trunk: &[String],
) -> String {
    let (reason, took) = refused(n, carrier, trunk).await;
    eprintln!("{what}: failed after {took:?}: {reason}");
    assert!(took < TIMER_B / 2, "took {took:?}");
    reason
}

#[tokio::test]
async fn untrusted_or_misnamed_tls_trunks_fail_at_once() {
    let certs = tempfile::tempdir().unwrap();
    // 1. Self-signed, checked against the built-in (Mozilla) roots: unknown issuer.
    let carrier = cert_files(certs.path(), "carrier", &["127.0.0.1"]);
    let reason = refused_at_once("unknown CA", 1, &carrier, &[]).await;
    assert!(reason.contains("TLS handshake"), "{reason}");
    assert!(reason.contains("UnknownIssuer"), "{reason}");

    // 2. tls_ca_file names another CA (rcgen gives both the same subject, so rustls reports
    //    the signature that does not verify).
    let other = cert_files(certs.path(), "other", &["127.0.0.1"]);
    let trunk = [format!("tls_ca_file: {}", other.0.display())];
    let reason = refused_at_once("other CA", 4, &carrier, &trunk).await;
    assert!(reason.contains("invalid peer certificate"), "{reason}");

    // 3. Trusted, but issued for another host name than the trunk's address.
    let misnamed = cert_files(certs.path(), "misnamed", &["carrier.example"]);
    let trunk = [format!("tls_ca_file: {}", misnamed.0.display())];
    let reason = refused_at_once("wrong name", 2, &misnamed, &trunk).await;
    assert!(reason.contains("not valid for name"), "{reason}");
}

#[tokio::test]
async fn tls_verify_false_connects_to_an_untrusted_trunk() {
    // 1. The carrier's certificate is trusted by nobody; the trunk opts out of verification.
    let certs = tempfile::tempdir().unwrap();
    let carrier = cert_files(certs.path(), "carrier", &["carrier.example"]);
    let flow = Flow::start(tls_setup(3, &carrier, "off", &["tls_verify: false".into()])).await;
    let id = flow.dial(json!({})).await;

    // 2. The INVITE arrives over TLS and the call is answered; the API hangs it up.
    flow.callee
        .wait_for("incoming", |e| e.is("incoming"), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    flow.wait_status(&id, "connected").await;
    flow.hangup(&id).await;
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    flow.stop().await;
}
