//! The machine's handling of the bot side: the Bot API conversation (open, refresh, failure),
//! the bot's activities, who gets recognised speech, and machine detection.

use std::time::{Duration, Instant};

use super::core::{CallMachine, Phase, Recognition};
use super::reason::ReasonCode;
use super::report::cause;
use super::types::{
    AmdMode, AmdOutcome, AmdResult, BotEvent, HangupSource, Output, Prompt, TimerKind,
};
use crate::core::activity::{Activity, BotActivity};

/// How long before a Bot API session expires it is refreshed: at 80 % of its lifetime, and
/// never later than a second before the end (so a bot announcing 4 s is refreshed at 3 s).
pub fn refresh_interval(expires: Duration) -> Duration {
    let at_80 = expires.mul_f64(0.8);
    let one_early = expires.saturating_sub(Duration::from_secs(1));
    at_80.min(one_early).max(Duration::from_millis(200))
}

/// The most delayed activities one call may hold at once; more are refused (noted).
const MAX_DELAYED: usize = 64;

impl CallMachine {
    pub(super) fn open_bot_conversation(&mut self) {
        if self.cfg.bot_api && !self.bot_conversation_open {
            self.bot_conversation_open = true;
            self.emit(Output::OpenBotConversation);
        }
    }

    pub(super) fn push_bot_event(&mut self, ev: BotEvent) {
        if !self.cfg.bot_api || self.xfer.bridged() {
            // No Bot API, or the bot was released by a transfer: nobody to tell.
        } else if !self.bot_wants(&ev) {
            // Switched off by the bot's `sendEventsToBot`.
        } else if self.bot_started {
            self.emit(Output::BotEvent(ev));
        } else {
            self.pending_bot_events.push(ev);
        }
    }

    pub(super) fn on_bot_session_opened(&mut self, now: Instant, expires: Option<Duration>) {
        if !self.is_live() || !self.bot_conversation_open {
            return self.ignore("bot conversation opened after the end");
        }
        if let Some(e) = expires.filter(|e| !e.is_zero()) {
            let every = refresh_interval(e);
            self.refresh_every = Some(every);
            self.timers.set(TimerKind::BotRefresh, now + every);
        }
        if matches!(self.phase, Phase::Opening) {
            self.timers.cancel(TimerKind::BotOpen);
            self.dial(now);
        }
    }

    pub(super) fn refresh_bot_session(&mut self, now: Instant) {
        self.emit(Output::RefreshBotSession);
        if let Some(every) = self.refresh_every {
            self.timers.set(TimerKind::BotRefresh, now + every);
        }
    }

    /// A Bot API request was refused or never got through. Before the person is called, the
    /// call fails without calling them; after, a deaf bot must not stay bridged to a person.
    pub(super) fn on_bot_unreachable(&mut self, now: Instant, reason: String) {
        if !self.is_live() {
            return self.ignore("bot unreachable after the end");
        }
        let text = match self.phase {
            Phase::Opening => {
                format!("the bot cannot be reached ({reason}); the person was not called")
            }
            _ => format!("the bot cannot be reached ({reason})"),
        };
        self.begin_end(now, cause(ReasonCode::Error, text, None, None));
    }

    pub(super) fn on_bot_activity(&mut self, now: Instant, a: BotActivity) {
        if let (Phase::Ending(_), Activity::Transfer(req)) = (&self.phase, &a.activity) {
            // The bot hears why its transfer will not happen.
            return self.on_transfer_activity(now, req.clone());
        }
        if !self.is_live() {
            return self.ignore("bot activity after the end");
        }
        if self.xfer.bridged() {
            return self.ignore("activity from a bot released by a transfer");
        }
        match a.delay {
            Some(d) if self.delayed.len() < MAX_DELAYED => {
                self.delayed.push((now + d, a.activity));
                self.arm_delayed();
            }
            Some(_) => self.note_once(
                "too many delayed activities",
                format!(
                    "{} refused: {MAX_DELAYED} delayed activities pending",
                    a.activity.name()
                ),
            ),
            None => self.apply_activity(now, a.activity),
        }
    }

    fn arm_delayed(&mut self) {
        match self.delayed.iter().map(|(at, _)| *at).min() {
            Some(at) => self.timers.set(TimerKind::Delayed, at),
            None => self.timers.cancel(TimerKind::Delayed),
        }
    }

    /// Runs every delayed activity that is due, in the order they fall due (ties: arrival).
    pub(super) fn run_due_activities(&mut self, now: Instant) {
        let mut due = Vec::new();
        let mut i = 0;
        while i < self.delayed.len() {
            if self.delayed[i].0 <= now {
                due.push(self.delayed.remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|(at, _)| *at);
        for (_, activity) in due {
            if !self.is_live() {
                break;
            }
            self.apply_activity(now, activity);
        }
        if self.is_live() {
            self.arm_delayed();
        }
    }

    /// What each activity does to the call.
    fn apply_activity(&mut self, now: Instant, activity: Activity) {
        match activity {
            Activity::Hangup { reason } => {
                let note = match reason {
                    Some(r) => format!("hangup activity from the bot: {r}"),
                    None => "hangup activity from the bot".to_owned(),
                };
                self.emit(Output::Timeline {
                    kind: "hangup",
                    note,
                });
                self.on_hangup(now, HangupSource::BotActivity);
            }
            Activity::StartRecognition if self.xfer.under_way() => {
                self.xfer.set_resume_recognition(true)
            }
            Activity::StopRecognition if self.xfer.under_way() => {
                self.xfer.set_resume_recognition(false)
            }
            Activity::StartRecognition => self.start_recognition_for_bot(),
            Activity::Transfer(req) => self.on_transfer_activity(now, req),
            a @ (Activity::Message { .. }
            | Activity::PlayUrl { .. }
            | Activity::SendDtmf { .. }
            | Activity::AbortPrompts) => self.prompt_activity(a),
            Activity::StopRecognition => self.stop_recognition_for_bot(),
            Activity::Config(c) => self.apply_session_config(c),
            Activity::Recording(op) => self.on_recording_activity(op),
            Activity::SendMetaData { value } => self.on_send_metadata(value),
            Activity::Unknown { label, why } => {
                self.note_once(&label, format!("activity `{label}` ignored: {why}"))
            }
        }
    }

    /// A text bot's prompt: played once the person is connected to the bot (nothing is played
    /// before the answer), queued until then.
    pub(super) fn prompt(&mut self, p: Prompt) {
        if matches!(self.phase, Phase::Connected) && !self.awaiting_beep {
            self.play(p);
        } else {
            self.pending_prompts.push(p);
        }
    }

    /// The beep came (or the wait for it ended): the held prompts play now.
    pub(super) fn release_after_beep(&mut self) {
        if !self.awaiting_beep {
            return;
        }
        self.awaiting_beep = false;
        self.timers.cancel(TimerKind::BeepWait);
        if matches!(self.phase, Phase::Connected) {
            for p in std::mem::take(&mut self.pending_prompts) {
                self.play(p);
            }
        }
    }

    pub(super) fn play(&mut self, p: Prompt) {
        // Key presses are not prompts the bot waits on: no `playFinished` for them alone.
        if !matches!(p, Prompt::Dtmf(_)) {
            self.playing = true;
        }
        self.prompts.in_player = true;
        self.emit(Output::Play(p));
    }

    /// Records a line on the timeline the first time `key` comes up in this call.
    pub(super) fn note_once(&mut self, key: &str, note: String) {
        if self.noted.insert(key.to_owned()) {
            self.emit(Output::Timeline {
                kind: "activity",
                note,
            });
        }
    }

    pub(super) fn start_recognition_for_bot(&mut self) {
        if !self.media_running {
            // Before the answer: recognition starts with the media.
            if !self.answered_notified {
                self.recognition_requested = true;
            }
            return;
        }
        match self.recognition {
            Recognition::Off => {
                self.recognition = Recognition::Bot(true);
                self.emit(Output::StartRecognition { to_bot: true });
            }
            Recognition::AmdOnly | Recognition::Bot(false) => {
                self.recognition = Recognition::Bot(true);
                self.emit(Output::RecognitionToBot(true));
            }
            Recognition::Bot(true) => {}
        }
    }

    pub(super) fn stop_recognition_for_bot(&mut self) {
        self.recognition_requested = false;
        if self.recognition == Recognition::Bot(true) {
            self.recognition = Recognition::Bot(false);
            self.emit(Output::RecognitionToBot(false));
        }
    }

    pub(super) fn on_recognised(&mut self, text: String, confidence: f32) {
        if self.recognition == Recognition::Bot(true) && self.is_answered_phase() {
            self.push_bot_event(BotEvent::Message { text, confidence });
        } else {
            self.ignore("recognised text not for the bot");
        }
    }

    pub(super) fn on_recognition_failed(&mut self, reason: String) {
        if self.recognition != Recognition::Off {
            self.recognition = Recognition::Off;
            self.emit(Output::Timeline {
                kind: "stt",
                note: format!("speech recognition unavailable: {reason}"),
            });
        }
    }

    pub(super) fn on_amd(&mut self, now: Instant, result: AmdResult, at_ms: u32) {
        let mode = self.cfg.machine_detection;
        if !self.is_answered_phase()
            || mode == AmdMode::Disabled
            || self.amd.is_some()
            || self.xfer.detection_stopped
        {
            return self.ignore("AMD decision not expected");
        }
        self.amd = Some(AmdOutcome { result, at_ms });
        if self.recognition == Recognition::AmdOnly {
            // It only served the detector, which has decided.
            self.recognition = Recognition::Off;
            self.emit(Output::StopRecognition);
        }
        self.push_bot_event(BotEvent::MachineDetection { value: result });
        if result == AmdResult::Machine && self.cfg.text_bot && mode == AmdMode::Detect {
            // A voicemail: what the text bot says next (its message for the mailbox) waits for
            // the beep, or a bounded time when no beep is heard.
            self.awaiting_beep = true;
            self.timers
                .set(TimerKind::BeepWait, now + self.cfg.beep_wait);
        }
        if mode == AmdMode::Disconnect && matches!(result, AmdResult::Machine | AmdResult::Fax) {
            let text = match result {
                AmdResult::Fax => "fax detected",
                _ => "answering machine detected",
            };
            self.begin_end(now, cause(ReasonCode::MachineDetected, text, None, None));
        }
    }

    /// Key presses reach the bot one event per digit, in order, once the call is answered.
    pub(super) fn on_dtmf(&mut self, digit: char) {
        if self.is_answered_phase() {
            self.push_bot_event(BotEvent::Dtmf { digit });
        } else {
            self.ignore("key press outside an answered call");
        }
    }

    pub(super) fn on_beep(&mut self) {
        if self.is_answered_phase() && self.cfg.machine_detection != AmdMode::Disabled {
            self.push_bot_event(BotEvent::Beep);
            self.release_after_beep();
        } else {
            self.ignore("beep not expected");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refresh_interval;
    use std::time::Duration;

    #[test]
    fn a_session_is_refreshed_before_it_expires_whatever_its_lifetime() {
        for secs in [1u64, 2, 4, 5, 10, 60, 300, 3600] {
            let e = Duration::from_secs(secs);
            let r = refresh_interval(e);
            assert!(r < e, "{secs} s refreshed at {r:?}");
            assert!(r >= Duration::from_millis(200));
        }
        assert_eq!(
            refresh_interval(Duration::from_secs(4)),
            Duration::from_secs(3)
        );
        assert_eq!(
            refresh_interval(Duration::from_secs(300)),
            Duration::from_secs(240)
        );
    }
}
