//! The Bot API `transfer` activity end to end over real SIP/RTP on loopback: a PJSIP person
//! (carrier callee), a PJSIP bot media endpoint, a Bot API bot that answers `start` with a
//! `transfer`, and a PJSIP human agent reached through its own trunk by a routing rule. Each
//! test is one flow: what the peers saw, what the bot heard (`transferStatus`), the dialer's
//! one terminal notification and the call record.
//!
//! Port plan of this file: dialgate's relay RTP 23000-24199 (200 per test), PJSIP RTP
//! 46000-46599 (100 per test: callee at +0, bot at +50, agent at +75), SIP ports picked free.

use crate::common;
use common::flows::*;
use common::http_peers::BotReply;
use common::peers::{PeerEvent, PjsuaOpts, PjsuaPeer};
use common::simcall::timeline_details as details;
use serde_json::{Value, json};

/// Relay RTP range and PJSIP RTP base of test number `n` (0-based).
fn ports(n: u16) -> (u16, u16) {
    (23000 + 200 * n, 46000 + 100 * n)
}

async fn disconnected(peer: &PjsuaPeer) -> PeerEvent {
    saw(peer, "disconnected", |e| e.is("disconnected")).await
}

/// A flow whose bot answers `start` with a transfer to [`AGENT`], the agent answering `answer`.
fn transfer_setup(n: u16, answer: &str) -> FlowSetup {
    let (rtp, peer_rtp) = ports(n);
    let mut setup = FlowSetup::new(rtp, peer_rtp, "200");
    setup.agent = Some(PjsuaOpts {
        user: "agent".into(),
        rtp_port: peer_rtp + 75,
        ..PjsuaOpts::uas(answer)
    });
    setup.bot_api.replies = vec![BotReply::on_event(
        "start",
        vec![
            json!({"type": "event", "name": "transfer", "activityParams": {
            "transferTarget": format!("tel:{AGENT}"),
            "handoverReason": "the person asked for a human",
            "transferSipHeaders": [{"name": "X-Queue", "value": "billing"}]}}),
        ],
    )];
    setup
}

/// Waits (bounded) for the bot's `transferStatus` event of `id`.
async fn transfer_status(flow: &Flow, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(a) = flow.bot_activity(id, "transferStatus") {
            return a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no transferStatus for {id}; the bot got {:?}",
            flow.bot_activity_names(id)
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn bridge_answered_the_person_talks_to_the_agent_and_the_bot_is_released() {
    // 1. The person loops hello.wav, the agent loops machine.wav; both record. The person
    //    hangs up 9 s after answering.
    let mut setup = transfer_setup(0, "200");
    let (hello, machine) = hello_and_machine();
    setup.callee.play = Some(hello.clone());
    setup.callee.play_loop = true;
    setup.callee.record = Some("heard.wav".into());
    setup.callee.bye_after_ms = Some(9_000);
    let agent = setup.agent.as_mut().unwrap();
    agent.play = Some(machine.clone());
    agent.play_loop = true;
    agent.record = Some("heard.wav".into());
    let flow = Flow::start(setup).await;
    let id = flow.dial(json!({})).await;

    // 2. The bot gets `start`, asks for the transfer; the agent is called through its trunk
    //    with the bot's header, and answers.
    let inv = saw(flow.agent(), "incoming", |e| e.is("incoming")).await;
    assert!(
        inv.str("request_uri").unwrap_or("").contains(AGENT),
        "{:?}",
        inv.0
    );
    assert_eq!(inv.0["headers"]["X-Queue"], "billing", "{:?}", inv.0);
    // 3. The bot hears `answered` and gets BYE from dialgate.
    let st = transfer_status(&flow, &id).await;
    assert_eq!(st["value"], "answered", "{st}");
    assert_eq!(st["parameters"]["reasonCode"], "transferred");
    assert_eq!(st["parameters"]["sipCode"], 200);
    let d = disconnected(flow.bot()).await;
    assert_eq!(d.str("by"), Some("remote"), "{:?}", d.0);

    // 4. The person and the agent hear each other through the relay.
    let agent_heard = heard_by(flow.agent()).await;
    let callee_heard = heard_by(&flow.callee).await;
    let (agent_hello, callee_machine) =
        each_heard((&agent_heard, &hello), (&callee_heard, &machine), 2.5).await;
    eprintln!("agent heard hello {agent_hello:.3}; person heard machine {callee_machine:.3}");
    assert!(
        agent_hello > 0.8 && callee_machine > 0.8,
        "agent heard hello {agent_hello:.3}, person heard the agent {callee_machine:.3}"
    );

    // 5. The person hangs up: the agent gets BYE; completed/transferred, once.
    let d = disconnected(flow.agent()).await;
    assert_eq!(d.str("by"), Some("remote"), "{:?}", d.0);
    let done = flow.wait_terminal(&id).await;
    assert_eq!(
        (done["status"].as_str(), done["reasonCode"].as_str()),
        (Some("completed"), Some("transferred")),
        "{done}"
    );
    assert_eq!(
        flow.wait_bot_disconnect(&id).await["reasonCode"],
        "transferred"
    );
    // 6. The record keeps both legs: the agent's INVITE, answer and the transfer's steps.
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    let tl = timeline(&r);
    for e in [
        "connected",
        "transfer",
        "agent-invite",
        "agent-answered",
        "bye",
        "completed",
    ] {
        assert!(tl.iter().any(|t| t == e), "{e} missing from {tl:?}");
    }
    let steps = details(&r, "transfer").join(" | ");
    assert!(steps.contains("by bridge"), "{steps}");
    assert!(steps.contains("bot is released"), "{steps}");
    assert!(
        details(&r, "agent-invite")[0].contains("via agents"),
        "{r:#}"
    );
    flow.stop().await;
}

#[tokio::test]
async fn bridge_the_agent_hanging_up_first_ends_the_call_transferred() {
    // 1. The agent answers and hangs up 3 s later.
    let mut setup = transfer_setup(1, "200");
    setup.agent.as_mut().unwrap().bye_after_ms = Some(3_000);
    let flow = Flow::start(setup).await;
    let id = flow.dial(json!({})).await;
    // 2. The bot is told `answered` and released.
    assert_eq!(transfer_status(&flow, &id).await["value"], "answered");
    assert_eq!(disconnected(flow.bot()).await.str("by"), Some("remote"));
    // 3. The agent hangs up: the person gets BYE from dialgate; completed/transferred.
    assert_eq!(disconnected(flow.agent()).await.str("by"), Some("local"));
    assert_eq!(disconnected(&flow.callee).await.str("by"), Some("remote"));
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "transferred", "{done}");
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    assert!(
        details(&r, "bye").iter().any(|d| d.contains("agent")),
        "{r:#}"
    );
    flow.stop().await;
}

/// A transfer the agent does not take: the bot hears `failed` with `reason_code`/`sip_code`,
/// the person stays with it (the bot's leg is not touched) until the API hangs up.
async fn failed_transfer(n: u16, answer: &str, extra: Value, reason_code: &str, sip: Value) {
    let flow = Flow::start(transfer_setup(n, answer)).await;
    let id = flow.dial(extra).await;
    // 1. The agent is called and does not take the call.
    saw(flow.agent(), "incoming", |e| e.is("incoming")).await;
    let st = transfer_status(&flow, &id).await;
    assert_eq!(st["value"], "failed", "{st}");
    assert_eq!(st["parameters"]["reasonCode"], reason_code, "{st}");
    assert_eq!(st["parameters"]["sipCode"], sip, "{st}");
    // 2. The person is still with the bot: the call is connected, nobody got BYE.
    let r = flow.record(&id).await;
    assert_eq!(r["status"], "connected", "{r:#}");
    assert!(flow.callee.events_named("disconnected").is_empty());
    assert!(flow.bot().events_named("disconnected").is_empty());
    // 3. The API hangs up: api-hangup, the bot's leg BYEd like any call's.
    flow.hangup(&id).await;
    assert_eq!(disconnected(flow.bot()).await.str("by"), Some("remote"));
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "api-hangup", "{done}");
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    let steps = details(&r, "transfer").join(" | ");
    assert!(steps.contains("stays with the bot"), "{steps}");
    flow.stop().await;
}

#[tokio::test]
async fn bridge_a_busy_agent_leaves_the_person_with_the_bot() {
    failed_transfer(2, "486", json!({}), "busy", json!(486)).await;
}

#[tokio::test]
async fn bridge_an_agent_who_does_not_answer_is_cancelled_after_the_ring_time() {
    // The call's ring time (answerTimeoutSec 4) is the agent's too.
    failed_transfer(
        3,
        "ring",
        json!({"answerTimeoutSec": 4}),
        "no-answer",
        Value::Null,
    )
    .await;
}

/// A flow of a `refer` bot whose transfer goes to the agent's own SIP URI (the person's phone
/// calls it); `callee_args` are extra arguments of the person's PJSIP peer.
fn refer_setup(n: u16, callee_args: &[&str]) -> FlowSetup {
    let mut setup = transfer_setup(n, "200");
    setup.transfer = Some("refer");
    setup.callee.extra_args = callee_args.iter().map(|a| a.to_string()).collect();
    let port = common::peers::free_udp_port();
    let agent = setup.agent.as_mut().unwrap();
    agent.port = port;
    agent.bye_after_ms = Some(3_000);
    setup.bot_api.replies = vec![BotReply::on_event(
        "start",
        vec![
            json!({"type": "event", "name": "transfer", "activityParams": {
            "transferTarget": format!("sip:agent@127.0.0.1:{port}"),
            "transferSipHeaders": [{"name": "X-Queue", "value": "billing"}]}}),
        ],
    )];
    setup
}

#[tokio::test]
async fn refer_accepted_the_persons_phone_calls_the_agent_and_the_call_ends_transferred() {
    // 1. The bot asks for a transfer; dialgate sends REFER to the person's phone (PJSIP),
    //    which accepts it and calls the agent itself.
    let flow = Flow::start(refer_setup(4, &[])).await;
    let id = flow.dial(json!({})).await;
    let req = saw(&flow.callee, "transfer-request", |e| {
        e.is("transfer-request")
    })
    .await;
    assert!(
        req.str("target")
            .unwrap_or("")
            .contains("sip:agent@127.0.0.1"),
        "{:?}",
        req.0
    );
    let inv = saw(flow.agent(), "incoming", |e| e.is("incoming")).await;
    assert!(
        !inv.0["headers"].to_string().contains("X-Dialgate"),
        "the agent is called by the person's phone, not by dialgate: {:?}",
        inv.0
    );
    // 2. The NOTIFY's `SIP/2.0 200 OK`: the bot hears `answered`, dialgate ends both of its
    //    legs (BYE to the person's first call and to the bot).
    let st = transfer_status(&flow, &id).await;
    assert_eq!(st["value"], "answered", "{st}");
    assert_eq!(st["parameters"]["reasonCode"], "transferred");
    assert_eq!(disconnected(flow.bot()).await.str("by"), Some("remote"));
    let done = flow.wait_terminal(&id).await;
    assert_eq!(
        (done["status"].as_str(), done["reasonCode"].as_str()),
        (Some("completed"), Some("transferred")),
        "{done}"
    );
    // 3. The record shows the REFER, its acceptance and the NOTIFYs.
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    let refer = details(&r, "refer").join(" | ");
    assert!(refer.contains("Refer-To sip:agent@127.0.0.1"), "{refer}");
    assert!(refer.contains("Referred-By sip:+15550009999@"), "{refer}");
    assert!(refer.contains("NOTIFY sipfrag 200"), "{refer}");
    assert!(
        details(&r, "transfer")
            .join(" | ")
            .contains("REFER accepted"),
        "{r:#}"
    );
    // 4. The person and the agent talk without dialgate until the agent hangs up.
    saw(flow.agent(), "disconnected", |e| e.is("disconnected")).await;
    flow.stop().await;
}

#[tokio::test]
async fn refer_refused_by_the_person_leaves_the_person_with_the_bot() {
    // 1. The person's phone answers the REFER 603.
    let flow = Flow::start(refer_setup(5, &["--transfer-answer", "603"])).await;
    let id = flow.dial(json!({})).await;
    saw(&flow.callee, "transfer-request", |e| {
        e.is("transfer-request")
    })
    .await;
    // 2. The bot hears `failed/declined/603`; the call stays connected, nobody is called.
    let st = transfer_status(&flow, &id).await;
    assert_eq!(st["value"], "failed", "{st}");
    assert_eq!(st["parameters"]["reasonCode"], "declined", "{st}");
    assert_eq!(st["parameters"]["sipCode"], 603, "{st}");
    assert_eq!(flow.record(&id).await["status"], "connected");
    assert!(flow.agent().events_named("incoming").is_empty());
    // 3. The API hangs up: api-hangup.
    flow.hangup(&id).await;
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "api-hangup", "{done}");
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    assert!(
        details(&r, "transfer")
            .join(" | ")
            .contains("REFER refused: 603"),
        "{r:#}"
    );
    flow.stop().await;
}
