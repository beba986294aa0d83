//! Speech-to-text tap: the callee's speech, recognised offline by Whisper (whisper.cpp via
//! whisper-rs), delivered as text results.
//!
//! Flow: the relay pushes 20 ms frames (160 × i16 at 8 kHz) into an [`SttSession`]
//! (non-blocking: only an energy VAD runs inline). The [`segmenter`] cuts utterances; only speech
//! reaches the engine. Utterances are upsampled to 16 kHz and recognised on the engine's bounded
//! worker pool ([`engine`]); results go to the session's channel. One [`SttEngine`] holds the model
//! once for all calls.

pub mod copies;
pub mod ct2;
pub mod engine;
pub mod eval;
pub mod filter;
pub mod greeting_bias;
mod greeting_rescore;
pub mod import;
mod import_source;
pub mod mel;
pub mod rejoin;
pub mod resample;
pub mod segmenter;
pub mod session;
pub mod wav;
pub mod whisper;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde::Deserialize;

pub use engine::{SttEngine, SttStats, SttStatus};
pub use eval::{SttEvalReport, eval_dir};
pub use import::{ImportReport, WeightFormat, import_model};
pub use resample::Resampler;
pub use segmenter::SegmenterConfig;
pub use session::SttSession;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// Errors of the STT module; each says whether a call can go on without recognition.
#[derive(Debug, thiserror::Error)]
pub enum SttError {
    /// No model installed or it failed to load: calls go on, recognition is off.
    #[error("speech recognition unavailable: {0}")]
    Unavailable(String),
    /// All recognition sessions are in use (counted in [`SttStats::sessions_refused`]).
    #[error("speech recognition at capacity ({0} sessions)")]
    Capacity(usize),
    /// A model file is malformed or of an unsupported kind.
    #[error("bad model: {0}")]
    BadModel(String),
    /// File-system error (path in the message).
    #[error("io: {0}")]
    Io(String),
    /// Evaluation input is malformed (labels.csv, WAV format).
    #[error("bad evaluation input: {0}")]
    BadInput(String),
    /// The engine failed on an utterance.
    #[error("recognition failed: {0}")]
    Engine(String),
}

impl SttError {
    /// True when the call itself must not go on because of this error (never for STT: a call
    /// works without recognition).
    pub fn is_fatal_for_call(&self) -> bool {
        false
    }
    /// True when retrying later may succeed (capacity).
    pub fn is_transient(&self) -> bool {
        matches!(self, SttError::Capacity(_))
    }
}

/// Engine configuration (YAML section `stt`, all optional).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SttEngineConfig {
    /// ggml model file; default `<data_dir>/models/ggml-<model>.bin`.
    pub model_path: Option<PathBuf>,
    /// Which installed model to use when `model_path` is not set: `tiny.en` (default, fastest)
    /// or `base` (installed by `scripts/setup-model base`; more accurate, slower).
    pub model: String,
    /// Data directory used for the default model path.
    pub data_dir: PathBuf,
    /// Recognition worker threads (each holds one whisper state). Default 1.
    pub workers: usize,
    /// Compute threads per recognition. Default 2 (the machine has 2 cores).
    pub threads_per_job: usize,
    /// Jobs waiting for a worker beyond which new utterances are refused (counted). Default 8.
    pub queue_bound: usize,
    /// Concurrent sessions beyond which `session()` refuses (counted). Default 16.
    pub max_sessions: usize,
    /// Encoder window: 0 = automatic (utterance length + margin), else a fixed audio_ctx
    /// (1500 = Whisper's full 30 s window).
    pub audio_ctx: i32,
    /// Extra audio_ctx units (20 ms each) beyond the utterance in automatic mode. Default 64.
    pub audio_ctx_margin: i32,
    /// Minimum audio_ctx in automatic mode (short windows get unstable). Default 256.
    pub audio_ctx_min: i32,
    /// 8 → 16 kHz upsampler.
    pub resampler: Resampler,
    /// Results with a mean token probability below this are dropped as junk. Default 0.15 (tiny.en gives 0.2–0.35 on clear but odd-sounding speech).
    pub min_confidence: f32,
    /// Results whose no-speech probability is above this are dropped. Default 0.60.
    pub max_no_speech: f32,
    /// Beam search width; 0 or 1 = greedy decoding (default, fastest).
    pub beam_size: usize,
    /// Text given to the decoder as preceding context (Whisper's "initial prompt"); it
    /// biases spelling and style. Empty = none.
    pub initial_prompt: String,
    /// Utterances shorter than this are padded with silence to it, ms. Default 1100.
    pub pad_ms: u32,
    /// Temperature step of Whisper's fallback when a decode looks bad (0 = no fallback).
    pub temperature_inc: f32,
    /// Utterances shorter than this (ms, as recognised: speech + pre-roll + pause) are taken as
    /// a greeting: they cannot decode to digits (tiny.en heard "Hi." as "5") and are decoded
    /// after `short_prompt`. 0 = no special case. Default 2000.
    pub short_utterance_ms: u32,
    /// Decoder prompt for a session's first utterance when it is short (see
    /// `short_utterance_ms`); it biases tiny.en toward telephone greetings. Empty = none.
    /// Default "Hello? Hi. Yes? Speaking.".
    pub short_prompt: String,
    /// A session's first utterance shorter than this (ms, as recognised) is taken as the
    /// person's greeting even when it is longer than `short_utterance_ms`: decoded after
    /// `short_prompt`, without digits, and biased toward pick-up language
    /// (`greeting_bias_margin`). Later utterances keep `short_utterance_ms` (a number said
    /// mid-call must keep its digits). Default 3000.
    pub greeting_utterance_ms: u32,
    /// A phrase's first part delivered at a pause ("Hi,") and shorter than this (ms of audio,
    /// pre-roll included) is recognised again together with the rest of the phrase, and only
    /// the words after it are passed on ([`rejoin`]); only a session's first words, once. 0 = the
    /// rest is recognised alone. Default 2000.
    pub rejoin_ms: u32,
    /// Greeting bias ([`greeting_bias`]): a session's first short utterance that decoded to no
    /// pick-up phrase is decoded again within a generic greeting grammar, and the greeting is
    /// taken when its mean token log-probability is at most this far below the free text's
    /// (nats per token). 0 = off. Default 1.0.
    pub greeting_bias_margin: f32,
}

impl Default for SttEngineConfig {
    fn default() -> Self {
        Self {
            model_path: None,
            data_dir: PathBuf::from("data"),
            workers: 1,
            threads_per_job: 2,
            queue_bound: 8,
            max_sessions: 16,
            audio_ctx: 0,
            audio_ctx_margin: 64,
            audio_ctx_min: 256,
            resampler: Resampler::Sinc,
            min_confidence: 0.15,
            max_no_speech: 0.60,
            beam_size: 1,
            initial_prompt: String::new(),
            pad_ms: 1100,
            temperature_inc: 0.0,
            short_utterance_ms: 2000,
            greeting_utterance_ms: 3000,
            short_prompt: "Hello? Hi. Yes? Speaking.".into(),
            model: "tiny.en".into(),
            rejoin_ms: 2000,
            greeting_bias_margin: 1.0,
        }
    }
}

fn parse_value<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, SttError> {
    value
        .trim()
        .parse()
        .map_err(|_| SttError::BadInput(format!("{key}: cannot use {value:?}")))
}

impl SttEngineConfig {
    /// Set one decoder key from `key=value` text (the YAML key names), for `stt-eval --set`.
    pub fn set(&mut self, assignment: &str) -> Result<(), SttError> {
        let Some((key, value)) = assignment.split_once('=') else {
            return Err(SttError::BadInput(format!(
                "{assignment:?}: expected key=value"
            )));
        };
        let key = key.trim();
        match key {
            "model" => self.model = value.trim().to_owned(),
            "initial_prompt" => self.initial_prompt = value.to_owned(),
            "audio_ctx" => self.audio_ctx = parse_value(key, value)?,
            "audio_ctx_margin" => self.audio_ctx_margin = parse_value(key, value)?,
            "audio_ctx_min" => self.audio_ctx_min = parse_value(key, value)?,
            "beam_size" => self.beam_size = parse_value(key, value)?,
            "min_confidence" => self.min_confidence = parse_value(key, value)?,
            "max_no_speech" => self.max_no_speech = parse_value(key, value)?,
            "pad_ms" => self.pad_ms = parse_value(key, value)?,
            "temperature_inc" => self.temperature_inc = parse_value(key, value)?,
            "short_utterance_ms" => self.short_utterance_ms = parse_value(key, value)?,
            "greeting_utterance_ms" => self.greeting_utterance_ms = parse_value(key, value)?,
            "short_prompt" => self.short_prompt = value.to_owned(),
            "rejoin_ms" => self.rejoin_ms = parse_value(key, value)?,
            "greeting_bias_margin" => self.greeting_bias_margin = parse_value(key, value)?,
            "threads_per_job" => self.threads_per_job = parse_value(key, value)?,
            _ => return Err(SttError::BadInput(format!("unknown stt key {key:?}"))),
        }
        Ok(())
    }

    /// Where the model is looked for.
    pub fn model_file(&self) -> PathBuf {
        self.model_path.clone().unwrap_or_else(|| {
            self.data_dir
                .join("models")
                .join(format!("ggml-{}.bin", self.model))
        })
    }
}

/// Per-session configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SttSessionConfig {
    /// Language code (`en`); English-only models ignore anything else.
    pub language: String,
    /// Utterance segmentation.
    pub segmenter: SegmenterConfig,
    /// Send partial results (speculative recognitions not yet confirmed).
    pub partials: bool,
    /// Start active (recognising) — false waits for `set_active(true)`.
    pub active: bool,
    /// Capacity of the result channel; results beyond it are dropped and counted.
    pub result_capacity: usize,
    /// Evaluation only ([`eval::recognise_clip`], which stops the feed while a recognition
    /// runs): delivery rules see a result at the audio time it was queued, as on an idle machine
    /// where recognition ends within the pause; `latency_ms` still adds the measured compute.
    #[serde(skip)]
    pub simulated_clock: bool,
}

impl Default for SttSessionConfig {
    fn default() -> Self {
        Self {
            language: "en".into(),
            segmenter: SegmenterConfig::default(),
            partials: false,
            active: true,
            result_capacity: 32,
            simulated_clock: false,
        }
    }
}

impl SttSessionConfig {
    /// For machine detection: a sentence-final result is only delivered at the end of speech
    /// (`end_ms`), not at a shorter pause, so a greeting's clauses ("Good afternoon, Parker
    /// Dental, … how can I help you?") are recognised as one utterance — recognised alone, its
    /// last clause came out "How can I tell you?". The detector waits for text anyway.
    pub fn for_machine_detection(language: &str) -> Self {
        let mut c = Self {
            language: language.to_owned(),
            ..Self::default()
        };
        c.segmenter.final_pause_ms = c.segmenter.end_ms;
        c
    }
}

/// One recognition result.
#[derive(Debug, Clone, PartialEq)]
pub struct SttResult {
    /// Recognised text, trimmed.
    pub text: String,
    /// Mean token probability, 0..1.
    pub confidence: f32,
    /// Start of the utterance, ms since the session's first frame.
    pub start_ms: u64,
    /// End of speech, ms since the session's first frame.
    pub end_ms: u64,
    /// Final (true) or partial (false).
    pub is_final: bool,
    /// End of speech → result available, ms (endpointing silence + queueing + inference).
    pub latency_ms: u64,
}

/// A streaming recogniser: push 20 ms frames, receive results.
pub trait Recognizer: Send {
    /// Push one 20 ms frame (160 samples at 8 kHz). Never blocks.
    fn push_frame(&mut self, frame: &[i16]);
    /// Start (true) or stop (false) recognition; stopping discards the current utterance.
    fn set_active(&mut self, active: bool);
    /// A result, if one is ready.
    fn try_result(&mut self) -> Option<SttResult>;
}
