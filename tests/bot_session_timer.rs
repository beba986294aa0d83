//! Session timers (RFC 4028) on the bot leg over real SIP on loopback (issue 16): SIPp plays
//! a SIP bot with `bots[].session_expires_sec` set, checking the headers dialgate sends (SIPp
//! exits non-zero on a failed check or an unexpected message); a SIPp carrier without session
//! timers answers and waits for BYE.
//! Ports: SIP 16640-16649, relay RTP 36000-36199.

mod common;

use std::time::{Duration, Instant};

use common::sippflows::*;
use serde_json::json;

fn seq(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A trunk without session timers: only the bot leg's are under test.
fn trunk(port: u16) -> Trunk {
    Trunk {
        address: format!("127.0.0.1:{port}"),
        extra: vec!["session_expires_sec: 0".into()],
        ..Default::default()
    }
}

/// The record's timeline entries of one kind, as their detail text.
fn details(rec: &serde_json::Value, kind: &str) -> Vec<String> {
    rec["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == kind)
        .map(|e| e["detail"].as_str().unwrap_or("").to_owned())
        .collect()
}

const BOT_TIMER: &[&str] = &["session_expires_sec: 90", "min_se: 90"];

#[tokio::test]
async fn dialgate_retries_a_422_and_refreshes_the_bot_leg_with_update() {
    // 1. Bot: 422 `Min-SE: 120` to the INVITE asking 90 s, then (INVITE again asking 120 s,
    //    checked) 200 with `Session-Expires: 4;refresher=uac`: dialgate refreshes every 2 s.
    //    It expects two UPDATEs, then hangs up.
    let carrier = uas("flow_carrier_answer_wait_bye.xml", 16640, 40);
    let botp = uas("bot_timer_422_refresh.xml", 16641, 40);
    let f = start_flow_custom(
        FlowSetup {
            rtp: (36000, 36099),
            bot_port: 16641,
            trunk: trunk(16640),
        },
        FlowStart {
            bot_extra: BOT_TIMER,
            ..Default::default()
        },
    )
    .await;
    // 2. Dial.
    let id = f.dial("+15551264001", json!({})).await;
    // 3. The bot hung up after its refreshes: completed, bot-disconnected (no expiry).
    let term = one_terminal(&f.sink, &id).await;
    assert_eq!(term["status"], "completed");
    assert_eq!(term["reasonCode"], "bot-disconnected", "{term}");
    // 4. The bot saw the 422 retry and exactly two UPDATE refreshes; no 100rel on its leg.
    let (code, blog) = finish(&botp).await;
    assert_eq!(code, 0, "bot scenario");
    assert_eq!(
        sip_flow(&blog),
        seq(&[
            "<INVITE", ">422", "<ACK", "<INVITE", ">200", "<ACK", "<UPDATE", ">200", "<UPDATE",
            ">200", ">BYE", "<200"
        ]),
        "{blog}"
    );
    let invite = &sip_messages(&blog)[0].1;
    assert!(invite.contains("Min-SE: 90"), "{invite}");
    assert!(!invite.contains("100rel"), "{invite}");
    // 5. The carrier leg had no session timer and got dialgate's BYE.
    let (code, clog) = finish(&carrier).await;
    assert_eq!(code, 0, "carrier scenario");
    let first = &sip_messages(&clog)[0].1;
    assert!(!first.contains("Session-Expires"), "{first}");
    // 6. The record notes the bot leg's session.
    let rec = f.settled(&id).await;
    let st = details(&rec, "session-timer");
    assert!(
        st.iter()
            .any(|d| d == "bot leg: session interval 4 s, refresher dialgate"),
        "{rec:#}"
    );
    f.stop().await;
}

#[tokio::test]
async fn a_missing_refresh_from_the_bot_ends_the_call_with_error() {
    // 1. Bot: 200 with `Session-Expires: 6;refresher=uas` (the bot refreshes) and then never
    //    refreshes; it expects dialgate's BYE.
    let carrier = uas("flow_carrier_answer_wait_bye.xml", 16642, 40);
    let botp = uas("bot_timer_expires.xml", 16643, 40);
    let f = start_flow_custom(
        FlowSetup {
            rtp: (36100, 36199),
            bot_port: 16643,
            trunk: trunk(16642),
        },
        FlowStart {
            bot_extra: BOT_TIMER,
            ..Default::default()
        },
    )
    .await;
    // 2. Dial.
    let t0 = Instant::now();
    let id = f.dial("+15551264002", json!({})).await;
    // 3. dialgate ended the call at the bot leg's expiry (6 - 2 = 4 s after its answer):
    //    completed, reasonCode error, the bot leg named; exactly one terminal notification.
    let term = one_terminal_within(&f.sink, &id, Duration::from_secs(25)).await;
    assert_eq!(term["status"], "completed");
    assert_eq!(term["reasonCode"], "error");
    let reason = term["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("session timer expired on the bot leg"),
        "{term}"
    );
    assert!(t0.elapsed() >= Duration::from_secs(4), "{:?}", t0.elapsed());
    // 4. Both legs got the BYE.
    let (code, blog) = finish(&botp).await;
    assert_eq!(code, 0, "bot scenario");
    assert_eq!(
        sip_flow(&blog),
        seq(&["<INVITE", ">200", "<ACK", "<BYE", ">200"]),
        "{blog}"
    );
    let (code, _) = finish(&carrier).await;
    assert_eq!(code, 0, "carrier scenario");
    // 5. The record agrees, and the dialer was told the end once.
    let rec = f.settled(&id).await;
    assert_eq!(rec["reasonCode"], "error", "{rec:#}");
    let terminals = notes(&f.sink, &id)
        .into_iter()
        .filter(|n| n.0 == "completed" || n.0 == "failed")
        .count();
    assert_eq!(terminals, 1);
    f.stop().await;
}
