//! Whole calls over real SIP on loopback: SIPp plays the carrier and the bot with XML scenarios
//! (tests/sipp/flow_*.xml) that expect an exact message sequence (SIPp exits non-zero on any
//! unexpected message). Each test checks what the peers saw, the dialer's notifications
//! (exactly one terminal), the bot's events and the call record.
//! Ports: SIP 16010-16079, relay RTP 26000-26699.

use crate::common;
use std::time::Duration;

use common::peers::Sipp;
use common::sippflows::*;
use serde_json::json;

fn seq(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn trunk(address: u16, backup: Option<u16>) -> Trunk {
    Trunk {
        address: format!("127.0.0.1:{address}"),
        backup_address: backup.map(|b| format!("127.0.0.1:{b}")),
        ..Default::default()
    }
}

/// The carrier's view of an answered call it hangs up itself.
fn carrier_answer_bye() -> Vec<String> {
    seq(&["<INVITE", ">180", ">200", "<ACK", ">BYE", "<200"])
}

/// The bot's view of an answered call ended by dialgate.
fn bot_answer() -> Vec<String> {
    seq(&["<INVITE", ">200", "<ACK", "<BYE", ">200"])
}

fn s(v: &str) -> String {
    v.to_owned()
}

/// Starts dialgate with relay RTP `rtp..=rtp + 99` and the SIPp bot on `bot_port`.
async fn flow(rtp: u16, bot_port: u16, trunk: Trunk) -> Flow {
    start_flow(FlowSetup {
        rtp: (rtp, rtp + 99),
        bot_port,
        trunk,
    })
    .await
}

/// Exactly one terminal notification (waited for `within`): completed, the person hung up.
async fn completed_by_the_person(f: &Flow, id: &str, within: Duration) {
    let term = one_terminal_within(&f.sink, id, within).await;
    assert_eq!(term["status"], "completed");
    assert_eq!(term["reasonCode"], "client-disconnected");
}

/// The call settles and the dialer heard `answered`, then `completed` (the person hung up),
/// each accepted with 200; returns the settled record.
async fn answered_then_completed(f: &Flow, id: &str) -> serde_json::Value {
    let rec = f.settled(id).await;
    assert_eq!(
        notes(&f.sink, id),
        vec![
            (s("answered"), None, Some(200)),
            (s("completed"), Some(s("client-disconnected")), Some(200)),
        ]
    );
    rec
}

/// A SIPp carrier playing `carrier` on `port` (the trunk, no backup), a SIPp bot playing
/// `bot` on `port + 1` (40 s each), and dialgate with relay RTP `rtp..=rtp + 99`.
async fn carrier_and_bot(carrier: &str, bot: &str, port: u16, rtp: u16) -> (Sipp, Sipp, Flow) {
    let carrier = uas(carrier, port, 40);
    let botp = uas(bot, port + 1, 40);
    let f = flow(rtp, port + 1, trunk(port, None)).await;
    (carrier, botp, f)
}

/// After a failover: the backup carrier and the bot each ran an answered call to its end, the
/// dialer heard `answered` then `completed`, and the record says completed. Stops the flow.
async fn the_backup_carried_the_call(f: Flow, id: &str, backup: &Sipp, botp: &Sipp) {
    saw_exactly(backup, "backup scenario", &carrier_answer_bye()).await;
    saw_exactly(botp, "bot scenario", &bot_answer()).await;
    let rec = answered_then_completed(&f, id).await;
    assert_eq!(rec["status"], "completed", "{rec:#}");
    f.stop().await;
}

#[tokio::test]
async fn answered_call_ended_by_the_carrier() {
    // 1. Carrier: 180, 200 with SDP, expects ACK, BYE after a pause. Bot: 200, ACK, expects BYE.
    let (carrier, botp, f) = carrier_and_bot(
        "flow_carrier_answer_bye.xml",
        "flow_bot_answer.xml",
        16010,
        26000,
    )
    .await;
    // 2. Dial.
    let id = f.dial("+15551230001", json!({})).await;
    // 3. Exactly one terminal notification: completed, the person hung up.
    completed_by_the_person(&f, &id, WAIT).await;
    // 4. Both SIPp scenarios ran to their end, in exactly this order.
    let clog = saw_exactly(&carrier, "carrier scenario", &carrier_answer_bye()).await;
    let blog = saw_exactly(&botp, "bot scenario", &bot_answer()).await;
    assert!(
        blog.contains(&format!("X-Dialgate-Conversation-Id: {id}")),
        "{blog}"
    );
    assert!(clog.contains("+15551230001"), "{clog}");
    // 5. The dialer heard: answered, then completed.
    let rec = answered_then_completed(&f, &id).await;
    // 6. The bot got the start event and the disconnect.
    f.bot.wait_for_activity("start", WAIT).await.unwrap();
    f.bot.wait_for_path("/disconnect", WAIT).await.unwrap();
    // 7. The record: completed, answered and bot-connected times, both notifications delivered.
    assert_eq!(rec["status"], "completed", "{rec:#}");
    assert_eq!(rec["reasonCode"], "client-disconnected");
    assert!(rec["answeredAt"].is_string() && rec["botConnectedAt"].is_string());
    let d = dialer_deliveries(&rec);
    assert_eq!(d.len(), 2, "{rec:#}");
    assert!(d.iter().all(|d| d["state"] == "delivered"), "{rec:#}");
    f.stop().await;
}

#[tokio::test]
async fn cancel_crossed_by_200_is_acked_and_byed() {
    // 1. Carrier: 180, then on CANCEL answers 200 to the CANCEL and 200 (not 487) to the
    //    INVITE, and expects ACK then BYE. A bot SIPp listens but must see nothing.
    let (carrier, botp, f) = carrier_and_bot(
        "flow_carrier_cancel_race.xml",
        "flow_bot_answer.xml",
        16020,
        26100,
    )
    .await;
    // 2. Dial; wait until it rings.
    let id = f.dial("+15551230002", json!({})).await;
    f.record_until(&id, "ringing", |r| r["ringingAt"].is_string())
        .await;
    // 3. The API hangs up while ringing.
    let a = f.hangup(&id).await;
    assert_eq!(a.status, 202, "{}", a.text);
    // 4. The carrier saw CANCEL, then its late 200 was ACKed and BYE'd.
    saw_exactly(
        &carrier,
        "carrier scenario",
        &[
            "<INVITE", ">180", "<CANCEL", ">200", ">200", "<ACK", "<BYE", ">200",
        ],
    )
    .await;
    // 5. Exactly one terminal notification: failed, api-hangup; never answered.
    let term = one_terminal(&f.sink, &id).await;
    assert_eq!(term["status"], "failed");
    assert_eq!(term["reasonCode"], "api-hangup");
    let rec = f.settled(&id).await;
    assert_eq!(
        notes(&f.sink, &id),
        vec![(s("failed"), Some(s("api-hangup")), term["sipCode"].as_i64())]
    );
    // 6. The bot was never invited, and got no start event.
    assert!(botp.messages().is_empty(), "{}", botp.messages());
    assert!(!f.bot.activity_names().contains(&s("start")));
    // 7. The record: failed/api-hangup, not answered, one delivered notification.
    assert_failed_and_notified(&rec, "api-hangup");
    assert!(rec["answeredAt"].is_null() && rec["botConnectedAt"].is_null());
    f.stop().await;
}

#[tokio::test]
async fn retransmitted_200_gives_one_answered() {
    // 1. Carrier sends its 200, gets the ACK, sends the same 200 again (as if the ACK were
    //    lost) and expects a second ACK, then hangs up after a pause.
    // `-nr`: SIPp would take the second ACK (identical to the first) for a retransmission.
    let carrier = uas_with("flow_carrier_200_twice.xml", 16030, 40, &["-nr"]);
    let botp = uas("flow_bot_answer.xml", 16031, 40);
    let f = flow(26200, 16031, trunk(16030, None)).await;
    let id = f.dial("+15551230003", json!({})).await;
    // 2. The carrier sent 200 twice and got two ACKs, then hung up; the bot had one call.
    let clog = passed(&carrier, "carrier scenario").await;
    let raw = sip_sequence(&clog);
    assert_eq!(raw.iter().filter(|m| *m == ">200").count(), 2, "{raw:?}");
    assert_eq!(
        sip_flow(&clog),
        seq(&[
            "<INVITE", ">180", ">200", "<ACK", ">200", "<ACK", ">BYE", "<200"
        ]),
        "{clog}"
    );
    saw_exactly(&botp, "bot scenario", &bot_answer()).await;
    // 3. One terminal: completed by the person.
    completed_by_the_person(&f, &id, WAIT).await;
    // 4. Exactly one answered notification, one start event.
    let rec = answered_then_completed(&f, &id).await;
    assert_eq!(
        f.bot
            .activity_names()
            .iter()
            .filter(|n| *n == "start")
            .count(),
        1
    );
    // 5. The record: completed, two deliveries.
    assert_eq!(rec["status"], "completed", "{rec:#}");
    assert_eq!(dialer_deliveries(&rec).len(), 2, "{rec:#}");
    f.stop().await;
}

#[tokio::test]
async fn carrier_bye_while_bot_rings_cancels_the_bot() {
    // 1. Carrier answers and hangs up after a pause; the bot only rings (180) meanwhile.
    let (carrier, botp, f) = carrier_and_bot(
        "flow_carrier_answer_bye.xml",
        "flow_ring_until_cancel.xml",
        16040,
        26300,
    )
    .await;
    let id = f.dial("+15551230004", json!({})).await;
    // 2. One terminal: completed, client-disconnected.
    completed_by_the_person(&f, &id, WAIT).await;
    // 3. The carrier's call ran as scripted; the bot got CANCEL (487 to its INVITE, ACKed).
    saw_exactly(&carrier, "carrier scenario", &carrier_answer_bye()).await;
    saw_exactly(
        &botp,
        "bot scenario",
        &["<INVITE", ">180", "<CANCEL", ">200", ">487", "<ACK"],
    )
    .await;
    // 4. Notifications: answered, then completed.
    let rec = answered_then_completed(&f, &id).await;
    // 5. The record: answered, the bot never connected.
    assert_eq!(rec["status"], "completed", "{rec:#}");
    assert_eq!(rec["reasonCode"], "client-disconnected");
    assert!(rec["answeredAt"].is_string() && rec["botConnectedAt"].is_null());
    f.stop().await;
}

#[tokio::test]
async fn unreachable_primary_fails_over_to_backup() {
    // 1. The primary is a UDP port where nothing listens; the backup answers. rsipstack only
    //    gives up on the primary at Timer B (32 s), so the bounds here are long.
    let primary = common::peers::free_udp_port();
    let backup = uas("flow_carrier_answer_bye.xml", 16051, 100);
    let botp = uas("flow_bot_answer.xml", 16052, 100);
    let f = flow(26400, 16052, trunk(primary, Some(16051))).await;
    let id = f
        .dial("+15551230005", json!({"answerTimeoutSec": 120}))
        .await;
    // 2. The backup carried the call: completed by the person.
    completed_by_the_person(&f, &id, Duration::from_secs(90)).await;
    // 3. Peers, notifications and record.
    the_backup_carried_the_call(f, &id, &backup, &botp).await;
}

#[tokio::test]
async fn primary_503_fails_over_to_backup() {
    // 1. The primary answers 503; the backup answers and later hangs up.
    let primary = uas("flow_carrier_503.xml", 16060, 40);
    let backup = uas("flow_carrier_answer_bye.xml", 16061, 40);
    let botp = uas("flow_bot_answer.xml", 16062, 40);
    let f = flow(26500, 16062, trunk(16060, Some(16061))).await;
    let id = f.dial("+15551230006", json!({})).await;
    // 2. Completed through the backup.
    completed_by_the_person(&f, &id, WAIT).await;
    saw_exactly(
        &primary,
        "primary scenario",
        &["<INVITE", ">100", ">503", "<ACK"],
    )
    .await;
    // 3. Peers, notifications and record.
    the_backup_carried_the_call(f, &id, &backup, &botp).await;
}

#[tokio::test]
async fn primary_486_does_not_fail_over() {
    // 1. The primary answers 486 (busy); the backup listens but must never be contacted.
    let primary = uas("flow_carrier_486.xml", 16070, 40);
    let backup = uas("flow_carrier_answer_bye.xml", 16071, 40);
    let botp = uas("flow_bot_answer.xml", 16072, 40);
    let f = flow(26600, 16072, trunk(16070, Some(16071))).await;
    let id = f.dial("+15551230007", json!({})).await;
    // 2. One terminal: failed, busy, 486.
    let term = one_terminal(&f.sink, &id).await;
    assert_eq!(term["status"], "failed");
    assert_eq!(term["reasonCode"], "busy");
    assert_eq!(term["sipCode"], 486);
    saw_exactly(
        &primary,
        "primary scenario",
        &["<INVITE", ">100", ">486", "<ACK"],
    )
    .await;
    // 3. Neither the backup nor the bot saw anything.
    let rec = f.settled(&id).await;
    assert!(backup.messages().is_empty(), "{}", backup.messages());
    assert!(botp.messages().is_empty(), "{}", botp.messages());
    assert_eq!(
        notes(&f.sink, &id),
        vec![(s("failed"), Some(s("busy")), Some(486))]
    );
    // 4. The record.
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert_eq!(rec["reasonCode"], "busy");
    assert_eq!(rec["sipCode"], 486);
    assert!(rec["answeredAt"].is_null());
    f.stop().await;
}
