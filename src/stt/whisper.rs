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
    /// Text tokens that hold a digit ("5", " 20", "3rd"), suppressed on very short utterances.
    digit_tokens: Vec<i32>,
}

/// whisper.cpp's logits filter: `user_data` is the model's `digit_tokens` (a `Vec<i32>`).
///
/// # Safety
/// `logits` holds the vocabulary's logits and `user_data` points at a live `Vec<i32>` of ids
/// below the vocabulary size (both guaranteed by [`WhisperModel::transcribe`]).
unsafe extern "C" fn suppress_digits(
    ctx: *mut whisper_rs_sys::whisper_context,
    _state: *mut whisper_rs_sys::whisper_state,
    _tokens: *const whisper_rs_sys::whisper_token_data,
    _n_tokens: std::os::raw::c_int,
    logits: *mut f32,
    user_data: *mut std::ffi::c_void,
) {
    if logits.is_null() || user_data.is_null() || ctx.is_null() {
        return;
    }
    // SAFETY: see the function's contract; the ids were checked against n_vocab at load.
    let ids = unsafe { &*(user_data as *const Vec<i32>) };
    for &id in ids {
        // SAFETY: id < n_vocab, the length of the logits array.
        unsafe { *logits.add(id as usize) = f32::NEG_INFINITY };
    }
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
        let eot = ctx.token_eot().min(ctx.n_vocab());
        let digit_tokens = (0..eot)
            .filter(|&id| {
                ctx.token_to_bytes(id)
                    .is_ok_and(|b| b.iter().any(u8::is_ascii_digit))
            })
            .collect();
        Ok(Self {
            ctx,
            name,
            digit_tokens,
        })
    }

    /// A decoding state for one worker.
    pub fn state(&self) -> Result<WhisperState, SttError> {
        self.ctx
            .create_state()
            .map_err(|e| SttError::Engine(format!("create state: {e}")))
    }

    /// Recognise 16 kHz audio; `first`: nothing was delivered in the session yet, so a short
    /// utterance is likely the person's greeting.
    pub fn transcribe(
        &self,
        state: &mut WhisperState,
        pcm16k: &[f32],
        language: &str,
        first: bool,
        cfg: &SttEngineConfig,
    ) -> Result<Transcript, SttError> {
        let secs = pcm16k.len() as f32 / 16000.0;
        let mut p = self.params(language, cfg);
        self.fit_to_utterance(&mut p, secs, first, cfg);
        // whisper.cpp wants at least ~1 s; pad short utterances with silence.
        let min_len = cfg.pad_ms as usize * 16;
        let mut audio;
        let data = if pcm16k.len() < min_len {
            audio = pcm16k.to_vec();
            audio.resize(min_len, 0.0);
            &audio[..]
        } else {
            pcm16k
        };
        state
            .full(p, data)
            .map_err(|e| SttError::Engine(format!("whisper_full: {e}")))?;
        let mut t = self.read_transcript(state);
        if first && is_short(secs, cfg) {
            // A session's first short words: steered to pick-up language when the free decode
            // is no greeting and the model scores a greeting nearly as well (greeting_rescore).
            let free = super::greeting_rescore::FreeDecode {
                prompt: &cfg.short_prompt,
                language,
                max_tokens: Self::max_tokens(secs) as usize,
                threads: cfg.threads_per_job,
                max_no_speech: cfg.max_no_speech,
                margin: cfg.greeting_bias_margin,
            };
            super::greeting_rescore::apply(&self.ctx, state, &mut t, &free);
        }
        Ok(t)
    }

    /// Text-token bound for `secs` of audio: speech is ~3 words (≈4 tokens) per second; a
    /// tight bound stops repetition loops early.
    fn max_tokens(secs: f32) -> i32 {
        (secs * 5.0).ceil() as i32 + 4
    }

    /// The decoding parameters every utterance shares: sampling, language, one segment of
    /// text without timestamps, nothing printed.
    fn params<'a>(&self, language: &'a str, cfg: &SttEngineConfig) -> FullParams<'a, 'a> {
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
        // Temperature fallback (off by default: bounded latency; junk is filtered afterwards).
        p.set_temperature_inc(cfg.temperature_inc);
        p
    }

    /// The parameters that depend on the utterance (`secs` long; `first` of its session): the
    /// prompt, digit suppression for short ones, the token bound and the encoder window.
    fn fit_to_utterance(
        &self,
        p: &mut FullParams<'_, '_>,
        secs: f32,
        first: bool,
        cfg: &SttEngineConfig,
    ) {
        let greeting = is_greeting(secs, first, cfg);
        let short = greeting || is_short(secs, cfg);
        // The greeting prompt only for a session's first words: given to the rest of a phrase
        // cut at a pause ("Hello," … "who is this?") it made "Hello." of "who is this".
        let prompt = if greeting && !cfg.short_prompt.is_empty() {
            &cfg.short_prompt
        } else {
            &cfg.initial_prompt
        };
        if !prompt.is_empty() {
            p.set_initial_prompt(prompt);
        }
        if short && !self.digit_tokens.is_empty() {
            // A second of speech holds no phone number; tiny.en hears "Hi." as "5".
            // SAFETY: the callback only reads `digit_tokens` (alive as long as `self`, which
            // outlives the decoding these parameters are for) and writes within the logits
            // array (ids < n_vocab).
            unsafe {
                p.set_filter_logits_callback(Some(suppress_digits));
                p.set_filter_logits_callback_user_data(
                    &self.digit_tokens as *const Vec<i32> as *mut std::ffi::c_void,
                );
            }
        }
        p.set_max_tokens(Self::max_tokens(secs));
        let ctx = if cfg.audio_ctx > 0 {
            cfg.audio_ctx
        } else {
            ((secs * 50.0).ceil() as i32 + cfg.audio_ctx_margin).max(cfg.audio_ctx_min)
        };
        let ctx = ctx.min(1500);
        if ctx < 1500 {
            p.set_audio_ctx(ctx);
        }
    }

    /// The decoded text, the mean probability of its text tokens, and the first segment's
    /// no-speech probability.
    fn read_transcript(&self, state: &WhisperState) -> Transcript {
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
        Transcript {
            text,
            confidence: if pn > 0 { psum / pn as f32 } else { 0.0 },
            no_speech,
        }
    }
}

/// Whether an utterance `secs` long is under `short_utterance_ms`: no digits in it, and the
/// greeting bias for a session's first one.
fn is_short(secs: f32, cfg: &SttEngineConfig) -> bool {
    secs * 1000.0 < cfg.short_utterance_ms as f32
}

/// Whether an utterance `secs` long is taken as the person's greeting: a session's first one,
/// shorter than `short_utterance_ms` or `greeting_utterance_ms`. A greeting said slowly or
/// with a pause ("Hello, yes?", "Hi, who's calling, please?") runs past 2 s; measured on the
/// greeting set, a 3 s window (the default; 4 s gave the same) for the first utterance took WER
/// from 11.1 % to 7.8 % with the prompt set unchanged (README "Speech recognition").
fn is_greeting(secs: f32, first: bool, cfg: &SttEngineConfig) -> bool {
    let limit = cfg.short_utterance_ms.max(cfg.greeting_utterance_ms);
    first && secs * 1000.0 < limit as f32
}

#[cfg(test)]
mod greeting_window_tests {
    use super::*;

    #[test]
    fn a_first_utterance_within_the_greeting_window_is_the_greeting() {
        // 1. Defaults: short_utterance_ms 2000, greeting_utterance_ms 3000.
        let cfg = SttEngineConfig::default();
        assert!(is_greeting(1.5, true, &cfg));
        assert!(is_greeting(2.5, true, &cfg));
        // 2. Not a session's first words, or longer than the window: no greeting.
        assert!(!is_greeting(1.5, false, &cfg));
        assert!(!is_greeting(3.5, true, &cfg));
        // 3. greeting_utterance_ms 0: the first utterance falls back to short_utterance_ms.
        let cfg = SttEngineConfig {
            greeting_utterance_ms: 0,
            ..SttEngineConfig::default()
        };
        assert!(is_greeting(1.5, true, &cfg));
        assert!(!is_greeting(2.5, true, &cfg));
    }
}
