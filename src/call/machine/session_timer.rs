//! Session timers on the carrier leg (RFC 4028): the machine owns both timers. The SIP layer
//! reports the session as the 2xx (or a later refresh) left it; the machine refreshes at half
//! the interval when dialgate is the refresher, and ends the call when no refresh came in time.

use std::time::{Duration, Instant};

use super::core::{CallMachine, Leg};
use super::reason::ReasonCode;
use super::report::cause;
use super::types::{Output, TimerKind};

/// RFC 4028 §10: the side that does not refresh sends BYE "before the session expires", at
/// the interval minus a third of it, but at most 32 s early.
pub fn expiry_after(interval: Duration) -> Duration {
    interval - (interval / 3).min(Duration::from_secs(32))
}

impl CallMachine {
    /// The session timer as it now stands (`None`: the session does not expire).
    pub(super) fn on_carrier_session_timer(
        &mut self,
        now: Instant,
        interval: Option<Duration>,
        we_refresh: bool,
    ) {
        if !(self.is_answered_phase() && self.carrier == Leg::Up) {
            return self.ignore("session timer without an established carrier leg");
        }
        let Some(interval) = interval else {
            self.timers.cancel(TimerKind::SessionRefresh);
            self.timers.cancel(TimerKind::SessionExpiry);
            return;
        };
        if we_refresh {
            self.timers
                .set(TimerKind::SessionRefresh, now + interval / 2);
        } else {
            self.timers.cancel(TimerKind::SessionRefresh);
        }
        // Armed whoever refreshes: our own refreshes failing end the session too.
        self.timers
            .set(TimerKind::SessionExpiry, now + expiry_after(interval));
        self.session_interval = Some(interval);
    }

    pub(super) fn on_session_refresh_due(&mut self) {
        if self.is_answered_phase() && self.carrier == Leg::Up {
            self.emit(Output::RefreshCarrierSession);
        } else {
            self.ignore("session refresh outside an established call");
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
}
