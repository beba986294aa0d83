//! The bot side on a simulated clock: the conversation gating the call, session refreshes,
//! activities in every phase, recognition policy, vanished legs and re-INVITEs.

use std::time::Duration;

use super::tests::{Sim, Step};
use super::*;
use crate::core::activity::parse;
use serde_json::json;

fn act(v: serde_json::Value) -> Input {
    Input::BotActivity(parse(&v))
}

fn opening() -> Sim {
    let mut s = Sim::new(MachineConfig {
        dialout_initiated_event: true,
        ..MachineConfig::default()
    });
    let st = s.ev(Input::Start);
    assert!(!st.acts.contains(&Output::SendCarrierInvite));
    assert_eq!(s.m.state(), CallState::Initiating);
    s
}

#[test]
fn a_bot_that_cannot_be_reached_at_dialout_initiated_means_the_person_is_not_called() {
    // 1. dialoutInitiated went out; the bot answers 401.
    let mut s = opening();
    let st = s.at(300).ev(Input::BotUnreachable {
        reason: "the bot answered 401".into(),
    });
    // 2. No INVITE, no CANCEL: failed/error, the reason names the bot's answer.
    assert!(
        !st.acts
            .iter()
            .any(|a| matches!(a, Output::SendCarrierInvite | Output::CancelCarrier))
    );
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Failed, ReasonCode::Error)
    );
    assert!(
        r.reason.contains("401") && r.reason.contains("not called"),
        "{}",
        r.reason
    );
}

#[test]
fn a_bot_that_never_opens_its_conversation_fails_the_call_before_dialing() {
    let mut s = opening();
    // 1. Nothing from the bot for bot_open_timeout (10 s).
    let st = s.fire(TimerKind::BotOpen);
    assert!(!st.acts.contains(&Output::SendCarrierInvite));
    let r = st.terminal.expect("terminal");
    assert_eq!(r.reason_code, ReasonCode::Error);
    assert!(r.reason.contains("did not open"), "{}", r.reason);
}

#[test]
fn the_session_is_refreshed_before_it_expires_until_the_call_ends() {
    let mut s = opening();
    // 1. The bot announces a 4 s session: refreshed every 3 s.
    s.ev(Input::BotSessionOpened {
        expires: Some(Duration::from_secs(4)),
    });
    assert_eq!(s.armed(TimerKind::BotRefresh), Some(Duration::from_secs(3)));
    let st = s.fire(TimerKind::BotRefresh);
    assert_eq!(st.acts, vec![Output::RefreshBotSession]);
    assert_eq!(s.armed(TimerKind::BotRefresh), Some(Duration::from_secs(6)));
    // 2. The call ends: no refresh after it.
    s.at(6_500).ev(Input::Hangup {
        source: HangupSource::Api,
    });
    assert_eq!(s.armed(TimerKind::BotRefresh), None);
}

#[test]
fn hangup_activity_in_any_case_ends_a_connected_call() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    // 1. AudioCodes' sample bot spells it with a capital E.
    let st = s.at(8_000).ev(act(json!({"type": "Event", "name": "hangup",
        "activityParams": {"hangupReason": "done"}})));
    // 2. Timeline, then both legs released; completed/bot-disconnected.
    assert!(matches!(&st.acts[0], Output::Timeline { note, .. } if note.contains("done")));
    assert!(st.acts.contains(&Output::ByeBot) && st.acts.contains(&Output::ByeCarrier));
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Completed, ReasonCode::BotDisconnected)
    );
}

#[test]
fn hangup_activity_while_ringing_cancels_and_after_the_end_is_ignored() {
    let mut s = Sim::new(MachineConfig::default());
    s.ringing();
    // 1. While ringing: CANCEL.
    let st = s
        .at(1_000)
        .ev(act(json!({"type": "event", "name": "hangup"})));
    assert!(st.acts.contains(&Output::CancelCarrier));
    s.at(1_050)
        .ev(tests::failed(Some(487), FailureKind::Response, ""));
    assert_eq!(s.m.state(), CallState::Ended);
    // 2. Another activity after the end: ignored.
    s.assert_ignores(act(json!({"type": "event", "name": "hangup"})));
}

#[test]
fn a_delayed_activity_waits_its_delay() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    // 1. hangup with delay 1500 ms at 6 s: nothing now.
    let st = s.at(6_000).ev(act(
        json!({"type": "event", "name": "hangup", "delay": 1500}),
    ));
    assert!(st.acts.is_empty());
    assert_eq!(
        s.armed(TimerKind::Delayed),
        Some(Duration::from_millis(7_500))
    );
    // 2. At 7.5 s it runs.
    let st = s.fire(TimerKind::Delayed);
    assert_eq!(
        st.terminal.expect("terminal").reason_code,
        ReasonCode::BotDisconnected
    );
}

#[test]
fn unknown_and_unsupported_activities_are_noted_once_and_change_nothing() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    // 1. An unknown event: one timeline line, however often it comes.
    let st = s
        .at(6_000)
        .ev(act(json!({"type": "event", "name": "dance"})));
    assert!(matches!(&st.acts[..], [Output::Timeline { note, .. }] if note.contains("unknown")));
    assert!(
        s.ev(act(json!({"type": "event", "name": "dance"})))
            .acts
            .is_empty()
    );
    // 2. A known activity missing what it needs: noted with why, call goes on.
    let st = s.ev(act(json!({"type": "event", "name": "playUrl"})));
    assert!(
        matches!(&st.acts[..], [Output::Timeline { note, .. }] if note.contains("playUrlUrl is missing"))
    );
    assert_eq!(s.m.state(), CallState::Connected);
}

#[test]
fn recognition_for_machine_detection_only_ends_with_its_decision() {
    let mut s = Sim::new(MachineConfig {
        machine_detection: AmdMode::Detect,
        recognizer_available: true,
        ..MachineConfig::default()
    });
    // 1. Answer: a recognition session for AMD only; the detector expects transcripts.
    let st = s.answered();
    assert!(
        st.acts
            .contains(&Output::StartRecognition { to_bot: false })
    );
    assert!(st.acts.contains(&Output::StartAmd {
        mode: AmdMode::Detect,
        transcripts: true
    }));
    s.at(5_200).ev(Input::BotAnswered);
    // 2. Its text never reaches the bot.
    s.assert_ignores(Input::Recognised {
        text: "Hello?".into(),
        confidence: 0.9,
    });
    // 3. The decision ends the session.
    let st = s.at(6_000).ev(Input::AmdDecision {
        result: AmdResult::Human,
        at_ms: 900,
    });
    assert_eq!(st.acts[0], Output::StopRecognition);
}

#[test]
fn start_and_stop_recognition_switch_what_reaches_the_bot() {
    let mut s = Sim::new(MachineConfig {
        machine_detection: AmdMode::Detect,
        recognizer_available: true,
        ..MachineConfig::default()
    });
    s.connected();
    // 1. startRecognition while the AMD-only session runs: it now serves the bot.
    let st = s
        .at(6_000)
        .ev(act(json!({"type": "event", "name": "startRecognition"})));
    assert_eq!(st.acts, vec![Output::RecognitionToBot(true)]);
    let st = s.ev(Input::Recognised {
        text: "Yes, speaking.".into(),
        confidence: 0.8,
    });
    assert_eq!(
        st.acts,
        vec![Output::BotEvent(BotEvent::Message {
            text: "Yes, speaking.".into(),
            confidence: 0.8
        })]
    );
    // 2. The AMD decision no longer stops the session (the bot uses it).
    let st = s.ev(Input::AmdDecision {
        result: AmdResult::Human,
        at_ms: 900,
    });
    assert!(!st.acts.contains(&Output::StopRecognition));
    // 3. stopRecognition: no more text for the bot.
    let st = s.ev(act(json!({"type": "event", "name": "stopRecognition"})));
    assert_eq!(st.acts, vec![Output::RecognitionToBot(false)]);
    s.assert_ignores(Input::Recognised {
        text: "Hello?".into(),
        confidence: 0.9,
    });
}

#[test]
fn start_recognition_before_the_answer_starts_it_with_the_media() {
    let mut s = opening();
    // 1. The bot answers dialoutInitiated with startRecognition.
    s.ev(act(json!({"type": "event", "name": "startRecognition"})));
    s.ev(Input::BotSessionOpened { expires: None });
    // 2. At the answer the session starts for the bot.
    let st = s.at(3_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert!(st.acts.contains(&Output::StartRecognition { to_bot: true }));
    // 3. No model after all: noted once.
    let st = s.ev(Input::RecognitionFailed {
        reason: "no model".into(),
    });
    assert!(matches!(
        &st.acts[..],
        [Output::Timeline { kind: "stt", .. }]
    ));
    assert!(
        s.ev(Input::RecognitionFailed { reason: "x".into() })
            .acts
            .is_empty()
    );
}

#[test]
fn a_vanished_leg_means_what_its_state_says() {
    // 1. The carrier's dialog vanishes while up: the person is gone.
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    let r = s
        .at(9_000)
        .ev(Input::LegGone(LegSide::Carrier))
        .terminal
        .unwrap();
    assert_eq!(r.reason_code, ReasonCode::ClientDisconnected);
    // 2. ...while its INVITE is pending: a transport failure.
    let mut s = Sim::new(MachineConfig::default());
    s.ringing();
    let r = s
        .at(1_000)
        .ev(Input::LegGone(LegSide::Carrier))
        .terminal
        .unwrap();
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Failed, ReasonCode::Error)
    );
    // 3. The bot's pending INVITE vanishing fails the call as a bot failure.
    let mut s = Sim::new(MachineConfig::default());
    s.answered();
    let st = s.at(5_100).ev(Input::LegGone(LegSide::Bot));
    assert_eq!(st.terminal.unwrap().reason_code, ReasonCode::Error);
}

#[test]
fn re_invites_are_answered_while_the_leg_is_up_and_refused_at_the_end() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    // 1. Hold from the carrier while connected: answered.
    let st = s.at(7_000).ev(Input::ReInvite(LegSide::Carrier));
    assert_eq!(
        st.acts,
        vec![Output::AnswerReInvite {
            side: LegSide::Carrier,
            accept: true
        }]
    );
    // 2. After the carrier hung up, a re-INVITE from the bot is refused.
    s.ev(Input::CarrierBye);
    let st = s.ev(Input::ReInvite(LegSide::Bot));
    assert_eq!(st.acts, vec![]);
}

#[test]
fn a_bot_unreachable_after_the_answer_ends_the_call() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    // 1. The bot's events give up (e.g. 404): a deaf bot must not stay bridged.
    let st = s.at(9_000).ev(Input::BotUnreachable {
        reason: "the bot answered 404".into(),
    });
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Completed, ReasonCode::Error)
    );
    assert!(r.reason.contains("404"));
}

#[test]
fn key_presses_reach_the_bot_in_order_after_start() {
    let mut s = Sim::new(MachineConfig::default());
    // 1. A key pressed while ringing is not a conversation event.
    s.ringing();
    s.assert_ignores(Input::Dtmf('9'));
    // 2. Pressed between answer and bot answer: held until `start`.
    s.at(5_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert!(s.at(5_050).ev(Input::Dtmf('1')).acts.is_empty());
    let st = s.at(5_200).ev(Input::BotAnswered);
    assert_eq!(
        st.acts[1..],
        [
            Output::BotEvent(BotEvent::Start),
            Output::BotEvent(BotEvent::Dtmf { digit: '1' })
        ]
    );
    // 3. Then one event per digit, in order.
    let a = s.ev(Input::Dtmf('#')).acts;
    let b = s.ev(Input::Dtmf('5')).acts;
    assert_eq!(a, vec![Output::BotEvent(BotEvent::Dtmf { digit: '#' })]);
    assert_eq!(b, vec![Output::BotEvent(BotEvent::Dtmf { digit: '5' })]);
}

fn text_bot() -> Sim {
    Sim::new(MachineConfig {
        text_bot: true,
        dialout_initiated_event: true,
        ..MachineConfig::default()
    })
}

#[test]
fn a_text_bots_messages_are_spoken_once_the_person_is_connected() {
    let mut s = text_bot();
    s.ev(Input::Start);
    // 1. A reply to dialoutInitiated: nothing is played before the answer.
    let st = s.ev(act(
        json!({"type": "message", "text": "Hi there, this is Acme."}),
    ));
    assert!(st.acts.is_empty());
    s.ev(Input::BotSessionOpened { expires: None });
    s.at(2_000).ev(Input::CarrierAnswered { sdp_ok: true });
    // 2. The bot side connects: start, then the held message is spoken.
    let st = s.at(2_010).ev(Input::BotAnswered);
    assert_eq!(
        st.acts[st.acts.len() - 1],
        Output::Play(Prompt::Speak("Hi there, this is Acme.".into()))
    );
    // 3. A file, then the queue drains: playFinished to the bot.
    let st = s.ev(act(json!({"type": "event", "name": "playUrl",
        "activityParams": {"playUrlUrl": "file:vm.wav"}})));
    assert_eq!(
        st.acts,
        vec![Output::Play(Prompt::Url("file:vm.wav".into()))]
    );
    let st = s.ev(Input::PlaybackDone);
    assert_eq!(st.acts, vec![Output::BotEvent(BotEvent::PlayFinished)]);
    // 4. A second drain without a prompt says nothing.
    s.assert_ignores(Input::PlaybackDone);
}

#[test]
fn abort_prompts_cuts_what_plays_and_what_waits() {
    let mut s = text_bot();
    s.ev(Input::Start);
    // 1. Queued before the answer, then aborted: never played.
    s.ev(act(json!({"type": "message", "text": "One."})));
    let st = s.ev(act(json!({"type": "event", "name": "abortPrompts"})));
    assert!(st.acts.is_empty());
    s.ev(Input::BotSessionOpened { expires: None });
    s.at(2_000).ev(Input::CarrierAnswered { sdp_ok: true });
    let st = s.at(2_010).ev(Input::BotAnswered);
    assert!(!st.acts.iter().any(|a| matches!(a, Output::Play(_))));
    // 2. Playing: abortPrompts goes to the player.
    s.ev(act(json!({"type": "message", "text": "Two."})));
    let st = s.ev(act(json!({"type": "event", "name": "abortPrompts"})));
    assert_eq!(st.acts, vec![Output::AbortPrompts]);
}

#[test]
fn a_sip_bots_messages_are_not_played_by_the_gateway() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    let st = s
        .at(6_000)
        .ev(act(json!({"type": "message", "text": "Hi"})));
    assert!(matches!(&st.acts[..], [Output::Timeline { note, .. }] if note.contains("text bots")));
}

/// A connected text bot with machine detection on, decided at 7 s; the bot then says `text`.
fn text_bot_decided(result: AmdResult, text: &str) -> (Sim, Step) {
    let mut s = Sim::new(MachineConfig {
        text_bot: true,
        machine_detection: AmdMode::Detect,
        ..MachineConfig::default()
    });
    s.connected();
    s.at(7_000).ev(Input::AmdDecision {
        result,
        at_ms: 2_000,
    });
    let st = s.ev(act(json!({"type": "message", "text": text})));
    (s, st)
}

#[test]
fn a_text_bots_voicemail_message_waits_for_the_beep() {
    // 1. A machine answered: the bot's message for the mailbox is held.
    let (mut s, st) = text_bot_decided(AmdResult::Machine, "Please call us back.");
    assert_eq!(s.armed(TimerKind::BeepWait), Some(Duration::from_secs(17)));
    assert!(st.acts.is_empty(), "{st:?}");
    // 2. The beep: beep event to the bot, then the message plays.
    let st = s.at(9_000).ev(Input::AmdBeep { at_ms: 4_000 });
    assert_eq!(
        st.acts,
        vec![
            Output::BotEvent(BotEvent::Beep),
            Output::Play(Prompt::Speak("Please call us back.".into()))
        ]
    );
    assert_eq!(s.armed(TimerKind::BeepWait), None);
}

#[test]
fn without_a_beep_the_held_message_plays_after_the_wait() {
    // 1. No beep within 10 s: it plays anyway.
    let (mut s, _) = text_bot_decided(AmdResult::Machine, "Please call us back.");
    let st = s.fire(TimerKind::BeepWait);
    assert_eq!(
        st.acts,
        vec![Output::Play(Prompt::Speak("Please call us back.".into()))]
    );
    // 2. A person is not held back.
    let (_, st) = text_bot_decided(AmdResult::Human, "Hi!");
    assert_eq!(st.acts, vec![Output::Play(Prompt::Speak("Hi!".into()))]);
}
