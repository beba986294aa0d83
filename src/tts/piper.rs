//! The Piper voice (a VITS model exported to ONNX) run with ONNX Runtime, whose shared library
//! (from the PyPI `onnxruntime` wheel) is loaded at run time.
//!
//! Inputs as Piper feeds them: `input` (phoneme IDs, int64 [1, n]), `input_lengths` ([n]),
//! `scales` ([noise_scale, length_scale, noise_w]); output `output`, f32 samples at the voice's
//! rate. The audio is peak-normalised per sentence (Piper's default) and scaled by the gain.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;
use serde::Deserialize;

use super::phonemes::{PhonemeMap, check_espeak, sentence_phonemes};
use super::{SETUP_HINT, Synthesizer, TtsConfig, TtsError, Voice};

#[derive(Debug, Deserialize)]
struct RawConfig {
    audio: RawAudio,
    espeak: RawEspeak,
    #[serde(default)]
    inference: RawInference,
    #[serde(default)]
    phoneme_type: Option<String>,
    #[serde(default)]
    num_speakers: Option<u32>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Debug, Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Debug, Deserialize)]
struct RawEspeak {
    voice: String,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
struct RawInference {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

impl Default for RawInference {
    fn default() -> Self {
        Self {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

/// A loaded Piper voice: configuration and phoneme table (the model itself is opened once per
/// worker by [`Voice::synthesizer`]).
pub struct PiperVoice {
    name: String,
    model: PathBuf,
    sample_rate: u32,
    espeak_voice: String,
    scales: [f32; 3],
    map: PhonemeMap,
    threads: usize,
    gain: f32,
    env: Arc<Environment>,
}

static ORT_ENV: OnceLock<Result<Arc<Environment>, String>> = OnceLock::new();

/// Load ONNX Runtime from `library` (once per process: the first path wins).
fn runtime(library: &Path) -> Result<Arc<Environment>, TtsError> {
    // Checked on every call: a configuration naming a missing library is wrong even when
    // another one is already loaded.
    if !library.is_file() {
        return Err(TtsError::Unavailable(format!(
            "ONNX Runtime library {} is missing: {SETUP_HINT}",
            library.display()
        )));
    }
    ORT_ENV
        .get_or_init(|| {
            let builder = ort::init_from(library)
                .map_err(|e| format!("cannot load ONNX Runtime {}: {e}", library.display()))?;
            builder
                .with_name("dialgate-tts")
                .build()
                .map(Arc::new)
                .map_err(|e| format!("ONNX Runtime environment: {e}"))
        })
        .clone()
        .map_err(TtsError::Unavailable)
}

impl PiperVoice {
    /// Check and load what the voice needs: model and config files, ONNX Runtime, espeak-ng
    /// with the voice's language. Every failure says what is missing and what to run.
    pub fn load(cfg: &TtsConfig) -> Result<PiperVoice, TtsError> {
        let (model, config) = (cfg.model_file(), cfg.voice_config_file());
        for f in [&model, &config] {
            if !f.is_file() {
                return Err(TtsError::Unavailable(format!(
                    "voice file {} is missing: {SETUP_HINT}",
                    f.display()
                )));
            }
        }
        let text = std::fs::read_to_string(&config)
            .map_err(|e| TtsError::BadVoice(format!("{}: {e}", config.display())))?;
        let raw: RawConfig = serde_json::from_str(&text)
            .map_err(|e| TtsError::BadVoice(format!("{}: {e}", config.display())))?;
        if raw.phoneme_type.as_deref().is_some_and(|t| t != "espeak") {
            return Err(TtsError::BadVoice(format!(
                "{}: phoneme_type {:?} is not supported (espeak voices only)",
                config.display(),
                raw.phoneme_type
            )));
        }
        if raw.num_speakers.unwrap_or(1) > 1 {
            return Err(TtsError::BadVoice(format!(
                "{}: multi-speaker voices are not supported",
                config.display()
            )));
        }
        let map = PhonemeMap::new(&raw.phoneme_id_map)?;
        check_espeak(&raw.espeak.voice)?;
        let env = runtime(&cfg.runtime_file())?;
        let inf = raw.inference;
        Ok(PiperVoice {
            name: cfg.voice.clone(),
            model,
            sample_rate: raw.audio.sample_rate,
            espeak_voice: raw.espeak.voice,
            scales: [
                cfg.noise_scale.unwrap_or(inf.noise_scale),
                cfg.length_scale.unwrap_or(inf.length_scale),
                cfg.noise_w.unwrap_or(inf.noise_w),
            ],
            map,
            threads: cfg.threads_per_job.max(1),
            gain: cfg.gain.clamp(0.0, 1.0),
            env,
        })
    }

    /// The phoneme IDs the model gets for a sentence (diagnostics).
    pub fn phoneme_ids(&self, sentence: &str) -> Result<Vec<i64>, TtsError> {
        let phonemes = sentence_phonemes(&self.espeak_voice, sentence)?;
        Ok(self.map.ids(&phonemes).0)
    }
}

impl Voice for PiperVoice {
    fn name(&self) -> &str {
        &self.name
    }

    fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    fn synthesizer(&self) -> Result<Box<dyn Synthesizer>, TtsError> {
        let engine = |e: &dyn std::fmt::Display| TtsError::Engine(format!("model session: {e}"));
        let session = Session::builder(&self.env)
            .map_err(|e| engine(&e))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| engine(&e))?
            .with_intra_threads(self.threads)
            .map_err(|e| engine(&e))?
            // The machine is shared: idle ORT threads must sleep, not spin.
            .with_intra_op_spinning(false)
            .map_err(|e| engine(&e))?
            .commit_from_file(&self.model)
            .map_err(|e| {
                TtsError::Unavailable(format!(
                    "cannot open voice model {}: {e}",
                    self.model.display()
                ))
            })?;
        Ok(Box::new(PiperSynth {
            session,
            voice: PiperParams {
                ids: self.map.clone(),
                espeak_voice: self.espeak_voice.clone(),
                scales: self.scales,
                gain: self.gain,
            },
        }))
    }
}

struct PiperParams {
    ids: PhonemeMap,
    espeak_voice: String,
    scales: [f32; 3],
    gain: f32,
}

/// One worker's model session.
struct PiperSynth {
    session: Session,
    voice: PiperParams,
}

impl Synthesizer for PiperSynth {
    fn synthesize(&mut self, sentence: &str) -> Result<Vec<f32>, TtsError> {
        let phonemes = sentence_phonemes(&self.voice.espeak_voice, sentence)?;
        let (ids, unknown) = self.voice.ids.ids(&phonemes);
        if unknown > 0 {
            tracing::debug!(unknown, %phonemes, "phonemes missing from the voice's map skipped");
        }
        if ids.len() <= 3 {
            return Err(TtsError::Empty);
        }
        let engine = |e: &dyn std::fmt::Display| TtsError::Engine(e.to_string());
        let n = ids.len();
        let input = Tensor::from_array(([1usize, n], ids)).map_err(|e| engine(&e))?;
        let lengths = Tensor::from_array(([1usize], vec![n as i64])).map_err(|e| engine(&e))?;
        let scales =
            Tensor::from_array(([3usize], self.voice.scales.to_vec())).map_err(|e| engine(&e))?;
        let outputs = self
            .session
            .run(ort::inputs![
                "input" => input,
                "input_lengths" => lengths,
                "scales" => scales,
            ])
            .map_err(|e| engine(&e))?;
        let (_, audio) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| engine(&e))?;
        let peak = audio.iter().fold(0f32, |m, s| m.max(s.abs()));
        let scale = if peak < 1e-6 {
            0.0
        } else {
            self.voice.gain / peak
        };
        Ok(audio.iter().map(|s| s * scale).collect())
    }
}
