//! The `config` activity (typed in `core::session_config`): recognition on/off, barge-in, and
//! which optional events reach the bot. The filter applies when an event is produced, so an
//! event switched off is never queued, sent or retried.

use super::core::CallMachine;
use super::types::{BotEvent, Output};
use crate::core::activity::{OptionalEvent, SessionConfig};

impl CallMachine {
    /// Applies a `config` activity: one timeline line says what was asked and what was not
    /// applied; each setting given changes the call from now on.
    pub(super) fn apply_session_config(&mut self, c: SessionConfig) {
        self.emit(Output::Timeline {
            kind: "activity",
            note: c.describe(),
        });
        match c.recognition {
            Some(true) => self.start_recognition_for_bot(),
            Some(false) => self.stop_recognition_for_bot(),
            None => {}
        }
        if let Some(b) = c.barge_in {
            self.set_barge_in(b);
        }
        if let Some(set) = c.send_events_to_bot {
            self.bot_events = set;
        }
    }

    /// Whether the bot gets `ev`: an optional event only if its `sendEventsToBot` allows it.
    pub(super) fn bot_wants(&self, ev: &BotEvent) -> bool {
        optional_kind(ev).is_none_or(|k| self.bot_events.contains(k))
    }
}

/// Which optional event `ev` is; `None` for the events every bot gets. New optional events
/// (`speechHypothesis`, `voiceDetected`) map here when their `BotEvent` variants exist.
fn optional_kind(ev: &BotEvent) -> Option<OptionalEvent> {
    match ev {
        BotEvent::PlayFinished | BotEvent::PlayInterrupted => Some(OptionalEvent::PlayFinished),
        BotEvent::Dtmf { .. } => Some(OptionalEvent::Dtmf),
        BotEvent::TransferStatus { .. } => Some(OptionalEvent::TransferStatus),
        BotEvent::DialoutInitiated
        | BotEvent::Start
        | BotEvent::MachineDetection { .. }
        | BotEvent::Beep
        | BotEvent::Message { .. }
        | BotEvent::PlayUrlFailed { .. } => None,
    }
}
