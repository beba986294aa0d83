//! The SIP call engine end to end (DESIGN §1-§2) over real SIP/RTP on loopback: dialgate
//! between a PJSIP carrier callee and a PJSIP bot media endpoint, with a Bot API bot and the
//! dialer's notification sink. Each test is one documented flow and checks what the SIP peers
//! saw, the dialer's notifications (exactly one terminal, signed), the bot events and the call
//! record.
//!
//! Port plan of this file: dialgate's relay RTP 53000-55799 (200 per test), PJSIP RTP
//! 40000-41399 (100 per test: callee at +0, bot at +50), SIP ports picked free.

use crate::common;
use common::flows::*;
use common::http_peers::{BotReply, activity};
use common::peers::fixture_audio;
use hyper::StatusCode;
use serde_json::{Value, json};

/// Relay RTP range and PJSIP RTP base of test number `n` (0-based).
fn ports(n: u16) -> (u16, u16) {
    (53000 + 200 * n, 40000 + 100 * n)
}

/// Test `n`'s setup ([`ports`]) with the callee answering `answer`.
fn flow_setup(n: u16, answer: &str) -> FlowSetup {
    let (rtp, peer_rtp) = ports(n);
    FlowSetup::new(rtp, peer_rtp, answer)
}

/// Starts the flow and dials (no extra request fields); returns it and the conversation ID.
async fn start_and_dial(setup: FlowSetup) -> (Flow, String) {
    let flow = Flow::start(setup).await;
    let id = flow.dial(json!({})).await;
    (flow, id)
}

/// Waits (bounded) for the bot API's `start` event.
async fn bot_started(flow: &Flow) {
    flow.bot_api
        .wait_for_activity("start", WAIT)
        .await
        .expect("start activity");
}

/// Both legs (callee and bot) got a BYE from dialgate.
async fn both_legs_got_bye(flow: &Flow) {
    for peer in [&flow.callee, flow.bot()] {
        let d = disconnected(peer).await;
        assert_eq!(d.str("by"), Some("remote"), "{:?}", d.0);
    }
}

/// The one terminal notification of `id` (waited for): `status`, `reason_code`.
async fn terminal(flow: &Flow, id: &str, status: &str, reason_code: &str) -> Value {
    let done = flow.wait_terminal(id).await;
    assert_eq!(done["status"], status, "{done}");
    assert_eq!(done["reasonCode"], reason_code, "{done}");
    done
}

/// The settled record of an answered call ended with `reason_code`: the dialer heard
/// answered then completed, and the record has the shape [`assert_answered_record`] checks.
async fn answered_record(flow: &Flow, id: &str, reason_code: &str) -> Value {
    let r = flow.wait_record_settled(id).await;
    flow.assert_notifications(id, &["answered", "completed"]);
    assert_answered_record(&r, reason_code);
    r
}

/// The peer's first `disconnected` event.
async fn disconnected(peer: &common::peers::PjsuaPeer) -> common::peers::PeerEvent {
    saw(peer, "disconnected", |e| e.is("disconnected")).await
}

/// Asserts that `events` holds `expected` as a subsequence (other events may come between).
fn assert_in_order(events: &[String], expected: &[&str]) {
    let mut it = events.iter();
    for want in expected {
        assert!(
            it.any(|e| e == want),
            "timeline {events:?} lacks {want:?} in the order {expected:?}"
        );
    }
}

/// Asserts that the record's timeline notes a BYE from `leg` (`Carrier` or `Bot`).
fn assert_bye_from(r: &Value, leg: &str) {
    let byes: Vec<&Value> = r["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == "bye")
        .collect();
    assert_eq!(byes.len(), 1, "{byes:?}");
    let detail = byes[0]["detail"].as_str().unwrap_or("");
    assert!(detail.contains(leg), "BYE from {leg}: {detail}");
}

/// Asserts the common shape of an answered call's record.
fn assert_answered_record(r: &Value, reason_code: &str) {
    assert_eq!(r["status"], "completed", "{r:#}");
    assert_eq!(r["reasonCode"], reason_code, "{r:#}");
    assert_eq!(r["sipCode"], 200, "{r:#}");
    for t in ["dialingAt", "answeredAt", "endedAt"] {
        assert!(r[t].is_string(), "{t} missing: {r:#}");
    }
    let tl = timeline(r);
    assert_in_order(
        &tl,
        &[
            "accepted",
            "dialing",
            "ringing",
            "answered",
            "bot-invite",
            "connected",
        ],
    );
    assert_eq!(tl.last().map(String::as_str), Some("completed"), "{tl:?}");
    assert_deliveries(r, 2);
}

#[tokio::test]
async fn callee_hangs_up_after_answer() {
    // 1. Callee answers at once; the bot announces the dial-out (dialoutInitiated enabled).
    let (rtp, peer_rtp) = ports(0);
    let flow = Flow::start(FlowSetup {
        dialout_initiated_event: true,
        ..FlowSetup::new(rtp, peer_rtp, "200")
    })
    .await;

    // 2. The dialer dials; the callee sees the INVITE for the target.
    let id = flow.dial(json!({})).await;
    let inv = saw(&flow.callee, "incoming", |e| e.is("incoming")).await;
    assert!(
        inv.str("request_uri").unwrap_or("").contains(TARGET),
        "{:?}",
        inv.0
    );
    assert_relay_offer(inv.sdp(), (rtp, rtp + 199));

    // 3. After the answer the bot's INVITE carries the conversation and the target.
    let bot_inv = saw(flow.bot(), "bot incoming", |e| e.is("incoming")).await;
    assert_eq!(
        bot_inv.header("X-Dialgate-Conversation-Id"),
        Some(id.as_str())
    );
    assert!(
        bot_inv
            .header("X-Dialgate-Target")
            .unwrap_or("")
            .contains(TARGET),
        "{:?}",
        bot_inv.0
    );
    assert_relay_offer(bot_inv.sdp(), (rtp, rtp + 199));

    // 4. The bot gets dialoutInitiated then start with the Live Hub parameters.
    bot_started(&flow).await;
    let names = flow.bot_activity_names(&id);
    assert_eq!(&names[..2], ["dialoutInitiated", "start"], "{names:?}");
    let start = flow.bot_activity(&id, "start").unwrap();
    let p = &start["parameters"];
    assert_eq!(p["vaigConversationId"], id.as_str());
    assert_eq!(p["callee"], TARGET);
    assert_eq!(p["caller"], "+15550009999");
    assert!(
        p["outboundTarget"].as_str().unwrap_or("").contains(TARGET),
        "{p}"
    );
    assert_eq!(p["dialoutMetadata"], json!({"campaign": "flows", "n": 7}));
    let initiated = flow.bot_activity(&id, "dialoutInitiated").unwrap();
    assert_eq!(initiated["parameters"], start["parameters"]);

    // 5. The callee hangs up (SIGTERM makes the peer send BYE); dialgate BYEs the bot.
    flow.callee.stop().await;
    let d = disconnected(&flow.callee).await;
    assert_eq!(d.str("by"), Some("local"));
    let d = disconnected(flow.bot()).await;
    assert_eq!(d.str("by"), Some("remote"), "{:?}", d.0);

    // 6. The dialer gets answered then exactly one completed / client-disconnected / 200.
    let done = terminal(&flow, &id, "completed", "client-disconnected").await;
    assert_eq!(done["sipCode"], 200);
    let bye = flow.wait_bot_disconnect(&id).await;
    assert_eq!(bye["reasonCode"], "client-disconnected");

    // 7. The record is completed with its timeline and both deliveries.
    let r = answered_record(&flow, &id, "client-disconnected").await;
    assert_bye_from(&r, "Carrier");
    assert!(r["botConnectedAt"].is_string(), "{r:#}");
    flow.stop().await;
}

#[tokio::test]
async fn bot_hangs_up_with_bye() {
    // 1. Callee and bot answer; no dialoutInitiated this time.
    let (flow, id) = start_and_dial(flow_setup(1, "200")).await;

    // 2. Once the bot has the start event, the bot hangs up (its peer sends BYE on SIGTERM).
    bot_started(&flow).await;
    flow.bot().stop().await;
    assert_eq!(disconnected(flow.bot()).await.str("by"), Some("local"));

    // 3. dialgate BYEs the callee.
    let d = disconnected(&flow.callee).await;
    assert_eq!(d.str("by"), Some("remote"), "{:?}", d.0);

    // 4. answered then completed / bot-disconnected; the bot API sees start then disconnect.
    terminal(&flow, &id, "completed", "bot-disconnected").await;
    let bye = flow.wait_bot_disconnect(&id).await;
    assert_eq!(bye["reasonCode"], "bot-disconnected");
    assert_eq!(flow.bot_activity_names(&id), ["start"]);

    // 5. The record.
    let r = answered_record(&flow, &id, "bot-disconnected").await;
    assert_bye_from(&r, "Bot");
    flow.stop().await;
}

#[tokio::test]
async fn busy_then_declined_never_reach_the_bot() {
    // 1. The callee answers the first call 486, the second 603 (after a 180).
    let mut setup = flow_setup(2, "486,603");
    setup.callee.answer_after_ms = 100;
    let flow = Flow::start(setup).await;

    for (n, code, reason) in [(1u64, 486, "busy"), (2, 603, "declined")] {
        // 2. Dial; the callee answers with `code`.
        let id = flow.dial(json!({})).await;
        saw(&flow.callee, "final answer", |e| {
            e.is("answer") && e.call() == Some(n) && e.code() == Some(code)
        })
        .await;

        // 3. Exactly one notification: failed / reason / sipCode.
        let done = flow.wait_terminal(&id).await;
        assert_eq!(done["status"], "failed");
        assert_eq!(done["reasonCode"], reason);
        assert_eq!(done["sipCode"], code);

        // 4. The record says the same; nothing was answered.
        let r = flow.wait_record_settled(&id).await;
        flow.assert_notifications(&id, &["failed"]);
        assert_eq!(r["status"], "failed", "{r:#}");
        assert_eq!(r["reasonCode"], reason);
        assert_eq!(r["sipCode"], code);
        assert!(r["answeredAt"].is_null(), "{r:#}");
        let tl = timeline(&r);
        assert_in_order(
            &tl,
            &["accepted", "dialing", "ringing", "leg-failed", "failed"],
        );
        assert!(!tl.iter().any(|e| e == "bot-invite"), "{tl:?}");
        assert_deliveries(&r, 1);
    }

    // 5. The bot was never invited and never heard of either call.
    assert!(flow.bot().events_named("incoming").is_empty());
    assert!(
        flow.bot_api.requests().is_empty(),
        "{:?}",
        flow.bot_api.requests()
    );
    flow.stop().await;
}

#[tokio::test]
async fn no_answer_is_cancelled_after_the_ring_timeout() {
    // 1. The callee rings forever; the request asks for a 2 s ring timeout.
    let flow = Flow::start(flow_setup(3, "ring")).await;
    let id = flow.dial(json!({"answerTimeoutSec": 2})).await;

    // 2. The callee sees the INVITE, then the CANCEL.
    saw(&flow.callee, "incoming", |e| e.is("incoming")).await;
    saw(&flow.callee, "cancelled", |e| e.is("cancelled")).await;

    // 3. failed / no-answer, exactly once.
    let done = terminal(&flow, &id, "failed", "no-answer").await;
    assert!(
        done["sipCode"].is_null() || done["sipCode"] == 487,
        "{done}"
    );

    // 4. The record rang but was never answered; the bot never heard of it.
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["failed"]);
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["reasonCode"], "no-answer");
    assert!(r["ringingAt"].is_string(), "{r:#}");
    assert!(r["answeredAt"].is_null(), "{r:#}");
    assert_in_order(&timeline(&r), &["ringing", "leg-failed", "failed"]);
    assert_deliveries(&r, 1);
    assert!(flow.bot().events_named("incoming").is_empty());
    assert!(flow.bot_api.requests().is_empty());
    flow.stop().await;
}

#[tokio::test]
async fn unreachable_bot_ends_the_answered_call_with_error() {
    // 1. The bot's URI points at a port where nothing listens; dialgate waits 3 s for it.
    let flow = Flow::start(FlowSetup {
        bot: None,
        bot_answer_timeout_sec: 3,
        ..flow_setup(4, "200")
    })
    .await;
    let id = flow.dial(json!({})).await;

    // 2. The callee answers, then dialgate BYEs it.
    saw(&flow.callee, "confirmed", |e| {
        e.is("state") && e.str("state") == Some("CONFIRMED")
    })
    .await;
    let d = disconnected(&flow.callee).await;
    assert_eq!(d.str("by"), Some("remote"), "{:?}", d.0);

    // 3. answered, then completed / error with a reason naming the bot.
    let done = terminal(&flow, &id, "completed", "error").await;
    let reason = done["reason"].as_str().unwrap_or("").to_lowercase();
    assert!(reason.contains("bot"), "reason: {done}");

    // 4. The record.
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    assert_eq!(r["status"], "completed", "{r:#}");
    assert_eq!(r["reasonCode"], "error");
    assert!(r["botConnectedAt"].is_null(), "{r:#}");
    assert_deliveries(&r, 2);
    let tl = timeline(&r);
    assert_in_order(&tl, &["answered", "bot-invite", "leg-failed", "completed"]);
    assert!(!tl.iter().any(|e| e == "connected"), "{tl:?}");

    // 5. The bot API never got start, but its conversation was closed with the reason.
    assert_eq!(flow.wait_bot_disconnect(&id).await["reasonCode"], "error");
    assert!(flow.bot_activity_names(&id).is_empty());
    flow.stop().await;
}

#[tokio::test]
async fn api_hangup_while_ringing() {
    // 1. The callee rings forever.
    let (flow, id) = start_and_dial(flow_setup(5, "ring")).await;
    saw(&flow.callee, "180 sent", |e| {
        e.is("answer") && e.code() == Some(180)
    })
    .await;
    flow.wait_status(&id, "ringing").await;

    // 2. The dialer hangs up through the API: 202, and the callee gets CANCEL.
    let a = flow.hangup(&id).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    saw(&flow.callee, "cancelled", |e| e.is("cancelled")).await;

    // 3. failed / api-hangup, once.
    terminal(&flow, &id, "failed", "api-hangup").await;

    // 4. A second hang-up is refused: the call has ended.
    let r = flow.wait_record_settled(&id).await;
    assert_eq!(flow.hangup(&id).await.status, StatusCode::CONFLICT);

    // 5. The record; the bot never heard of the call.
    flow.assert_notifications(&id, &["failed"]);
    assert_eq!(r["status"], "failed", "{r:#}");
    assert_eq!(r["reasonCode"], "api-hangup");
    assert!(r["answeredAt"].is_null(), "{r:#}");
    assert_in_order(&timeline(&r), &["ringing", "hangup", "failed"]);
    assert_deliveries(&r, 1);
    assert!(flow.bot_api.requests().is_empty());
    flow.stop().await;
}

#[tokio::test]
async fn api_hangup_while_talking() {
    // 1. Callee and bot answer.
    let (flow, id) = start_and_dial(flow_setup(6, "200")).await;
    bot_started(&flow).await;

    // 2. The dialer hangs up through the API: 202, and both legs get BYE.
    let a = flow.hangup(&id).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    both_legs_got_bye(&flow).await;

    // 3. answered, then completed / api-hangup; the bot is told.
    terminal(&flow, &id, "completed", "api-hangup").await;
    assert_eq!(
        flow.wait_bot_disconnect(&id).await["reasonCode"],
        "api-hangup"
    );

    // 4. A second hang-up is refused; the record.
    let r = flow.wait_record_settled(&id).await;
    assert_eq!(flow.hangup(&id).await.status, StatusCode::CONFLICT);
    flow.assert_notifications(&id, &["answered", "completed"]);
    assert_answered_record(&r, "api-hangup");
    assert_in_order(&timeline(&r), &["connected", "hangup", "completed"]);
    flow.stop().await;
}

#[tokio::test]
async fn audio_flows_both_ways_through_the_relay() {
    // 1. The callee loops hello.wav, the bot loops machine.wav and hangs up 10 s after the
    //    answer; both record what they hear.
    let (hello, machine) = hello_and_machine();
    let mut setup = flow_setup(7, "200");
    setup.talk_both_ways(&hello, &machine);
    let (flow, id) = start_and_dial(setup).await;

    // 2. Both peers report media; the call ends with the bot's BYE; the recordings are closed.
    saw(&flow.callee, "media", |e| e.is("media")).await;
    saw(flow.bot(), "media", |e| e.is("media")).await;
    let h = heard_both_ways(&flow, &hello, &machine).await;
    let (bot_rec, callee_rec) = (&h.bot_rec, &h.callee_rec);
    let (bot_hello, bot_machine) = (h.bot_hello, h.bot_machine);
    let (callee_machine, callee_hello) = (h.callee_machine, h.callee_hello);
    if let Some(keep) = std::env::var_os("FLOWS_KEEP_AUDIO") {
        let keep = std::path::PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(bot_rec, keep.join("bot-heard.wav")).unwrap();
        std::fs::copy(callee_rec, keep.join("callee-heard.wav")).unwrap();
    }

    // 3. The bot heard the callee's hello, the callee heard the bot's clip (compared in 2.5 s
    //    excerpts); each recording matches the other clip less.
    eprintln!(
        "bot heard hello {bot_hello:.3} (machine {bot_machine:.3}); callee heard machine {callee_machine:.3} (hello {callee_hello:.3})"
    );
    let heard_right = bot_hello > 0.8 && callee_machine > 0.8;
    let wrong_lower = bot_machine < bot_hello && callee_hello < callee_machine;
    if !(heard_right && wrong_lower) {
        // Keep the evidence: both recordings and the relay's counters.
        let keep = std::env::temp_dir().join(format!("call-flows-audio-{id}"));
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(bot_rec, keep.join("bot-heard.wav")).unwrap();
        std::fs::copy(callee_rec, keep.join("callee-heard.wav")).unwrap();
        let r = flow.wait_record_settled(&id).await;
        panic!(
            "audio check failed: bot heard hello {bot_hello:.3} (machine {bot_machine:.3}), \
             callee heard machine {callee_machine:.3} (hello {callee_hello:.3}); recordings in {}; \
             media: {}",
            keep.display(),
            r["media"]
        );
    }

    // 4. completed / bot-disconnected, once; the record.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "bot-disconnected");
    answered_record(&flow, &id, "bot-disconnected").await;
    flow.stop().await;
}

#[tokio::test]
async fn bot_hangup_activity_ends_both_legs() {
    bot_hangup_ends_both_legs(8, activity::hangup()).await;
}

#[tokio::test]
async fn a_sample_bots_capital_event_hangup_ends_the_call() {
    // AudioCodes' sample HTTP bot spells it `"type": "Event"`.
    bot_hangup_ends_both_legs(9, json!({"type": "Event", "name": "hangup"})).await;
}

/// A bot answering `start` with `hangup` (test number `n`, for the ports).
async fn bot_hangup_ends_both_legs(n: u16, hangup: Value) {
    // 1. The bot API answers the start event with a hangup activity.
    let mut setup = flow_setup(n, "200");
    setup.bot_api.replies = vec![BotReply::on_event("start", vec![hangup])];
    let (flow, id) = start_and_dial(setup).await;

    // 2. Both legs get BYE from dialgate.
    both_legs_got_bye(&flow).await;

    // 3. answered, then completed / bot-disconnected; the bot got start and a disconnect.
    terminal(&flow, &id, "completed", "bot-disconnected").await;
    assert_eq!(
        flow.wait_bot_disconnect(&id).await["reasonCode"],
        "bot-disconnected"
    );
    assert_eq!(flow.bot_activity_names(&id), ["start"]);

    // 4. The record notes the hangup activity.
    let r = answered_record(&flow, &id, "bot-disconnected").await;
    assert_in_order(&timeline(&r), &["connected", "hangup", "completed"]);
    flow.stop().await;
}

#[tokio::test]
async fn a_bot_with_a_wrong_token_means_nobody_is_called() {
    // 1. dialoutInitiated is on, and dialgate's token for the bot is wrong: the bot answers 401.
    let mut setup = flow_setup(10, "200");
    setup.dialout_initiated_event = true;
    setup.bot_token = "not-the-bots-token".into();
    let (flow, id) = start_and_dial(setup).await;

    // 2. failed / error, the reason says what the bot answered.
    let done = terminal(&flow, &id, "failed", "error").await;
    let reason = done["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("401") && reason.contains("not called"),
        "{reason}"
    );

    // 3. The person's phone never rang: no INVITE reached the callee.
    let r = flow.wait_record_settled(&id).await;
    assert!(r["answeredAt"].is_null(), "{r:#}");
    assert!(flow.callee.events_named("incoming").is_empty());
    flow.stop().await;
}

#[tokio::test]
async fn a_short_lived_bot_session_is_refreshed_while_the_call_lasts() {
    // 1. The bot announces `expiresSeconds: 4`; the call connects.
    let mut setup = flow_setup(11, "200");
    setup.bot_api.expires_seconds = 4;
    let (flow, id) = start_and_dial(setup).await;
    bot_started(&flow).await;

    // 2. Refreshes come, again and again (every 3 s: before the 4 s run out).
    let refreshes = wait_refreshes(&flow, 2).await;
    assert!(refreshes >= 2, "{refreshes} refreshes");

    // 3. Hang up; the conversation is closed.
    flow.hangup(&id).await;
    assert_eq!(
        flow.wait_bot_disconnect(&id).await["reasonCode"],
        "api-hangup"
    );
    flow.stop().await;
}

/// Waits (bounded) until the bot has seen `n` refresh requests; returns how many it saw.
async fn wait_refreshes(flow: &Flow, n: usize) -> usize {
    let count = || {
        flow.bot_api
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/refresh"))
            .count()
    };
    for _ in 0..150 {
        if count() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    count()
}

#[tokio::test]
async fn key_presses_of_the_person_reach_the_bot_in_order() {
    // 1. The callee answers and presses 1, #, 5 (RFC 4733) half a second later.
    let mut setup = flow_setup(12, "200");
    setup.callee.dtmf = Some(("1#5".into(), 500));
    // PJSIP sends RTP (telephone-events included) only while something feeds the call's audio.
    setup.callee.play = Some(fixture_audio("hello.wav"));
    setup.callee.play_loop = true;
    let (flow, id) = start_and_dial(setup).await;
    saw(&flow.callee, "keys pressed", |e| e.is("dtmf_sent")).await;

    // 2. The bot gets one DTMF event per key, in order, after `start`.
    for _ in 0..100 {
        if flow
            .bot_activity_names(&id)
            .iter()
            .filter(|n| *n == "DTMF")
            .count()
            >= 3
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let digits: Vec<String> = flow
        .bot_api
        .activities()
        .into_iter()
        .filter(|(c, a)| *c == id && a["name"] == "DTMF")
        .map(|(_, a)| a["value"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(digits, ["1", "#", "5"]);
    let names = flow.bot_activity_names(&id);
    assert_eq!(
        names.first().map(String::as_str),
        Some("start"),
        "{names:?}"
    );
    flow.hangup(&id).await;
    flow.wait_terminal(&id).await;
    flow.stop().await;
}

#[tokio::test]
async fn a_text_bots_reply_is_heard_by_the_person() {
    // 1. A text bot (no sip_uri): it answers `start` with a message; the person records.
    let mut setup = flow_setup(13, "200");
    setup.text_bot = true;
    setup.callee.record = Some("heard.wav".into());
    // Plain words: Whisper tiny hears brand names loosely ("Acme" → "acne").
    let text = "Hello, we are calling about your order from last week.";
    setup.bot_api.replies = vec![BotReply::on_event("start", vec![activity::message(text)])];
    let (flow, id) = start_and_dial(setup).await;

    // 2. dialgate speaks it; when the queue drains the bot hears playFinished.
    flow.bot_api
        .wait_for_activity("playFinished", WAIT)
        .await
        .expect("playFinished");

    // 3. Hang up; the person's recording holds the words (recognised back by Whisper).
    flow.hangup(&id).await;
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["status"], "completed");
    disconnected(&flow.callee).await;
    let heard = wait_wav(&flow.callee.dir().join("heard.wav")).await;
    assert_heard(heard, text, "order").await;

    // 4. The record's timeline says what the bot said.
    let r = flow.wait_record_settled(&id).await;
    assert_in_order(&timeline(&r), &["connected", "speak", "completed"]);
    let said = r["timeline"].to_string();
    assert!(said.contains("calling about your order"), "{said}");
    flow.stop().await;
}
