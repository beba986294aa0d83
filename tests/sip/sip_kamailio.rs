//! Carrier leg through Kamailio acting as a carrier proxy with digest authentication.

use crate::common;
use common::legs::{self, after_ringing, endpoint};
use common::sipp::{Kamailio, Sipp};

use dialgate::sip::{FailureKind, LegEvent, OutboundCall, Transport};

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

#[tokio::test]
async fn good_credentials_answer_through_proxy() {
    // 1. Kamailio (407 challenge) in front of a SIPp UAS that answers and waits for BYE
    let uas = Sipp::uas("uas_answer_wait_bye.xml", 15202);
    let kam = Kamailio::start(15200, 15202, "acme", "s3cr3t", &[]);
    let ep = endpoint(None).await;
    let (leg, mut rx) = ep
        .place_call(carrier_call(15200, "acme", "s3cr3t"))
        .await
        .unwrap();
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
    let (code, log) = uas.finish().await;
    assert_eq!(code, 0);
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
    let uas = Sipp::uas("uas_answer_wait_bye.xml", 15212);
    let kam = Kamailio::start(15210, 15212, "acme", "s3cr3t", &[]);
    let ep = endpoint(None).await;
    let (_leg, mut rx) = ep
        .place_call(carrier_call(15210, "acme", "wrong"))
        .await
        .unwrap();
    // 2. Failed with the second challenge's code
    match after_ringing(&mut rx).await {
        LegEvent::Failed { code, kind, .. } => {
            assert_eq!(code, Some(407));
            assert_eq!(kind, FailureKind::Response);
        }
        ev => panic!("expected 407 failure, got {ev:?}"),
    }
    assert!(matches!(after_ringing(&mut rx).await, LegEvent::Terminated));
    assert_eq!(ep.dialog_count(), 0);
    // 3. exactly two INVITEs reached the proxy (no loop), none reached the UAS
    assert_eq!(kam.log().matches("REQ INVITE").count(), 2, "{}", kam.log());
    assert!(uas.messages().is_empty());
}

#[tokio::test]
async fn wrong_credentials_403() {
    // 1. Kamailio answers wrong credentials with 403
    let _uas = Sipp::uas("uas_answer_wait_bye.xml", 15222);
    let _kam = Kamailio::start(15220, 15222, "acme", "s3cr3t", &["WRONG_CREDS_403"]);
    let ep = endpoint(None).await;
    let (_leg, mut rx) = ep
        .place_call(carrier_call(15220, "acme", "wrong"))
        .await
        .unwrap();
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
