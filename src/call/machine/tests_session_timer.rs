//! Carrier session timers (RFC 4028) on the simulated clock.

use std::time::Duration;

use super::tests::Sim;
use super::*;

fn session(secs: u64, we_refresh: bool) -> Input {
    Input::CarrierSessionTimer {
        interval: Some(Duration::from_secs(secs)),
        we_refresh,
    }
}

#[test]
fn dialgate_refreshes_at_half_the_interval_and_each_refresh_rearms() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    // 1. The 2xx at 5 s made dialgate the refresher of a 90 s session.
    let st = s.at(5_200).ev(session(90, true));
    assert!(st.acts.is_empty());
    // Refresh at half the interval, expiry at 90 - min(32, 30) = 60 s after the answer.
    s.assert_armed(&[
        (TimerKind::SessionRefresh, Some(50_200)),
        (TimerKind::SessionExpiry, Some(65_200)),
    ]);
    // 2. Half the interval later: refresh.
    let st = s.fire(TimerKind::SessionRefresh);
    assert_eq!(st.acts, vec![Output::RefreshCarrierSession]);
    s.assert_armed(&[(TimerKind::SessionRefresh, None)]);
    // 3. The refresh's 2xx re-arms both timers from now.
    s.at(50_400).ev(session(90, true));
    s.assert_armed(&[
        (TimerKind::SessionRefresh, Some(95_400)),
        (TimerKind::SessionExpiry, Some(110_400)),
    ]);
    assert_eq!(s.m.state(), CallState::Connected);
}

#[test]
fn a_missing_refresh_from_the_peer_ends_the_call_with_error() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    // 1. The carrier refreshes a 120 s session: dialgate only watches.
    s.at(5_200).ev(session(120, false));
    s.assert_armed(&[(TimerKind::SessionRefresh, None)]);
    // 2. The carrier's refresh at 60 s re-arms the expiry (120 - 32 = 88 s later).
    s.at(65_000).ev(session(120, false));
    s.assert_armed(&[(TimerKind::SessionExpiry, Some(153_000))]);
    // 3. No further refresh: BYE both legs, `completed`/`error`, "session timer expired".
    let st = s.fire(TimerKind::SessionExpiry);
    assert_eq!(
        st.acts[..3],
        [Output::ByeCarrier, Output::ByeBot, Output::StopMedia]
    );
    let r = st.terminal.expect("terminal");
    assert_eq!(
        (r.status, r.reason_code, r.sip_code),
        (CallStatus::Completed, ReasonCode::Error, Some(200))
    );
    assert!(r.reason.contains("session timer expired"), "{}", r.reason);
}

#[test]
fn a_failing_own_refresh_also_ends_at_expiry_and_a_session_without_expiry_disarms() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    s.at(5_200).ev(session(90, true));
    s.fire(TimerKind::SessionRefresh);
    // 1. The refresh was refused (no new session input): the expiry still ends the call.
    let st = s.fire(TimerKind::SessionExpiry);
    assert_eq!(st.terminal.map(|r| r.reason_code), Some(ReasonCode::Error));
    // 2. Another call: the peer's refresh drops Session-Expires: no timers remain.
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    s.at(5_200).ev(session(90, true));
    s.at(6_000).ev(Input::CarrierSessionTimer {
        interval: None,
        we_refresh: false,
    });
    s.assert_armed(&[
        (TimerKind::SessionRefresh, None),
        (TimerKind::SessionExpiry, None),
    ]);
}

#[test]
fn session_timer_facts_outside_an_established_carrier_leg_are_ignored() {
    let mut s = Sim::new(MachineConfig::default());
    s.ringing();
    s.assert_ignores(session(90, true));
    // After the end nothing is re-armed.
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    s.at(6_000).ev(Input::CarrierBye);
    s.assert_ignores(session(90, true));
    assert_eq!(s.m.poll_timeout(), None);
}

#[test]
fn expiry_is_a_third_early_but_at_most_32_seconds() {
    assert_eq!(
        expiry_after(Duration::from_secs(90)),
        Duration::from_secs(60)
    );
    assert_eq!(
        expiry_after(Duration::from_secs(1800)),
        Duration::from_secs(1768)
    );
    assert_eq!(expiry_after(Duration::from_secs(6)), Duration::from_secs(4));
}
