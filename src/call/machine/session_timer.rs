//! Session timers (RFC 4028) on the carrier and the bot leg: the machine owns both timers of
//! each leg. The SIP layer reports the session as the 2xx (or a later refresh) left it; the
//! machine refreshes at half the interval when dialgate is the refresher, and ends the call
//! when no refresh came in time. The two legs are independent: each has its own timer pair
//! in the table and its own interval.

use std::time::{Duration, Instant};

use super::core::{CallMachine, Leg};
use super::reason::ReasonCode;
use super::report::cause;
use super::types::{LegSide, Output, TimerKind};

/// RFC 4028 §10: the side that does not refresh sends BYE "before the session expires", at
/// the interval minus a third of it, but at most 32 s early.
pub fn expiry_after(interval: Duration) -> Duration {
    interval - (interval / 3).min(Duration::from_secs(32))
}

/// The (refresh, expiry) timers of a leg.
fn timers_of(side: LegSide) -> (TimerKind, TimerKind) {
    match side {
        LegSide::Carrier => (TimerKind::SessionRefresh, TimerKind::SessionExpiry),
        LegSide::Bot => (
            TimerKind::BotLegSessionRefresh,
            TimerKind::BotLegSessionExpiry,
        ),
    }
}

impl CallMachine {
    /// The carrier session timer as it now stands (`None`: the session does not expire).
    pub(super) fn on_carrier_session_timer(
        &mut self,
        now: Instant,
        interval: Option<Duration>,
        we_refresh: bool,
    ) {
        self.on_session_timer(now, LegSide::Carrier, interval, we_refresh);
    }

    /// The bot-leg session timer as it now stands (`None`: the session does not expire).
    pub(super) fn on_bot_session_timer(
        &mut self,
        now: Instant,
        interval: Option<Duration>,
        we_refresh: bool,
    ) {
        self.on_session_timer(now, LegSide::Bot, interval, we_refresh);
    }

    /// The leg's dialog is up in a call that goes on: only then does its session matter. The
    /// carrier's once the call is answered; the bot's as soon as the bot answered, which with
    /// `early_media_to_bot` is while the person's phone still rings.
    fn session_leg_up(&self, side: LegSide) -> bool {
        match side {
            LegSide::Carrier => self.is_answered_phase() && self.carrier == Leg::Up,
            LegSide::Bot => self.is_live() && self.bot == Leg::Up,
        }
    }

    fn on_session_timer(
        &mut self,
        now: Instant,
        side: LegSide,
        interval: Option<Duration>,
        we_refresh: bool,
    ) {
        if !self.session_leg_up(side) {
            return self.ignore(match side {
                LegSide::Carrier => "session timer without an established carrier leg",
                LegSide::Bot => "session timer without an established bot leg",
            });
        }
        let (refresh, expiry) = timers_of(side);
        let Some(interval) = interval else {
            self.timers.cancel(refresh);
            self.timers.cancel(expiry);
            return;
        };
        if we_refresh {
            self.timers.set(refresh, now + interval / 2);
        } else {
            self.timers.cancel(refresh);
        }
        // Armed whoever refreshes: our own refreshes failing end the session too.
        self.timers.set(expiry, now + expiry_after(interval));
        match side {
            LegSide::Carrier => self.session_interval = Some(interval),
            LegSide::Bot => self.bot_session_interval = Some(interval),
        }
    }

    pub(super) fn on_session_refresh_due(&mut self) {
        if self.session_leg_up(LegSide::Carrier) {
            self.emit(Output::RefreshCarrierSession);
        } else {
            self.ignore("session refresh outside an established call");
        }
    }

    pub(super) fn on_bot_session_refresh_due(&mut self) {
        // A bot released by a transfer keeps no session: its timers are not re-armed.
        if self.session_leg_up(LegSide::Bot) {
            self.emit(Output::RefreshBotLegSession);
        } else {
            self.ignore("bot session refresh without an established bot leg");
        }
    }

    pub(super) fn on_session_expired(&mut self, now: Instant) {
        if !self.is_answered_phase() {
            return self.ignore("session expiry outside an established call");
        }
        let secs = self.session_interval.map(|d| d.as_secs()).unwrap_or(0);
        let text = format!("session timer expired: no session refresh within {secs} s");
        self.begin_end(now, cause(ReasonCode::Error, text, None, None));
    }

    pub(super) fn on_bot_session_expired(&mut self, now: Instant) {
        if !self.session_leg_up(LegSide::Bot) {
            return self.ignore("bot session expiry without an established bot leg");
        }
        let secs = self.bot_session_interval.map(|d| d.as_secs()).unwrap_or(0);
        let text =
            format!("session timer expired on the bot leg: no session refresh within {secs} s");
        self.begin_end(now, cause(ReasonCode::Error, text, None, None));
    }
}
