//! Early media (a 183/180 with SDP before the answer): the machine starts the relay's carrier
//! direction and a pre-answer detector once; a SIT tone or an intercept announcement ends the
//! attempt at once — `failed`, `rejected` — instead of ringing into the ring timeout.

use std::time::Instant;

use super::core::CallMachine;
use super::reason::ReasonCode;
use super::report::cause;
use super::types::Output;

impl CallMachine {
    /// A provisional response carried a usable SDP: listen to it (once per call).
    pub(super) fn on_early_sdp(&mut self, now: Instant) {
        if self.is_ringing_phase() && !self.media_running {
            // `media_running` makes every end path stop the relay (and the answer keeps it).
            self.media_running = true;
            self.emit(Output::StartEarlyMedia);
            // `early_media_to_bot` (see `early_bot.rs`).
            self.place_bot_leg_early(now);
        }
    }

    /// The pre-answer detector heard the carrier say the number cannot be reached.
    pub(super) fn on_early_intercept(&mut self, now: Instant, sit: bool, heard: String) {
        if !self.is_ringing_phase() {
            return self.ignore("intercept outside ringing");
        }
        let what = if sit {
            "number not in service (intercept: SIT)"
        } else {
            "number not in service (intercept announcement)"
        };
        let text = format!("{what}: {heard}");
        self.emit(Output::Timeline {
            kind: "early-media",
            note: text.clone(),
        });
        self.begin_end(now, cause(ReasonCode::Rejected, text, None, None));
    }
}
