//! Scenarios after the carrier's answer: bot leg, AMD, media, limits; simulated clock.

use std::time::Duration;

use super::tests::{Sim, Step, amd, bot_failed};
use super::*;

/// A hang-up from `source` 4 s into a connected call: BYE both legs, stop media, tell the
/// bot `reason`; returns the step (its terminal report) for the caller's own checks.
fn hangup_while_talking(s: &mut Sim, source: HangupSource, reason: &str, rc: ReasonCode) -> Step {
    s.connected();
    let st = s.at(9_000).ev(Input::Hangup { source });
    assert_eq!(
        st.acts,
        vec![
            Output::ByeCarrier,
            Output::ByeBot,
            Output::StopMedia,
            Output::BotDisconnect {
                reason: reason.into(),
                reason_code: rc
            }
        ]
    );
    st
}

#[test]
fn api_hangup_while_talking_byes_both_legs() {
    let mut s = Sim::new(MachineConfig::default());
    // 1. Hang-up: BYE both, stop media, bot disconnect, terminal completed api-hangup.
    let st = hangup_while_talking(
        &mut s,
        HangupSource::Api,
        "hang-up requested through the API",
        ReasonCode::ApiHangup,
    );
    let r = st.terminal.unwrap();
    assert_eq!(
        (r.status, r.reason_code, r.sip_code),
        (CallStatus::Completed, ReasonCode::ApiHangup, Some(200))
    );
    assert_eq!(r.duration_seconds(), 4);
    // 2. Second hang-up and the BYEs' echoes are ignored.
    s.assert_ignores(Input::Hangup {
        source: HangupSource::Api,
    });
    s.assert_ignores(Input::CarrierBye);
    s.assert_ignores(Input::BotBye);
}

#[test]
fn bot_bye_and_bot_hangup_activity_while_talking_are_bot_disconnected() {
    for ev in [
        Input::BotBye,
        Input::Hangup {
            source: HangupSource::BotActivity,
        },
    ] {
        let bot_bye = ev == Input::BotBye;
        let mut s = Sim::new(MachineConfig::default());
        s.connected();
        // 1. The bot ends the call.
        let st = s.at(8_000).ev(ev);
        // 2. Only the legs still up get a BYE.
        let mut expect = vec![Output::ByeCarrier];
        if !bot_bye {
            expect.push(Output::ByeBot);
        }
        expect.push(Output::StopMedia);
        assert_eq!(&st.acts[..expect.len()], &expect[..]);
        let r = st.terminal.unwrap();
        assert_eq!(
            (r.status, r.reason_code),
            (CallStatus::Completed, ReasonCode::BotDisconnected)
        );
    }
}

#[test]
fn bot_rejects_after_answer_ends_completed_error() {
    let mut s = Sim::new(MachineConfig::default());
    s.answered();
    // 1. Bot answers its INVITE with 486.
    let st = s
        .at(5_100)
        .ev(bot_failed(Some(486), FailureKind::Response, "Busy Here"));
    assert_eq!(st.acts[..2], [Output::ByeCarrier, Output::StopMedia]);
    let r = st.terminal.unwrap();
    // 2. Completed (the dialer heard `answered`), error, reason names the bot's code.
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Completed, ReasonCode::Error)
    );
    assert_eq!(r.reason, "bot rejected with 486 Busy Here");
    assert_eq!((r.sip_code, r.bot_sip_code), (Some(200), Some(486)));
    assert_eq!(r.connected_after, None);
    // 3. Unreachable bot reads differently.
    let mut s = Sim::new(MachineConfig::default());
    s.answered();
    let r = s
        .ev(bot_failed(
            None,
            FailureKind::Transport,
            "connection refused",
        ))
        .terminal
        .unwrap();
    assert_eq!(r.reason, "bot unreachable: connection refused");
}

#[test]
fn bot_answer_timeout_cancels_bot_and_byes_carrier() {
    let mut s = Sim::new(MachineConfig::default());
    s.answered();
    // 1. The bot does not answer within 10 s: BYE carrier, CANCEL bot, wait for the bot's 487.
    let st = s.fire(TimerKind::BotAnswer);
    assert_eq!(
        st.acts,
        vec![Output::ByeCarrier, Output::CancelBot, Output::StopMedia]
    );
    assert!(st.terminal.is_none());
    // 2. The bot's 200 crosses the CANCEL: BYE it; terminal completed error.
    let st = s.at(15_020).ev(Input::BotAnswered);
    assert_eq!(st.acts[0], Output::ByeBot);
    let r = st.terminal.unwrap();
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Completed, ReasonCode::Error)
    );
    assert_eq!(r.reason, "bot did not answer within 10 s");
    // 3. Never bridged.
    assert_eq!(r.connected_after, None);
}

#[test]
fn carrier_bye_while_bot_invite_pending_cancels_bot() {
    let mut s = Sim::new(MachineConfig::default());
    s.answered();
    // 1. Callee hangs up before the bot answered: CANCEL the bot.
    let st = s.at(5_050).ev(Input::CarrierBye);
    assert_eq!(st.acts, vec![Output::CancelBot, Output::StopMedia]);
    assert!(st.terminal.is_none());
    // 2. Bot's 487 completes the cancel: completed client-disconnected.
    let st = s
        .at(5_080)
        .ev(bot_failed(Some(487), FailureKind::Response, ""));
    let r = st.terminal.unwrap();
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Completed, ReasonCode::ClientDisconnected)
    );
    assert_eq!(r.bot_sip_code, None);
}

#[test]
fn retransmitted_200_ok_is_ignored() {
    let mut s = Sim::new(MachineConfig::default());
    s.answered();
    // 1. The same 200 again (ACK lost): no second answered, no second bot INVITE.
    s.assert_ignores(Input::CarrierAnswered { sdp_ok: true });
    s.at(5_200).ev(Input::BotAnswered);
    // 2. Also once connected.
    s.assert_ignores(Input::CarrierAnswered { sdp_ok: true });
    s.assert_ignores(Input::BotAnswered);
    assert_eq!(s.m.state(), CallState::Connected);
}

#[test]
fn max_duration_ends_completed_max_duration() {
    let mut s = Sim::new(MachineConfig {
        max_duration: Some(Duration::from_secs(60)),
        ..MachineConfig::default()
    });
    s.connected();
    // 1. One minute after the answer the timer fires: BYE both.
    assert_eq!(
        s.armed(TimerKind::MaxDuration),
        Some(Duration::from_secs(65))
    );
    let st = s.fire(TimerKind::MaxDuration);
    assert_eq!(
        st.acts[..3],
        [Output::ByeCarrier, Output::ByeBot, Output::StopMedia]
    );
    let r = st.terminal.unwrap();
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Completed, ReasonCode::MaxDuration)
    );
    assert_eq!(r.duration_seconds(), 60);
}

#[test]
fn amd_machine_with_disconnect_ends_machine_detected() {
    let mut s = Sim::new(amd(AmdMode::Disconnect));
    s.connected();
    // 1. AMD says machine: tell the bot, then BYE both legs.
    let st = s.at(7_000).ev(Input::AmdDecision {
        result: AmdResult::Machine,
        at_ms: 1_800,
    });
    assert_eq!(
        st.acts[..4],
        [
            Output::BotEvent(BotEvent::MachineDetection {
                value: AmdResult::Machine
            }),
            Output::ByeCarrier,
            Output::ByeBot,
            Output::StopMedia
        ]
    );
    let r = st.terminal.unwrap();
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Completed, ReasonCode::MachineDetected)
    );
    assert_eq!(
        r.amd,
        Some(AmdOutcome {
            result: AmdResult::Machine,
            at_ms: 1_800
        })
    );
    // 2. The beep that follows is ignored.
    s.assert_ignores(Input::AmdBeep { at_ms: 4_000 });
}

#[test]
fn amd_fax_before_bot_answer_with_disconnect_cancels_bot() {
    let mut s = Sim::new(amd(AmdMode::Disconnect));
    s.answered();
    // 1. Fax decided while the bot INVITE is pending: no event to a bot that never started.
    let st = s.at(5_100).ev(Input::AmdDecision {
        result: AmdResult::Fax,
        at_ms: 700,
    });
    assert_eq!(
        st.acts,
        vec![Output::ByeCarrier, Output::CancelBot, Output::StopMedia]
    );
    // 2. Bot 487: terminal.
    let r = s
        .ev(bot_failed(Some(487), FailureKind::Response, ""))
        .terminal
        .unwrap();
    assert_eq!(r.reason, "fax detected");
}

#[test]
fn amd_detect_reports_machine_then_beep_and_goes_on() {
    let mut s = Sim::new(amd(AmdMode::Detect));
    s.connected();
    // 1. Machine in detect mode: only the event.
    let st = s.at(7_000).ev(Input::AmdDecision {
        result: AmdResult::Machine,
        at_ms: 2_000,
    });
    assert_eq!(
        st.acts,
        vec![Output::BotEvent(BotEvent::MachineDetection {
            value: AmdResult::Machine
        })]
    );
    // 2. Beep.
    let st = s.at(9_000).ev(Input::AmdBeep { at_ms: 4_000 });
    assert_eq!(st.acts, vec![Output::BotEvent(BotEvent::Beep)]);
    // 3. A second decision is ignored; the call is still connected.
    s.assert_ignores(Input::AmdDecision {
        result: AmdResult::Human,
        at_ms: 3_000,
    });
    assert_eq!(s.m.state(), CallState::Connected);
}

#[test]
fn amd_events_ignored_when_disabled() {
    let mut s = Sim::new(MachineConfig::default());
    // 1. No StartAmd at answer.
    let st = s.answered();
    assert!(!st.acts.iter().any(|a| matches!(a, Output::StartAmd { .. })));
    // 2. A stray decision changes nothing.
    s.assert_ignores(Input::AmdDecision {
        result: AmdResult::Machine,
        at_ms: 1,
    });
}

#[test]
fn media_timeout_ends_completed_media_timeout() {
    let mut s = Sim::new(MachineConfig::default());
    // 1. No media before answer: ignored.
    s.ringing();
    s.assert_ignores(Input::MediaTimeout);
    s.at(5_000).ev(Input::CarrierAnswered { sdp_ok: true });
    s.at(5_200).ev(Input::BotAnswered);
    // 2. RTP stops: BYE both.
    let r = s.at(40_000).ev(Input::MediaTimeout).terminal.unwrap();
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Completed, ReasonCode::MediaTimeout)
    );
}

#[test]
fn a_shutdown_hangup_ends_the_call_as_error_saying_why() {
    let mut s = Sim::new(MachineConfig::default());
    // 1. dialgate stops: both legs get BYE, the bot is told why, the call ends `error`
    //    with the shutdown's reason (not "requested through the API").
    let st = hangup_while_talking(
        &mut s,
        HangupSource::Shutdown,
        super::legs::SHUTDOWN_REASON,
        ReasonCode::Error,
    );
    let r = st.terminal.unwrap();
    assert_eq!(r.reason_code, ReasonCode::Error);
    assert!(r.reason.contains("shutdown"), "{}", r.reason);
}
