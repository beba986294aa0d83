//! Scenarios up to the carrier's answer (and races around it), simulated clock.

use std::time::Duration;

use super::tests::{Sim, bot_failed, failed};
use super::*;

#[test]
fn reason_code_mapping_follows_design() {
    use FailureKind::*;
    // 1. Busy, declined, no-answer, rejected for responses.
    let r = |c, k| ReasonCode::from_carrier_failure(c, k);
    assert_eq!(r(Some(486), Response), ReasonCode::Busy);
    assert_eq!(r(Some(600), Response), ReasonCode::Busy);
    assert_eq!(r(Some(603), Response), ReasonCode::Declined);
    for c in [408, 480, 487] {
        assert_eq!(r(Some(c), Response), ReasonCode::NoAnswer);
    }
    for c in [404, 403, 500, 503, 302, 488] {
        assert_eq!(r(Some(c), Response), ReasonCode::Rejected);
    }
    // 2. Transport, timeout and internal failures are errors.
    assert_eq!(r(None, Transport), ReasonCode::Error);
    assert_eq!(r(None, Timeout), ReasonCode::Error);
    assert_eq!(r(Some(500), Internal), ReasonCode::Error);
    // 3. Wire form is kebab-case, the same through serde and as_str.
    let json = serde_json::to_string(&ReasonCode::ClientDisconnected).unwrap();
    assert_eq!(json, "\"client-disconnected\"");
    assert_eq!(ReasonCode::NoAnswer.as_str(), "no-answer");
    let back: ReasonCode = serde_json::from_str("\"machine-detected\"").unwrap();
    assert_eq!(back, ReasonCode::MachineDetected);
}

#[test]
fn happy_path_with_dialout_initiated_stt_and_bye_from_callee() {
    let mut s = Sim::new(MachineConfig {
        dialout_initiated_event: true,
        start_recognition_on_connect: true,
        machine_detection: AmdMode::Detect,
        ..MachineConfig::default()
    });
    // 1. Start: bot conversation opened, dialoutInitiated; the person is not called yet.
    let st = s.ev(Input::Start);
    assert_eq!(
        st.acts,
        vec![
            Output::OpenBotConversation,
            Output::BotEvent(BotEvent::DialoutInitiated),
        ]
    );
    assert_eq!(s.armed(TimerKind::BotOpen), Some(Duration::from_secs(10)));
    assert_eq!(s.armed(TimerKind::Answer), None);
    // 1b. The bot opened its conversation: INVITE, ring timer armed, refresh scheduled.
    let st = s.ev(Input::BotSessionOpened {
        expires: Some(Duration::from_secs(300)),
    });
    assert_eq!(st.acts, vec![Output::SendCarrierInvite]);
    assert_eq!(s.armed(TimerKind::Answer), Some(Duration::from_secs(30)));
    assert_eq!(s.armed(TimerKind::BotOpen), None);
    assert_eq!(
        s.armed(TimerKind::BotRefresh),
        Some(Duration::from_secs(240))
    );
    // 2. 183 with SDP: ringing.
    s.at(400).ev(Input::CarrierProvisional {
        code: 183,
        has_sdp: true,
    });
    assert_eq!(s.m.state(), CallState::Ringing);
    // 3. 200 OK: media, AMD, STT, answered, bot INVITE (conversation already open).
    let st = s.at(4_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert_eq!(
        st.acts,
        vec![
            Output::StartMedia,
            Output::StartRecognition { to_bot: true },
            Output::StartAmd {
                mode: AmdMode::Detect,
                transcripts: false
            },
            Output::NotifyAnswered,
            Output::SendBotInvite
        ]
    );
    assert_eq!(s.armed(TimerKind::Answer), None);
    assert_eq!(s.armed(TimerKind::BotAnswer), Some(Duration::from_secs(14)));
    assert_eq!(
        s.armed(TimerKind::MaxDuration),
        Some(Duration::from_secs(4 * 3600 + 4))
    );
    // 4. AMD decides before the bot answers: held back until `start`.
    assert!(
        s.at(4_100)
            .ev(Input::AmdDecision {
                result: AmdResult::Human,
                at_ms: 900
            })
            .acts
            .is_empty()
    );
    // 5. Bot answers: bridge, start, then the held machineDetection.
    let st = s.at(4_300).ev(Input::BotAnswered);
    assert_eq!(
        st.acts,
        vec![
            Output::BridgeMedia,
            Output::BotEvent(BotEvent::Start),
            Output::BotEvent(BotEvent::MachineDetection {
                value: AmdResult::Human
            })
        ]
    );
    // 6. Callee hangs up after a minute: BYE the bot, stop media, disconnect the bot, terminal.
    let st = s.at(64_000).ev(Input::CarrierBye);
    assert_eq!(
        st.acts,
        vec![
            Output::ByeBot,
            Output::StopMedia,
            Output::BotDisconnect {
                reason: "callee hung up".into(),
                reason_code: ReasonCode::ClientDisconnected
            }
        ]
    );
    let r = st.terminal.expect("terminal");
    assert_eq!(r.status, CallStatus::Completed);
    assert_eq!(r.reason_code, ReasonCode::ClientDisconnected);
    assert_eq!(r.sip_code, Some(200));
    assert_eq!(r.ringing_after, Some(Duration::from_millis(400)));
    assert_eq!(r.answered_after, Some(Duration::from_secs(4)));
    assert_eq!(r.connected_after, Some(Duration::from_millis(4_300)));
    assert_eq!(r.ended_after, Duration::from_secs(64));
    assert_eq!(r.duration_seconds(), 60);
    assert_eq!(
        r.amd,
        Some(AmdOutcome {
            result: AmdResult::Human,
            at_ms: 900
        })
    );
    // 7. All timers disarmed; the machine is Ended and ignores everything.
    assert!(s.m.poll_timeout().is_none());
    assert_eq!(s.m.state(), CallState::Ended);
    s.assert_ignores(Input::BotBye);
}

#[test]
fn carrier_failures_before_answer_map_to_failed_reasons() {
    let cases = [
        (
            failed(Some(486), FailureKind::Response, "Busy Here"),
            ReasonCode::Busy,
            Some(486),
        ),
        (
            failed(Some(603), FailureKind::Response, "Decline"),
            ReasonCode::Declined,
            Some(603),
        ),
        (
            failed(Some(480), FailureKind::Response, ""),
            ReasonCode::NoAnswer,
            Some(480),
        ),
        (
            failed(Some(404), FailureKind::Response, "Not Found"),
            ReasonCode::Rejected,
            Some(404),
        ),
        (
            failed(None, FailureKind::Transport, "connection refused"),
            ReasonCode::Error,
            None,
        ),
    ];
    for (ev, code, sip) in cases {
        // 1. Ring, 2. the carrier fails: terminal at once, nothing to tear down.
        let mut s = Sim::new(MachineConfig::default());
        s.ringing();
        let st = s.at(2_000).ev(ev);
        assert!(st.acts.is_empty(), "{:?}", st.acts);
        let r = st.terminal.expect("terminal");
        assert_eq!(
            (r.status, r.reason_code, r.sip_code),
            (CallStatus::Failed, code, sip)
        );
        assert_eq!(r.answered_after, None);
        assert!(s.m.poll_timeout().is_none());
    }
    // 3. The reason text carries the code.
    let mut s = Sim::new(MachineConfig::default());
    s.ringing();
    let r = s
        .ev(failed(Some(404), FailureKind::Response, "Not Found"))
        .terminal
        .unwrap();
    assert_eq!(r.reason, "carrier answered 404 Not Found");
}

#[test]
fn ring_timeout_cancels_and_ends_no_answer_after_487() {
    let mut s = Sim::new(MachineConfig {
        answer_timeout: Duration::from_secs(20),
        dialout_initiated_event: true,
        ..MachineConfig::default()
    });
    s.ringing();
    // 1. 20 s pass without answer: CANCEL, wait for the 487.
    let st = s.fire(TimerKind::Answer);
    assert_eq!(st.acts, vec![Output::CancelCarrier]);
    assert!(st.terminal.is_none());
    assert_eq!(s.m.state(), CallState::Ending);
    assert!(s.armed(TimerKind::CancelGuard).is_some());
    // 2. 487 arrives: terminal failed no-answer; the bot conversation is closed.
    let st = s.at(20_050).ev(failed(
        Some(487),
        FailureKind::Response,
        "Request Terminated",
    ));
    assert_eq!(
        st.acts,
        vec![Output::BotDisconnect {
            reason: "no answer within 20 s".into(),
            reason_code: ReasonCode::NoAnswer
        }]
    );
    let r = st.terminal.unwrap();
    assert_eq!(
        (r.status, r.reason_code, r.sip_code),
        (CallStatus::Failed, ReasonCode::NoAnswer, None)
    );
    // 3. The guard timer was disarmed.
    assert!(s.m.poll_timeout().is_none());
}

#[test]
fn cancel_crossing_200_ok_byes_carrier_and_stays_failed() {
    // Decision: status `failed` with the cancel's reason. The person picked up, but the
    // dialer was never told `answered` and nobody was ever connected to the bot; reporting
    // `completed` would contradict the absence of `answered` and invent a conversation.
    let mut s = Sim::new(MachineConfig::default());
    s.ringing();
    // 1. Ring timeout: CANCEL.
    assert_eq!(s.fire(TimerKind::Answer).acts, vec![Output::CancelCarrier]);
    // 2. The 200 OK crossed the CANCEL: BYE it, no answered, no bot, terminal now.
    let st = s.at(30_010).ev(Input::CarrierAnswered { sdp_ok: true });
    assert_eq!(st.acts, vec![Output::ByeCarrier]);
    let r = st.terminal.unwrap();
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Failed, ReasonCode::NoAnswer)
    );
    assert_eq!(r.answered_after, None);
    // 3. Retransmitted 200 and the late 487-to-nothing are ignored.
    s.assert_ignores(Input::CarrierAnswered { sdp_ok: true });
    s.assert_ignores(failed(Some(487), FailureKind::Response, ""));
}

#[test]
fn api_hangup_while_ringing_cancels_then_ends_on_487() {
    // Decision: the terminal waits for the CANCEL to complete (487, a crossing 200, or the
    // 32 s guard) so that a crossing 200 still gets its BYE from this machine.
    let mut s = Sim::new(MachineConfig::default());
    s.ringing();
    // 1. API hang-up: CANCEL.
    let st = s.at(3_000).ev(Input::Hangup {
        source: HangupSource::Api,
    });
    assert_eq!(st.acts, vec![Output::CancelCarrier]);
    assert!(st.terminal.is_none());
    // 2. Second hang-up ignored.
    s.assert_ignores(Input::Hangup {
        source: HangupSource::Api,
    });
    // 3. Late provisional ignored.
    s.assert_ignores(Input::CarrierProvisional {
        code: 180,
        has_sdp: false,
    });
    // 4. 487: terminal failed api-hangup (the cancel's reason, not no-answer).
    let r = s
        .at(3_040)
        .ev(failed(Some(487), FailureKind::Response, ""))
        .terminal
        .unwrap();
    assert_eq!(
        (r.status, r.reason_code, r.sip_code),
        (CallStatus::Failed, ReasonCode::ApiHangup, None)
    );
    // 5. Events after the end are ignored.
    s.assert_ignores(Input::CarrierAnswered { sdp_ok: true });
}

#[test]
fn cancel_guard_ends_call_when_carrier_never_answers_cancel() {
    let mut s = Sim::new(MachineConfig::default());
    s.ringing();
    // 1. Hang-up: CANCEL.
    s.at(1_000).ev(Input::Hangup {
        source: HangupSource::Api,
    });
    // 2. The carrier never answers; the guard fires after 32 s.
    assert_eq!(
        s.armed(TimerKind::CancelGuard),
        Some(Duration::from_secs(33))
    );
    let st = s.fire(TimerKind::CancelGuard);
    assert!(st.acts.is_empty());
    let r = st.terminal.unwrap();
    assert_eq!(r.reason_code, ReasonCode::ApiHangup);
    assert_eq!(r.ended_after, Duration::from_secs(33));
}

#[test]
fn bot_hangup_activity_while_ringing_cancels_carrier() {
    let mut s = Sim::new(MachineConfig {
        dialout_initiated_event: true,
        ..MachineConfig::default()
    });
    s.ringing();
    // 1. The bot answered dialoutInitiated with a hangup activity: CANCEL the carrier.
    let st = s.at(2_000).ev(Input::Hangup {
        source: HangupSource::BotActivity,
    });
    assert_eq!(st.acts, vec![Output::CancelCarrier]);
    // 2. A bot BYE cannot exist yet (no bot leg): ignored.
    s.assert_ignores(Input::BotBye);
    // 3. 487: failed bot-disconnected, bot conversation closed.
    let st = s.at(2_030).ev(failed(Some(487), FailureKind::Response, ""));
    assert_eq!(
        st.acts,
        vec![Output::BotDisconnect {
            reason: "bot requested hang-up".into(),
            reason_code: ReasonCode::BotDisconnected
        }]
    );
    let r = st.terminal.unwrap();
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Failed, ReasonCode::BotDisconnected)
    );
}

#[test]
fn bot_bye_before_carrier_answer_is_ignored() {
    let mut s = Sim::new(MachineConfig::default());
    s.ringing();
    // 1. BYE / 200 / failure from a bot leg that was never started: ignored, no actions.
    s.assert_ignores(Input::BotBye);
    s.assert_ignores(Input::BotAnswered);
    s.assert_ignores(bot_failed(Some(500), FailureKind::Response, ""));
    // 2. The call goes on normally.
    assert_eq!(s.m.state(), CallState::Ringing);
    s.at(6_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert_eq!(s.m.state(), CallState::Answered);
}

#[test]
fn carrier_200_without_usable_sdp_fails_without_answered() {
    let mut s = Sim::new(MachineConfig::default());
    s.ringing();
    // 1. 200 with an SDP we cannot use: BYE, failed error, never `answered`.
    let st = s.at(4_000).ev(Input::CarrierAnswered { sdp_ok: false });
    assert_eq!(st.acts, vec![Output::ByeCarrier]);
    let r = st.terminal.unwrap();
    assert_eq!(
        (r.status, r.reason_code, r.sip_code),
        (CallStatus::Failed, ReasonCode::Error, Some(200))
    );
}

#[test]
fn a_cancelled_timer_never_fires() {
    let mut s = Sim::new(MachineConfig::default());
    s.ringing();
    // 1. Answered before the ring timeout: the ring timer is disarmed...
    s.at(5_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert_eq!(s.armed(TimerKind::Answer), None);
    // 2. ...so when its old deadline passes, no CANCEL comes out; the bot timer is the next.
    let st = s.tick(9_000);
    assert!(st.acts.is_empty() && st.terminal.is_none(), "{st:?}");
    assert_eq!(s.m.state(), CallState::Answered);
    assert_eq!(s.armed(TimerKind::BotAnswer), Some(Duration::from_secs(15)));
}

#[test]
fn hangup_before_start_fails_without_sip() {
    let mut s = Sim::new(MachineConfig::default());
    // 1. Hang-up before Start: terminal at once, nothing sent.
    let st = s.ev(Input::Hangup {
        source: HangupSource::Api,
    });
    assert!(st.acts.is_empty());
    assert_eq!(st.terminal.unwrap().reason_code, ReasonCode::ApiHangup);
    // 2. A late Start does nothing.
    s.assert_ignores(Input::Start);
}

#[test]
fn terminal_report_serde_enums_are_lowercase() {
    assert_eq!(
        serde_json::to_string(&CallStatus::Completed).unwrap(),
        "\"completed\""
    );
    assert_eq!(serde_json::to_string(&AmdResult::Fax).unwrap(), "\"fax\"");
    assert_eq!(
        serde_json::to_string(&CallState::Connected).unwrap(),
        "\"connected\""
    );
    let m: AmdMode = serde_json::from_str("\"disconnect\"").unwrap();
    assert_eq!(m, AmdMode::Disconnect);
}
