//! Carrier leg through Kamailio acting as a carrier proxy with digest authentication.

use crate::common;
use common::legs::{self, after_ringing, endpoint, failed, passed};
use common::sipp::{Kamailio, Sipp};

use dialgate::sip::{
    FailureKind, LegEvent, LegEvents, LegHandle, OutboundCall, SipEndpoint, Transport,
};

fn carrier_call(proxy_port: u16, user: &str, pass: &str) -> OutboundCall {
    OutboundCall {
        request_uri: "sip:+15551234567@carrier.test".into(),
        from_user: "+15550001111".into(),
        from_host: "127.0.0.1".into(),
        to_uri: "sip:+15551234567@carrier.test".into(),
        proxy: Some((format!("127.0.0.1:{proxy_port}"), Transport::Udp)),
        credentials: Some((user.into(), pass.into())),
        headers: vec![(
            "P-Asserted-Identity".into(),
            "<sip:+15550001111@127.0.0.1>".into(),
        )],
        sdp_offer: legs::offer(20002, 7),
        conversation_id: "conv-kam".into(),
        ..Default::default()
    }
}

/// Kamailio on `port` (user `acme`, password `s3cr3t`, `flags`) in front of a SIPp UAS on
/// `port + 2` that answers and waits for BYE; an endpoint calling through it with `pass`.
async fn via_kamailio(
    port: u16,
    flags: &[&str],
    pass: &str,
) -> (Sipp, Kamailio, SipEndpoint, LegHandle, LegEvents) {
    let uas = Sipp::uas("uas_answer_wait_bye.xml", port + 2);
    let kam = Kamailio::start(port, port + 2, "acme", "s3cr3t", flags);
    let ep = endpoint(None).await;
    let (leg, rx) = ep
        .place_call(carrier_call(port, "acme", pass))
        .await
        .unwrap();
    (uas, kam, ep, leg, rx)
}

#[tokio::test]
async fn good_credentials_answer_through_proxy() {
    // 1. Kamailio (407 challenge) in front of a SIPp UAS that answers and waits for BYE
    let (uas, kam, ep, leg, mut rx) = via_kamailio(15200, &[], "s3cr3t").await;
    // 2. answered after one challenge
    assert!(matches!(
        after_ringing(&mut rx).await,
        LegEvent::Answered { code: 200, .. }
    ));
    // 3. our BYE follows the Record-Route back through the proxy. Kamailio's
    //    UDP workers may forward a BYE sent right after the ACK ahead of it,
    //    and SIPp then sees BYE before ACK: let the ACK pass first, as it
    //    always has in a real call.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    leg.hangup();
    assert!(matches!(after_ringing(&mut rx).await, LegEvent::Terminated));
    assert_eq!(ep.dialog_count(), 0);
    let log = passed(uas).await;
    assert!(
        log.contains("Record-Route: <sip:127.0.0.1:15200;lr"),
        "{log}"
    );
    assert!(log.contains("P-Asserted-Identity: <sip:+15550001111@127.0.0.1>"));
    let klog = kam.log();
    assert_eq!(
        klog.matches("REQ INVITE").count(),
        2,
        "one challenge, one retry:\n{klog}"
    );
    assert!(
        klog.contains("REQ BYE"),
        "BYE went through the proxy:\n{klog}"
    );
}

#[tokio::test]
async fn wrong_credentials_fail_407_without_loop() {
    // 1. Kamailio re-challenges wrong credentials; the UAS must see nothing
    let (uas, kam, ep, _leg, mut rx) = via_kamailio(15210, &[], "wrong").await;
    // 2. Failed with the second challenge's code
    assert_eq!(
        failed(after_ringing(&mut rx).await),
        (Some(407), FailureKind::Response)
    );
    assert!(matches!(after_ringing(&mut rx).await, LegEvent::Terminated));
    assert_eq!(ep.dialog_count(), 0);
    // 3. exactly two INVITEs reached the proxy (no loop), none reached the UAS
    assert_eq!(kam.log().matches("REQ INVITE").count(), 2, "{}", kam.log());
    assert!(uas.messages().is_empty());
}

#[tokio::test]
async fn wrong_credentials_403() {
    // 1. Kamailio answers wrong credentials with 403
    let (_uas, _kam, _ep, _leg, mut rx) = via_kamailio(15220, &["WRONG_CREDS_403"], "wrong").await;
    // 2. the 403 is final
    assert!(matches!(
        after_ringing(&mut rx).await,
        LegEvent::Failed {
            code: Some(403),
            ..
        }
    ));
    assert!(matches!(after_ringing(&mut rx).await, LegEvent::Terminated));
}
