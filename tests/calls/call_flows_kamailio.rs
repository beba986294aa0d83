//! Whole calls through Kamailio acting as a carrier proxy with digest authentication
//! (tests/peers/kamailio-carrier.cfg), a SIPp UAS behind it as the person, a SIPp bot.
//! Ports: SIP 16100-16139, relay RTP 26700-26999.

use crate::common;
use common::peers::Kamailio;
use common::sippflows::*;
use serde_json::json;

fn seq(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn creds(port: u16, user: &str, pass: &str) -> Trunk {
    Trunk {
        address: format!("127.0.0.1:{port}"),
        username: Some(user.into()),
        password: Some(pass.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn digest_challenge_answered_call_completes() {
    // 1. Kamailio (user acme / s3cr3t) in front of a SIPp callee that answers and waits for
    //    BYE; a SIPp bot that answers and waits for BYE.
    let callee = uas("flow_carrier_answer_wait_bye.xml", 16101, 40);
    let botp = uas("flow_bot_answer.xml", 16102, 40);
    let kam = Kamailio::spawn(16100, 16101, "acme", "s3cr3t", false)
        .await
        .unwrap();
    let f = start_flow(FlowSetup {
        rtp: (26700, 26799),
        bot_port: 16102,
        trunk: creds(16100, "acme", "s3cr3t"),
    })
    .await;
    // 2. Dial: 407, the INVITE again with Proxy-Authorization, relayed, answered.
    let id = f.dial("+15551239001", json!({})).await;
    f.sink.wait_for_status("answered", WAIT).await.unwrap();
    f.record_until(&id, "bot connected", |r| r["botConnectedAt"].is_string())
        .await;
    // 3. The API hangs up: BYE to the callee through the proxy (Record-Route), BYE to the bot.
    let a = f.hangup(&id).await;
    assert_eq!(a.status, 202, "{}", a.text);
    let clog = saw_exactly(
        &callee,
        "callee scenario",
        &["<INVITE", ">180", ">200", "<ACK", "<BYE", ">200"],
    )
    .await;
    assert!(
        clog.contains("Record-Route: <sip:127.0.0.1:16100;lr"),
        "{clog}"
    );
    let (code, blog) = finish(&botp).await;
    assert_eq!(code, 0, "bot scenario");
    assert_eq!(
        sip_flow(&blog),
        seq(&["<INVITE", ">200", "<ACK", "<BYE", ">200"])
    );
    // 4. Kamailio saw one challenged INVITE and one authenticated retry, and the BYE.
    let klog = kam.log();
    assert_eq!(klog.matches("REQ INVITE").count(), 2, "{klog}");
    assert!(klog.contains("REQ BYE"), "{klog}");
    // 5. One terminal notification: completed by the API.
    let term = one_terminal(&f.sink, &id).await;
    assert_eq!(term["status"], "completed");
    assert_eq!(term["reasonCode"], "api-hangup");
    let rec = f.settled(&id).await;
    let statuses: Vec<_> = notes(&f.sink, &id).into_iter().map(|n| n.0).collect();
    assert_eq!(statuses, vec![s("answered"), s("completed")]);
    // 6. The bot heard start and disconnect; the record is complete.
    f.bot.wait_for_activity("start", WAIT).await.unwrap();
    f.bot.wait_for_path("/disconnect", WAIT).await.unwrap();
    assert_eq!(rec["status"], "completed", "{rec:#}");
    assert_eq!(rec["reasonCode"], "api-hangup");
    assert!(rec["answeredAt"].is_string());
    f.stop().await;
    kam.stop().await;
}

/// Wrong credentials: Kamailio answers the authenticated retry with `final_code` (a new 407, or
/// 403 with WRONG_CREDS_403); dialgate gives up at once.
async fn wrong_credentials(kam_port: u16, rtp: (u16, u16), use_403: bool, final_code: i64) {
    // 1. Kamailio expects acme / s3cr3t; dialgate's trunk says acme / wrong.
    let callee = uas("flow_carrier_answer_wait_bye.xml", kam_port + 1, 40);
    let botp = uas("flow_bot_answer.xml", kam_port + 2, 40);
    let kam = Kamailio::spawn(kam_port, kam_port + 1, "acme", "s3cr3t", use_403)
        .await
        .unwrap();
    let f = start_flow(FlowSetup {
        rtp,
        bot_port: kam_port + 2,
        trunk: creds(kam_port, "acme", "wrong"),
    })
    .await;
    let id = f.dial("+15551239002", json!({})).await;
    // 2. One terminal notification: failed, rejected, with the final code.
    let term = one_terminal(&f.sink, &id).await;
    assert_eq!(term["status"], "failed");
    assert_eq!(term["reasonCode"], "rejected");
    assert_eq!(term["sipCode"], final_code);
    let rec = f.settled(&id).await;
    assert_eq!(
        notes(&f.sink, &id),
        vec![(s("failed"), Some(s("rejected")), Some(final_code))]
    );
    // 3. No loop: exactly two INVITEs reached Kamailio; neither the callee nor the bot saw anything.
    let klog = kam.log();
    assert_eq!(klog.matches("REQ INVITE").count(), 2, "{klog}");
    assert!(callee.messages().is_empty(), "{}", callee.messages());
    assert!(botp.messages().is_empty(), "{}", botp.messages());
    // 4. The record.
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert_eq!(rec["reasonCode"], "rejected");
    assert_eq!(rec["sipCode"], final_code);
    assert!(rec["answeredAt"].is_null());
    assert_eq!(dialer_deliveries(&rec).len(), 1, "{rec:#}");
    f.stop().await;
    kam.stop().await;
}

#[tokio::test]
async fn wrong_credentials_fail_with_407_once() {
    wrong_credentials(16110, (26800, 26899), false, 407).await;
}

#[tokio::test]
async fn wrong_credentials_fail_with_403_once() {
    wrong_credentials(16120, (26900, 26999), true, 403).await;
}
