//! Outbound legs against real SIPp UAS peers on loopback (ports 15000-15999).

use crate::common;
use common::legs;
use common::legs::{after_ringing, answered, call_sipp, endpoint, failed, next, passed, ringing};
use common::sipp::Sipp;

use std::time::Duration;

use dialgate::sip::sdp::{self, LocalSdp};
use dialgate::sip::{
    FailureKind, LegEvent, LegEvents, LegHandle, OutboundCall, SipEndpoint, Transport,
};

fn call(uri: &str) -> OutboundCall {
    OutboundCall {
        from_display: Some("Dialgate Test".into()),
        headers: vec![("X-Dialgate-Conversation-Id".into(), "conv-1".into())],
        ..legs::call_to(uri, "conv-1")
    }
}

async fn expect_terminated(rx: &mut LegEvents, ep: &SipEndpoint) {
    assert!(matches!(next(rx).await, LegEvent::Terminated));
    assert!(rx.recv().await.is_none(), "nothing after Terminated");
    assert_eq!(ep.dialog_count(), 0, "rsipstack dialog leaked");
}

/// A callee's URI at 127.0.0.1:`port`.
fn callee(port: u16) -> String {
    format!("sip:callee@127.0.0.1:{port}")
}

/// A call to a number of a carrier reached through the proxy at 127.0.0.1:`primary`, with a
/// backup proxy if `backup` names one.
fn via_proxies(primary: (u16, Transport), backup: Option<(u16, Transport)>) -> OutboundCall {
    let proxy = |(port, t): (u16, Transport)| (format!("127.0.0.1:{port}"), t);
    let mut c = call("sip:+15551234567@carrier.invalid");
    c.proxy = Some(proxy(primary));
    c.backup_proxy = backup.map(proxy);
    c
}

/// SIPp playing `primary` on 127.0.0.1:`port` as the primary proxy, an answering SIPp on
/// `port + 2` as the backup, and an endpoint calling through them (UDP).
async fn primary_and_backup(
    primary: &str,
    port: u16,
) -> (Sipp, Sipp, SipEndpoint, LegHandle, LegEvents) {
    let primary = Sipp::uas(primary, port);
    let backup = Sipp::uas("uas_answer_wait_bye.xml", port + 2);
    let ep = endpoint(None).await;
    let c = via_proxies((port, Transport::Udp), Some((port + 2, Transport::Udp)));
    let (leg, rx) = place(&ep, c).await;
    (primary, backup, ep, leg, rx)
}

/// The leg is answered (after any ringing); we hang up: BYE, then Terminated, no dialog left.
async fn answered_then_hang_up(leg: &LegHandle, rx: &mut LegEvents, ep: &SipEndpoint) {
    answered(rx).await;
    leg.hangup();
    expect_terminated(rx, ep).await;
}

async fn place(ep: &SipEndpoint, c: OutboundCall) -> (LegHandle, LegEvents) {
    ep.place_call(c).await.unwrap()
}

#[tokio::test]
async fn answered_then_we_hang_up() {
    // 1. SIPp answers and waits for our BYE
    let (uas, ep, leg, mut rx) = call_sipp("uas_answer_wait_bye.xml", 15010, call).await;
    // 2. 180 then 200 with the callee's SDP
    match next(&mut rx).await {
        LegEvent::Provisional { code, .. } => assert_eq!(code, 180),
        ev => panic!("expected 180, got {ev:?}"),
    }
    match after_ringing(&mut rx).await {
        LegEvent::Answered { code, sdp } => {
            assert_eq!(code, 200);
            assert_eq!(sdp::read_answer(&sdp).unwrap().codec.name, "PCMU");
        }
        ev => panic!("expected answer, got {ev:?}"),
    }
    // 3. hang up → BYE, then Terminated, no dialog left
    leg.hangup();
    expect_terminated(&mut rx, &ep).await;
    // 4. SIPp saw INVITE with our offer and headers, ACK and BYE
    let log = passed(uas).await;
    assert!(log.contains("X-Dialgate-Conversation-Id: conv-1"));
    assert!(log.contains("a=rtpmap:101 telephone-event/8000"));
    ep.shutdown();
}

#[tokio::test]
async fn callee_hangs_up() {
    // 1. SIPp answers, then sends BYE itself
    let (uas, ep, _leg, mut rx) = call_sipp("uas_answer_then_bye.xml", 15012, call).await;
    // 2. answered, then RemoteBye, then Terminated
    answered(&mut rx).await;
    assert!(matches!(next(&mut rx).await, LegEvent::RemoteBye));
    expect_terminated(&mut rx, &ep).await;
    // 3. SIPp got its 200 to BYE
    assert_eq!(uas.finish().await.0, 0);
}

async fn rejected(scenario: &str, port: u16, want: u16) {
    let (uas, ep, _leg, mut rx) = call_sipp(scenario, port, call).await;
    assert_eq!(
        failed(after_ringing(&mut rx).await),
        (Some(want), FailureKind::Response)
    );
    expect_terminated(&mut rx, &ep).await;
    assert_eq!(uas.finish().await.0, 0, "SIPp did not get its ACK");
}

#[tokio::test]
async fn busy_486() {
    rejected("uas_486.xml", 15014, 486).await;
}

#[tokio::test]
async fn declined_603() {
    rejected("uas_603.xml", 15016, 603).await;
}

#[tokio::test]
async fn cancel_while_ringing() {
    // 1. SIPp rings forever; we CANCEL on the 180
    let (uas, ep, leg, mut rx) = call_sipp("uas_ring_forever.xml", 15018, call).await;
    ringing(&mut rx).await;
    leg.hangup();
    // 2. the INVITE ends 487, reported as cancelled
    assert_eq!(
        failed(next(&mut rx).await),
        (Some(487), FailureKind::Cancelled)
    );
    expect_terminated(&mut rx, &ep).await;
    // 3. SIPp saw CANCEL and the ACK of its 487
    let log = passed(uas).await;
    assert!(log.contains("CANCEL sip:"));
}

#[tokio::test]
async fn answer_racing_cancel_is_acked_then_byed() {
    // 1. SIPp answers 200 as soon as our CANCEL arrives (the race)
    let (uas, ep, leg, mut rx) = call_sipp("uas_200_races_cancel.xml", 15020, call).await;
    ringing(&mut rx).await;
    leg.cancel();
    // 2. no Answered event: the leg reports a cancelled failure
    assert_eq!(failed(next(&mut rx).await).1, FailureKind::Cancelled);
    expect_terminated(&mut rx, &ep).await;
    // 3. SIPp's scenario (ACK then BYE after its 200) completed
    assert_eq!(uas.finish().await.0, 0);
}

#[tokio::test]
async fn failover_to_backup_on_503() {
    // 1. primary proxy answers 503, backup answers 200
    let (primary, backup, ep, leg, mut rx) = primary_and_backup("uas_503.xml", 15022).await;
    // 2. the caller sees only the backup's answer
    answered_then_hang_up(&leg, &mut rx, &ep).await;
    // 3. both peers completed; the INVITE carried the preloaded Route
    assert_eq!(primary.finish().await.0, 0);
    let log = passed(backup).await;
    assert!(log.contains("Route: <sip:127.0.0.1:15024;lr>"), "{log}");
}

#[tokio::test]
async fn no_failover_after_486() {
    // 1. primary says busy; backup would answer
    let (primary, backup, ep, _leg, mut rx) = primary_and_backup("uas_486.xml", 15026).await;
    // 2. busy is final
    assert!(matches!(
        after_ringing(&mut rx).await,
        LegEvent::Failed {
            code: Some(486),
            ..
        }
    ));
    expect_terminated(&mut rx, &ep).await;
    assert_eq!(primary.finish().await.0, 0);
    // 3. the backup never received anything
    assert!(
        backup.messages().is_empty(),
        "backup saw: {}",
        backup.messages()
    );
}

#[tokio::test]
async fn timer_b_is_timeout_408() {
    // 1. a UDP socket that never answers; T1 = 10 ms so Timer B fires after 640 ms
    let silent = std::net::UdpSocket::bind("127.0.0.1:15030").unwrap();
    let ep = endpoint(Some(Duration::from_millis(10))).await;
    let (_leg, mut rx) = place(&ep, call(&callee(15030))).await;
    // 2. Failed{408, Timeout}
    assert_eq!(
        failed(next(&mut rx).await),
        (Some(408), FailureKind::Timeout)
    );
    expect_terminated(&mut rx, &ep).await;
    // 3. the INVITE was retransmitted (Timer A) to the silent peer
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while silent.recv(&mut buf).is_ok() {
        n += 1;
    }
    assert!(n >= 2, "INVITE sent {n} times");
}

#[tokio::test]
async fn reinvite_is_answered_by_the_caller() {
    // 1. SIPp answers, then re-INVITEs with a sendonly PCMA offer
    let (uas, ep, _leg, mut rx) = call_sipp("uas_reinvite.xml", 15032, call).await;
    answered(&mut rx).await;
    // 2. the re-INVITE reaches us; we answer through sdp::answer (recvonly mirror)
    match next(&mut rx).await {
        LegEvent::ReInvite { sdp: offer, reply } => {
            let local = LocalSdp {
                address: "127.0.0.1".parse().unwrap(),
                port: 20000,
                session_id: 1,
                version: 2,
            };
            let (answer, negotiated) = sdp::answer(&offer, &local).unwrap();
            assert_eq!(negotiated.codec.name, "PCMA");
            reply.send(Some(answer)).unwrap();
        }
        ev => panic!("expected re-INVITE, got {ev:?}"),
    }
    // 3. SIPp checked our 200 carried a=recvonly, ACKed it and hangs up
    assert!(matches!(next(&mut rx).await, LegEvent::RemoteBye));
    expect_terminated(&mut rx, &ep).await;
    assert_eq!(uas.finish().await.0, 0);
}

#[tokio::test]
async fn call_over_tcp() {
    // 1. SIPp UAS over TCP; our endpoint has a TCP listener too
    let uas = Sipp::uas_tcp("uas_answer_wait_bye.xml", 15040);
    let ep = legs::endpoint_with_tcp(15042).await;
    let (leg, mut rx) = place(&ep, call("sip:callee@127.0.0.1:15040;transport=tcp")).await;
    // 2. answered over TCP, BYE over TCP
    answered_then_hang_up(&leg, &mut rx, &ep).await;
    let log = passed(uas).await;
    assert!(log.contains("Via: SIP/2.0/TCP"), "{log}");
}

#[tokio::test]
async fn failover_on_transport_error() {
    // 1. primary proxy: TCP port where nothing listens; backup: SIPp over UDP that answers
    let backup = Sipp::uas("uas_answer_wait_bye.xml", 15046);
    let ep = legs::endpoint_with_tcp(15048).await;
    let c = via_proxies((15044, Transport::Tcp), Some((15046, Transport::Udp)));
    let (leg, mut rx) = place(&ep, c).await;
    // 2. the connection refusal is not reported; the backup answers
    answered_then_hang_up(&leg, &mut rx, &ep).await;
    assert_eq!(backup.finish().await.0, 0);
}

#[tokio::test]
async fn transport_error_without_backup_is_reported() {
    // 1. only a dead TCP proxy
    let ep = legs::endpoint_with_tcp(15050).await;
    let c = via_proxies((15052, Transport::Tcp), None);
    let (_leg, mut rx) = place(&ep, c).await;
    // 2. Failed{kind: Transport}
    assert_eq!(failed(next(&mut rx).await).1, FailureKind::Transport);
    expect_terminated(&mut rx, &ep).await;
}
