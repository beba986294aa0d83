//! Set-up shared by the tests of dialgate's SIP endpoint and its outbound legs (`tests/sip/`):
//! an endpoint on a free UDP port of 127.0.0.1, an audio offer, bounded waits on a leg's events.

use std::net::SocketAddr;
use std::time::Duration;

use dialgate::sip::sdp::{self, LocalSdp};
use dialgate::sip::{
    FailureKind, LegEvent, LegEvents, OutboundCall, SipEndpoint, SipSettings, Transport,
};

use super::sipp::Sipp;

/// Settings of an endpoint on 127.0.0.1 listening on `listen` (`"127.0.0.1:0"` picks a free
/// port), without TLS material, with the default timers; tests change fields with `..`.
pub fn settings(listen: &[(Transport, &str)]) -> SipSettings {
    SipSettings {
        listen: listen
            .iter()
            .map(|(t, a)| (*t, a.parse::<SocketAddr>().expect("listen address")))
            .collect(),
        tls: None,
        public_address: "127.0.0.1".parse().unwrap(),
        public_address_v6: None,
        tls_ca: None,
        user_agent: "dialgate-test".into(),
        t1: None,
    }
}

/// Sends dialgate's and the SIP stack's logs to the test's output (the first call in the
/// process installs the subscriber; later ones do nothing).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("dialgate=debug,rsipstack=info")
        .with_test_writer()
        .try_init();
}

/// Starts an endpoint with `settings`, logging to the test's output ([`init_logs`]).
pub async fn start(settings: SipSettings) -> SipEndpoint {
    init_logs();
    SipEndpoint::start(settings).await.expect("endpoint starts")
}

/// Starts an endpoint on a free UDP port of 127.0.0.1 (`t1`: the SIP timer T1, `None` for the
/// default).
pub async fn endpoint(t1: Option<Duration>) -> SipEndpoint {
    start(SipSettings {
        t1,
        ..settings(&[(Transport::Udp, "127.0.0.1:0")])
    })
    .await
}

/// Starts an endpoint on a free UDP port and on TCP port `tcp` of 127.0.0.1.
pub async fn endpoint_with_tcp(tcp: u16) -> SipEndpoint {
    let tcp = format!("127.0.0.1:{tcp}");
    start(settings(&[
        (Transport::Udp, "127.0.0.1:0"),
        (Transport::Tcp, &tcp),
    ]))
    .await
}

/// dialgate's SDP offer of audio at 127.0.0.1:`port` (`o=` session `session_id`, version 1).
pub fn offer(port: u16, session_id: u64) -> String {
    sdp::offer(&LocalSdp {
        address: "127.0.0.1".parse().unwrap(),
        port,
        session_id,
        version: 1,
    })
}

/// An outbound call from `+15550001111@127.0.0.1` to `uri` with dialgate's [`offer`] of port
/// 20000 (nothing listens there: the tests look at signalling), as `conversation_id`; tests add
/// fields with `..`.
pub fn call_to(uri: &str, conversation_id: &str) -> OutboundCall {
    OutboundCall {
        request_uri: uri.into(),
        from_user: "+15550001111".into(),
        from_host: "127.0.0.1".into(),
        to_uri: uri.into(),
        sdp_offer: offer(20000, 1),
        conversation_id: conversation_id.into(),
        ..Default::default()
    }
}

/// Next event, bounded (10 s) so a broken leg fails the test instead of hanging it.
pub async fn next(rx: &mut LegEvents) -> LegEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("leg event in time")
        .expect("leg channel open")
}

/// Skips provisional events; returns the first other event (each wait bounded as [`next`]'s).
pub async fn after_ringing(rx: &mut LegEvents) -> LegEvent {
    loop {
        match next(rx).await {
            LegEvent::Provisional { .. } => continue,
            ev => return ev,
        }
    }
}

/// The next event is the callee's 180.
pub async fn ringing(rx: &mut LegEvents) {
    assert!(matches!(
        next(rx).await,
        LegEvent::Provisional { code: 180, .. }
    ));
}

/// After any ringing, the leg is answered.
pub async fn answered(rx: &mut LegEvents) {
    assert!(matches!(after_ringing(rx).await, LegEvent::Answered { .. }));
}

/// The (code, kind) of a failure event; panics on any other event.
pub fn failed(ev: LegEvent) -> (Option<u16>, FailureKind) {
    match ev {
        LegEvent::Failed { code, kind, .. } => (code, kind),
        ev => panic!("expected a failure, got {ev:?}"),
    }
}

/// Waits for SIPp to end and asserts its scenario passed; returns its message log.
pub async fn passed(uas: Sipp) -> String {
    let (code, log) = uas.finish().await;
    assert_eq!(code, 0, "{log}");
    log
}

/// SIPp playing `scenario` on 127.0.0.1:`port`, and an endpoint placing `call(uri)` to it
/// (`uri`: SIPp's address).
pub async fn call_sipp(
    scenario: &str,
    port: u16,
    call: fn(&str) -> OutboundCall,
) -> (Sipp, SipEndpoint, dialgate::sip::LegHandle, LegEvents) {
    let uas = Sipp::uas(scenario, port);
    let ep = endpoint(None).await;
    let (leg, rx) = ep
        .place_call(call(&format!("sip:callee@127.0.0.1:{port}")))
        .await
        .expect("the call is placed");
    (uas, ep, leg, rx)
}
