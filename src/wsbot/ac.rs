//! AudioCodes Bot API, WebSocket mode: dialgate's side (sans-IO).
//!
//! dialgate → bot: `session.initiate`, `session.resume`, `session.end`, `activities`,
//! `userStream.start` / `chunk` / `stop`. Bot → dialgate: `session.accepted` / `session.error`,
//! `activities`, `userStream.started` / `stopped`, `userStream.speech.*`, `playStream.start` /
//! `chunk` / `stop`. Audio is base64 in `audioChunk`.

use super::codec::{Decoder, Encoder};
use super::config::MediaFormat;
use super::error::FrameError;
use super::protocol::{
    AudioMessage, Command, Output, Protocol, decode_b64, encode_b64_into, parse_object, str_field,
};
use super::types::{CallInfo, Counters, WsBotEvent, WsBotOptions};
use crate::media::g711::ulaw_to_linear;
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
    /// `userStream.chunk` size in ms (20..=100, a multiple of 20).
    chunk_ms: u32,
    /// Audio kept while waiting for `userStream.started`, in ms.
    pre_start_ms: u32,
    /// The bot's current play stream: its ID and decoder (`None`: a format dialgate cannot
    /// play, whose chunks are dropped).
    play: Option<(String, Option<Decoder>)>,
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
            chunk_ms: opts.whole_chunk_ms(),
            pre_start_ms: opts.pre_start_audio_ms,
            play: None,
            counters,
        };
        core.set_format(preferred);
        core
    }

    fn set_format(&mut self, format: MediaFormat) {
        self.format = format;
        self.encoder = Encoder::new(format);
        let per_ms = 8 * self.encoder.bytes_per_input_sample();
        self.chunk_bytes = self.chunk_ms as usize * per_ms;
        self.pending_cap = (self.pre_start_ms as usize * per_ms).max(self.chunk_bytes);
    }

    fn on_accepted(
        &mut self,
        map: &Map<String, Value>,
        out: &mut Vec<Output>,
    ) -> Result<(), FrameError> {
        // A resume's `session.accepted` may omit mediaFormat: the agreed one stays.
        if let Some(name) = map.get("mediaFormat").and_then(Value::as_str) {
            // A format that was not offered cannot be spoken: refuse the session clearly
            // rather than waiting for an acceptance that will not come.
            let Some(format) = MediaFormat::parse(name).filter(|f| self.offered.contains(f)) else {
                out.push(Output::Rejected(format!(
                    "the bot accepted with media format {name:?}, which was not offered"
                )));
                return Ok(());
            };
            self.set_format(format);
        }
        out.push(Output::Accepted);
        Ok(())
    }

    fn chunk_message(&self, bytes: &[u8]) -> String {
        // Written directly, not through a JSON tree: one per 20 ms per call, and base64 needs
        // no escaping.
        const HEAD: &str = r#"{"type":"userStream.chunk","audioChunk":""#;
        let mut s = String::with_capacity(HEAD.len() + bytes.len().div_ceil(3) * 4 + 2);
        s.push_str(HEAD);
        encode_b64_into(bytes, &mut s);
        s.push_str("\"}");
        s
    }

    /// Sends whole chunks of the pending audio (and the remainder when `all`).
    fn drain_pending(&mut self, all: bool, out: &mut Vec<Output>) {
        while self.pending.len() >= self.chunk_bytes || (all && !self.pending.is_empty()) {
            let n = self.pending.len().min(self.chunk_bytes);
            // The message is written from the buffer in place: no copy of the chunk.
            let message = self.chunk_message(&self.pending[..n]);
            self.pending.drain(..n);
            out.push(Output::Send(message));
            Counters::bump(&self.counters.chunks_sent);
        }
    }

    fn on_audio(&mut self, pcm: &[i16], out: &mut Vec<Output>) {
        let bytes = pcm.len() * self.encoder.bytes_per_input_sample();
        self.take_audio(bytes, out, |encoder, pending| encoder.encode(pcm, pending));
    }

    /// Adds `bytes` of the person's audio, written into the pending buffer by `fill`, to the
    /// user stream (kept, bounded, until it is open; dropped while it is idle).
    fn take_audio(
        &mut self,
        bytes: usize,
        out: &mut Vec<Output>,
        fill: impl FnOnce(&mut Encoder, &mut Vec<u8>),
    ) {
        match self.user {
            UserStream::Idle => {}
            UserStream::Starting => {
                if self.pending.len() + bytes > self.pending_cap {
                    Counters::bump(&self.counters.audio_dropped);
                    return;
                }
                fill(&mut self.encoder, &mut self.pending);
            }
            UserStream::Open => {
                fill(&mut self.encoder, &mut self.pending);
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
                if self.play.is_some() {
                    out.push(Output::PlayEnd);
                }
                let format = match map.get("mediaFormat").and_then(Value::as_str) {
                    None => self.format,
                    Some(name) => match MediaFormat::parse(name) {
                        Some(f) => f,
                        None => {
                            self.play = Some((stream_id, None));
                            return Err(FrameError::UnsupportedFormat(name.to_string()));
                        }
                    },
                };
                self.play = Some((stream_id.clone(), Some(Decoder::new(format))));
                out.push(Output::Event(WsBotEvent::PlayStarted { stream_id }));
            }
            "playStream.chunk" => {
                let audio = str_field(map, kind, "audioChunk")?;
                self.on_play_chunk(&stream_id, audio, out)?;
            }
            _ => {
                self.play = None;
                out.push(Output::PlayEnd);
                out.push(Output::Event(WsBotEvent::PlayStopped { stream_id }));
            }
        }
        Ok(())
    }

    /// `playStream.chunk`: the bot's audio.
    fn on_play_chunk(
        &mut self,
        stream_id: &str,
        audio_b64: &str,
        out: &mut Vec<Output>,
    ) -> Result<(), FrameError> {
        let bytes = decode_b64("playStream.chunk", audio_b64)?;
        let format = self.format;
        // A chunk without its start is still the bot's voice: play it in the session format.
        let (_, decoder) = self
            .play
            .get_or_insert_with(|| (stream_id.to_string(), Some(Decoder::new(format))));
        Counters::bump(&self.counters.chunks_received);
        // A stream in a format dialgate cannot play was reported at its start.
        if let Some(decoder) = decoder {
            let mut pcm = Vec::with_capacity(bytes.len());
            decoder.decode(&bytes, &mut pcm);
            out.push(Output::Play(pcm));
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
        // The bot's audio, most of the traffic, without a JSON tree.
        if let Some(m) = AudioMessage::parse(text)
            && m.kind.as_deref() == Some("playStream.chunk")
            && let Some(audio) = &m.audio_chunk
        {
            let stream_id = m.stream_id.as_deref().unwrap_or_default();
            return self.on_play_chunk(stream_id, audio, out);
        }
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

    fn on_person_pcmu(&mut self, pcmu: &[u8], out: &mut Vec<Output>) {
        if self.format != MediaFormat::Mulaw {
            let pcm: Vec<i16> = pcmu.iter().map(|&b| ulaw_to_linear(b)).collect();
            return self.on_audio(&pcm, out);
        }
        // `raw/mulaw` is the call's own PCMU: the bytes go to the bot as they came.
        self.take_audio(pcmu.len(), out, |_, pending| {
            pending.extend_from_slice(pcmu)
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn core(chunk_ms: u32, pre_start_ms: u32) -> (AcCore, Arc<Counters>) {
        let counters = Arc::new(Counters::default());
        let opts = WsBotOptions {
            chunk_ms,
            pre_start_audio_ms: pre_start_ms,
            ..Default::default()
        };
        let call = CallInfo {
            conversation_id: "c".into(),
            caller: "a".into(),
            callee: "b".into(),
            metadata: Value::Null,
        };
        let core = AcCore::new(call, MediaFormat::Mulaw, &opts, counters.clone());
        (core, counters)
    }

    /// A core with 20 ms chunks whose user stream is open (`userStream.started` seen), after
    /// the bot accepted `format` if one is given; what it sent so far is dropped.
    fn streaming(format: Option<&str>) -> AcCore {
        let (mut ac, _) = core(20, 1000);
        let mut out = Vec::new();
        if let Some(f) = format {
            let accepted = format!(r#"{{"type":"session.accepted","mediaFormat":"{f}"}}"#);
            ac.on_text(&accepted, &mut out).unwrap();
        }
        ac.on_command(Command::StartUserStream, &mut out);
        ac.on_text(r#"{"type":"userStream.started"}"#, &mut out)
            .unwrap();
        ac
    }

    fn sent(out: &[Output]) -> Vec<Value> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(s) => serde_json::from_str(s).ok(),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn audio_waits_bounded_for_started_then_goes_in_chunks() {
        // 1. 100 ms chunks, 200 ms kept before userStream.started.
        let (mut ac, counters) = core(100, 200);
        let mut out = Vec::new();
        ac.on_command(Command::StartUserStream, &mut out);
        assert_eq!(sent(&out)[0]["type"], "userStream.start");
        // 2. 300 ms of audio before started: 200 ms kept, 100 ms dropped and counted.
        out.clear();
        for _ in 0..15 {
            ac.on_command(Command::Audio(vec![0; 160]), &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(counters.snapshot(Default::default()).audio_dropped, 5);
        // 3. started: the kept audio goes out as two 100 ms chunks.
        ac.on_text(r#"{"type":"userStream.started"}"#, &mut out)
            .unwrap();
        let msgs = sent(&out);
        assert_eq!(msgs.len(), 2);
        assert!(msgs.iter().all(|m| m["type"] == "userStream.chunk"));
        // 4. 60 ms more stays until stop, which sends it before userStream.stop.
        out.clear();
        for _ in 0..3 {
            ac.on_command(Command::Audio(vec![0; 160]), &mut out);
        }
        assert!(out.is_empty());
        ac.on_command(Command::StopUserStream, &mut out);
        let types: Vec<_> = sent(&out).iter().map(|m| m["type"].clone()).collect();
        assert_eq!(
            types,
            vec![
                Value::from("userStream.chunk"),
                Value::from("userStream.stop")
            ]
        );
    }

    #[test]
    fn an_acceptance_in_a_format_not_offered_refuses_the_session() {
        let (mut ac, _) = core(20, 1000);
        let mut out = Vec::new();
        ac.on_text(
            r#"{"type":"session.accepted","mediaFormat":"audio/opus"}"#,
            &mut out,
        )
        .unwrap();
        assert!(matches!(&out[..], [Output::Rejected(r)] if r.contains("audio/opus")));
    }

    #[test]
    fn closing_ends_the_user_stream_then_the_session() {
        let mut ac = streaming(None);
        let frames = ac.closing("client-disconnected", "bye");
        let v: Vec<Value> = frames
            .iter()
            .filter_map(|f| serde_json::from_str(f).ok())
            .collect();
        assert_eq!(v[0]["type"], "userStream.stop");
        assert_eq!(v[1]["type"], "session.end");
        assert_eq!(v[1]["reasonCode"], "client-disconnected");
    }

    #[test]
    fn the_calls_pcmu_goes_to_a_mulaw_bot_byte_for_byte() {
        // 1. An open user stream in raw/mulaw, 20 ms chunks.
        let mut ac = streaming(None);
        let mut out = Vec::new();
        // 2. 30 ms of PCMU, with 0x7f (negative zero, which a decode and re-encode would turn
        //    into 0xff): one whole chunk goes, the rest waits.
        let mut pcmu: Vec<u8> = (0..240u32).map(|i| (i * 37 % 256) as u8).collect();
        pcmu[1] = 0x7f;
        ac.on_person_pcmu(&pcmu, &mut out);
        let msgs = sent(&out);
        assert_eq!(msgs.len(), 1);
        // 3. The chunk is the first 160 bytes exactly as they came.
        let b64 = msgs[0]["audioChunk"].as_str().unwrap_or_default();
        assert_eq!(decode_b64("t", b64).unwrap(), pcmu[..160].to_vec());
    }

    #[test]
    fn the_calls_pcmu_is_resampled_for_an_lpcm_bot() {
        // 1. A session accepted in raw/lpcm16 (16 kHz), its user stream open.
        let mut ac = streaming(Some("raw/lpcm16"));
        let mut out = Vec::new();
        // 2. 20 ms of PCMU becomes one chunk of 20 ms at 16 kHz, 16-bit: 640 bytes.
        ac.on_person_pcmu(&[0xffu8; 160], &mut out);
        let msgs = sent(&out);
        assert_eq!(msgs.len(), 1);
        let b64 = msgs[0]["audioChunk"].as_str().unwrap_or_default();
        assert_eq!(decode_b64("t", b64).unwrap().len(), 640);
    }
}
