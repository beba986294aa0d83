//! Bot API activities sent by the bot (in answers to any HTTP request today, and over the
//! WebSocket mode later), parsed once into a typed [`Activity`].
//!
//! The Bot API spells an activity `{"type": "event", "name": "hangup", "activityParams": {…}}`;
//! AudioCodes' own samples capitalise (`"type": "Event"`), so `type` and `name` are matched
//! without regard to case. Parameters are read from `activityParams` (the Bot API's place),
//! falling back to `parameters`; a `config` activity carries `sessionParams`. Nothing here fails:
//! an activity that cannot be understood becomes [`Activity::Unknown`] (with why), which the call
//! records and otherwise ignores.

use serde_json::{Map, Value};
use std::time::Duration;

pub use super::session_config::{EventSet, OptionalEvent, SessionConfig};
pub use super::transfer::{TransferRequest, TransferTarget};

/// The longest `delay` honoured on one activity: a bot cannot park work for longer than this.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// What the bot asks the gateway to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    /// End the call (`bot-disconnected`).
    Hangup {
        /// `activityParams.hangupReason`, kept for the call record.
        reason: Option<String>,
    },
    /// Start sending recognised speech to the bot.
    StartRecognition,
    /// Stop sending recognised speech to the bot.
    StopRecognition,
    /// Hand the person to another destination (`activityParams.transferTarget`, …); an
    /// invalid request is kept with why, so the bot hears `transferStatus: failed`.
    Transfer(Result<TransferRequest, String>),
    /// Send DTMF digits to the person.
    SendDtmf {
        /// `activityParams.dtmfDigits`.
        digits: String,
    },
    /// Play an audio file to the person.
    PlayUrl {
        /// `activityParams.playUrlUrl`.
        url: String,
        /// `activityParams.playUrlMediaFormat`.
        media_format: Option<String>,
    },
    /// Stop prompts that are playing or queued.
    AbortPrompts,
    /// Change session settings (`sessionParams`), typed: see [`SessionConfig`].
    Config(SessionConfig),
    /// `startCallRecording`, `stopCallRecording`, `pauseCallRecording`, `resumeCallRecording`.
    Recording(RecordingOp),
    /// Metadata for the person's leg.
    SendMetaData {
        /// The `value` the bot sent.
        value: Value,
    },
    /// Text for the person (a text bot's reply).
    Message {
        /// What to say.
        text: String,
    },
    /// Anything else, or a known activity missing what it needs.
    Unknown {
        /// `type/name` as the bot wrote it (for the log and the timeline).
        label: String,
        /// Why it is not understood.
        why: String,
    },
}

/// The four recording activities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingOp {
    /// `startCallRecording`.
    Start,
    /// `stopCallRecording`.
    Stop,
    /// `pauseCallRecording`.
    Pause,
    /// `resumeCallRecording`.
    Resume,
}

/// One activity with its envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct BotActivity {
    /// What to do.
    pub activity: Activity,
    /// How long to wait before doing it (`delay`, milliseconds in the JSON), at most [`MAX_DELAY`].
    pub delay: Option<Duration>,
}

impl Activity {
    /// A short name for logs and the timeline (`hangup`, `playUrl`, `message`, …).
    pub fn name(&self) -> String {
        match self {
            Activity::Hangup { .. } => "hangup".into(),
            Activity::StartRecognition => "startRecognition".into(),
            Activity::StopRecognition => "stopRecognition".into(),
            Activity::Transfer(_) => "transfer".into(),
            Activity::SendDtmf { .. } => "sendDtmf".into(),
            Activity::PlayUrl { .. } => "playUrl".into(),
            Activity::AbortPrompts => "abortPrompts".into(),
            Activity::Config(_) => "config".into(),
            Activity::Recording(op) => match op {
                RecordingOp::Start => "startCallRecording",
                RecordingOp::Stop => "stopCallRecording",
                RecordingOp::Pause => "pauseCallRecording",
                RecordingOp::Resume => "resumeCallRecording",
            }
            .into(),
            Activity::SendMetaData { .. } => "sendMetaData".into(),
            Activity::Message { .. } => "message".into(),
            Activity::Unknown { label, .. } => label.clone(),
        }
    }
}

/// Parses every activity of a bot's answer body (`{"activities": [...]}`), in order.
pub fn parse_answer(body: &Value) -> Vec<BotActivity> {
    body.get("activities")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(parse).collect())
        .unwrap_or_default()
}

/// Parses one activity. Never fails: see [`Activity::Unknown`].
pub fn parse(v: &Value) -> BotActivity {
    let delay = read_delay(v);
    let activity = match v.as_object() {
        Some(obj) => parse_object(obj),
        None => Activity::Unknown {
            label: "?".into(),
            why: "an activity must be a JSON object".into(),
        },
    };
    BotActivity { activity, delay }
}

fn parse_object(obj: &Map<String, Value>) -> Activity {
    let kind = text(obj, "type").unwrap_or_default().to_ascii_lowercase();
    let name = text(obj, "name").unwrap_or_default();
    let params = obj
        .get("activityParams")
        .or_else(|| obj.get("parameters"))
        .and_then(Value::as_object);
    match kind.as_str() {
        "message" => match text(obj, "text") {
            Some(t) if !t.trim().is_empty() => Activity::Message { text: t },
            _ => unknown("message", "a message activity without text"),
        },
        "event" => parse_event(obj, &name, params),
        "" => unknown(&name, "the activity has no `type`"),
        other => unknown(&format!("{other}/{name}"), "unknown activity type"),
    }
}

fn parse_event(
    obj: &Map<String, Value>,
    name: &str,
    params: Option<&Map<String, Value>>,
) -> Activity {
    let p = |k: &str| params.and_then(|m| text(m, k));
    match name.to_ascii_lowercase().as_str() {
        "hangup" => Activity::Hangup {
            reason: p("hangupReason"),
        },
        "startrecognition" => Activity::StartRecognition,
        "stoprecognition" => Activity::StopRecognition,
        "transfer" => Activity::Transfer(super::transfer::parse_transfer(params)),
        "senddtmf" => match p("dtmfDigits") {
            Some(digits) => Activity::SendDtmf { digits },
            None => unknown("event/sendDtmf", "activityParams.dtmfDigits is missing"),
        },
        "playurl" => match p("playUrlUrl") {
            Some(url) => Activity::PlayUrl {
                url,
                media_format: p("playUrlMediaFormat"),
            },
            None => unknown("event/playUrl", "activityParams.playUrlUrl is missing"),
        },
        "abortprompts" => Activity::AbortPrompts,
        "config" => Activity::Config(
            obj.get("sessionParams")
                .and_then(Value::as_object)
                .or(params)
                .map(SessionConfig::parse)
                .unwrap_or_default(),
        ),
        "startcallrecording" => Activity::Recording(RecordingOp::Start),
        "stopcallrecording" => Activity::Recording(RecordingOp::Stop),
        "pausecallrecording" => Activity::Recording(RecordingOp::Pause),
        "resumecallrecording" => Activity::Recording(RecordingOp::Resume),
        "sendmetadata" => Activity::SendMetaData {
            value: obj.get("value").cloned().unwrap_or(Value::Null),
        },
        "" => unknown("event", "an event activity without `name`"),
        _ => unknown(&format!("event/{name}"), "unknown event name"),
    }
}

fn unknown(label: &str, why: &str) -> Activity {
    Activity::Unknown {
        label: label.to_owned(),
        why: why.to_owned(),
    }
}

fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// `delay` in milliseconds at the top level or in `activityParams`; a number or a numeric
/// string; negative, absurd or malformed values are ignored, large ones capped.
fn read_delay(v: &Value) -> Option<Duration> {
    let raw = v
        .get("delay")
        .or_else(|| v.get("activityParams").and_then(|p| p.get("delay")))?;
    let ms = match raw {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !ms.is_finite() || ms <= 0.0 {
        return None;
    }
    Some(Duration::from_millis(
        ms.min(MAX_DELAY.as_millis() as f64) as u64
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_and_name_match_whatever_their_case() {
        // AudioCodes' sample bot answers disconnect with a capital E.
        let a = parse(&json!({"type": "Event", "name": "hangup"}));
        assert_eq!(a.activity, Activity::Hangup { reason: None });
        let a = parse(&json!({"type": "EVENT", "name": "StartRecognition"}));
        assert_eq!(a.activity, Activity::StartRecognition);
    }

    #[test]
    fn parameters_are_read_where_the_bot_api_puts_them() {
        let a = parse(&json!({"type": "event", "name": "transfer",
            "activityParams": {"transferTarget": "tel:+15551230002", "handoverReason": "agent"}}));
        assert_eq!(
            a.activity,
            Activity::Transfer(Ok(TransferRequest {
                target: TransferTarget::Tel("+15551230002".into()),
                reason: Some("agent".into()),
                headers: Vec::new(),
            }))
        );
        let a = parse(&json!({"type": "event", "name": "playUrl",
            "parameters": {"playUrlUrl": "https://x/y.wav"}}));
        assert!(
            matches!(a.activity, Activity::PlayUrl { ref url, .. } if url == "https://x/y.wav")
        );
        let a =
            parse(&json!({"type": "event", "name": "config", "sessionParams": {"bargeIn": true}}));
        assert!(matches!(a.activity, Activity::Config(ref c) if c.barge_in == Some(true)));
        let a = parse(&json!({"type": "message", "text": "Hi there"}));
        assert_eq!(
            a.activity,
            Activity::Message {
                text: "Hi there".into()
            }
        );
    }

    #[test]
    fn what_cannot_be_understood_is_unknown_never_an_error() {
        for v in [
            json!("hangup"),
            json!({"name": "hangup"}),
            json!({"type": "event"}),
            json!({"type": "event", "name": "fly"}),
            json!({"type": "message", "text": "  "}),
            json!({"type": "typing"}),
        ] {
            let a = parse(&v);
            assert!(
                matches!(a.activity, Activity::Unknown { .. }),
                "{v} → {a:?}"
            );
        }
    }

    #[test]
    fn an_invalid_transfer_is_kept_with_why() {
        for v in [
            json!({"type": "event", "name": "transfer"}),
            json!({"type": "event", "name": "Transfer", "activityParams": {"transferTarget": "x"}}),
        ] {
            let a = parse(&v);
            assert!(
                matches!(a.activity, Activity::Transfer(Err(ref why)) if !why.is_empty()),
                "{v} → {a:?}"
            );
            assert_eq!(a.activity.name(), "transfer");
        }
    }

    #[test]
    fn delay_is_read_bounded_and_optional() {
        let d = |v: Value| parse(&v).delay;
        assert_eq!(
            d(json!({"type": "event", "name": "hangup", "delay": 1500})),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            d(json!({"type": "event", "name": "hangup", "activityParams": {"delay": "200"}})),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            d(json!({"type": "event", "name": "hangup", "delay": 1e12})),
            Some(MAX_DELAY)
        );
        assert_eq!(
            d(json!({"type": "event", "name": "hangup", "delay": -5})),
            None
        );
        assert_eq!(
            d(json!({"type": "event", "name": "hangup", "delay": "soon"})),
            None
        );
    }

    #[test]
    fn an_answer_body_yields_its_activities_in_order() {
        let body = json!({"activities": [
            {"type": "message", "text": "Bye"},
            {"type": "event", "name": "hangup"}
        ]});
        let names: Vec<String> = parse_answer(&body)
            .iter()
            .map(|a| a.activity.name())
            .collect();
        assert_eq!(names, ["message", "hangup"]);
        assert!(parse_answer(&json!({"activities": "no"})).is_empty());
    }
}
