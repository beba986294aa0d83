//! whisper.cpp backend (via whisper-rs): one shared context (the model, loaded once), one
//! state per worker thread.

use std::path::Path;

use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::{SttEngineConfig, SttError};

/// Raw recognition of one utterance.
#[derive(Debug, Clone)]
pub struct Transcript {
    /// Text as decoded (untrimmed, may hold tags).
    pub text: String,
    /// Mean probability of the text tokens.
    pub confidence: f32,
    /// Whisper's no-speech probability.
    pub no_speech: f32,
}

/// The loaded model.
pub struct WhisperModel {
    ctx: WhisperContext,
    /// Model kind, e.g. `tiny.en`.
    pub name: String,
}

impl WhisperModel {
    /// Load a ggml model.
    pub fn load(path: &Path) -> Result<Self, SttError> {
        if !path.is_file() {
            return Err(SttError::Unavailable(format!(
                "no model at {} (run scripts/setup-model)",
                path.display()
            )));
        }
        whisper_rs::install_logging_hooks();
        // flash_attn was measured worse (WER) and no faster on this CPU: left off.
        let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())
            .map_err(|e| SttError::Unavailable(format!("loading {}: {e}", path.display())))?;
        let kind = ctx
            .model_type_readable_str_lossy()
            .map(|s| s.into_owned())
            .unwrap_or_default();
        let name = format!("{kind}{}", if ctx.is_multilingual() { "" } else { ".en" });
        Ok(Self { ctx, name })
    }

    /// A decoding state for one worker.
    pub fn state(&self) -> Result<WhisperState, SttError> {
        self.ctx
            .create_state()
            .map_err(|e| SttError::Engine(format!("create state: {e}")))
    }

    /// Recognise 16 kHz audio.
    pub fn transcribe(
        &self,
        state: &mut WhisperState,
        pcm16k: &[f32],
        language: &str,
        cfg: &SttEngineConfig,
    ) -> Result<Transcript, SttError> {
        let strategy = if cfg.beam_size > 1 {
            SamplingStrategy::BeamSearch {
                beam_size: cfg.beam_size as i32,
                patience: -1.0,
            }
        } else {
            SamplingStrategy::Greedy { best_of: 1 }
        };
        let mut p = FullParams::new(strategy);
        p.set_n_threads(cfg.threads_per_job.max(1) as i32);
        p.set_language(Some(if self.ctx.is_multilingual() {
            language
        } else {
            "en"
        }));
        p.set_translate(false);
        p.set_no_context(true);
        p.set_single_segment(true);
        p.set_no_timestamps(true);
        p.set_suppress_blank(true);
        p.set_suppress_nst(true);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_special(false);
        p.set_print_timestamps(false);
        // No temperature fallback: bounded latency; junk is filtered afterwards.
        p.set_temperature_inc(0.0);
        if !cfg.initial_prompt.is_empty() {
            p.set_initial_prompt(&cfg.initial_prompt);
        }
        let secs = pcm16k.len() as f32 / 16000.0;
        // Speech is ~3 words (≈4 tokens) per second; a tight bound stops repetition loops early.
        p.set_max_tokens((secs * 5.0).ceil() as i32 + 4);
        let ctx = if cfg.audio_ctx > 0 {
            cfg.audio_ctx
        } else {
            ((secs * 50.0).ceil() as i32 + cfg.audio_ctx_margin).max(cfg.audio_ctx_min)
        };
        let ctx = ctx.min(1500);
        if ctx < 1500 {
            p.set_audio_ctx(ctx);
        }
        // whisper.cpp wants at least ~1 s; pad short utterances with silence.
        let mut audio;
        let data = if pcm16k.len() < 16_000 + 1600 {
            audio = pcm16k.to_vec();
            audio.resize(16_000 + 1600, 0.0);
            &audio[..]
        } else {
            pcm16k
        };
        state
            .full(p, data)
            .map_err(|e| SttError::Engine(format!("whisper_full: {e}")))?;
        let eot = self.ctx.token_eot();
        let mut text = String::new();
        let (mut psum, mut pn, mut no_speech) = (0f32, 0u32, 0f32);
        for (i, seg) in state.as_iter().enumerate() {
            if i == 0 {
                no_speech = seg.no_speech_probability();
            }
            text.push_str(
                &seg.to_str_lossy()
                    .map(|s| s.into_owned())
                    .unwrap_or_default(),
            );
            for t in 0..seg.n_tokens() {
                if let Some(tok) = seg.get_token(t)
                    && tok.token_id() < eot
                {
                    psum += tok.token_probability();
                    pn += 1;
                }
            }
        }
        Ok(Transcript {
            text,
            confidence: if pn > 0 { psum / pn as f32 } else { 0.0 },
            no_speech,
        })
    }
}
