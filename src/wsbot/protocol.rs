//! What the two protocol cores have in common: the commands they take from the call, the
//! outputs they give the async shell, and small JSON helpers. The cores are sans-IO.

use super::error::FrameError;
use super::types::WsBotEvent;
use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// From the call to the session.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Command {
    /// The person's audio, 8 kHz linear PCM.
    Audio(Vec<i16>),
    /// Activities to the bot.
    Activities(Vec<Value>),
    /// Start streaming the person's audio (AC `userStream.start`).
    StartUserStream,
    /// Stop streaming the person's audio (AC `userStream.stop`).
    StopUserStream,
    /// A key the person pressed.
    Dtmf(char),
    /// The call ends.
    Hangup { reason_code: String, reason: String },
}

/// From a core to the shell.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// A text frame to send.
    Send(String),
    /// An event for the call.
    Event(WsBotEvent),
    /// Bot audio (8 kHz) for the playout buffer.
    Play(Vec<i16>),
    /// The bot's stream ended: play a trailing partial frame.
    PlayEnd,
    /// Drop queued bot audio.
    Clear,
    /// Media-stream mark at the current end of the queued audio.
    Mark(String),
    /// The bot accepted the session (AC `session.accepted`).
    Accepted,
    /// The bot refused the session (AC `session.error`).
    Rejected(String),
}

/// One protocol's state machine.
pub(crate) trait Protocol: Send + Sync {
    /// Frames sent right after the socket opens.
    fn opening(&mut self) -> Vec<String>;
    /// The audio format agreed with the bot, once known.
    fn format(&self) -> Option<super::config::MediaFormat>;
    /// Whether the shell waits for [`Output::Accepted`] before the session counts as open.
    fn needs_accept(&self) -> bool;
    /// The frame that resumes the session on a new socket; `None`: the protocol cannot resume.
    fn resume(&mut self) -> Option<String>;
    /// Frames to send once a resume is accepted (e.g. restart the user stream).
    fn resumed(&mut self) -> Vec<String>;
    /// One incoming text frame.
    fn on_text(&mut self, text: &str, out: &mut Vec<Output>) -> Result<(), FrameError>;
    /// One command from the call (never [`Command::Hangup`]: see [`Protocol::closing`]).
    fn on_command(&mut self, cmd: Command, out: &mut Vec<Output>);
    /// The person's audio as the call's PCMU bytes (the direct leg's queue). A core whose
    /// wire format is µ-law passes the bytes through (no decode, re-encode or sample buffer
    /// per 20 ms frame); others decode them as [`Command::Audio`]'s samples.
    fn on_person_pcmu(&mut self, pcmu: &[u8], out: &mut Vec<Output>);
    /// Marks whose audio has been played.
    fn marks_played(&mut self, names: Vec<String>, out: &mut Vec<Output>);
    /// Frames sent at hang-up.
    fn closing(&mut self, reason_code: &str, reason: &str) -> Vec<String>;
}

/// Parses a frame into a JSON object and its `key` (`type` or `event`).
pub(crate) fn parse_object(
    text: &str,
    key: &'static str,
) -> Result<(String, Map<String, Value>), FrameError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| FrameError::InvalidJson(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(FrameError::NoType(key));
    };
    match map.get(key) {
        Some(Value::String(kind)) => Ok((kind.clone(), map)),
        _ => Err(FrameError::NoType(key)),
    }
}

/// A string field, or an error naming it.
pub(crate) fn str_field<'a>(
    map: &'a Map<String, Value>,
    kind: &str,
    field: &'static str,
) -> Result<&'a str, FrameError> {
    map.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| FrameError::MissingField {
            kind: kind.to_string(),
            field,
        })
}

/// Decodes base64 audio (standard alphabet, padding optional).
pub(crate) fn decode_b64(kind: &str, text: &str) -> Result<Vec<u8>, FrameError> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
        .map_err(|e| FrameError::BadBase64 {
            kind: kind.to_string(),
            detail: e.to_string(),
        })
}

/// Appends `bytes` as standard padded base64 to `out` (no intermediate string).
pub(crate) fn encode_b64_into(bytes: &[u8], out: &mut String) {
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
}

/// An audio message from the bot read without building a JSON tree: AC `playStream.chunk`
/// (`type`, `streamId`, `audioChunk`) or media-stream `media` (`event`, `media.payload`). These
/// come 50 times a second per call, so they skip [`parse_object`]'s map of owned strings; the
/// strings borrow from the frame. Anything this shape does not fit (another message, a field
/// of another type) goes through [`parse_object`] as before.
#[derive(Debug, Deserialize)]
pub(crate) struct AudioMessage<'a> {
    /// AC: the message type.
    #[serde(rename = "type", borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    /// Media stream: the message type.
    #[serde(borrow, default)]
    pub event: Option<Cow<'a, str>>,
    /// AC: the play stream.
    #[serde(rename = "streamId", borrow, default)]
    pub stream_id: Option<Cow<'a, str>>,
    /// AC: the base64 audio.
    #[serde(rename = "audioChunk", borrow, default)]
    pub audio_chunk: Option<Cow<'a, str>>,
    /// Media stream: `media`.
    #[serde(borrow, default)]
    pub media: Option<MediaPart<'a>>,
}

/// Media stream `media.payload`.
#[derive(Debug, Deserialize)]
pub(crate) struct MediaPart<'a> {
    /// The base64 audio.
    #[serde(borrow, default)]
    pub payload: Option<Cow<'a, str>>,
}

impl<'a> AudioMessage<'a> {
    /// The frame as an audio message, `None` when it is not one (or not valid JSON).
    pub fn parse(text: &'a str) -> Option<AudioMessage<'a>> {
        serde_json::from_str(text).ok()
    }
}
