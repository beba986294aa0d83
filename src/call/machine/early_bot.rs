//! `outbound.early_media_to_bot`: a SIP bot's leg is placed at the carrier's first provisional
//! with SDP instead of at the answer, so the bot hears the early media (ringback,
//! announcements). What happens on every path:
//!
//! - the bot answers first: the relay sends it the carrier's early audio, one way
//!   ([`Output::BotHearsEarlyMedia`]: its own audio reaches nobody); the call stays `ringing`;
//! - the person answers with the bot up: no second INVITE; the relay takes the answer's SDP
//!   (`StartMedia`, which may differ from the early one) and is bridged both ways, `start` goes
//!   to the bot, the call is `connected`;
//! - the person answers while the bot's INVITE is pending: as today from there (its answer
//!   timer, armed with the INVITE, keeps running);
//! - the carrier attempt fails (busy, no answer, an intercept heard in early media): the bot leg
//!   gets BYE (or CANCEL), one terminal with the carrier's reason;
//! - the bot refuses, cannot be reached or does not answer before the person answered: the
//!   carrier attempt is CANCELled, `failed` / `error`; a bot hanging up before the answer ends
//!   it `bot-disconnected`;
//! - a re-INVITE from the bot before the answer is refused (accepting it would open the bot's
//!   audio towards the carrier before anybody answered).
//!
//! Text and WebSocket bots have no leg to place early (configuration refuses the key for them;
//! the machine ignores it too).

use std::time::Instant;

use super::core::{CallMachine, Leg};
use super::reason::{FailureKind, ReasonCode, bot_failure_text};
use super::report::cause;
use super::types::{Output, TimerKind};

/// Why a bot that failed before the answer also ends the person's attempt.
const BEFORE_ANSWER: &str = "before the person answered; the call to the person was cancelled";

impl CallMachine {
    /// This call places a SIP bot's leg at early media.
    fn early_bot(&self) -> bool {
        self.cfg.early_media_to_bot && !self.cfg.text_bot && !self.cfg.ws_bot
    }

    /// Early media started: with `early_media_to_bot`, the bot's leg is placed now.
    pub(super) fn place_bot_leg_early(&mut self, now: Instant) {
        if !self.early_bot() || self.bot != Leg::Idle {
            return;
        }
        self.emit(Output::Timeline {
            kind: "early-media",
            note: "the bot's leg is placed before the answer to hear the early media".into(),
        });
        self.place_bot_leg(now);
    }

    /// The bot's INVITE (its Bot API conversation opened first) and its answer timer.
    pub(super) fn place_bot_leg(&mut self, now: Instant) {
        self.open_bot_conversation();
        self.bot = Leg::Inviting;
        self.emit(Output::SendBotInvite);
        self.timers
            .set(TimerKind::BotAnswer, now + self.cfg.bot_answer_timeout);
    }

    /// A bot leg placed at early media while the person's phone still rings.
    pub(super) fn bot_pending_early(&self) -> bool {
        self.is_ringing_phase() && self.bot == Leg::Inviting
    }

    /// A bot leg up while the person's phone still rings.
    pub(super) fn bot_up_early(&self) -> bool {
        self.is_ringing_phase() && self.bot == Leg::Up
    }

    /// The bot answered before the person: it listens to the early media.
    pub(super) fn on_bot_answered_early(&mut self) {
        self.bot = Leg::Up;
        self.timers.cancel(TimerKind::BotAnswer);
        self.emit(Output::BotHearsEarlyMedia);
    }

    /// The bot's INVITE failed before the person answered.
    pub(super) fn on_bot_failed_early(
        &mut self,
        now: Instant,
        code: Option<u16>,
        kind: FailureKind,
        reason: &str,
    ) {
        self.bot = Leg::Gone;
        let text = format!("{} {BEFORE_ANSWER}", bot_failure_text(code, kind, reason));
        self.begin_end(now, cause(ReasonCode::Error, text, None, code));
    }

    /// The bot did not answer its early INVITE in time.
    pub(super) fn on_bot_answer_timeout_early(&mut self, now: Instant) {
        let text = format!(
            "bot did not answer within {} s {BEFORE_ANSWER}",
            self.cfg.bot_answer_timeout.as_secs()
        );
        self.begin_end(now, cause(ReasonCode::Error, text, None, None));
    }

    /// The bot hung up while the person's phone still rang.
    pub(super) fn on_bot_bye_early(&mut self, now: Instant) {
        self.bot = Leg::Gone;
        let text = format!("bot hung up {BEFORE_ANSWER}");
        self.begin_end(now, cause(ReasonCode::BotDisconnected, text, None, None));
    }
}
