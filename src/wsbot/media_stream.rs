//! Media-stream mode: the Twilio Media Streams message set, dialgate's side (sans-IO).
//!
//! dialgate → bot: `connected`, `start`, `media` (the person's audio, 20 ms of base64 µ-law
//! each), `dtmf`, `mark` (echo once the bot's audio before it has played), `stop`.
//! Bot → dialgate: `media` (its audio, base64 µ-law 8 kHz), `mark`, `clear`. The README lists
//! every field.

use super::codec::{Decoder, Encoder};
use super::config::MediaFormat;
use super::error::FrameError;
use super::jitter::FRAME_SAMPLES;
use super::protocol::{
    AudioMessage, Command, Output, Protocol, decode_b64, encode_b64_into, parse_object, str_field,
};
use super::types::{CallInfo, Counters, WsBotEvent};
use serde_json::{Map, Value, json};
use std::fmt::Write as _;
use std::sync::Arc;

/// The media-stream session state.
pub(crate) struct MediaStreamCore {
    call: CallInfo,
    stream_sid: String,
    /// Last `sequenceNumber` sent (per message, from 1).
    sequence: u64,
    /// Last `media.chunk` sent (per audio message, from 1).
    chunk: u64,
    encoder: Encoder,
    decoder: Decoder,
    /// The person's audio (µ-law) not yet making a whole 20 ms frame.
    partial: Vec<u8>,
    counters: Arc<Counters>,
}

impl MediaStreamCore {
    /// A stream for `call`; `streamSid` is `MZ` + 32 hex digits, like Twilio's.
    pub fn new(call: CallInfo, counters: Arc<Counters>) -> MediaStreamCore {
        let stream_sid = format!("MZ{}", uuid::Uuid::new_v4().simple());
        MediaStreamCore {
            call,
            stream_sid,
            sequence: 0,
            chunk: 0,
            encoder: Encoder::new(MediaFormat::Mulaw),
            decoder: Decoder::new(MediaFormat::Mulaw),
            partial: Vec::new(),
            counters,
        }
    }

    fn next_seq(&mut self) -> String {
        self.sequence += 1;
        self.sequence.to_string()
    }

    /// `customParameters`: the metadata's top-level keys, values as strings (Twilio's are
    /// strings; non-string values are sent as their JSON text).
    fn custom_parameters(&self) -> Map<String, Value> {
        let Value::Object(meta) = &self.call.metadata else {
            return Map::new();
        };
        meta.iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (k.clone(), Value::String(s))
            })
            .collect()
    }

    fn media_message(&mut self, payload: &[u8]) -> String {
        let timestamp = self.chunk * 20;
        self.chunk += 1;
        let seq = self.next_seq();
        // Written directly, not through a JSON tree: one per 20 ms per call. Every value is
        // digits, base64 or the `MZ…` stream ID: nothing needs escaping.
        let mut s = String::with_capacity(160 + payload.len().div_ceil(3) * 4);
        let _ = write!(
            s,
            r#"{{"event":"media","sequenceNumber":"{seq}","streamSid":"{}","media":{{"track":"inbound","chunk":"{}","timestamp":"{timestamp}","payload":""#,
            self.stream_sid, self.chunk
        );
        encode_b64_into(payload, &mut s);
        s.push_str("\"}}");
        s
    }

    fn on_audio(&mut self, pcm: Vec<i16>, out: &mut Vec<Output>) {
        self.encoder.encode(&pcm, &mut self.partial);
        self.send_frames(out);
    }

    /// Sends every whole 20 ms frame of the person's audio waiting; the rest waits.
    fn send_frames(&mut self, out: &mut Vec<Output>) {
        let mut partial = std::mem::take(&mut self.partial);
        let whole = partial.len() / FRAME_SAMPLES * FRAME_SAMPLES;
        for frame in partial[..whole].chunks(FRAME_SAMPLES) {
            let msg = self.media_message(frame);
            out.push(Output::Send(msg));
            Counters::bump(&self.counters.chunks_sent);
        }
        partial.drain(..whole);
        self.partial = partial;
    }

    fn on_bot_media(
        &mut self,
        map: &Map<String, Value>,
        out: &mut Vec<Output>,
    ) -> Result<(), FrameError> {
        let media =
            map.get("media")
                .and_then(Value::as_object)
                .ok_or(FrameError::MissingField {
                    kind: "media".into(),
                    field: "media",
                })?;
        self.play_media(str_field(media, "media", "payload")?, out)
    }

    /// The bot's audio (base64 µ-law) for the playout buffer.
    fn play_media(&mut self, payload: &str, out: &mut Vec<Output>) -> Result<(), FrameError> {
        let bytes = decode_b64("media", payload)?;
        let mut pcm = Vec::with_capacity(bytes.len());
        self.decoder.decode(&bytes, &mut pcm);
        Counters::bump(&self.counters.chunks_received);
        out.push(Output::Play(pcm));
        Ok(())
    }
}

impl Protocol for MediaStreamCore {
    fn opening(&mut self) -> Vec<String> {
        let connected = json!({"event": "connected", "protocol": "Call", "version": "1.0.0"});
        let seq = self.next_seq();
        let start = json!({
            "event": "start",
            "sequenceNumber": seq,
            "streamSid": self.stream_sid,
            "start": {
                "streamSid": self.stream_sid,
                "accountSid": "",
                "callSid": self.call.conversation_id,
                "tracks": ["inbound"],
                "customParameters": self.custom_parameters(),
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        });
        vec![connected.to_string(), start.to_string()]
    }

    fn format(&self) -> Option<MediaFormat> {
        Some(MediaFormat::Mulaw)
    }

    fn needs_accept(&self) -> bool {
        false
    }

    fn resume(&mut self) -> Option<String> {
        // Twilio's framing has no way to resume a stream on a new socket.
        None
    }

    fn resumed(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn on_text(&mut self, text: &str, out: &mut Vec<Output>) -> Result<(), FrameError> {
        // The bot's audio, most of the traffic, without a JSON tree.
        if let Some(m) = AudioMessage::parse(text)
            && m.event.as_deref() == Some("media")
            && let Some(payload) = m.media.as_ref().and_then(|p| p.payload.as_deref())
        {
            return self.play_media(payload, out);
        }
        let (kind, map) = parse_object(text, "event")?;
        match kind.as_str() {
            "media" => self.on_bot_media(&map, out),
            "mark" => {
                let name = map
                    .get("mark")
                    .and_then(|m| m.get("name"))
                    .and_then(Value::as_str)
                    .ok_or(FrameError::MissingField {
                        kind: kind.clone(),
                        field: "mark.name",
                    })?;
                out.push(Output::Mark(name.to_string()));
                Ok(())
            }
            "clear" => {
                out.push(Output::Clear);
                out.push(Output::Event(WsBotEvent::PlaybackCleared));
                Ok(())
            }
            _ => Err(FrameError::UnknownType(kind)),
        }
    }

    fn on_command(&mut self, cmd: Command, out: &mut Vec<Output>) {
        match cmd {
            Command::Audio(pcm) => self.on_audio(pcm, out),
            Command::Dtmf(digit) => {
                let seq = self.next_seq();
                let msg = json!({
                    "event": "dtmf",
                    "sequenceNumber": seq,
                    "streamSid": self.stream_sid,
                    "dtmf": {"track": "inbound_track", "digit": digit.to_string()},
                });
                out.push(Output::Send(msg.to_string()));
            }
            // Activities and user-stream control have no media-stream equivalent.
            Command::Activities(_)
            | Command::StartUserStream
            | Command::StopUserStream
            | Command::Hangup { .. } => {}
        }
    }

    fn on_person_pcmu(&mut self, pcmu: &[u8], out: &mut Vec<Output>) {
        // The stream's format is the call's own PCMU: the bytes go as they came.
        self.partial.extend_from_slice(pcmu);
        self.send_frames(out);
    }

    fn marks_played(&mut self, names: Vec<String>, out: &mut Vec<Output>) {
        for name in names {
            let seq = self.next_seq();
            let msg = json!({
                "event": "mark",
                "sequenceNumber": seq,
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            });
            out.push(Output::Send(msg.to_string()));
        }
    }

    fn closing(&mut self, _reason_code: &str, _reason: &str) -> Vec<String> {
        let seq = self.next_seq();
        vec![
            json!({
                "event": "stop",
                "sequenceNumber": seq,
                "streamSid": self.stream_sid,
                "stop": {"accountSid": "", "callSid": self.call.conversation_id},
            })
            .to_string(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(out: &[Output]) -> Vec<Vec<u8>> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(s) => serde_json::from_str::<Value>(s).ok(),
                _ => None,
            })
            .filter_map(|m| m["media"]["payload"].as_str().map(str::to_string))
            .filter_map(|p| decode_b64("t", &p).ok())
            .collect()
    }

    #[test]
    fn the_calls_pcmu_goes_out_unchanged_in_whole_20_ms_frames() {
        // 1. A stream; 25 ms of PCMU (with 0x7f, which a decode and re-encode would change).
        let call = CallInfo {
            conversation_id: "c".into(),
            caller: "a".into(),
            callee: "b".into(),
            metadata: Value::Null,
        };
        let mut ms = MediaStreamCore::new(call, Arc::new(Counters::default()));
        let mut pcmu: Vec<u8> = (0..320u32).map(|i| (i * 37 % 256) as u8).collect();
        pcmu[1] = 0x7f;
        let mut out = Vec::new();
        ms.on_person_pcmu(&pcmu[..200], &mut out);
        // 2. One frame went, byte for byte; 40 bytes wait.
        assert_eq!(payloads(&out), vec![pcmu[..160].to_vec()]);
        // 3. The next 15 ms complete the second frame.
        out.clear();
        ms.on_person_pcmu(&pcmu[200..], &mut out);
        assert_eq!(payloads(&out), vec![pcmu[160..].to_vec()]);
        // 4. PCM from the handle (`send_audio`) joins the same stream of frames.
        out.clear();
        ms.on_command(Command::Audio(vec![0; 160]), &mut out);
        assert_eq!(payloads(&out).len(), 1);
    }
}
