//! `CallMachine`: the sans-IO state machine of one outbound call — its state, its interface
//! (`handle` / `handle_timeout` / `poll_output` / `poll_timeout`, as quinn-proto and str0m do it)
//! and the teardown that ends in exactly one terminal report. The inputs are handled in
//! `legs.rs` (SIP legs, media, hang-ups) and `bot.rs` (Bot API, activities, recognition, AMD).

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::report::{EndCause, TerminalReport, Times};
use super::timers::TimerTable;
use super::types::{AmdOutcome, CallState, Input, MachineConfig, Output, TimerKind};
use crate::core::activity::{Activity, EventSet};

/// Where the call is. `Ending` owns the (single, non-`Clone`) end cause until `finish()` moves it
/// into the terminal report and leaves `Ended` behind.
#[derive(Debug)]
pub(super) enum Phase {
    Initiating,
    /// `dialoutInitiated` went to the bot; the person is called once its conversation is open.
    Opening,
    Dialing,
    Ringing,
    Answered,
    Connected,
    Ending(EndCause),
    Ended,
}

/// One SIP leg as the machine sees it. Used to guarantee that CANCEL/BYE only go to a leg in
/// the state where they make sense, and to know when a teardown is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Leg {
    /// No INVITE sent yet.
    Idle,
    /// INVITE sent, no final response.
    Inviting,
    /// 2xx accepted; the dialog is up.
    Up,
    /// CANCEL sent; waiting for the final response (487, or a racing 2xx that gets a BYE).
    Cancelling,
    /// Over (failed, BYE sent or received, or given up on).
    Gone,
}

/// Who gets the recogniser's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recognition {
    /// No session.
    Off,
    /// A session that only feeds machine detection (and the call record); ends with its decision.
    AmdOnly,
    /// A session for the bot; its text reaches the bot while `true`.
    Bot(bool),
}

/// The state machine of one outbound call. Feed it with [`CallMachine::handle`] and
/// [`CallMachine::handle_timeout`]; carry out what [`CallMachine::poll_output`] returns, in order.
#[derive(Debug)]
pub struct CallMachine {
    pub(super) cfg: MachineConfig,
    pub(super) phase: Phase,
    pub(super) started_at: Option<Instant>,
    pub(super) carrier: Leg,
    pub(super) bot: Leg,
    pub(super) timers: TimerTable,
    pub(super) out: VecDeque<Output>,
    pub(super) bot_conversation_open: bool,
    pub(super) refresh_every: Option<Duration>,
    /// `start` was sent: bot events after it go out at once, before it they wait in `pending`.
    pub(super) bot_started: bool,
    pub(super) pending_bot_events: Vec<super::types::BotEvent>,
    pub(super) media_running: bool,
    pub(super) recognition: Recognition,
    /// `startRecognition` arrived before the answer: start it with the media.
    pub(super) recognition_requested: bool,
    pub(super) delayed: Vec<(Instant, Activity)>,
    /// A text bot's prompts that arrived before the call was connected (played at connect).
    pub(super) pending_prompts: Vec<super::types::Prompt>,
    /// Prompts handed to the player whose end has not been reported yet.
    pub(super) playing: bool,
    /// Prompt state beyond `playing` (key presses in flight, cut prompts, barge-in).
    pub(super) prompts: super::prompts::PromptState,
    /// A voicemail answered: a text bot's prompts wait for the beep.
    pub(super) awaiting_beep: bool,
    /// Activity labels already noted as not handled (noted once per call).
    pub(super) noted: HashSet<String>,
    pub(super) answered_notified: bool,
    pub(super) times: Times,
    pub(super) amd: Option<AmdOutcome>,
    /// The carrier session interval (RFC 4028), once negotiated.
    pub(super) session_interval: Option<Duration>,
    /// The bot-leg session interval (RFC 4028), once negotiated.
    pub(super) bot_session_interval: Option<Duration>,
    /// The optional events (`sendEventsToBot`) the bot gets; see `session.rs`.
    pub(super) bot_events: EventSet,
    /// Where the call's recording is (see `recording.rs`).
    pub(super) recording: super::recording::RecState,
    ignored_events: u64,
    last_ignored: Option<&'static str>,
    /// A `transfer` activity's progress and the agent's leg.
    pub(super) xfer: super::transfer::TransferState,
}

impl CallMachine {
    /// A machine for one call, in state `Initiating`; nothing happens until `Input::Start`.
    pub fn new(cfg: MachineConfig) -> CallMachine {
        let cfg_barge_in = cfg.barge_in;
        CallMachine {
            recognition_requested: cfg.start_recognition_on_connect,
            phase: Phase::Initiating,
            started_at: None,
            carrier: Leg::Idle,
            bot: Leg::Idle,
            timers: TimerTable::default(),
            out: VecDeque::new(),
            bot_conversation_open: false,
            refresh_every: None,
            bot_started: false,
            pending_bot_events: Vec::new(),
            media_running: false,
            recognition: Recognition::Off,
            delayed: Vec::new(),
            pending_prompts: Vec::new(),
            playing: false,
            prompts: super::prompts::PromptState::new(cfg_barge_in),
            awaiting_beep: false,
            noted: HashSet::new(),
            answered_notified: false,
            times: Times::default(),
            amd: None,
            session_interval: None,
            bot_session_interval: None,
            bot_events: EventSet::default_for_bots(),
            recording: super::recording::RecState::initial(cfg.recording),
            ignored_events: 0,
            last_ignored: None,
            xfer: Default::default(),
            cfg,
        }
    }

    /// Coarse state for records and metrics.
    pub fn state(&self) -> CallState {
        match self.phase {
            Phase::Initiating | Phase::Opening => CallState::Initiating,
            Phase::Dialing => CallState::Dialing,
            Phase::Ringing => CallState::Ringing,
            Phase::Answered => CallState::Answered,
            Phase::Connected => CallState::Connected,
            Phase::Ending(_) => CallState::Ending,
            Phase::Ended => CallState::Ended,
        }
    }

    /// The settings this call runs with.
    pub fn config(&self) -> &MachineConfig {
        &self.cfg
    }

    /// The first AMD decision, if any.
    pub fn amd(&self) -> Option<AmdOutcome> {
        self.amd
    }

    /// How many inputs were ignored (late, duplicate or out of place) so far.
    pub fn ignored_events(&self) -> u64 {
        self.ignored_events
    }

    /// Why the last input was ignored, if it was (for debug logging by the shell).
    pub fn last_ignored(&self) -> Option<&'static str> {
        self.last_ignored
    }

    /// Handles one input at time `now`; its consequences come out of [`Self::poll_output`].
    /// After the terminal report every input is ignored.
    pub fn handle(&mut self, now: Instant, input: Input) {
        self.last_ignored = None;
        if matches!(self.phase, Phase::Ended) {
            return self.ignore("call already ended");
        }
        self.dispatch(now, input);
        self.finish_if_done(now);
    }

    /// Fires every timer whose deadline is at or before `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.last_ignored = None;
        // Bounded: each pass disarms one timer, and a handler re-arms at most its own kind
        // (the refresh) in the future.
        for _ in 0..16 {
            if matches!(self.phase, Phase::Ended) {
                return;
            }
            let Some(kind) = self.timers.take_due(now) else {
                return;
            };
            self.on_timer(now, kind);
            self.finish_if_done(now);
        }
    }

    /// The next thing the shell must do, in order; `None` when there is nothing (more) to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] must be called next; `None` when no timer is armed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    /// When the `kind` timer expires, if it is armed (diagnostics and tests).
    pub fn timer_deadline(&self, kind: TimerKind) -> Option<Instant> {
        self.timers.deadline(kind)
    }

    fn dispatch(&mut self, now: Instant, input: Input) {
        match input {
            Input::Start => self.on_start(now),
            Input::CarrierProvisional { code, has_sdp } => {
                self.on_provisional(now, code);
                if has_sdp {
                    self.on_early_sdp(now);
                }
            }
            Input::CarrierAnswered { sdp_ok } => self.on_carrier_answered(now, sdp_ok),
            Input::CarrierFailed { code, kind, reason } => {
                self.on_carrier_failed(now, code, kind, reason)
            }
            Input::CarrierBye => self.on_carrier_bye(now),
            Input::BotAnswered => self.on_bot_answered(now),
            Input::BotFailed { code, kind, reason } => self.on_bot_failed(now, code, kind, reason),
            Input::BotBye => self.on_bot_bye(now),
            Input::LegGone(side) => self.on_leg_gone(now, side),
            Input::ReInvite(side) => self.on_reinvite(side),
            Input::Hangup { source } => self.on_hangup(now, source),
            Input::BotSessionOpened { expires } => self.on_bot_session_opened(now, expires),
            Input::BotUnreachable { reason } => self.on_bot_unreachable(now, reason),
            Input::BotActivity(a) => self.on_bot_activity(now, a),
            Input::Recognised { text, confidence } => self.on_recognised(text, confidence),
            Input::RecognitionFailed { reason } => self.on_recognition_failed(reason),
            Input::AmdDecision { result, at_ms } => self.on_amd(now, result, at_ms),
            Input::AmdBeep { .. } => self.on_beep(),
            Input::MediaTimeout => self.on_media_timeout(now),
            Input::Dtmf(digit) => self.on_dtmf(digit),
            Input::PlaybackDone => self.on_playback_done(),
            Input::Transfer(t) => self.on_transfer_input(now, t),
            Input::CarrierSessionTimer {
                interval,
                we_refresh,
            } => self.on_carrier_session_timer(now, interval, we_refresh),
            Input::EarlyIntercept { sit, heard } => self.on_early_intercept(now, sit, heard),
            Input::PromptFailed { url, reason } => self.on_prompt_failed(url, reason),
            Input::SpeechStarted => self.on_speech_started(),
            Input::BotSocketLost { reason } => self.on_bot_socket_lost(now, reason),
            Input::BotLegSessionTimer {
                interval,
                we_refresh,
            } => self.on_bot_session_timer(now, interval, we_refresh),
        }
    }

    pub(super) fn ignore(&mut self, why: &'static str) {
        self.ignored_events += 1;
        self.last_ignored = Some(why);
    }

    pub(super) fn emit(&mut self, o: Output) {
        self.out.push_back(o);
    }

    pub(super) fn is_ringing_phase(&self) -> bool {
        matches!(self.phase, Phase::Dialing | Phase::Ringing)
    }

    pub(super) fn is_answered_phase(&self) -> bool {
        matches!(self.phase, Phase::Answered | Phase::Connected)
    }

    /// Still before the end (any phase in which a cause may be latched).
    pub(super) fn is_live(&self) -> bool {
        !matches!(self.phase, Phase::Ending(_) | Phase::Ended)
    }

    pub(super) fn since_start(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started_at.unwrap_or(now))
    }

    /// Latches `cause` and tears down whatever is still alive. The first cause wins: every
    /// caller is in a live phase, and `Ending` ignores further causes.
    pub(super) fn begin_end(&mut self, now: Instant, cause: EndCause) {
        if self.started_at.is_none() {
            self.started_at = Some(now);
        }
        match self.carrier {
            Leg::Inviting => {
                self.carrier = Leg::Cancelling;
                self.emit(Output::CancelCarrier);
            }
            Leg::Up => {
                self.carrier = Leg::Gone;
                self.emit(Output::ByeCarrier);
            }
            Leg::Idle | Leg::Cancelling | Leg::Gone => {}
        }
        match self.bot {
            Leg::Inviting => {
                self.bot = Leg::Cancelling;
                self.emit(Output::CancelBot);
            }
            Leg::Up => {
                self.bot = Leg::Gone;
                self.emit(Output::ByeBot);
            }
            Leg::Idle | Leg::Cancelling | Leg::Gone => {}
        }
        self.end_transfer();
        if self.media_running {
            self.media_running = false;
            self.recognition = Recognition::Off;
            self.emit(Output::StopMedia);
        }
        // A bot that never got `start` must not get events meant for a connected call, and
        // delayed activities die with the call.
        self.pending_bot_events.clear();
        self.delayed.clear();
        self.pending_prompts.clear();
        self.timers.cancel_all();
        if self.waiting_for_cancel() {
            self.timers
                .set(TimerKind::CancelGuard, now + self.cfg.cancel_guard);
        }
        self.phase = Phase::Ending(cause);
    }

    /// A CANCELled INVITE (carrier, bot or agent) has not finished yet.
    fn waiting_for_cancel(&self) -> bool {
        [self.carrier, self.bot, self.xfer.agent].contains(&Leg::Cancelling)
    }

    fn finish_if_done(&mut self, now: Instant) {
        if self.waiting_for_cancel() || !matches!(self.phase, Phase::Ending(_)) {
            return;
        }
        if let Phase::Ending(cause) = std::mem::replace(&mut self.phase, Phase::Ended) {
            self.finish(now, cause);
        }
    }

    /// The only producer of `Output::Terminal`. Consumes the end cause; the phase is already
    /// `Ended`, so `handle` can never reach here again.
    fn finish(&mut self, now: Instant, mut cause: EndCause) {
        self.timers.cancel_all();
        if self.answered_notified && cause.sip_code.is_none() {
            // sipCode describes the carrier leg: once answered, that is its 200.
            cause.sip_code = Some(200);
        }
        if self.bot_conversation_open {
            self.emit(Output::BotDisconnect {
                reason: cause.reason.clone(),
                reason_code: cause.reason_code,
            });
        }
        let report = TerminalReport::build(
            cause,
            self.answered_notified,
            self.times,
            self.since_start(now),
            self.amd,
        );
        self.emit(Output::Terminal(report));
    }
}
