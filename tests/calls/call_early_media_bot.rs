//! `outbound.early_media_to_bot` (issue 16 item 3) end to end: PJSIP as the carrier answers the
//! INVITE with 183 and SDP and plays a clip as early media; with the key, dialgate places the SIP
//! bot's leg (PJSIP, recording what it hears) at that 183. Checked: the bot hears the early audio
//! although nobody answered; an answer later connects the listening bot without a second INVITE
//! (both ways, `start`, the bot's own audio held back until then); a busy carrier BYEs the bot
//! with one terminal; a bot refusing before the answer CANCELs the person's call as `error`.
//!
//! Port plan of this file: dialgate's relay RTP 42000-42599 (200 per test), PJSIP RTP
//! 50000-50299 (100 per test: callee at +0, bot at +50), SIP ports picked free.

use crate::common;

use common::flows::*;
use serde_json::{Value, json};

/// Test `n`'s flow: the callee answers `answer` after a 183 with SDP; the bot has the key.
fn setup(n: u16, answer: &str) -> FlowSetup {
    let mut s = FlowSetup::new(42_000 + 200 * n, 50_000 + 100 * n, answer);
    s.callee.ring_code = 183;
    s.outbound_extra = vec!["early_media_to_bot: true".into()];
    s
}

/// Index of the first timeline event called `name`.
fn first(record: &Value, name: &str) -> usize {
    let tl = timeline(record);
    tl.iter()
        .position(|e| e == name)
        .unwrap_or_else(|| panic!("no {name:?} in {tl:?}"))
}

#[tokio::test]
async fn the_bot_hears_early_media_and_a_busy_carrier_byes_it_once() {
    // 1. The carrier plays machine.wav as early media and answers 486 after 7 s; the bot
    //    records what it hears.
    let (hello, machine) = hello_and_machine();
    let mut s = setup(0, "486");
    s.callee.play = Some(machine.clone());
    s.callee.answer_after_ms = 7_000;
    let bot = s.bot.as_mut().unwrap();
    bot.record = Some("heard.wav".into());
    let flow = Flow::start(s).await;
    let id = flow.dial(json!({})).await;

    // 2. The bot's INVITE comes with the 183 (the person never answers).
    let inv = saw(flow.bot(), "bot incoming", |e| e.is("incoming")).await;
    assert_eq!(inv.header("X-Dialgate-Conversation-Id"), Some(id.as_str()));

    // 3. 486: failed / busy with the carrier's code, one notification; the bot gets BYE.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_eq!(done["reasonCode"], "busy", "{done:#}");
    assert_eq!(done["sipCode"], 486, "{done:#}");
    let bye = saw(flow.bot(), "bot disconnected", |e| e.is("disconnected")).await;
    assert_eq!(bye.str("by"), Some("remote"), "{:?}", bye.0);
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["failed"]);
    assert!(r["answeredAt"].is_null(), "{r:#}");
    assert_eq!(flow.bot().events_named("incoming").len(), 1);

    // 4. What the bot heard is the carrier's early clip (no one ever answered).
    let heard = heard_by(flow.bot()).await;
    let (early, other) = similarities(&heard, &machine, &hello, 2.5).await;
    eprintln!("bot heard the early clip: corr {early:.3} (another clip {other:.3})");
    assert!(
        early > 0.6 && other < early,
        "early clip {early:.3}, other {other:.3}; media: {}",
        r["media"]
    );
    // 5. The bot never got `start` (nobody answered); its conversation was told why it ended.
    assert!(
        !flow.bot_activity_names(&id).contains(&"start".to_owned()),
        "{:?}",
        flow.bot_activity_names(&id)
    );
    let disconnect = flow.wait_bot_disconnect(&id).await;
    assert_eq!(disconnect["reasonCode"], "busy", "{disconnect:#}");
    flow.stop().await;
}

#[tokio::test]
async fn an_answer_connects_the_listening_bot_without_a_second_invite() {
    // 1. The carrier loops hello.wav from its 183, answers 200 after 3 s and hangs up 3 s
    //    later; the bot loops machine.wav from its own answer; both record.
    let (hello, machine) = hello_and_machine();
    let mut s = setup(1, "200");
    s.callee.play = Some(hello.clone());
    s.callee.play_loop = true;
    s.callee.answer_after_ms = 3_000;
    s.callee.bye_after_ms = Some(3_000);
    s.callee.record = Some("heard.wav".into());
    let bot = s.bot.as_mut().unwrap();
    bot.play = Some(machine.clone());
    bot.play_loop = true;
    bot.record = Some("heard.wav".into());
    let flow = Flow::start(s).await;
    let id = flow.dial(json!({})).await;

    // 2. completed / client-disconnected; answered then completed, once each.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["reasonCode"], "client-disconnected", "{done:#}");
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);

    // 3. One bot INVITE, sent before the carrier's answer; `start` only after it.
    assert_eq!(flow.bot().events_named("incoming").len(), 1);
    assert!(first(&r, "bot-invite") < first(&r, "answered"), "{r:#}");
    let names = flow.bot_activity_names(&id);
    assert_eq!(
        names.iter().filter(|n| *n == "start").count(),
        1,
        "{names:?}"
    );

    // 4. Before the answer the relay held the bot's audio back (dropped by direction), after
    //    it both directions flowed: each side recorded the other's clip.
    let held = r["media"]["bot"]["dropped"]["direction"]
        .as_u64()
        .unwrap_or(0);
    assert!(held > 0, "bot audio before the answer: {}", r["media"]);
    let (bot_heard, callee_heard) = (heard_by(flow.bot()).await, heard_by(&flow.callee).await);
    let (bot_hello, callee_machine) =
        each_heard((&bot_heard, &hello), (&callee_heard, &machine), 1.5).await;
    eprintln!("bot heard hello {bot_hello:.3}; callee heard machine {callee_machine:.3}");
    assert!(
        bot_hello > 0.6 && callee_machine > 0.6,
        "bot heard hello {bot_hello:.3}, callee heard machine {callee_machine:.3}; media: {}",
        r["media"]
    );
    flow.stop().await;
}

#[tokio::test]
async fn a_bot_refusing_before_the_answer_cancels_the_persons_call() {
    // 1. The carrier rings with early media and never answers; the bot answers 486.
    let mut s = setup(2, "ring");
    s.bot.as_mut().unwrap().answer = "486".into();
    let flow = Flow::start(s).await;
    let id = flow.dial(json!({})).await;

    // 2. The carrier's INVITE is CANCELled.
    saw(&flow.callee, "cancelled", |e| e.is("cancelled")).await;

    // 3. failed / error, the reason names the bot's answer and that nobody had answered.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["status"], "failed", "{done:#}");
    assert_eq!(done["reasonCode"], "error", "{done:#}");
    let reason = done["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("486"), "{reason}");
    assert!(reason.contains("before the person answered"), "{reason}");
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["failed"]);
    assert!(r["answeredAt"].is_null(), "{r:#}");
    flow.stop().await;
}
