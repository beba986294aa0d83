//! The `transfer` activity on a simulated clock: both methods (`bridge`, `refer`), every
//! outcome (answered, busy, no answer, refused, the agent or the person hanging up), and the
//! phases in which it is refused (ringing, before the bot answered, during another transfer,
//! while the call ends).

use std::time::Duration;

use super::tests::{Sim, Step};
use super::*;
use crate::core::activity::parse;
use crate::core::transfer::TransferTarget;
use serde_json::json;

const AGENT: &str = "tel:+15551230002";

fn transfer(target: &str) -> Input {
    Input::BotActivity(parse(&json!({"type": "event", "name": "transfer",
        "activityParams": {"transferTarget": target, "handoverReason": "wants a human",
            "transferSipHeaders": [{"name": "X-Queue", "value": "billing"}]}})))
}

fn agent(t: TransferInput) -> Input {
    Input::Transfer(t)
}

fn status(answered: bool, reason_code: &'static str, sip_code: Option<u16>) -> Output {
    Output::BotEvent(BotEvent::TransferStatus {
        answered,
        reason_code,
        sip_code,
    })
}

fn cfg(method: TransferMethod) -> MachineConfig {
    MachineConfig {
        transfer: method,
        start_recognition_on_connect: true,
        recognizer_available: true,
        machine_detection: AmdMode::Detect,
        ..MachineConfig::default()
    }
}

/// Connected with recognition for the bot and AMD running; then the bot asks for a transfer at
/// 10 s.
fn transferring(method: TransferMethod) -> (Sim, Step) {
    let mut s = Sim::new(cfg(method));
    s.connected();
    let st = s.at(10_000).ev(transfer(AGENT));
    (s, st)
}

fn has(st: &Step, o: &Output) -> bool {
    st.acts.contains(o)
}

fn timeline_says(st: &Step, words: &str) -> bool {
    st.acts
        .iter()
        .any(|a| matches!(a, Output::Timeline { kind: "transfer", note } if note.contains(words)))
}

#[test]
fn bridge_answered_hands_the_person_to_the_agent_and_releases_the_bot() {
    // 1. The bot asks for a transfer: detection and recognition stop, the agent is called with
    //    the bot's headers, its ring time armed.
    let (mut s, st) = transferring(TransferMethod::Bridge);
    assert!(timeline_says(
        &st,
        "transfer to tel:+15551230002 by bridge (wants a human)"
    ));
    assert!(has(&st, &Output::Transfer(TransferOutput::StopDetection)));
    assert!(has(
        &st,
        &Output::Transfer(TransferOutput::InviteAgent {
            target: TransferTarget::Tel("+15551230002".into()),
            headers: vec![("X-Queue".into(), "billing".into())],
        })
    ));
    assert_eq!(s.armed(TimerKind::Transfer), Some(Duration::from_secs(40)));
    // 2. The agent rings; an AMD decision and recognised speech no longer reach the bot.
    let st = s
        .at(10_300)
        .ev(agent(TransferInput::AgentProvisional { code: 180 }));
    assert!(timeline_says(&st, "ringing (180)"));
    s.assert_ignores(Input::AmdDecision {
        result: AmdResult::Human,
        at_ms: 900,
    });
    s.assert_ignores(Input::Recognised {
        text: "hello?".into(),
        confidence: 0.9,
    });
    // 3. The agent answers: the relay is re-pointed, the bot hears `answered` and is released.
    let st = s
        .at(14_000)
        .ev(agent(TransferInput::AgentAnswered { sdp_ok: true }));
    let bridge = st
        .acts
        .iter()
        .position(|a| *a == Output::Transfer(TransferOutput::BridgeAgent));
    let answered = st
        .acts
        .iter()
        .position(|a| *a == status(true, "transferred", Some(200)));
    let bye = st.acts.iter().position(|a| *a == Output::ByeBot);
    assert!(
        bridge < answered && answered < bye && bye.is_some(),
        "{st:?}"
    );
    assert_eq!(s.armed(TimerKind::Transfer), None);
    assert_eq!(s.m.state(), CallState::Connected);
    // 4. The released bot's BYE (crossing ours), its activities and the person's keys are not
    //    the call's business any more.
    s.assert_ignores(Input::BotBye);
    s.assert_ignores(Input::BotActivity(parse(
        &json!({"type": "event", "name": "hangup"}),
    )));
    let st = s.ev(Input::Dtmf('5'));
    assert!(st.acts.is_empty(), "{st:?}");
    // 5. The person hangs up: completed/transferred; the agent gets its BYE.
    let st = s.at(60_000).ev(Input::CarrierBye);
    assert!(has(&st, &Output::Transfer(TransferOutput::ByeAgent)));
    assert!(st.acts.iter().any(|a| matches!(
        a,
        Output::BotDisconnect {
            reason_code: ReasonCode::Transferred,
            ..
        }
    )));
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code, r.sip_code),
        (CallStatus::Completed, ReasonCode::Transferred, Some(200))
    );
    assert_eq!(r.duration_seconds(), 55);
}

#[test]
fn bridge_the_agent_hanging_up_first_ends_the_call_transferred() {
    let (mut s, _) = transferring(TransferMethod::Bridge);
    s.at(12_000)
        .ev(agent(TransferInput::AgentAnswered { sdp_ok: true }));
    // 1. The agent hangs up: the person's leg gets BYE, the call ends transferred.
    let st = s.at(30_000).ev(agent(TransferInput::AgentBye));
    assert!(has(&st, &Output::ByeCarrier));
    assert!(!has(&st, &Output::Transfer(TransferOutput::ByeAgent)));
    let r = st.terminal.expect("terminal");
    assert_eq!(r.reason_code, ReasonCode::Transferred);
    assert!(r.reason.contains("agent hung up"), "{}", r.reason);
}

#[test]
fn bridge_busy_leaves_the_person_with_the_bot_whose_recognition_resumes() {
    let (mut s, _) = transferring(TransferMethod::Bridge);
    // 1. The agent is busy: `failed/busy/486`, recognition for the bot again.
    let st = s.at(11_000).ev(agent(TransferInput::AgentFailed {
        code: Some(486),
        kind: FailureKind::Response,
        reason: "Busy Here".into(),
    }));
    assert!(has(&st, &status(false, "busy", Some(486))));
    assert!(has(&st, &Output::StartRecognition { to_bot: true }));
    assert!(timeline_says(&st, "stays with the bot"));
    assert_eq!(s.armed(TimerKind::Transfer), None);
    // 2. The person still talks to the bot: its text reaches the bot, its BYE is the usual end.
    let st = s.ev(Input::Recognised {
        text: "ok".into(),
        confidence: 0.8,
    });
    assert_eq!(st.acts.len(), 1);
    let r = s
        .at(20_000)
        .ev(Input::CarrierBye)
        .terminal
        .expect("terminal");
    assert_eq!(r.reason_code, ReasonCode::ClientDisconnected);
}

#[test]
fn bridge_declined_and_unreachable_agents_are_reported_with_their_codes() {
    for (code, kind, rc) in [
        (Some(603), FailureKind::Response, "declined"),
        (Some(404), FailureKind::Response, "rejected"),
        (None, FailureKind::Internal, "error"),
    ] {
        let (mut s, _) = transferring(TransferMethod::Bridge);
        let st = s.ev(agent(TransferInput::AgentFailed {
            code,
            kind,
            reason: "x".into(),
        }));
        assert!(has(&st, &status(false, rc, code)), "{st:?}");
    }
}

#[test]
fn bridge_no_answer_cancels_the_agent_and_a_new_transfer_waits_for_the_cancel() {
    let (mut s, _) = transferring(TransferMethod::Bridge);
    // 1. The ring time (30 s) passes: CANCEL, `failed/no-answer`.
    let st = s.fire(TimerKind::Transfer);
    assert!(has(&st, &Output::Transfer(TransferOutput::CancelAgent)));
    assert!(has(&st, &status(false, "no-answer", None)));
    // 2. Until the 487 comes, another transfer is refused.
    let st = s.ev(transfer(AGENT));
    assert!(has(&st, &status(false, "transfer-in-progress", None)));
    // 3. The 487 ends the agent's leg quietly; a new transfer may start.
    let st = s.ev(agent(TransferInput::AgentFailed {
        code: Some(487),
        kind: FailureKind::Response,
        reason: "Request Terminated".into(),
    }));
    assert!(st.acts.is_empty(), "{st:?}");
    let st = s.ev(transfer(AGENT));
    assert!(
        st.acts
            .iter()
            .any(|a| matches!(a, Output::Transfer(TransferOutput::InviteAgent { .. })))
    );
}

#[test]
fn bridge_an_agent_answering_across_the_cancel_gets_a_bye() {
    let (mut s, _) = transferring(TransferMethod::Bridge);
    s.fire(TimerKind::Transfer);
    let st = s.ev(agent(TransferInput::AgentAnswered { sdp_ok: true }));
    assert_eq!(st.acts, vec![Output::Transfer(TransferOutput::ByeAgent)]);
    assert_eq!(s.m.state(), CallState::Connected);
}

#[test]
fn bridge_an_agent_without_usable_audio_is_hung_up_and_the_transfer_fails() {
    let (mut s, _) = transferring(TransferMethod::Bridge);
    let st = s.ev(agent(TransferInput::AgentAnswered { sdp_ok: false }));
    assert!(has(&st, &Output::Transfer(TransferOutput::ByeAgent)));
    assert!(has(&st, &status(false, "error", Some(488))));
    assert!(!has(&st, &Output::ByeBot));
}

#[test]
fn hangup_during_a_transfer_cancels_the_agent_and_waits_for_its_end() {
    let (mut s, _) = transferring(TransferMethod::Bridge);
    // 1. The bot hangs up while the agent rings: the agent is CANCELled, the bot hears that
    //    its transfer will not happen, the call waits for the agent's 487.
    let st = s.at(12_000).ev(Input::BotActivity(parse(
        &json!({"type": "event", "name": "hangup"}),
    )));
    assert!(has(&st, &Output::Transfer(TransferOutput::CancelAgent)));
    assert!(has(&st, &status(false, "call-ended", None)));
    assert!(st.terminal.is_none());
    assert!(s.armed(TimerKind::CancelGuard).is_some());
    // 2. The 487: the call ends bot-disconnected.
    let st = s.at(12_100).ev(agent(TransferInput::AgentFailed {
        code: Some(487),
        kind: FailureKind::Response,
        reason: "Request Terminated".into(),
    }));
    let r = st.terminal.expect("terminal");
    assert_eq!(r.reason_code, ReasonCode::BotDisconnected);
}

#[test]
fn the_person_hanging_up_while_the_agent_rings_is_client_disconnected() {
    let (mut s, _) = transferring(TransferMethod::Bridge);
    let st = s.at(12_000).ev(Input::CarrierBye);
    assert!(has(&st, &Output::Transfer(TransferOutput::CancelAgent)));
    // The agent's leg never answers: the guard ends the wait.
    let st = s.fire(TimerKind::CancelGuard);
    let r = st.terminal.expect("terminal");
    assert_eq!(r.reason_code, ReasonCode::ClientDisconnected);
}

#[test]
fn a_transfer_is_refused_while_ringing_before_the_bot_answered_and_during_another() {
    // 1. While ringing (the conversation is open with dialoutInitiated).
    let mut s = Sim::new(MachineConfig {
        dialout_initiated_event: true,
        ..MachineConfig::default()
    });
    s.ringing();
    let st = s.ev(transfer(AGENT));
    assert!(timeline_says(&st, "not talking to the bot yet"));
    assert_eq!(st.acts.last(), Some(&status(false, "not-connected", None)));
    // 2. Answered, the bot's leg not yet up.
    s.at(5_000).ev(Input::CarrierAnswered { sdp_ok: true });
    let st = s.ev(transfer(AGENT));
    assert!(has(&st, &status(false, "not-connected", None)));
    // 3. During another transfer.
    s.at(5_200).ev(Input::BotAnswered);
    s.ev(transfer(AGENT));
    let st = s.ev(transfer("sip:other@127.0.0.1"));
    assert!(timeline_says(&st, "another transfer is under way"));
    assert_eq!(
        st.acts.last(),
        Some(&status(false, "transfer-in-progress", None))
    );
    // 4. An invalid target: refused with why.
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    let st = s.ev(transfer("+15551230002"));
    assert!(timeline_says(&st, "tel: or sip:"));
    assert!(has(&st, &status(false, "invalid-request", None)));
}

#[test]
fn a_transfer_while_the_call_ends_is_refused_and_after_the_end_ignored() {
    let mut s = Sim::new(MachineConfig {
        dialout_initiated_event: true,
        ..MachineConfig::default()
    });
    s.ringing();
    // 1. Hang-up while ringing: the CANCEL is pending, the call is ending.
    s.at(1_000).ev(Input::Hangup {
        source: HangupSource::Api,
    });
    assert_eq!(s.m.state(), CallState::Ending);
    let st = s.ev(transfer(AGENT));
    assert!(has(&st, &status(false, "call-ending", None)));
    // 2. The 487 ends it; a transfer after that is not even heard.
    s.ev(super::tests::failed(
        Some(487),
        FailureKind::Response,
        "Request Terminated",
    ));
    assert_eq!(s.m.state(), CallState::Ended);
    s.assert_ignores(transfer(AGENT));
}

#[test]
fn a_delayed_transfer_runs_when_due() {
    let mut s = Sim::new(cfg(TransferMethod::Bridge));
    s.connected();
    s.at(6_000).ev(Input::BotActivity(parse(
        &json!({"type": "event", "name": "transfer",
        "delay": 2000, "activityParams": {"transferTarget": AGENT}}),
    )));
    let st = s.fire(TimerKind::Delayed);
    assert!(
        st.acts
            .iter()
            .any(|a| matches!(a, Output::Transfer(TransferOutput::InviteAgent { .. })))
    );
}

#[test]
fn refer_accepted_then_a_2xx_notify_ends_the_call_transferred() {
    let (mut s, st) = transferring(TransferMethod::Refer);
    assert!(has(
        &st,
        &Output::Transfer(TransferOutput::SendRefer {
            target: TransferTarget::Tel("+15551230002".into()),
            headers: vec![("X-Queue".into(), "billing".into())],
        })
    ));
    // 1. 202 Accepted, then the sipfrag's progress.
    let st = s.at(10_100).ev(agent(TransferInput::ReferAnswered {
        code: Some(202),
        reason: "Accepted".into(),
    }));
    assert!(timeline_says(&st, "REFER accepted (202)"));
    let st = s.ev(agent(TransferInput::ReferNotify { code: 180 }));
    assert!(timeline_says(&st, "under way (180)"));
    // 2. `SIP/2.0 200 OK` in the NOTIFY: the bot hears `answered`, both legs are ended.
    let st = s
        .at(15_000)
        .ev(agent(TransferInput::ReferNotify { code: 200 }));
    assert!(has(&st, &status(true, "transferred", Some(200))));
    assert!(has(&st, &Output::ByeCarrier) && has(&st, &Output::ByeBot));
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Completed, ReasonCode::Transferred)
    );
}

#[test]
fn refer_refused_or_failing_leaves_the_person_with_the_bot() {
    // 1. The carrier refuses the REFER.
    let (mut s, _) = transferring(TransferMethod::Refer);
    let st = s.ev(agent(TransferInput::ReferAnswered {
        code: Some(403),
        reason: "Forbidden".into(),
    }));
    assert!(has(&st, &status(false, "rejected", Some(403))));
    assert!(timeline_says(&st, "REFER refused: 403 Forbidden"));
    assert!(has(&st, &Output::StartRecognition { to_bot: true }));
    s.assert_ignores(agent(TransferInput::ReferNotify { code: 200 }));
    assert_eq!(s.m.state(), CallState::Connected);
    // 2. Accepted, but the target is busy.
    let (mut s, _) = transferring(TransferMethod::Refer);
    s.ev(agent(TransferInput::ReferAnswered {
        code: Some(202),
        reason: "Accepted".into(),
    }));
    let st = s.ev(agent(TransferInput::ReferNotify { code: 486 }));
    assert!(has(&st, &status(false, "busy", Some(486))));
    // 3. No outcome at all within the ring time and Timer B.
    let (mut s, _) = transferring(TransferMethod::Refer);
    assert_eq!(s.armed(TimerKind::Transfer), Some(Duration::from_secs(72)));
    let st = s.fire(TimerKind::Transfer);
    assert!(has(&st, &status(false, "no-answer", None)));
    // 4. The REFER could not be sent.
    let (mut s, _) = transferring(TransferMethod::Refer);
    let st = s.ev(agent(TransferInput::ReferAnswered {
        code: None,
        reason: "transport".into(),
    }));
    assert!(has(&st, &status(false, "error", None)));
}

#[test]
fn recognition_asked_for_during_a_transfer_waits_for_its_outcome() {
    // 1. Recognition off when the transfer starts; the bot asks for it while the agent rings.
    let mut s = Sim::new(MachineConfig {
        transfer: TransferMethod::Bridge,
        ..MachineConfig::default()
    });
    s.connected();
    s.at(6_000).ev(transfer(AGENT));
    let st = s.ev(Input::BotActivity(parse(
        &json!({"type": "event", "name": "startRecognition"}),
    )));
    assert!(st.acts.is_empty(), "{st:?}");
    // 2. The agent is busy: the person stays with the bot, whose recognition starts now.
    let st = s.ev(agent(TransferInput::AgentFailed {
        code: Some(486),
        kind: FailureKind::Response,
        reason: "Busy Here".into(),
    }));
    assert!(
        has(&st, &Output::StartRecognition { to_bot: true }),
        "{st:?}"
    );
}

#[test]
fn stray_transfer_inputs_are_ignored() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    for i in [
        TransferInput::ReferAnswered {
            code: Some(202),
            reason: String::new(),
        },
        TransferInput::ReferNotify { code: 200 },
        TransferInput::AgentProvisional { code: 180 },
        TransferInput::AgentAnswered { sdp_ok: true },
        TransferInput::AgentFailed {
            code: Some(486),
            kind: FailureKind::Response,
            reason: String::new(),
        },
        TransferInput::AgentBye,
    ] {
        s.assert_ignores(agent(i));
    }
}
