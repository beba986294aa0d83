//! Speech synthesis: what a text bot writes, spoken to the person, offline.
//!
//! Flow: [`TtsEngine::speak`] normalises the text ([`normalize`]), cuts it into sentences
//! ([`sentences`]) and hands them to a bounded pool of synthesis workers (threads, never the
//! async runtime or the relay). Each worker owns a [`Synthesizer`] (the Piper voice
//! `en_US-joe-medium` on ONNX Runtime, phonemes from espeak-ng); each sentence's audio is
//! resampled to 8 kHz ([`resample`]) and delivered as soon as it is ready, so the first sentence
//! plays while the rest are synthesised. Repeated sentences come from a size-bounded cache. The
//! [`player`] sends the audio as paced RTP (20 ms G.711 frames) to the call's bot-side port.
//!
//! Without the voice, the runtime or espeak-ng the engine is [`TtsStatus::Unavailable`] with a
//! reason that names what to run (`scripts/setup-model`).

pub mod audio_file;
pub mod cache;
pub mod engine;
pub mod eval;
pub mod normalize;
pub mod numbers;
pub mod phonemes;
pub mod piper;
pub mod player;
mod pool;
pub mod resample;
pub mod sentences;
pub mod stream;

use std::path::PathBuf;

pub use engine::{TtsEngine, TtsStats, TtsStatus};
pub use normalize::normalize;
pub use player::{Player, PlayerConfig, PlayerEvent, Prompt, PromptId};

pub use stream::{SpeechChunk, SpeechStream};

/// Output sample rate: telephone band.
pub const OUTPUT_RATE: u32 = 8000;
/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// What to run when the engine is missing.
pub const SETUP_HINT: &str = "run scripts/setup-model";

/// Errors of the synthesis module.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TtsError {
    /// The voice, ONNX Runtime or espeak-ng is not installed or failed to load (the message
    /// says which and what to run). A text bot cannot speak: its configuration is refused.
    #[error("speech synthesis unavailable: {0}")]
    Unavailable(String),
    /// The voice's files are malformed (config JSON, phoneme map).
    #[error("bad voice: {0}")]
    BadVoice(String),
    /// Phonemisation failed.
    #[error("phonemes: {0}")]
    Phonemes(String),
    /// The synthesis queue is full (counted in [`TtsStats::jobs_refused`]); retry later.
    #[error("speech synthesis at capacity ({0} jobs queued)")]
    Capacity(usize),
    /// The text holds nothing to say.
    #[error("nothing to say")]
    Empty,
    /// The model failed on a sentence.
    #[error("synthesis failed: {0}")]
    Engine(String),
    /// An audio file for a prompt is unreadable or of an unsupported format.
    #[error("bad audio file: {0}")]
    BadAudio(String),
    /// A prompt's audio could not be had (fetch or decoding failed); the message says why.
    #[error("{0}")]
    Unplayable(String),
}

impl TtsError {
    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, TtsError::Capacity(_))
    }
}

/// One synthesis engine instance (owned by one worker thread): sentence text in, mono PCM out.
/// Another voice or engine is added by implementing this and [`Voice`].
pub trait Synthesizer: Send {
    /// Synthesise one normalised sentence to mono f32 samples in [-1, 1] at
    /// [`Voice::sample_rate`].
    fn synthesize(&mut self, sentence: &str) -> Result<Vec<f32>, TtsError>;
}

/// A loaded voice: its metadata, and a factory of [`Synthesizer`]s (one per worker).
pub trait Voice: Send + Sync {
    /// Voice name, e.g. `en_US-joe-medium`.
    fn name(&self) -> &str;
    /// Native output sample rate, Hz.
    fn sample_rate(&self) -> u32;
    /// A synthesiser for one worker thread.
    fn synthesizer(&self) -> Result<Box<dyn Synthesizer>, TtsError>;
}

/// Engine configuration (all optional; defaults suit the 2-core machine).
#[derive(Debug, Clone)]
pub struct TtsConfig {
    /// Data directory holding `models/piper/` and `runtime/onnxruntime/`.
    pub data_dir: PathBuf,
    /// Voice name (files `<data_dir>/models/piper/<voice>.onnx` and `.onnx.json`).
    pub voice: String,
    /// ONNX Runtime shared library; default
    /// `<data_dir>/runtime/onnxruntime/libonnxruntime.so.1.31.1`.
    pub runtime_library: Option<PathBuf>,
    /// Synthesis worker threads (each holds one model session). Default 1.
    pub workers: usize,
    /// Compute threads per synthesis. Default 1 (the RTF goal is for one core).
    pub threads_per_job: usize,
    /// Utterances waiting for a worker beyond which `speak` refuses (counted). Default 16.
    pub queue_bound: usize,
    /// Cache of synthesised sentences (8 kHz PCM), bytes. Default 16 MiB (~17 min of audio).
    pub cache_bytes: usize,
    /// Output gain applied to the voice's peak-normalised audio (0.0–1.0): headroom for the
    /// resampler's ripple and G.711. Default 0.7 (−3 dBFS).
    pub gain: f32,
    /// Speaking rate: Piper's `length_scale` (> 1 slower; `None` = the voice's own, 1.0).
    /// Default 1.1: over the telephone channel the recogniser understood it better (tts-eval
    /// WER 3.6 % against 5.4–6.0 % at 1.0) for the same first-audio and CPU cost per second.
    pub length_scale: Option<f32>,
    /// Piper's `noise_scale` and `noise_w` (`None` = the voice's own, 0.667 / 0.8): the
    /// randomness the model adds to voice and timing. 0 makes synthesis deterministic (tests).
    pub noise_scale: Option<f32>,
    /// See `noise_scale`.
    pub noise_w: Option<f32>,
    /// A first sentence longer than this many words (+2) is cut into a short first piece, so
    /// the first audio comes sooner ([`sentences::split_first`]). 0 = never. Default 5.
    pub first_piece_words: usize,
}

impl Default for TtsConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            voice: "en_US-joe-medium".into(),
            runtime_library: None,
            workers: 1,
            threads_per_job: 1,
            queue_bound: 16,
            cache_bytes: 16 << 20,
            gain: 0.7,
            length_scale: Some(1.1),
            noise_scale: None,
            noise_w: None,
            first_piece_words: 5,
        }
    }
}

impl TtsConfig {
    /// The voice model file.
    pub fn model_file(&self) -> PathBuf {
        self.data_dir
            .join("models")
            .join("piper")
            .join(format!("{}.onnx", self.voice))
    }
    /// The voice configuration file (`.onnx.json`).
    pub fn voice_config_file(&self) -> PathBuf {
        self.data_dir
            .join("models")
            .join("piper")
            .join(format!("{}.onnx.json", self.voice))
    }
    /// The ONNX Runtime shared library.
    pub fn runtime_file(&self) -> PathBuf {
        self.runtime_library.clone().unwrap_or_else(|| {
            self.data_dir
                .join("runtime")
                .join("onnxruntime")
                .join("libonnxruntime.so.1.31.1")
        })
    }

    /// The first of the voice's files (model, its configuration, ONNX Runtime) that is not
    /// there: what can be told without loading the voice (a model load).
    pub fn missing_file(&self) -> Option<PathBuf> {
        [
            self.model_file(),
            self.voice_config_file(),
            self.runtime_file(),
        ]
        .into_iter()
        .find(|f| !f.is_file())
    }
}
