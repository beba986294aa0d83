//! What the test bot answers: scripted replies, URL style, token, failures.

use std::time::Duration;

use serde_json::Value;

/// Activities a bot sends (Bot API), ready to put into `BotReply::activities`.
pub mod activity {
    use serde_json::{Value, json};

    /// `{"type":"event","name":"hangup"}`: ends the call.
    pub fn hangup() -> Value {
        event("hangup")
    }

    /// `{"type":"event","name":<name>}`.
    pub fn event(name: &str) -> Value {
        json!({"type": "event", "name": name})
    }

    /// `startRecognition`: asks the gateway to start speech-to-text.
    pub fn start_recognition() -> Value {
        event("startRecognition")
    }

    /// `stopRecognition`: asks the gateway to stop speech-to-text.
    pub fn stop_recognition() -> Value {
        event("stopRecognition")
    }

    /// `sendDtmf`: key presses toward the person.
    pub fn send_dtmf(digits: &str) -> Value {
        json!({"type": "event", "name": "sendDtmf", "activityParams": {"dtmfDigits": digits}})
    }

    /// `playUrl`: an audio file for the person.
    pub fn play_url(url: &str) -> Value {
        json!({"type": "event", "name": "playUrl", "activityParams": {"playUrlUrl": url}})
    }

    /// `{"type":"message","text":<text>}`: the bot says something.
    pub fn message(text: &str) -> Value {
        json!({"type": "message", "text": text})
    }
}

/// When a scripted reply is sent.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyDelay {
    /// In the immediate HTTP response.
    Now,
    /// The HTTP response is held this many milliseconds (a slow bot).
    Ms(u64),
    /// The HTTP response is held until `BotApiServer::release_held()` (or `BotConfig::max_hold`).
    UntilReleased,
}

/// "When an activity like this arrives, answer with these activities."
#[derive(Debug, Clone)]
pub struct BotReply {
    /// Event name to match (`start`, `machineDetection`, …); `None` matches any name.
    pub event: Option<String>,
    /// Activity type to match (`event`, `message`); `None` matches any type.
    pub activity_type: Option<String>,
    /// Activities put into the response (`id` and `timestamp` are added when missing).
    pub activities: Vec<Value>,
    pub delay: ReplyDelay,
    /// Use this reply only for the first match.
    pub once: bool,
}

impl BotReply {
    /// Replies to the `event` named `name` with `activities`, at once, every time.
    pub fn on_event(name: &str, activities: Vec<Value>) -> Self {
        BotReply {
            event: Some(name.into()),
            activity_type: Some("event".into()),
            activities,
            delay: ReplyDelay::Now,
            once: false,
        }
    }

    /// Replies to every `message` activity (recognised speech) with `activities`.
    pub fn on_message(activities: Vec<Value>) -> Self {
        BotReply {
            event: None,
            activity_type: Some("message".into()),
            activities,
            delay: ReplyDelay::Now,
            once: false,
        }
    }

    /// Hangs up in answer to `start`, holding the response `ms` milliseconds.
    pub fn hangup_on_start_after(ms: u64) -> Self {
        Self::on_event("start", vec![activity::hangup()]).after_ms(ms)
    }

    /// Holds the response `ms` milliseconds.
    pub fn after_ms(mut self, ms: u64) -> Self {
        self.delay = ReplyDelay::Ms(ms);
        self
    }

    /// Holds the response until `BotApiServer::release_held()`.
    pub fn held(mut self) -> Self {
        self.delay = ReplyDelay::UntilReleased;
        self
    }

    /// Applies only once.
    pub fn once(mut self) -> Self {
        self.once = true;
        self
    }

    pub(super) fn matches(&self, a: &Value) -> bool {
        let type_ok = self
            .activity_type
            .as_deref()
            .is_none_or(|t| a["type"].as_str() == Some(t));
        let name_ok = self
            .event
            .as_deref()
            .is_none_or(|n| a["name"].as_str() == Some(n));
        type_ok && name_ok
    }
}

/// How the conversation URLs are written in the answer to the bot URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlStyle {
    /// `/conversation/<id>/activities` (as AudioCodes' own samples do).
    AbsolutePath,
    /// `conversation/<id>/activities`, relative to the bot URL `http://…/bot`.
    Relative,
    /// `http://127.0.0.1:<port>/conversation/<id>/activities`.
    Absolute,
}

/// Behaviour of a `BotApiServer`.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// `expiresSeconds` in the answer to the bot URL (and to refresh).
    pub expires_seconds: u64,
    pub url_style: UrlStyle,
    /// When set, requests without `Authorization: Bearer <token>` get 401 (and are recorded).
    pub expected_token: Option<String>,
    /// Status for POST to the bot URL (e.g. 500 or 503 to test a failing bot).
    pub create_status: u16,
    /// Scripted answers to activities, first match wins per incoming activity.
    pub replies: Vec<BotReply>,
    /// Upper bound for `ReplyDelay::UntilReleased`.
    pub max_hold: Duration,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            expires_seconds: 60,
            url_style: UrlStyle::AbsolutePath,
            expected_token: None,
            create_status: 200,
            replies: Vec::new(),
            max_hold: Duration::from_secs(30),
        }
    }
}
