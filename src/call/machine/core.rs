//! `CallMachine`: the sans-IO state machine of one outbound call.

use std::time::{Duration, Instant};

use super::reason::{FailureKind, ReasonCode, bot_failure_text, carrier_failure_text};
use super::report::{EndCause, TerminalReport, Times, cause};
use super::timers::TimerTable;
use super::types::{
    Action, AmdMode, AmdOutcome, AmdResult, BotEvent, CallState, Event, HangupSource,
    MachineConfig, TimerKind,
};

/// Where the call is. `Ending` owns the (single, non-`Clone`) end cause until `finish()` moves it
/// into the terminal report and leaves `Ended` behind.
#[derive(Debug)]
enum Phase {
    Initiating,
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
enum Leg {
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

/// The state machine of one outbound call. Feed it events with [`CallMachine::on_event`] and
/// execute the returned actions in order.
#[derive(Debug)]
pub struct CallMachine {
    cfg: MachineConfig,
    phase: Phase,
    started_at: Option<Instant>,
    carrier: Leg,
    bot: Leg,
    timers: TimerTable,
    bot_conversation_open: bool,
    /// `start` was sent: bot events after it go out at once, before it they wait in `pending`.
    bot_started: bool,
    pending_bot_events: Vec<BotEvent>,
    media_running: bool,
    answered_notified: bool,
    times: Times,
    amd: Option<AmdOutcome>,
    ignored_events: u64,
    last_ignored: Option<&'static str>,
}

impl CallMachine {
    /// A machine for one call, in state `Initiating`; nothing happens until `Event::Start`.
    pub fn new(cfg: MachineConfig) -> CallMachine {
        CallMachine {
            cfg,
            phase: Phase::Initiating,
            started_at: None,
            carrier: Leg::Idle,
            bot: Leg::Idle,
            timers: TimerTable::default(),
            bot_conversation_open: false,
            bot_started: false,
            pending_bot_events: Vec::new(),
            media_running: false,
            answered_notified: false,
            times: Times::default(),
            amd: None,
            ignored_events: 0,
            last_ignored: None,
        }
    }

    /// Coarse state for records and metrics.
    pub fn state(&self) -> CallState {
        match self.phase {
            Phase::Initiating => CallState::Initiating,
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

    /// How many events were ignored (late, duplicate, stale or out of place) so far.
    pub fn ignored_events(&self) -> u64 {
        self.ignored_events
    }

    /// Why the last `on_event` call was ignored, if it was (for debug logging by the shell).
    pub fn last_ignored(&self) -> Option<&'static str> {
        self.last_ignored
    }

    /// Handles one event at time `now` and returns what the shell must do, in order.
    /// After the terminal report every event returns no actions.
    pub fn on_event(&mut self, now: Instant, ev: Event) -> Vec<Action> {
        let mut out = Vec::new();
        self.last_ignored = None;
        if matches!(self.phase, Phase::Ended) {
            self.ignore("call already ended");
            return out;
        }
        match ev {
            Event::Start => self.on_start(now, &mut out),
            Event::CarrierProvisional { code, .. } => self.on_provisional(now, code),
            Event::CarrierAnswered { sdp_ok } => self.on_carrier_answered(now, sdp_ok, &mut out),
            Event::CarrierFailed { code, kind, reason } => {
                self.on_carrier_failed(now, code, kind, reason, &mut out)
            }
            Event::CarrierBye => self.on_carrier_bye(now, &mut out),
            Event::BotAnswered => self.on_bot_answered(now, &mut out),
            Event::BotFailed { code, kind, reason } => {
                self.on_bot_failed(now, code, kind, reason, &mut out)
            }
            Event::BotBye => self.on_bot_bye(now, &mut out),
            Event::Hangup { source } => self.on_hangup(now, source, &mut out),
            Event::AmdDecision { result, at_ms } => self.on_amd(now, result, at_ms, &mut out),
            Event::AmdBeep { .. } => self.on_beep(&mut out),
            Event::MediaTimeout => self.on_media_timeout(now, &mut out),
            Event::Timer(id) => {
                if self.timers.fire(id) {
                    self.on_timer(now, id.kind, &mut out)
                } else {
                    self.ignore("stale or cancelled timer")
                }
            }
        }
        self.finish_if_done(now, &mut out);
        out
    }

    fn ignore(&mut self, why: &'static str) {
        self.ignored_events += 1;
        self.last_ignored = Some(why);
    }

    fn is_ringing_phase(&self) -> bool {
        matches!(self.phase, Phase::Dialing | Phase::Ringing)
    }

    fn is_answered_phase(&self) -> bool {
        matches!(self.phase, Phase::Answered | Phase::Connected)
    }

    fn since_start(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.started_at.unwrap_or(now))
    }

    fn on_start(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !matches!(self.phase, Phase::Initiating) {
            return self.ignore("duplicate start");
        }
        self.started_at = Some(now);
        if self.cfg.dialout_initiated_event {
            self.open_bot_conversation(out);
            // Not queued behind `start`: dialoutInitiated is by definition the first event.
            out.push(Action::BotEvent(BotEvent::DialoutInitiated));
        }
        self.carrier = Leg::Inviting;
        out.push(Action::SendCarrierInvite);
        self.timers
            .set(TimerKind::Answer, now + self.cfg.answer_timeout, out);
        self.phase = Phase::Dialing;
    }

    fn on_provisional(&mut self, now: Instant, code: u16) {
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

    fn on_carrier_answered(&mut self, now: Instant, sdp_ok: bool, out: &mut Vec<Action>) {
        if self.is_ringing_phase() {
            self.carrier = Leg::Up;
            self.timers.cancel(TimerKind::Answer, out);
            if sdp_ok {
                self.answer(now, out);
            } else {
                // Never announced as answered: nobody could have heard anybody.
                self.begin_end(
                    now,
                    cause(
                        ReasonCode::Error,
                        "carrier answered without usable SDP",
                        Some(200),
                        None,
                    ),
                    out,
                );
            }
        } else if matches!(self.phase, Phase::Ending(_)) && self.carrier == Leg::Cancelling {
            // CANCEL crossed a 200 OK: the SIP layer ACKs the 200, we end the dialog at once.
            // The latched cause stays; the dialer is never told `answered`.
            self.carrier = Leg::Gone;
            out.push(Action::ByeCarrier);
        } else {
            self.ignore("duplicate or late 200 OK from carrier");
        }
    }

    fn answer(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.answered_notified = true;
        self.times.answered = Some(self.since_start(now));
        // Media first so that no early callee audio escapes AMD/STT.
        self.media_running = true;
        out.push(Action::StartMedia);
        if self.cfg.machine_detection != AmdMode::Disabled {
            out.push(Action::StartAmd(self.cfg.machine_detection));
        }
        if self.cfg.start_recognition_on_connect {
            out.push(Action::StartStt);
        }
        out.push(Action::NotifyAnswered);
        self.open_bot_conversation(out);
        self.bot = Leg::Inviting;
        out.push(Action::SendBotInvite);
        self.timers
            .set(TimerKind::BotAnswer, now + self.cfg.bot_answer_timeout, out);
        if let Some(max) = self.cfg.max_duration {
            self.timers.set(TimerKind::MaxDuration, now + max, out);
        }
        self.phase = Phase::Answered;
    }

    fn on_carrier_failed(
        &mut self,
        now: Instant,
        code: Option<u16>,
        kind: FailureKind,
        reason: String,
        out: &mut Vec<Action>,
    ) {
        if self.is_ringing_phase() {
            self.carrier = Leg::Gone;
            let rc = ReasonCode::from_carrier_failure(code, kind);
            let text = carrier_failure_text(code, kind, &reason);
            self.begin_end(now, cause(rc, text, code, None), out);
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
            self.begin_end(now, cause(ReasonCode::Error, text, code, None), out);
        } else {
            self.ignore("late carrier failure");
        }
    }

    fn on_carrier_bye(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.is_answered_phase() {
            self.carrier = Leg::Gone;
            self.begin_end(
                now,
                cause(ReasonCode::ClientDisconnected, "callee hung up", None, None),
                out,
            );
        } else {
            // Before a 2xx there is no dialog to BYE (the SIP layer answers 481); after the
            // end the leg is already gone.
            self.ignore("carrier BYE without an established carrier leg");
        }
    }

    fn on_bot_answered(&mut self, now: Instant, out: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Answered) {
            self.bot = Leg::Up;
            self.timers.cancel(TimerKind::BotAnswer, out);
            self.times.connected = Some(self.since_start(now));
            out.push(Action::BridgeMedia);
            self.bot_started = true;
            out.push(Action::BotEvent(BotEvent::Start));
            // Events that happened between carrier answer and bot answer (AMD) follow `start`.
            out.extend(self.pending_bot_events.drain(..).map(Action::BotEvent));
            self.phase = Phase::Connected;
        } else if matches!(self.phase, Phase::Ending(_)) && self.bot == Leg::Cancelling {
            self.bot = Leg::Gone;
            out.push(Action::ByeBot);
        } else {
            self.ignore("duplicate or late 200 OK from bot");
        }
    }

    fn on_bot_failed(
        &mut self,
        now: Instant,
        code: Option<u16>,
        kind: FailureKind,
        reason: String,
        out: &mut Vec<Action>,
    ) {
        if matches!(self.phase, Phase::Answered) {
            self.bot = Leg::Gone;
            let text = bot_failure_text(code, kind, &reason);
            self.begin_end(now, cause(ReasonCode::Error, text, None, code), out);
        } else if matches!(self.phase, Phase::Ending(_)) && self.bot == Leg::Cancelling {
            self.bot = Leg::Gone;
        } else {
            self.ignore("bot failure without a pending bot INVITE");
        }
    }

    fn on_bot_bye(&mut self, now: Instant, out: &mut Vec<Action>) {
        if matches!(self.phase, Phase::Connected) {
            self.bot = Leg::Gone;
            self.begin_end(
                now,
                cause(ReasonCode::BotDisconnected, "bot hung up", None, None),
                out,
            );
        } else {
            self.ignore("bot BYE without an established bot leg");
        }
    }

    fn on_hangup(&mut self, now: Instant, source: HangupSource, out: &mut Vec<Action>) {
        let (rc, text) = match source {
            HangupSource::Api => (ReasonCode::ApiHangup, "hang-up requested through the API"),
            HangupSource::BotActivity => (ReasonCode::BotDisconnected, "bot requested hang-up"),
        };
        match self.phase {
            Phase::Initiating => {
                // Nothing was started: the call fails at once without any SIP traffic.
                self.started_at = Some(now);
                self.begin_end(now, cause(rc, text, None, None), out);
            }
            Phase::Dialing | Phase::Ringing | Phase::Answered | Phase::Connected => {
                self.begin_end(now, cause(rc, text, None, None), out)
            }
            Phase::Ending(_) | Phase::Ended => self.ignore("hang-up while already ending"),
        }
    }

    fn on_amd(&mut self, now: Instant, result: AmdResult, at_ms: u32, out: &mut Vec<Action>) {
        let mode = self.cfg.machine_detection;
        if !self.is_answered_phase() || mode == AmdMode::Disabled || self.amd.is_some() {
            return self.ignore("AMD decision not expected");
        }
        self.amd = Some(AmdOutcome { result, at_ms });
        self.push_bot_event(BotEvent::MachineDetection { value: result }, out);
        if mode == AmdMode::Disconnect && matches!(result, AmdResult::Machine | AmdResult::Fax) {
            let text = match result {
                AmdResult::Fax => "fax detected",
                _ => "answering machine detected",
            };
            self.begin_end(
                now,
                cause(ReasonCode::MachineDetected, text, None, None),
                out,
            );
        }
    }

    fn on_beep(&mut self, out: &mut Vec<Action>) {
        if self.is_answered_phase() && self.cfg.machine_detection != AmdMode::Disabled {
            self.push_bot_event(BotEvent::Beep, out);
        } else {
            self.ignore("beep not expected");
        }
    }

    fn on_media_timeout(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.is_answered_phase() {
            self.begin_end(
                now,
                cause(
                    ReasonCode::MediaTimeout,
                    "no RTP received from the callee",
                    None,
                    None,
                ),
                out,
            );
        } else {
            self.ignore("media timeout without running media");
        }
    }

    fn on_timer(&mut self, now: Instant, kind: TimerKind, out: &mut Vec<Action>) {
        match kind {
            TimerKind::Answer if self.is_ringing_phase() => {
                let text = format!("no answer within {} s", self.cfg.answer_timeout.as_secs());
                self.begin_end(now, cause(ReasonCode::NoAnswer, text, None, None), out);
            }
            TimerKind::BotAnswer if matches!(self.phase, Phase::Answered) => {
                let text = format!(
                    "bot did not answer within {} s",
                    self.cfg.bot_answer_timeout.as_secs()
                );
                self.begin_end(now, cause(ReasonCode::Error, text, None, None), out);
            }
            TimerKind::MaxDuration if self.is_answered_phase() => {
                let text = match self.cfg.max_duration {
                    Some(d) => format!("maximum call duration of {} s reached", d.as_secs()),
                    None => "maximum call duration reached".to_owned(),
                };
                self.begin_end(now, cause(ReasonCode::MaxDuration, text, None, None), out);
            }
            TimerKind::CancelGuard if matches!(self.phase, Phase::Ending(_)) => {
                // The transaction layer has given up by now as well; stop waiting.
                for leg in [&mut self.carrier, &mut self.bot] {
                    if *leg == Leg::Cancelling {
                        *leg = Leg::Gone;
                    }
                }
            }
            // Timers are disarmed when their phase is left, so this is unreachable in
            // practice; keep it harmless.
            _ => self.ignore("timer fired outside its phase"),
        }
    }

    fn open_bot_conversation(&mut self, out: &mut Vec<Action>) {
        if !self.bot_conversation_open {
            self.bot_conversation_open = true;
            out.push(Action::OpenBotConversation);
        }
    }

    fn push_bot_event(&mut self, ev: BotEvent, out: &mut Vec<Action>) {
        if self.bot_started {
            out.push(Action::BotEvent(ev));
        } else {
            self.pending_bot_events.push(ev);
        }
    }

    /// Latches `cause` and tears down whatever is still alive. The first cause wins: every
    /// caller is in a live phase, and `Ending` ignores further causes.
    fn begin_end(&mut self, now: Instant, cause: EndCause, out: &mut Vec<Action>) {
        match self.carrier {
            Leg::Inviting => {
                self.carrier = Leg::Cancelling;
                out.push(Action::CancelCarrier);
            }
            Leg::Up => {
                self.carrier = Leg::Gone;
                out.push(Action::ByeCarrier);
            }
            Leg::Idle | Leg::Cancelling | Leg::Gone => {}
        }
        match self.bot {
            Leg::Inviting => {
                self.bot = Leg::Cancelling;
                out.push(Action::CancelBot);
            }
            Leg::Up => {
                self.bot = Leg::Gone;
                out.push(Action::ByeBot);
            }
            Leg::Idle | Leg::Cancelling | Leg::Gone => {}
        }
        if self.media_running {
            self.media_running = false;
            out.push(Action::StopMedia);
        }
        // A bot that never got `start` must not get events meant for a connected call.
        self.pending_bot_events.clear();
        self.timers.cancel_all(out);
        if self.carrier == Leg::Cancelling || self.bot == Leg::Cancelling {
            self.timers
                .set(TimerKind::CancelGuard, now + self.cfg.cancel_guard, out);
        }
        self.phase = Phase::Ending(cause);
    }

    fn finish_if_done(&mut self, now: Instant, out: &mut Vec<Action>) {
        let waiting = self.carrier == Leg::Cancelling || self.bot == Leg::Cancelling;
        if waiting || !matches!(self.phase, Phase::Ending(_)) {
            return;
        }
        if let Phase::Ending(cause) = std::mem::replace(&mut self.phase, Phase::Ended) {
            self.finish(now, cause, out);
        }
    }

    /// The only producer of `Action::Terminal`. Consumes the end cause; the phase is already
    /// `Ended`, so `on_event` can never reach here again.
    fn finish(&mut self, now: Instant, mut cause: EndCause, out: &mut Vec<Action>) {
        self.timers.cancel_all(out);
        if self.answered_notified && cause.sip_code.is_none() {
            // sipCode describes the carrier leg: once answered, that is its 200.
            cause.sip_code = Some(200);
        }
        if self.bot_conversation_open {
            out.push(Action::BotDisconnect {
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
        out.push(Action::Terminal(report));
    }
}
