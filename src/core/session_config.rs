//! The typed parameters of a `config` activity (`sessionParams`): what dialgate reads from
//! them, and which optional events a bot asked for.
//!
//! ```json
//! {"type": "event", "name": "config",
//!  "sessionParams": {"recognition": false, "bargeIn": true,
//!                    "sendEventsToBot": ["DTMF", "playFinished"]}}
//! ```
//!
//! Every key is optional; a key dialgate does not use, or one with the wrong type, is kept in
//! [`SessionConfig::ignored`] (with why) so the call's timeline says what was not applied.

use serde_json::{Map, Value};

/// The Bot API events a bot may switch on or off with `sendEventsToBot`. Every other event
/// (`start`, `machineDetection`, `beep`, recognised speech, …) is always sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionalEvent {
    /// `playFinished`: the prompts queued for the person have played.
    PlayFinished,
    /// `DTMF`: a key the person pressed.
    Dtmf,
    /// `transferStatus`: how a transfer went.
    TransferStatus,
    /// `speechHypothesis`: partial recognition results.
    SpeechHypothesis,
    /// `voiceDetected`: the person started speaking.
    VoiceDetected,
}

impl OptionalEvent {
    /// Every optional event, in the order the README lists them.
    pub const ALL: [OptionalEvent; 5] = [
        OptionalEvent::PlayFinished,
        OptionalEvent::Dtmf,
        OptionalEvent::TransferStatus,
        OptionalEvent::SpeechHypothesis,
        OptionalEvent::VoiceDetected,
    ];

    /// The event's name on the wire (`playFinished`, `DTMF`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            OptionalEvent::PlayFinished => "playFinished",
            OptionalEvent::Dtmf => "DTMF",
            OptionalEvent::TransferStatus => "transferStatus",
            OptionalEvent::SpeechHypothesis => "speechHypothesis",
            OptionalEvent::VoiceDetected => "voiceDetected",
        }
    }

    /// Reads a name as the bot wrote it, without regard to case.
    pub fn from_name(name: &str) -> Option<OptionalEvent> {
        OptionalEvent::ALL
            .into_iter()
            .find(|e| e.as_str().eq_ignore_ascii_case(name.trim()))
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of [`OptionalEvent`]s.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct EventSet(u8);

impl EventSet {
    /// No optional event.
    pub const fn empty() -> EventSet {
        EventSet(0)
    }

    /// What a bot gets until it sends `sendEventsToBot`: the events dialgate has always sent
    /// (`playFinished`, `DTMF`, `transferStatus`); partial results and voice activity are
    /// opt-in, as in the Bot API.
    pub fn default_for_bots() -> EventSet {
        EventSet::empty()
            .with(OptionalEvent::PlayFinished)
            .with(OptionalEvent::Dtmf)
            .with(OptionalEvent::TransferStatus)
    }

    /// This set with `e` in it.
    pub fn with(self, e: OptionalEvent) -> EventSet {
        EventSet(self.0 | e.bit())
    }

    /// Whether `e` is in the set.
    pub fn contains(self, e: OptionalEvent) -> bool {
        self.0 & e.bit() != 0
    }

    /// The names in the set, in the README's order (for the timeline).
    pub fn names(self) -> Vec<&'static str> {
        OptionalEvent::ALL
            .into_iter()
            .filter(|e| self.contains(*e))
            .map(OptionalEvent::as_str)
            .collect()
    }
}

impl std::fmt::Debug for EventSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.names()).finish()
    }
}

/// What a `config` activity asks for; `None` leaves a setting as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionConfig {
    /// `recognition`: recognised speech to the bot on or off (as `startRecognition` /
    /// `stopRecognition`).
    pub recognition: Option<bool>,
    /// `bargeIn`: the person's speech cuts a prompt that is playing.
    pub barge_in: Option<bool>,
    /// `sendEventsToBot`: exactly these optional events reach the bot from now on.
    pub send_events_to_bot: Option<EventSet>,
    /// Keys not applied, each with why (`"language: not supported by dialgate"`).
    pub ignored: Vec<String>,
}

impl SessionConfig {
    /// Reads `sessionParams`. Never fails: what cannot be used lands in `ignored`.
    pub fn parse(params: &Map<String, Value>) -> SessionConfig {
        let mut c = SessionConfig::default();
        for (key, value) in params {
            match key.as_str() {
                "recognition" => c.recognition = c.flag(key, value),
                "bargeIn" => c.barge_in = c.flag(key, value),
                "sendEventsToBot" => c.send_events_to_bot = c.events(value),
                _ => c
                    .ignored
                    .push(format!("{key}: not a setting dialgate supports")),
            }
        }
        c
    }

    fn flag(&mut self, key: &str, value: &Value) -> Option<bool> {
        let b = value.as_bool();
        if b.is_none() {
            self.ignored.push(format!("{key}: must be true or false"));
        }
        b
    }

    fn events(&mut self, value: &Value) -> Option<EventSet> {
        let Some(list) = value.as_array() else {
            self.ignored
                .push("sendEventsToBot: must be a list of event names".to_owned());
            return None;
        };
        let mut set = EventSet::empty();
        for item in list {
            match item.as_str().and_then(OptionalEvent::from_name) {
                Some(e) => set = set.with(e),
                None => self
                    .ignored
                    .push(format!("sendEventsToBot: unknown event {item}")),
            }
        }
        Some(set)
    }

    /// A one-line account of what was asked, for the call's timeline.
    pub fn describe(&self) -> String {
        let on_off = |b: bool| if b { "on" } else { "off" };
        let mut parts = Vec::new();
        if let Some(r) = self.recognition {
            parts.push(format!("recognition {}", on_off(r)));
        }
        if let Some(b) = self.barge_in {
            parts.push(format!("bargeIn {}", on_off(b)));
        }
        if let Some(set) = self.send_events_to_bot {
            let names = set.names();
            let list = if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            };
            parts.push(format!("sendEventsToBot {list}"));
        }
        if !self.ignored.is_empty() {
            parts.push(format!("not applied: {}", self.ignored.join("; ")));
        }
        if parts.is_empty() {
            "config activity without settings".to_owned()
        } else {
            format!("config activity: {}", parts.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> SessionConfig {
        SessionConfig::parse(v.as_object().expect("an object"))
    }

    #[test]
    fn known_keys_are_typed_and_the_rest_is_said_not_applied() {
        let c = parse(json!({"recognition": false, "bargeIn": true,
            "sendEventsToBot": ["dtmf", "voiceDetected", "fly"], "language": "de-DE"}));
        assert_eq!(c.recognition, Some(false));
        assert_eq!(c.barge_in, Some(true));
        let set = c.send_events_to_bot.expect("a set");
        assert_eq!(set.names(), ["DTMF", "voiceDetected"]);
        assert_eq!(c.ignored.len(), 2, "{:?}", c.ignored);
        let line = c.describe();
        assert!(
            line.contains("bargeIn on") && line.contains("language"),
            "{line}"
        );
    }

    #[test]
    fn wrong_types_change_nothing() {
        let c = parse(json!({"bargeIn": "yes", "sendEventsToBot": "DTMF"}));
        assert_eq!((c.barge_in, c.send_events_to_bot), (None, None));
        assert_eq!(c.ignored.len(), 2);
        // An empty list is a choice: no optional event at all.
        let c = parse(json!({"sendEventsToBot": []}));
        assert_eq!(c.send_events_to_bot, Some(EventSet::empty()));
        assert!(c.describe().contains("sendEventsToBot none"));
    }

    #[test]
    fn by_default_bots_get_the_events_they_always_got() {
        let d = EventSet::default_for_bots();
        assert_eq!(d.names(), ["playFinished", "DTMF", "transferStatus"]);
    }
}
