//! The greeting bias ([`super::greeting_bias`]) on whisper.cpp: scores token sequences with the
//! decoder over the encoder output the free decode left in the state (`whisper_decode` with the
//! KV cache; no second encoding), and swaps a session's first short transcript for the best
//! greeting path when the model scores it nearly as well.

use std::sync::LazyLock;

use whisper_rs::{WhisperContext, WhisperState};

use super::SttError;
use super::greeting_bias::{self, GreetingGrammar, TokenScorer};
use super::whisper::Transcript;

/// The pick-up grammar, built once.
static GRAMMAR: LazyLock<GreetingGrammar> = LazyLock::new(GreetingGrammar::default);

/// Decoder access for [`greeting_bias`]: log-softmax over the text tokens and end-of-text.
struct WhisperScorer<'a> {
    ctx: &'a WhisperContext,
    state: &'a mut WhisperState,
    threads: usize,
    eot: i32,
}

impl TokenScorer for WhisperScorer<'_> {
    fn next_logprobs(&mut self, tokens: &[i32], n_past: usize) -> Result<Vec<f32>, SttError> {
        let new = tokens.get(n_past..).unwrap_or_default();
        if new.is_empty() {
            return Err(SttError::Engine("greeting bias: nothing to decode".into()));
        }
        self.state
            .decode(new, n_past, self.threads)
            .map_err(|e| SttError::Engine(format!("whisper_decode: {e}")))?;
        let logits = self
            .state
            .get_logits()
            .map_err(|e| SttError::Engine(format!("whisper logits: {e}")))?;
        // Only text tokens and end-of-text compete (the free decode suppressed timestamps and
        // special tokens too), so both paths are scored over the same outcomes.
        let n = (self.eot as usize + 1).min(logits.len());
        let max = logits[..n]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        let lse = max
            + logits[..n]
                .iter()
                .map(|l| (l - max).exp())
                .sum::<f32>()
                .ln();
        let mut out = vec![f32::NEG_INFINITY; logits.len()];
        for (o, l) in out.iter_mut().zip(&logits[..n]) {
            *o = l - lse;
        }
        Ok(out)
    }

    fn token_text(&self, id: i32) -> Option<String> {
        if id < 0 || id >= self.eot {
            return None;
        }
        self.ctx.token_to_str_lossy(id).ok().map(|s| s.into_owned())
    }

    fn eot(&self) -> i32 {
        self.eot
    }
}

/// What the bias needs to know about the decode that just ran.
pub(super) struct FreeDecode<'p> {
    /// The decoder prompt it ran after ("" = none).
    pub prompt: &'p str,
    /// Language code (multilingual models only).
    pub language: &'p str,
    /// Text-token bound of the decode.
    pub max_tokens: usize,
    /// Compute threads.
    pub threads: usize,
    /// Transcripts Whisper takes for no speech above this are left alone.
    pub max_no_speech: f32,
    /// The margin (mean log-probability per token) within which the greeting wins.
    pub margin: f32,
}

/// The decoder's start: [prev, prompt…] sot [lang transcribe] no-timestamps, as whisper_full
/// builds it.
fn prefix(ctx: &WhisperContext, free: &FreeDecode<'_>) -> Result<Vec<i32>, SttError> {
    let mut p = Vec::new();
    if !free.prompt.is_empty() {
        p.push(ctx.token_prev());
        let toks = ctx
            .tokenize(free.prompt, 1024)
            .map_err(|e| SttError::Engine(format!("tokenize prompt: {e}")))?;
        p.extend(toks);
    }
    p.push(ctx.token_sot());
    if ctx.is_multilingual() {
        let lang = whisper_rs::get_lang_id(free.language).unwrap_or(0);
        p.push(ctx.token_lang(lang));
        p.push(ctx.token_transcribe());
    }
    p.push(ctx.token_not());
    Ok(p)
}

/// The text tokens of the decode in `state`.
fn free_tokens(state: &WhisperState, eot: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for seg in state.as_iter() {
        for t in 0..seg.n_tokens() {
            if let Some(tok) = seg.get_token(t)
                && tok.token_id() < eot
            {
                out.push(tok.token_id());
            }
        }
    }
    out
}

/// Replace `t` (a session's first short utterance, just decoded freely in `state`) by the best
/// greeting path when it is not a greeting already and the model scores the greeting within
/// the margin. Leaves `t` alone on empty text, on no speech, and on any decoder error (the
/// free text is still a result).
pub(super) fn apply(
    ctx: &WhisperContext,
    state: &mut WhisperState,
    t: &mut Transcript,
    free: &FreeDecode<'_>,
) {
    let text = t.text.trim();
    if free.margin <= 0.0
        || text.is_empty()
        || t.no_speech > free.max_no_speech
        || GRAMMAR.is_greeting_language(text)
    {
        return;
    }
    match rescore(ctx, state, free) {
        Ok(Some(b)) => {
            t.text = b.text;
            t.confidence = b.confidence;
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "stt greeting bias skipped"),
    }
}

/// The greeting path to take instead of the free decode in `state`, if any.
fn rescore(
    ctx: &WhisperContext,
    state: &mut WhisperState,
    free: &FreeDecode<'_>,
) -> Result<Option<greeting_bias::Scored>, SttError> {
    let started = std::time::Instant::now();
    let eot = ctx.token_eot();
    let tokens = free_tokens(state, eot);
    let prefix = prefix(ctx, free)?;
    let mut lm = WhisperScorer {
        ctx,
        state,
        threads: free.threads.max(1),
        eot,
    };
    let free_score = greeting_bias::score(&mut lm, &prefix, &tokens)?;
    let Some(biased) = greeting_bias::search(&GRAMMAR, &mut lm, &prefix, free.max_tokens)? else {
        tracing::debug!(free = %free_score.text, took_ms = started.elapsed().as_millis() as u64, "stt greeting bias: no greeting path");
        return Ok(None);
    };
    let take = greeting_bias::prefer_biased(&free_score, &biased, free.margin);
    tracing::debug!(
        free = %free_score.text,
        free_logp = free_score.mean_logp(),
        greeting = %biased.text,
        greeting_logp = biased.mean_logp(),
        take,
        took_ms = started.elapsed().as_millis() as u64,
        "stt greeting bias"
    );
    Ok(take.then_some(biased))
}
