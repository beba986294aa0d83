//! The machine's handling of the call's progress: start, the carrier and bot legs, hang-ups,
//! media time-outs and the timers.

use std::time::Instant;

use super::core::{CallMachine, Leg, Phase, Recognition};
use super::reason::{FailureKind, ReasonCode, bot_failure_text, carrier_failure_text};
use super::report::cause;
use super::types::{AmdMode, BotEvent, HangupSource, LegSide, Output, TimerKind};

/// The reason of a call ended because dialgate is stopping.
pub const SHUTDOWN_REASON: &str = "dialgate stopping: the call was ended by the gateway's shutdown";

impl CallMachine {
    pub(super) fn on_start(&mut self, now: Instant) {
        if !matches!(self.phase, Phase::Initiating) {
            return self.ignore("duplicate start");
        }
        self.started_at = Some(now);
        if self.cfg.ws_bot {
            self.open_ws_bot(now);
        } else if self.cfg.dialout_initiated_event && self.cfg.bot_api {
            self.open_bot_conversation();
            // Not queued behind `start`: dialoutInitiated is by definition the first event.
            self.emit(Output::BotEvent(BotEvent::DialoutInitiated));
            // The person is called only once the bot has shown it is there: a bot that cannot
            // be reached (401, 404, refused) must not leave a person answering to silence.
            self.timers
                .set(TimerKind::BotOpen, now + self.cfg.bot_open_timeout);
            self.phase = Phase::Opening;
        } else {
            self.dial(now);
        }
    }

    /// Sends the carrier INVITE and arms the ring timeout.
    pub(super) fn dial(&mut self, now: Instant) {
        self.carrier = Leg::Inviting;
        self.emit(Output::SendCarrierInvite);
        self.timers
            .set(TimerKind::Answer, now + self.cfg.answer_timeout);
        self.phase = Phase::Dialing;
    }

    pub(super) fn on_provisional(&mut self, now: Instant, code: u16) {
        match self.phase {
            // 100 Trying only says the next hop has the request; anything above means the far
            // end is alerting or giving progress (180, 181, 182, 183).
            Phase::Dialing if code > 100 => {
                self.times.ringing = Some(self.since_start(now));
                self.phase = Phase::Ringing;
            }
            Phase::Dialing | Phase::Ringing => {}
            _ => self.ignore("provisional outside dialing"),
        }
    }

    pub(super) fn on_carrier_answered(&mut self, now: Instant, sdp_ok: bool) {
        if self.is_ringing_phase() {
            self.carrier = Leg::Up;
            self.timers.cancel(TimerKind::Answer);
            if sdp_ok {
                self.answer(now);
            } else {
                // Never announced as answered: nobody could have heard anybody.
                let c = cause(
                    ReasonCode::Error,
                    "carrier answered without usable SDP",
                    Some(200),
                    None,
                );
                self.begin_end(now, c);
            }
        } else if matches!(self.phase, Phase::Ending(_)) && self.carrier == Leg::Cancelling {
            // CANCEL crossed a 200 OK: the SIP layer ACKs the 200, we end the dialog at once.
            // The latched cause stays; the dialer is never told `answered`.
            self.carrier = Leg::Gone;
            self.emit(Output::ByeCarrier);
        } else {
            self.ignore("duplicate or late 200 OK from carrier");
        }
    }

    fn answer(&mut self, now: Instant) {
        self.answered_notified = true;
        self.times.answered = Some(self.since_start(now));
        // Media first so that no early callee audio escapes AMD/STT.
        self.media_running = true;
        self.emit(Output::StartMedia);
        self.start_recording_with_media();
        let mode = self.cfg.machine_detection;
        if self.recognition_requested {
            self.recognition = Recognition::Bot(true);
            self.emit(Output::StartRecognition { to_bot: true });
        } else if mode != AmdMode::Disabled && self.cfg.recognizer_available {
            // Transcripts make the detector better (a long business greeting is a person):
            // recognise for it whenever a model is there, the text going to no bot.
            self.recognition = Recognition::AmdOnly;
            self.emit(Output::StartRecognition { to_bot: false });
        }
        if mode != AmdMode::Disabled {
            let transcripts = self.cfg.recognizer_available && self.recognition != Recognition::Off;
            self.emit(Output::StartAmd { mode, transcripts });
        }
        self.emit(Output::NotifyAnswered);
        if let Some(max) = self.cfg.max_duration {
            self.timers.set(TimerKind::MaxDuration, now + max);
        }
        self.phase = Phase::Answered;
        match self.bot {
            Leg::Idle => self.place_bot_leg(now),
            // Placed at early media (`early_bot.rs`) and already listening: no second INVITE.
            Leg::Up => self.connect_bot(now),
            // Placed at early media, its INVITE pending: its answer connects it.
            Leg::Inviting | Leg::Cancelling | Leg::Gone => {}
        }
    }

    pub(super) fn on_carrier_failed(
        &mut self,
        now: Instant,
        code: Option<u16>,
        kind: FailureKind,
        reason: String,
    ) {
        if self.is_ringing_phase() {
            self.carrier = Leg::Gone;
            let rc = ReasonCode::from_carrier_failure(code, kind);
            let text = carrier_failure_text(code, kind, &reason);
            self.begin_end(now, cause(rc, text, code, None));
        } else if matches!(self.phase, Phase::Ending(_)) && self.carrier == Leg::Cancelling {
            // The 487 (or any final failure) that completes our CANCEL.
            self.carrier = Leg::Gone;
        } else if self.is_answered_phase() {
            // An established dialog failing (e.g. a refresh re-INVITE answered 481): the carrier
            // leg is gone, which is an error rather than the person hanging up.
            self.carrier = Leg::Gone;
            let text = format!(
                "carrier leg failed: {}",
                carrier_failure_text(code, kind, &reason)
            );
            self.begin_end(now, cause(ReasonCode::Error, text, code, None));
        } else {
            self.ignore("late carrier failure");
        }
    }

    pub(super) fn on_carrier_bye(&mut self, now: Instant) {
        if self.is_answered_phase() {
            self.carrier = Leg::Gone;
            let c = self.carrier_bye_cause();
            self.begin_end(now, c);
        } else {
            // Before a 2xx there is no dialog to BYE (the SIP layer answers 481); after the
            // end the leg is already gone.
            self.ignore("carrier BYE without an established carrier leg");
        }
    }

    pub(super) fn on_bot_answered(&mut self, now: Instant) {
        if matches!(self.phase, Phase::Answered) {
            self.bot = Leg::Up;
            self.timers.cancel(TimerKind::BotAnswer);
            self.connect_bot(now);
        } else if self.bot_pending_early() {
            self.on_bot_answered_early();
        } else if matches!(self.phase, Phase::Ending(_)) && self.bot == Leg::Cancelling {
            self.bot = Leg::Gone;
            self.emit(Output::ByeBot);
        } else {
            self.ignore("duplicate or late 200 OK from bot");
        }
    }

    /// Both legs are up (the person answered, the bot's leg is up): bridge them and tell the bot.
    fn connect_bot(&mut self, now: Instant) {
        self.times.connected = Some(self.since_start(now));
        self.emit(Output::BridgeMedia);
        self.bot_started = true;
        if self.cfg.bot_api {
            self.emit(Output::BotEvent(BotEvent::Start));
        }
        // Events that happened between carrier answer and bot answer (AMD) follow `start`.
        let pending = std::mem::take(&mut self.pending_bot_events);
        for ev in pending {
            self.emit(Output::BotEvent(ev));
        }
        self.phase = Phase::Connected;
        // A text bot's replies that came before the person was there are played now
        // (unless a voicemail was detected and its beep is still awaited).
        if !self.awaiting_beep {
            for p in std::mem::take(&mut self.pending_prompts) {
                self.play(p);
            }
        }
    }

    pub(super) fn on_bot_failed(
        &mut self,
        now: Instant,
        code: Option<u16>,
        kind: FailureKind,
        reason: String,
    ) {
        if matches!(self.phase, Phase::Answered) {
            self.bot = Leg::Gone;
            let text = bot_failure_text(code, kind, &reason);
            self.begin_end(now, cause(ReasonCode::Error, text, None, code));
        } else if self.bot_pending_early() {
            self.on_bot_failed_early(now, code, kind, &reason);
        } else if matches!(self.phase, Phase::Ending(_)) && self.bot == Leg::Cancelling {
            self.bot = Leg::Gone;
        } else if matches!(self.phase, Phase::Connected) && self.bot == Leg::Up {
            // An established bot dialog failing (a session refresh answered 481 or never
            // answered): the bot is gone, which is an error rather than the bot hanging up.
            self.bot = Leg::Gone;
            let text = format!("bot leg failed: {}", reason.trim_end());
            self.begin_end(now, cause(ReasonCode::Error, text, None, code));
        } else {
            self.ignore("bot failure without a pending bot INVITE");
        }
    }

    pub(super) fn on_bot_bye(&mut self, now: Instant) {
        // A bot released by a transfer is already gone: its BYE may cross ours.
        if matches!(self.phase, Phase::Connected) && self.bot == Leg::Up {
            self.bot = Leg::Gone;
            let c = cause(ReasonCode::BotDisconnected, "bot hung up", None, None);
            self.begin_end(now, c);
        } else if self.bot_up_early() {
            self.on_bot_bye_early(now);
        } else {
            self.ignore("bot BYE without an established bot leg");
        }
    }

    /// A leg's dialog vanished without telling why: an established leg is as good as hung up,
    /// a pending one as failed at the transport.
    pub(super) fn on_leg_gone(&mut self, now: Instant, side: LegSide) {
        let leg = match side {
            LegSide::Carrier => self.carrier,
            LegSide::Bot => self.bot,
        };
        match (side, leg) {
            (LegSide::Carrier, Leg::Up) => self.on_carrier_bye(now),
            (LegSide::Bot, Leg::Up) => self.on_bot_bye(now),
            (LegSide::Carrier, Leg::Inviting | Leg::Cancelling) => self.on_carrier_failed(
                now,
                None,
                FailureKind::Transport,
                "the carrier dialog ended without a final response".into(),
            ),
            (LegSide::Bot, Leg::Inviting | Leg::Cancelling) => self.on_bot_failed(
                now,
                None,
                FailureKind::Transport,
                "the bot dialog ended without a final response".into(),
            ),
            _ => self.ignore("a leg that is already over went away"),
        }
    }

    /// Hold, resume or a new address: answered while the leg is up and the call goes on.
    pub(super) fn on_reinvite(&mut self, side: LegSide) {
        let leg = match side {
            LegSide::Carrier => self.carrier,
            LegSide::Bot => self.bot,
        };
        let accept = leg == Leg::Up && self.is_answered_phase() && self.media_running;
        self.emit(Output::AnswerReInvite { side, accept });
    }

    pub(super) fn on_hangup(&mut self, now: Instant, source: HangupSource) {
        let (rc, text) = match source {
            HangupSource::Api => (ReasonCode::ApiHangup, "hang-up requested through the API"),
            HangupSource::BotActivity => (ReasonCode::BotDisconnected, "bot requested hang-up"),
            HangupSource::Shutdown => (ReasonCode::Error, SHUTDOWN_REASON),
        };
        if self.is_live() {
            // From `Initiating` nothing was started: the call fails at once without SIP traffic.
            self.begin_end(now, cause(rc, text, None, None));
        } else {
            self.ignore("hang-up while already ending");
        }
    }

    pub(super) fn on_media_timeout(&mut self, now: Instant) {
        if self.is_answered_phase() {
            let c = cause(
                ReasonCode::MediaTimeout,
                "no RTP received from the callee",
                None,
                None,
            );
            self.begin_end(now, c);
        } else {
            self.ignore("media timeout without running media");
        }
    }

    pub(super) fn on_timer(&mut self, now: Instant, kind: TimerKind) {
        match kind {
            TimerKind::Answer if self.is_ringing_phase() => {
                let text = format!("no answer within {} s", self.cfg.answer_timeout.as_secs());
                self.begin_end(now, cause(ReasonCode::NoAnswer, text, None, None));
            }
            TimerKind::BotAnswer if matches!(self.phase, Phase::Answered) => {
                let text = format!(
                    "bot did not answer within {} s",
                    self.cfg.bot_answer_timeout.as_secs()
                );
                self.begin_end(now, cause(ReasonCode::Error, text, None, None));
            }
            TimerKind::BotAnswer if self.bot_pending_early() => {
                self.on_bot_answer_timeout_early(now)
            }
            TimerKind::BotOpen if matches!(self.phase, Phase::Opening) => {
                let text = format!(
                    "the bot did not open its conversation within {} s; the person was not called",
                    self.cfg.bot_open_timeout.as_secs()
                );
                self.begin_end(now, cause(ReasonCode::Error, text, None, None));
            }
            TimerKind::BotRefresh if self.is_live() => self.refresh_bot_session(now),
            TimerKind::MaxDuration if self.is_answered_phase() => {
                let text = match self.cfg.max_duration {
                    Some(d) => format!("maximum call duration of {} s reached", d.as_secs()),
                    None => "maximum call duration reached".to_owned(),
                };
                self.begin_end(now, cause(ReasonCode::MaxDuration, text, None, None));
            }
            TimerKind::CancelGuard if matches!(self.phase, Phase::Ending(_)) => {
                // The transaction layer has given up by now as well; stop waiting.
                for leg in [&mut self.carrier, &mut self.bot, &mut self.xfer.agent] {
                    if *leg == Leg::Cancelling {
                        *leg = Leg::Gone;
                    }
                }
            }
            TimerKind::Delayed if self.is_live() => self.run_due_activities(now),
            TimerKind::BeepWait if self.is_answered_phase() => self.release_after_beep(),
            TimerKind::Transfer if self.is_live() => self.on_transfer_timeout(),
            TimerKind::SessionRefresh => self.on_session_refresh_due(),
            TimerKind::SessionExpiry => self.on_session_expired(now),
            TimerKind::BotLegSessionRefresh => self.on_bot_session_refresh_due(),
            TimerKind::BotLegSessionExpiry => self.on_bot_session_expired(now),
            // Timers are disarmed when their phase is left, so this is unreachable in
            // practice; keep it harmless.
            _ => self.ignore("timer fired outside its phase"),
        }
    }
}
