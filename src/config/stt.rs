//! `server.stt` decoder keys (the fields of [`crate::stt::SttEngineConfig`] a deployment may
//! choose), their checks, and the installed-model check. Read at start: the engine loads the
//! model and its workers once, so a change needs a restart (a reload validates the keys but the
//! running engine keeps its settings).

use std::path::{Path, PathBuf};

use super::error::ErrorKind;
use super::raw::RawStt;
use super::validate::Ctx;
use crate::stt::SttEngineConfig;

/// The default model: without it calls still work (warnings only), so a missing file of *this*
/// model is not a configuration error; any other model was chosen on purpose and must exist.
pub const DEFAULT_MODEL: &str = "tiny.en";

/// Longest decoder prompt accepted, characters (Whisper keeps at most 224 prompt tokens; a
/// longer text is cut by the model anyway and costs decoding time on every utterance).
const MAX_PROMPT_CHARS: usize = 400;

/// Largest greeting bias margin accepted (nats per token): beyond it any greeting would win.
const MAX_BIAS_MARGIN: f32 = 5.0;

/// How the recogniser decodes (`server.stt` decoder keys). Defaults are the engine's.
#[derive(Debug, Clone)]
pub struct SttDecoder {
    /// Utterances shorter than this (ms) are taken as a greeting (digits suppressed, first one
    /// decoded after `short_prompt`); 0 = no special case.
    pub short_utterance_ms: u32,
    /// A session's first utterance shorter than this (ms) is taken as the greeting (prompt,
    /// no digits, greeting bias) even beyond `short_utterance_ms`.
    pub greeting_utterance_ms: u32,
    /// Decoder prompt for a session's first short utterance; empty = none.
    pub short_prompt: String,
    /// Decoder prompt for every other utterance; empty = none.
    pub initial_prompt: String,
    /// Utterances shorter than this are padded with silence to it, ms.
    pub pad_ms: u32,
    /// Temperature step of Whisper's fallback (0 = no fallback).
    pub temperature_inc: f32,
    /// Beam width; 1 = greedy.
    pub beam_size: u32,
    /// Results with a lower mean token probability are dropped.
    pub min_confidence: f32,
    /// Results with a higher no-speech probability are dropped.
    pub max_no_speech: f32,
    /// Encoder window: 0 = automatic, else a fixed audio_ctx (1500 = the full 30 s).
    pub audio_ctx: u32,
    /// Minimum automatic window (audio_ctx units of 20 ms).
    pub audio_ctx_min: u32,
    /// Automatic window beyond the utterance (audio_ctx units of 20 ms).
    pub audio_ctx_margin: u32,
    /// A delivered first part of a phrase shorter than this (ms) is recognised again with the
    /// rest of the phrase; 0 = the rest is recognised alone.
    pub rejoin_ms: u32,
    /// Greeting bias margin, mean log-probability per token (0 = off): see
    /// [`crate::stt::greeting_bias`].
    pub greeting_bias_margin: f32,
}

impl Default for SttDecoder {
    fn default() -> Self {
        let e = SttEngineConfig::default();
        SttDecoder {
            short_utterance_ms: e.short_utterance_ms,
            greeting_utterance_ms: e.greeting_utterance_ms,
            short_prompt: e.short_prompt,
            initial_prompt: e.initial_prompt,
            pad_ms: e.pad_ms,
            temperature_inc: e.temperature_inc,
            beam_size: e.beam_size as u32,
            min_confidence: e.min_confidence,
            max_no_speech: e.max_no_speech,
            audio_ctx: e.audio_ctx.max(0) as u32,
            audio_ctx_min: e.audio_ctx_min.max(0) as u32,
            audio_ctx_margin: e.audio_ctx_margin.max(0) as u32,
            rejoin_ms: e.rejoin_ms,
            greeting_bias_margin: e.greeting_bias_margin,
        }
    }
}

// Compared bit for bit so the settings can sit in the `Eq` configuration types (a reload that
// changes nothing compares equal; NaN cannot pass validation).
impl PartialEq for SttDecoder {
    fn eq(&self, o: &Self) -> bool {
        self.short_utterance_ms == o.short_utterance_ms
            && self.greeting_utterance_ms == o.greeting_utterance_ms
            && self.short_prompt == o.short_prompt
            && self.initial_prompt == o.initial_prompt
            && self.pad_ms == o.pad_ms
            && self.temperature_inc.to_bits() == o.temperature_inc.to_bits()
            && self.beam_size == o.beam_size
            && self.min_confidence.to_bits() == o.min_confidence.to_bits()
            && self.max_no_speech.to_bits() == o.max_no_speech.to_bits()
            && self.audio_ctx == o.audio_ctx
            && self.audio_ctx_min == o.audio_ctx_min
            && self.audio_ctx_margin == o.audio_ctx_margin
            && self.rejoin_ms == o.rejoin_ms
            && self.greeting_bias_margin.to_bits() == o.greeting_bias_margin.to_bits()
    }
}
impl Eq for SttDecoder {}

impl SttDecoder {
    /// Writes these settings into the engine configuration.
    pub fn apply(&self, e: &mut SttEngineConfig) {
        e.short_utterance_ms = self.short_utterance_ms;
        e.greeting_utterance_ms = self.greeting_utterance_ms;
        e.short_prompt = self.short_prompt.clone();
        e.initial_prompt = self.initial_prompt.clone();
        e.pad_ms = self.pad_ms;
        e.temperature_inc = self.temperature_inc;
        e.beam_size = self.beam_size as usize;
        e.min_confidence = self.min_confidence;
        e.max_no_speech = self.max_no_speech;
        e.audio_ctx = self.audio_ctx as i32;
        e.audio_ctx_min = self.audio_ctx_min as i32;
        e.audio_ctx_margin = self.audio_ctx_margin as i32;
        e.rejoin_ms = self.rejoin_ms;
        e.greeting_bias_margin = self.greeting_bias_margin;
    }

    /// One line for `dialgate check`.
    pub fn summary(&self) -> String {
        let window = if self.audio_ctx == 0 {
            format!(
                "auto (min {} ms, +{} ms)",
                self.audio_ctx_min * 20,
                self.audio_ctx_margin * 20
            )
        } else {
            format!("{} ms", self.audio_ctx * 20)
        };
        format!(
            "short_utterance_ms {} greeting_utterance_ms {} short_prompt {:?} initial_prompt {:?} pad_ms {} window {} \
             beam_size {} temperature_inc {} min_confidence {} max_no_speech {} rejoin_ms {} greeting_bias_margin {}",
            self.short_utterance_ms,
            self.greeting_utterance_ms,
            self.short_prompt,
            self.initial_prompt,
            self.pad_ms,
            window,
            self.beam_size.max(1),
            self.temperature_inc,
            self.min_confidence,
            self.max_no_speech,
            self.rejoin_ms,
            self.greeting_bias_margin
        )
    }
}

/// The command that installs `model` (tiny.en is the script's default; others are named).
pub fn install_command(model: &str) -> String {
    if model == DEFAULT_MODEL {
        super::INSTALL_MODEL.to_owned()
    } else {
        format!("{} DATA_DIR {model}", super::INSTALL_MODEL)
    }
}

/// `<data_dir>/models/ggml-<model>.bin`, as the engine looks for it.
pub fn model_path(data_dir: &Path, model: &str) -> PathBuf {
    data_dir.join("models").join(format!("ggml-{model}.bin"))
}

impl Ctx<'_> {
    /// The decoder keys of `server.stt`, each range-checked at its node.
    pub(super) fn stt_decoder(&mut self, raw: &RawStt) -> SttDecoder {
        let d = SttDecoder::default();
        SttDecoder {
            short_utterance_ms: self.stt_whole(
                "short_utterance_ms",
                raw.short_utterance_ms,
                (0, 10_000),
                d.short_utterance_ms,
            ),
            greeting_utterance_ms: self.stt_whole(
                "greeting_utterance_ms",
                raw.greeting_utterance_ms,
                (0, 10_000),
                d.greeting_utterance_ms,
            ),
            short_prompt: self.stt_prompt("short_prompt", &raw.short_prompt, d.short_prompt),
            initial_prompt: self.stt_prompt(
                "initial_prompt",
                &raw.initial_prompt,
                d.initial_prompt,
            ),
            pad_ms: self.stt_whole("pad_ms", raw.pad_ms, (0, 10_000), d.pad_ms),
            temperature_inc: self.stt_unit(
                "temperature_inc",
                raw.temperature_inc,
                d.temperature_inc,
            ),
            beam_size: self.stt_whole("beam_size", raw.beam_size, (1, 8), d.beam_size),
            min_confidence: self.stt_unit("min_confidence", raw.min_confidence, d.min_confidence),
            max_no_speech: self.stt_unit("max_no_speech", raw.max_no_speech, d.max_no_speech),
            audio_ctx: self.stt_whole("audio_ctx", raw.audio_ctx, (0, 1500), d.audio_ctx),
            audio_ctx_min: self.stt_whole(
                "audio_ctx_min",
                raw.audio_ctx_min,
                (1, 1500),
                d.audio_ctx_min,
            ),
            audio_ctx_margin: self.stt_whole(
                "audio_ctx_margin",
                raw.audio_ctx_margin,
                (0, 1500),
                d.audio_ctx_margin,
            ),
            rejoin_ms: self.stt_whole("rejoin_ms", raw.rejoin_ms, (0, 10_000), d.rejoin_ms),
            greeting_bias_margin: self.stt_margin(
                "greeting_bias_margin",
                raw.greeting_bias_margin,
                d.greeting_bias_margin,
            ),
        }
    }

    /// `server.stt.<key>`: a finite number from 0 to [`MAX_BIAS_MARGIN`] (nats per token), or
    /// `dflt` when absent or invalid.
    fn stt_margin(&mut self, key: &str, v: Option<f32>, dflt: f32) -> f32 {
        let Some(v) = v else { return dflt };
        if !(v.is_finite() && (0.0..=MAX_BIAS_MARGIN).contains(&v)) {
            self.err(
                0,
                &format!("server.stt.{key}"),
                ErrorKind::InvalidValue,
                format!("expected a number from 0 to {MAX_BIAS_MARGIN}, got {v}"),
            );
            return dflt;
        }
        v
    }

    /// `server.stt.<key>`: a whole number in `min..=max` (an error at the key otherwise), or
    /// `dflt` when absent.
    fn stt_whole(&mut self, key: &str, v: Option<u32>, (min, max): (u32, u32), dflt: u32) -> u32 {
        let Some(v) = v else { return dflt };
        if !(min..=max).contains(&v) {
            self.err(
                0,
                &format!("server.stt.{key}"),
                ErrorKind::InvalidValue,
                format!("expected a whole number from {min} to {max}, got {v}"),
            );
        }
        v
    }

    /// `server.stt.<key>`: a finite number from 0 to 1, or `dflt` when absent or invalid.
    fn stt_unit(&mut self, key: &str, v: Option<f32>, dflt: f32) -> f32 {
        const MAX: f32 = 1.0;
        let Some(v) = v else { return dflt };
        if !(v.is_finite() && (0.0..=MAX).contains(&v)) {
            self.err(
                0,
                &format!("server.stt.{key}"),
                ErrorKind::InvalidValue,
                format!("expected a number from 0 to {MAX}, got {v}"),
            );
            return dflt;
        }
        v
    }

    /// `server.stt.<key>`: one line of at most [`MAX_PROMPT_CHARS`] characters, or `dflt`.
    fn stt_prompt(&mut self, key: &str, v: &Option<String>, dflt: String) -> String {
        let Some(v) = v else { return dflt };
        let n = v.chars().count();
        let problem = if n > MAX_PROMPT_CHARS {
            Some(format!("{n} characters"))
        } else if v.chars().any(char::is_control) {
            Some("a line break or control character".to_owned())
        } else {
            None
        };
        if let Some(got) = problem {
            self.err(
                0,
                &format!("server.stt.{key}"),
                ErrorKind::InvalidValue,
                format!("expected one line of at most {MAX_PROMPT_CHARS} characters, got {got}"),
            );
        }
        v.clone()
    }

    /// A model other than the default was chosen on purpose: its file must be installed, or the
    /// deployment would run without the recognition it asked for (the default model missing is
    /// only warned about: calls work without recognition).
    pub(super) fn stt_model_installed(&mut self, model: &str, data_dir: &Path) {
        if model == DEFAULT_MODEL {
            return;
        }
        let path = model_path(data_dir, model);
        if !super::recognition::is_installed(&path) {
            self.err(
                0,
                "server.stt.model",
                ErrorKind::MissingFile,
                format!(
                    "model file {} does not exist; run {} to install it",
                    path.display(),
                    install_command(model)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_defaults_are_the_engines_and_reach_it() {
        // 1. The configuration's defaults change nothing in the engine's.
        let d = SttDecoder::default();
        let mut e = SttEngineConfig::default();
        d.apply(&mut e);
        let base = SttEngineConfig::default();
        assert_eq!(e.short_prompt, base.short_prompt);
        assert_eq!(e.short_utterance_ms, base.short_utterance_ms);
        assert_eq!(
            (e.audio_ctx, e.audio_ctx_min),
            (base.audio_ctx, base.audio_ctx_min)
        );
        // 2. Chosen values arrive as chosen.
        let d = SttDecoder {
            short_prompt: "Hi.".into(),
            pad_ms: 2000,
            temperature_inc: 0.2,
            beam_size: 3,
            ..SttDecoder::default()
        };
        d.apply(&mut e);
        assert_eq!(
            (
                e.short_prompt.as_str(),
                e.pad_ms,
                e.temperature_inc,
                e.beam_size
            ),
            ("Hi.", 2000, 0.2, 3)
        );
        // 3. Equality sees a changed number.
        assert_ne!(d, SttDecoder::default());
        assert_eq!(d.clone(), d);
    }

    #[test]
    fn install_command_names_the_model_unless_default() {
        assert_eq!(install_command("tiny.en"), "scripts/setup-model");
        assert_eq!(
            install_command("base.en"),
            "scripts/setup-model DATA_DIR base.en"
        );
        assert_eq!(
            model_path(Path::new("/d"), "base"),
            Path::new("/d/models/ggml-base.bin")
        );
    }
}
