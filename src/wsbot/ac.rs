//! AudioCodes Bot API, WebSocket mode: dialgate's side (sans-IO).
//!
//! dialgate → bot: `session.initiate`, `session.resume`, `session.end`, `activities`,
//! `userStream.start` / `chunk` / `stop`. Bot → dialgate: `session.accepted` / `session.error`,
//! `activities`, `userStream.started` / `stopped`, `userStream.speech.*`, `playStream.start` /
//! `chunk` / `stop`. Audio is base64 in `audioChunk`.

use super::codec::{Decoder, Encoder};
use super::config::MediaFormat;
use super::error::FrameError;
use super::protocol::{Command, Output, Protocol, decode_b64, encode_b64, parse_object, str_field};
use super::types::{CallInfo, Counters, WsBotEvent, WsBotOptions};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// Where the person's audio stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UserStream {
    Idle,
    /// `userStream.start` sent, waiting for `userStream.started` (audio is buffered, bounded).
    Starting,
    Open,
}

/// The AC Bot API session state.
pub(crate) struct AcCore {
    call: CallInfo,
    offered: Vec<MediaFormat>,
    format: MediaFormat,
    expect_audio: bool,
    user: UserStream,
    encoder: Encoder,
    /// Encoded person's audio not yet sent.
    pending: Vec<u8>,
    chunk_bytes: usize,
    pending_cap: usize,
    /// The bot's current play stream: its ID and decoder.
    play: Option<(String, Decoder)>,
    counters: Arc<Counters>,
}

impl AcCore {
    /// A session for `call`, offering `preferred` first.
    pub fn new(
        call: CallInfo,
        preferred: MediaFormat,
        opts: &WsBotOptions,
        counters: Arc<Counters>,
    ) -> AcCore {
        let mut offered = vec![preferred];
        offered.extend(MediaFormat::ALL.into_iter().filter(|f| *f != preferred));
        let mut core = AcCore {
            call,
            offered,
            format: preferred,
            expect_audio: opts.expect_audio_messages,
            user: UserStream::Idle,
            encoder: Encoder::new(preferred),
            pending: Vec::new(),
            chunk_bytes: 0,
            pending_cap: 0,
            play: None,
            counters,
        };
        core.set_format(preferred, opts.chunk_ms, opts.pre_start_audio_ms);
        core
    }

    fn set_format(&mut self, format: MediaFormat, chunk_ms: u32, pre_start_ms: u32) {
        self.format = format;
        self.encoder = Encoder::new(format);
        let per_ms = 8 * self.encoder.bytes_per_input_sample();
        let chunk_ms = (chunk_ms.clamp(20, 100) / 20) * 20;
        self.chunk_bytes = chunk_ms as usize * per_ms;
        self.pending_cap = (pre_start_ms as usize * per_ms).max(self.chunk_bytes);
    }

    fn on_accepted(
        &mut self,
        map: &Map<String, Value>,
        out: &mut Vec<Output>,
    ) -> Result<(), FrameError> {
        // A resume's `session.accepted` may omit mediaFormat: the agreed one stays.
        if let Some(name) = map.get("mediaFormat").and_then(Value::as_str) {
            let format = MediaFormat::parse(name)
                .filter(|f| self.offered.contains(f))
                .ok_or_else(|| FrameError::UnsupportedFormat(name.to_string()))?;
            let chunk_ms = (self.chunk_bytes / (8 * self.encoder.bytes_per_input_sample())) as u32;
            let pre_ms = (self.pending_cap / (8 * self.encoder.bytes_per_input_sample())) as u32;
            self.set_format(format, chunk_ms, pre_ms);
        }
        out.push(Output::Accepted);
        Ok(())
    }

    fn chunk_message(&self, bytes: &[u8]) -> String {
        json!({"type": "userStream.chunk", "audioChunk": encode_b64(bytes)}).to_string()
    }

    /// Sends whole chunks of the pending audio (and the remainder when `all`).
    fn drain_pending(&mut self, all: bool, out: &mut Vec<Output>) {
        while self.pending.len() >= self.chunk_bytes || (all && !self.pending.is_empty()) {
            let n = self.pending.len().min(self.chunk_bytes);
            let rest = self.pending.split_off(n);
            let chunk = std::mem::replace(&mut self.pending, rest);
            out.push(Output::Send(self.chunk_message(&chunk)));
            Counters::bump(&self.counters.chunks_sent);
        }
    }

    fn on_audio(&mut self, pcm: &[i16], out: &mut Vec<Output>) {
        match self.user {
            UserStream::Idle => {}
            UserStream::Starting => {
                let need = pcm.len() * self.encoder.bytes_per_input_sample();
                if self.pending.len() + need > self.pending_cap {
                    Counters::bump(&self.counters.audio_dropped);
                    return;
                }
                self.encoder.encode(pcm, &mut self.pending);
            }
            UserStream::Open => {
                self.encoder.encode(pcm, &mut self.pending);
                self.drain_pending(false, out);
            }
        }
    }

    fn on_play(
        &mut self,
        kind: &str,
        map: &Map<String, Value>,
        out: &mut Vec<Output>,
    ) -> Result<(), FrameError> {
        let stream_id = map
            .get("streamId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match kind {
            "playStream.start" => {
                let format = match map.get("mediaFormat").and_then(Value::as_str) {
                    Some(name) => MediaFormat::parse(name)
                        .ok_or_else(|| FrameError::UnsupportedFormat(name.to_string()))?,
                    None => self.format,
                };
                if self.play.is_some() {
                    out.push(Output::PlayEnd);
                }
                self.play = Some((stream_id.clone(), Decoder::new(format)));
                out.push(Output::Event(WsBotEvent::PlayStarted { stream_id }));
            }
            "playStream.chunk" => {
                let bytes = decode_b64(kind, str_field(map, kind, "audioChunk")?)?;
                let format = self.format;
                // A chunk without its start is still the bot's voice: play it in the session format.
                let (_, decoder) = self
                    .play
                    .get_or_insert_with(|| (stream_id, Decoder::new(format)));
                let mut pcm = Vec::with_capacity(bytes.len());
                decoder.decode(&bytes, &mut pcm);
                Counters::bump(&self.counters.chunks_received);
                out.push(Output::Play(pcm));
            }
            _ => {
                self.play = None;
                out.push(Output::PlayEnd);
                out.push(Output::Event(WsBotEvent::PlayStopped { stream_id }));
            }
        }
        Ok(())
    }

    fn on_user_stream(
        &mut self,
        kind: &str,
        map: &Map<String, Value>,
        out: &mut Vec<Output>,
    ) -> Result<(), FrameError> {
        let alternatives = || map.get("alternatives").cloned().unwrap_or(Value::Null);
        let event = match kind {
            "userStream.started" => {
                if self.user == UserStream::Starting {
                    self.user = UserStream::Open;
                    self.drain_pending(false, out);
                }
                WsBotEvent::UserStreamStarted
            }
            "userStream.stopped" => WsBotEvent::UserStreamStopped,
            "userStream.speech.started" => WsBotEvent::SpeechStarted,
            "userStream.speech.stopped" => WsBotEvent::SpeechStopped,
            "userStream.speech.committed" => WsBotEvent::SpeechCommitted,
            "userStream.speech.hypothesis" => WsBotEvent::SpeechHypothesis(alternatives()),
            "userStream.speech.recognition" => WsBotEvent::SpeechRecognition(alternatives()),
            other => return Err(FrameError::UnknownType(other.to_string())),
        };
        out.push(Output::Event(event));
        Ok(())
    }
}

impl Protocol for AcCore {
    fn opening(&mut self) -> Vec<String> {
        let formats: Vec<&str> = self.offered.iter().map(|f| f.as_str()).collect();
        vec![
            json!({
                "type": "session.initiate",
                "conversationId": self.call.conversation_id,
                "caller": self.call.caller,
                "callee": self.call.callee,
                "metadata": self.call.metadata,
                "expectAudioMessages": self.expect_audio,
                "supportedMediaFormats": formats,
            })
            .to_string(),
        ]
    }

    fn format(&self) -> Option<MediaFormat> {
        Some(self.format)
    }

    fn needs_accept(&self) -> bool {
        true
    }

    fn resume(&mut self) -> Option<String> {
        Some(
            json!({"type": "session.resume", "conversationId": self.call.conversation_id})
                .to_string(),
        )
    }

    fn resumed(&mut self) -> Vec<String> {
        // The new socket knows nothing of the old user stream: start it again, keeping the
        // audio gathered meanwhile (bounded) for when the bot says started.
        self.play = None;
        if self.user == UserStream::Idle {
            return Vec::new();
        }
        self.user = UserStream::Starting;
        vec![json!({"type": "userStream.start"}).to_string()]
    }

    fn on_text(&mut self, text: &str, out: &mut Vec<Output>) -> Result<(), FrameError> {
        let (kind, map) = parse_object(text, "type")?;
        match kind.as_str() {
            "session.accepted" => self.on_accepted(&map, out),
            "session.error" => {
                let reason = map
                    .get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                out.push(Output::Rejected(reason.to_string()));
                Ok(())
            }
            "activities" => {
                let Some(Value::Array(list)) = map.get("activities") else {
                    return Err(FrameError::MissingField {
                        kind,
                        field: "activities",
                    });
                };
                out.push(Output::Event(WsBotEvent::Activities(list.clone())));
                Ok(())
            }
            k if k.starts_with("playStream.")
                && matches!(
                    k,
                    "playStream.start" | "playStream.chunk" | "playStream.stop"
                ) =>
            {
                self.on_play(k, &map, out)
            }
            k if k.starts_with("userStream.") => self.on_user_stream(k, &map, out),
            _ => Err(FrameError::UnknownType(kind)),
        }
    }

    fn on_command(&mut self, cmd: Command, out: &mut Vec<Output>) {
        match cmd {
            Command::Audio(pcm) => self.on_audio(&pcm, out),
            Command::Activities(list) => out.push(Output::Send(
                json!({"type": "activities", "activities": list}).to_string(),
            )),
            Command::StartUserStream if self.user == UserStream::Idle => {
                self.user = UserStream::Starting;
                self.pending.clear();
                out.push(Output::Send(
                    json!({"type": "userStream.start"}).to_string(),
                ));
            }
            Command::StopUserStream if self.user != UserStream::Idle => {
                if self.user == UserStream::Open {
                    self.drain_pending(true, out);
                }
                self.pending.clear();
                self.user = UserStream::Idle;
                out.push(Output::Send(json!({"type": "userStream.stop"}).to_string()));
            }
            Command::Dtmf(digit) => {
                let activity = json!({"type": "event", "name": "DTMF", "value": digit.to_string()});
                out.push(Output::Send(
                    json!({"type": "activities", "activities": [activity]}).to_string(),
                ));
            }
            Command::StartUserStream | Command::StopUserStream | Command::Hangup { .. } => {}
        }
    }

    fn marks_played(&mut self, _names: Vec<String>, _out: &mut Vec<Output>) {}

    fn closing(&mut self, reason_code: &str, reason: &str) -> Vec<String> {
        let mut frames = Vec::new();
        if self.user == UserStream::Open {
            let mut out = Vec::new();
            self.drain_pending(true, &mut out);
            frames.extend(out.into_iter().filter_map(|o| match o {
                Output::Send(s) => Some(s),
                _ => None,
            }));
            frames.push(json!({"type": "userStream.stop"}).to_string());
        }
        self.user = UserStream::Idle;
        frames.push(
            json!({
                "type": "session.end",
                "conversationId": self.call.conversation_id,
                "reasonCode": reason_code,
                "reason": reason,
            })
            .to_string(),
        );
        frames
    }
}
