//! `early_media_to_bot` on the simulated clock: every path of a bot leg placed at early media.

use super::tests::{Sim, bot_failed, failed};
use super::*;

fn cfg() -> MachineConfig {
    MachineConfig {
        early_media_to_bot: true,
        ..MachineConfig::default()
    }
}

fn provisional(code: u16, has_sdp: bool) -> Input {
    Input::CarrierProvisional { code, has_sdp }
}

fn count(acts: &[Output], what: &Output) -> usize {
    acts.iter().filter(|a| *a == what).count()
}

fn is_timeline(a: &Output) -> bool {
    matches!(a, Output::Timeline { .. })
}

/// Start, 180 without SDP, then 183 with SDP at 1 s: the bot's INVITE goes out with early media.
fn early() -> Sim {
    let mut s = Sim::new(cfg());
    s.ev(Input::Start);
    // 1. A provisional without SDP places nothing.
    let st = s.at(300).ev(provisional(180, false));
    assert!(st.acts.is_empty(), "{st:?}");
    // 2. The first provisional with SDP: early media, then the bot's leg (conversation first).
    let st = s.at(1_000).ev(provisional(183, true));
    let acts: Vec<&Output> = st.acts.iter().filter(|a| !is_timeline(a)).collect();
    assert_eq!(
        acts,
        [
            &Output::StartEarlyMedia,
            &Output::OpenBotConversation,
            &Output::SendBotInvite
        ]
    );
    assert_eq!(s.m.state(), CallState::Ringing);
    assert_eq!(
        s.armed(TimerKind::BotAnswer),
        Some(std::time::Duration::from_millis(11_000))
    );
    s
}

/// [`early`], and the bot answers at 1.2 s: it hears the early media, one way.
fn bot_listening() -> Sim {
    let mut s = early();
    let st = s.at(1_200).ev(Input::BotAnswered);
    assert_eq!(st.acts, [Output::BotHearsEarlyMedia]);
    assert_eq!(s.m.state(), CallState::Ringing);
    assert_eq!(s.m.timer_deadline(TimerKind::BotAnswer), None);
    s
}

#[test]
fn early_media_then_answer_connects_the_listening_bot_without_a_second_invite() {
    let mut s = bot_listening();
    // 1. More provisionals with SDP change nothing (one INVITE, one early start).
    assert!(s.at(2_000).ev(provisional(183, true)).acts.is_empty());
    // 2. The person answers: the answer's SDP goes to the relay (StartMedia), then the bridge
    //    both ways and `start`; no second INVITE, connected at once.
    let st = s.at(6_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert_eq!(
        st.acts,
        [
            Output::StartMedia,
            Output::NotifyAnswered,
            Output::BridgeMedia,
            Output::BotEvent(BotEvent::Start),
        ]
    );
    assert_eq!(s.m.state(), CallState::Connected);
    // 3. The person hangs up: one BYE to the bot, completed.
    let st = s.at(9_000).ev(Input::CarrierBye);
    assert_eq!(count(&st.acts, &Output::ByeBot), 1);
    let r = st.terminal.expect("terminal");
    assert_eq!(r.status, CallStatus::Completed);
    assert_eq!(r.reason_code, ReasonCode::ClientDisconnected);
}

#[test]
fn an_answer_while_the_early_bot_invite_is_pending_waits_for_the_bot_as_usual() {
    let mut s = early();
    // 1. The person answers first: no second INVITE; the bot's timer keeps its deadline.
    let st = s.at(2_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert_eq!(count(&st.acts, &Output::SendBotInvite), 0);
    assert_eq!(count(&st.acts, &Output::OpenBotConversation), 0);
    assert_eq!(s.m.state(), CallState::Answered);
    assert_eq!(
        s.armed(TimerKind::BotAnswer),
        Some(std::time::Duration::from_millis(11_000))
    );
    // 2. The bot answers: bridged, `start`, connected.
    let st = s.at(2_500).ev(Input::BotAnswered);
    assert_eq!(
        st.acts,
        [Output::BridgeMedia, Output::BotEvent(BotEvent::Start)]
    );
    assert_eq!(s.m.state(), CallState::Connected);
}

#[test]
fn early_media_then_busy_or_no_answer_byes_the_bot_with_one_terminal() {
    // 1. Busy after the bot listened: BYE to the bot, failed/busy at once.
    let mut s = bot_listening();
    let st = s
        .at(3_000)
        .ev(failed(Some(486), FailureKind::Response, "Busy Here"));
    assert_eq!(count(&st.acts, &Output::ByeBot), 1, "{st:?}");
    assert_eq!(count(&st.acts, &Output::CancelCarrier), 0);
    assert!(st.acts.contains(&Output::StopMedia));
    // The bot's conversation (opened with its leg) hears why.
    assert!(st.acts.iter().any(|a| matches!(
        a,
        Output::BotDisconnect {
            reason_code: ReasonCode::Busy,
            ..
        }
    )));
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code, r.sip_code),
        (CallStatus::Failed, ReasonCode::Busy, Some(486))
    );
    assert_eq!(s.terminals, 1);

    // 2. Nobody answers: at the ring timeout the carrier is CANCELled and the bot gets BYE;
    //    the 487 completes it: failed/no-answer, once.
    let mut s = bot_listening();
    let st = s.fire(TimerKind::Answer);
    assert_eq!(count(&st.acts, &Output::CancelCarrier), 1);
    assert_eq!(count(&st.acts, &Output::ByeBot), 1);
    assert!(st.terminal.is_none());
    let r = s
        .at(31_000)
        .ev(failed(Some(487), FailureKind::Response, ""))
        .terminal
        .expect("terminal");
    assert_eq!(r.reason_code, ReasonCode::NoAnswer);
    assert_eq!(s.terminals, 1);
}

#[test]
fn an_intercept_heard_while_the_bot_listens_ends_as_rejected_and_byes_the_bot() {
    let mut s = bot_listening();
    // 1. SIT tones: CANCEL the carrier, BYE the bot.
    let st = s.at(2_500).ev(Input::EarlyIntercept {
        sit: true,
        heard: "SIT tones 914/1371/1777 Hz".into(),
    });
    assert_eq!(count(&st.acts, &Output::CancelCarrier), 1);
    assert_eq!(count(&st.acts, &Output::ByeBot), 1);
    // 2. The 487: failed/rejected with the words, one terminal.
    let r = s
        .at(2_600)
        .ev(failed(Some(487), FailureKind::Response, ""))
        .terminal
        .expect("terminal");
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Failed, ReasonCode::Rejected)
    );
    assert!(r.reason.contains("not in service"), "{}", r.reason);
    assert_eq!(s.terminals, 1);
}

#[test]
fn a_bot_refusing_or_unreachable_before_the_answer_cancels_the_person_as_error() {
    for (code, kind, words) in [
        (Some(486), FailureKind::Response, "486"),
        (None, FailureKind::Transport, "unreachable"),
        (None, FailureKind::Timeout, "did not respond"),
    ] {
        // 1. The bot's INVITE fails while the person's phone rings.
        let mut s = early();
        let st = s.at(1_500).ev(bot_failed(code, kind, "Busy Here"));
        // 2. The carrier attempt is CANCELled, the relay stopped; no BYE to a bot never up.
        assert_eq!(count(&st.acts, &Output::CancelCarrier), 1, "{st:?}");
        assert_eq!(count(&st.acts, &Output::ByeBot), 0);
        assert!(st.acts.contains(&Output::StopMedia));
        assert!(st.terminal.is_none());
        // 3. The 487: failed/error, the reason says it was the bot, before the answer.
        let r = s
            .at(1_600)
            .ev(failed(Some(487), FailureKind::Response, ""))
            .terminal
            .expect("terminal");
        assert_eq!(
            (r.status, r.reason_code),
            (CallStatus::Failed, ReasonCode::Error)
        );
        assert!(r.reason.contains(words), "{}", r.reason);
        assert!(
            r.reason.contains("before the person answered"),
            "{}",
            r.reason
        );
        assert_eq!(s.terminals, 1);
    }
}

#[test]
fn a_bot_silent_until_its_timeout_or_hanging_up_before_the_answer_ends_the_attempt() {
    // 1. The bot never answers: at bot_answer_timeout both INVITEs are CANCELled.
    let mut s = early();
    let st = s.fire(TimerKind::BotAnswer);
    assert_eq!(count(&st.acts, &Output::CancelCarrier), 1);
    assert_eq!(count(&st.acts, &Output::CancelBot), 1);
    s.at(11_100)
        .ev(bot_failed(Some(487), FailureKind::Response, ""));
    let r = s
        .at(11_200)
        .ev(failed(Some(487), FailureKind::Response, ""))
        .terminal
        .expect("terminal");
    assert_eq!(r.reason_code, ReasonCode::Error);
    assert!(
        r.reason.contains("did not answer within 10 s"),
        "{}",
        r.reason
    );

    // 2. The listening bot hangs up before the person answered: bot-disconnected, failed.
    let mut s = bot_listening();
    let st = s.at(2_000).ev(Input::BotBye);
    assert_eq!(count(&st.acts, &Output::CancelCarrier), 1);
    let r = s
        .at(2_100)
        .ev(failed(Some(487), FailureKind::Response, ""))
        .terminal
        .expect("terminal");
    assert_eq!(
        (r.status, r.reason_code),
        (CallStatus::Failed, ReasonCode::BotDisconnected)
    );

    // 3. The listening bot's leg vanishes: the same.
    let mut s = bot_listening();
    let st = s.at(2_000).ev(Input::LegGone(LegSide::Bot));
    assert_eq!(count(&st.acts, &Output::CancelCarrier), 1);
}

#[test]
fn the_bot_is_placed_at_the_answer_without_sdp_in_provisionals_or_without_the_key() {
    // 1. The key on, but no provisional carried SDP: the bot is invited at the answer.
    let mut s = Sim::new(cfg());
    s.ringing();
    let st = s.at(5_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert_eq!(count(&st.acts, &Output::SendBotInvite), 1);
    // 2. Early media without the key: no bot INVITE before the answer.
    let mut s = Sim::new(MachineConfig::default());
    s.ev(Input::Start);
    let st = s.at(300).ev(provisional(183, true));
    assert_eq!(st.acts, [Output::StartEarlyMedia]);
    // 3. A text bot with the key (never so from configuration): nothing early either.
    let mut s = Sim::new(MachineConfig {
        text_bot: true,
        ..cfg()
    });
    s.ev(Input::Start);
    let st = s.at(300).ev(provisional(183, true));
    assert_eq!(st.acts, [Output::StartEarlyMedia]);
}

#[test]
fn a_re_invite_from_the_listening_bot_is_refused_before_the_answer() {
    let mut s = bot_listening();
    let st = s.at(1_500).ev(Input::ReInvite(LegSide::Bot));
    assert_eq!(
        st.acts,
        [Output::AnswerReInvite {
            side: LegSide::Bot,
            accept: false
        }]
    );
}

#[test]
fn a_bot_leg_answered_at_early_media_keeps_its_session_timer_while_the_phone_rings() {
    let mut s = bot_listening();
    // 1. The bot's 2xx negotiated a 20 s session with dialgate refreshing: armed while ringing
    //    (refresh at half the interval, expiry armed too).
    let st = s.at(1_300).ev(Input::BotLegSessionTimer {
        interval: Some(std::time::Duration::from_secs(20)),
        we_refresh: true,
    });
    assert!(st.acts.is_empty(), "{st:?}");
    s.assert_armed(&[(TimerKind::BotLegSessionRefresh, Some(11_300))]);
    assert!(s.armed(TimerKind::BotLegSessionExpiry).is_some());
    assert_eq!(s.m.state(), CallState::Ringing);
    // 2. Half the interval later the phone still rings: the bot leg is refreshed.
    let st = s.fire(TimerKind::BotLegSessionRefresh);
    assert_eq!(st.acts, vec![Output::RefreshBotLegSession]);
}
