//! Bot-leg session timers (RFC 4028) on the simulated clock: their own timer pair beside the
//! carrier's, the expiry's reason, and the races with a BYE and a 422-raised interval.

use std::time::Duration;

use super::tests::{Sim, bot_failed};
use super::*;

fn bot_session(secs: u64, we_refresh: bool) -> Input {
    Input::BotLegSessionTimer {
        interval: Some(Duration::from_secs(secs)),
        we_refresh,
    }
}

fn carrier_session(secs: u64, we_refresh: bool) -> Input {
    Input::CarrierSessionTimer {
        interval: Some(Duration::from_secs(secs)),
        we_refresh,
    }
}

#[test]
fn each_leg_refreshes_on_its_own_timers() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    // 1. The carrier session is 1800 s, the bot's 90 s; dialgate refreshes both.
    s.at(5_200).ev(carrier_session(1800, true));
    let st = s.at(5_200).ev(bot_session(90, true));
    assert!(st.acts.is_empty());
    assert_eq!(
        s.armed(TimerKind::BotLegSessionRefresh),
        Some(Duration::from_millis(50_200))
    );
    assert_eq!(
        s.armed(TimerKind::BotLegSessionExpiry),
        Some(Duration::from_millis(65_200))
    );
    assert_eq!(
        s.armed(TimerKind::SessionRefresh),
        Some(Duration::from_millis(905_200))
    );
    // 2. Half the bot's interval later only the bot leg is refreshed.
    let st = s.fire(TimerKind::BotLegSessionRefresh);
    assert_eq!(st.acts, vec![Output::RefreshBotLegSession]);
    assert_eq!(
        s.armed(TimerKind::SessionRefresh),
        Some(Duration::from_millis(905_200))
    );
    // 3. The bot's 2xx to the refresh re-arms the bot's pair from now.
    s.at(50_300).ev(bot_session(90, true));
    assert_eq!(
        s.armed(TimerKind::BotLegSessionRefresh),
        Some(Duration::from_millis(95_300))
    );
    assert_eq!(
        s.armed(TimerKind::BotLegSessionExpiry),
        Some(Duration::from_millis(110_300))
    );
    assert_eq!(s.m.state(), CallState::Connected);
}

#[test]
fn a_missing_refresh_from_the_bot_ends_the_call_with_error_once() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    // 1. The bot refreshes a 120 s session: dialgate only watches (expiry 88 s later).
    s.at(5_200).ev(bot_session(120, false));
    assert_eq!(s.armed(TimerKind::BotLegSessionRefresh), None);
    assert_eq!(
        s.armed(TimerKind::BotLegSessionExpiry),
        Some(Duration::from_millis(93_200))
    );
    // 2. No refresh comes: BYE both legs, `completed`/`error`, the bot leg named.
    let st = s.fire(TimerKind::BotLegSessionExpiry);
    assert_eq!(
        st.acts[..3],
        [Output::ByeCarrier, Output::ByeBot, Output::StopMedia]
    );
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code, r.sip_code),
        (CallStatus::Completed, ReasonCode::Error, Some(200))
    );
    assert!(
        r.reason.contains("session timer expired on the bot leg"),
        "{}",
        r.reason
    );
    // 3. A BYE from the bot crossing ours changes nothing: one terminal report.
    s.at(94_000).assert_ignores(Input::BotBye);
    assert_eq!(s.terminals, 1);
    assert_eq!(s.m.poll_timeout(), None);
}

#[test]
fn a_bye_racing_the_refresh_wins_and_the_late_2xx_is_ignored() {
    // 1. The refresh falls due at 50.2 s but the bot's BYE is handled first: no refresh.
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    s.at(5_200).ev(bot_session(90, true));
    let st = s.at(50_200).ev(Input::BotBye);
    assert!(!st.acts.contains(&Output::RefreshBotLegSession), "{st:?}");
    assert_eq!(
        st.terminal.map(|r| r.reason_code),
        Some(ReasonCode::BotDisconnected)
    );
    let st = s.tick(50_200);
    assert!(st.acts.is_empty() && st.terminal.is_none());
    // 2. Another call: the refresh went out, then the BYE came before its 2xx.
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    s.at(5_200).ev(bot_session(90, true));
    let st = s.fire(TimerKind::BotLegSessionRefresh);
    assert_eq!(st.acts, vec![Output::RefreshBotLegSession]);
    let st = s.at(50_300).ev(Input::BotBye);
    assert_eq!(
        st.terminal.map(|r| r.reason_code),
        Some(ReasonCode::BotDisconnected)
    );
    // 3. The refresh's 2xx arriving after the end re-arms nothing.
    s.at(50_400).assert_ignores(bot_session(90, true));
    assert_eq!(s.m.poll_timeout(), None);
    assert_eq!(s.terminals, 1);
}

#[test]
fn a_422_raised_interval_rearms_and_a_failed_refresh_is_an_error() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    s.at(5_200).ev(bot_session(90, true));
    s.fire(TimerKind::BotLegSessionRefresh);
    // 1. The bot answered the refresh 422 (Min-SE: 180); the leg sent it again and the 2xx
    //    names 180 s: both bot timers follow the larger interval.
    s.at(50_500).ev(bot_session(180, true));
    assert_eq!(
        s.armed(TimerKind::BotLegSessionRefresh),
        Some(Duration::from_millis(140_500))
    );
    assert_eq!(
        s.armed(TimerKind::BotLegSessionExpiry),
        Some(Duration::from_millis(198_500))
    );
    // 2. The next refresh is answered 481: the leg reports the dialog failed; the call ends
    //    with `error`, the bot's code kept.
    s.fire(TimerKind::BotLegSessionRefresh);
    let st = s.at(141_000).ev(bot_failed(
        Some(481),
        FailureKind::Response,
        "session refresh answered 481 Call/Transaction Does Not Exist",
    ));
    assert_eq!(st.acts[..2], [Output::ByeCarrier, Output::StopMedia]);
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.reason_code, r.bot_sip_code),
        (ReasonCode::Error, Some(481))
    );
    assert!(r.reason.starts_with("bot leg failed"), "{}", r.reason);
}

#[test]
fn bot_session_facts_without_an_established_bot_leg_are_ignored() {
    // 1. Before the bot answered.
    let mut s = Sim::new(MachineConfig::default());
    s.answered();
    s.assert_ignores(bot_session(90, true));
    assert_eq!(s.armed(TimerKind::BotLegSessionExpiry), None);
    // 2. A session that no longer expires disarms the bot's pair, not the carrier's.
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    s.at(5_200).ev(carrier_session(90, true));
    s.at(5_200).ev(bot_session(90, true));
    s.at(6_000).ev(Input::BotLegSessionTimer {
        interval: None,
        we_refresh: false,
    });
    assert_eq!(s.armed(TimerKind::BotLegSessionRefresh), None);
    assert_eq!(s.armed(TimerKind::BotLegSessionExpiry), None);
    assert!(s.armed(TimerKind::SessionExpiry).is_some());
}
