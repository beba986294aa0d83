//! `dialgate tts-eval FILE`: intelligibility and speed of the synthesiser. Each line of FILE is
//! spoken (as a text bot's message would be), passed through the telephone channel (8 kHz,
//! G.711 µ-law), and recognised back by dialgate's own Whisper recogniser.
//!
//! Figures: word error rate of the recognised text against the line (both sides put in spoken
//! form by the same normaliser, so "$12.50" and "twelve dollars and fifty cents" agree); time
//! to first audio (from `speak` to the first sentence's 8 kHz audio, the pool otherwise idle);
//! real-time factor of synthesis (model + resampling time / audio time); peak memory of the
//! process after synthesis and before the recogniser is loaded.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use super::stream::TryNext;
use super::{TtsConfig, TtsEngine, TtsError, TtsStatus, normalize};
use crate::media::g711::{self, G711Law};
use crate::stt::eval::{normalize as words, peak_rss_kib, recognise_clip, word_errors};
use crate::stt::{SttEngine, SttEngineConfig, SttSessionConfig, SttStatus};

/// Errors of the evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TtsEvalError {
    /// The sentence file cannot be read or holds no sentence.
    #[error("{0}")]
    BadInput(String),
    /// Synthesis failed or is not installed.
    #[error(transparent)]
    Tts(#[from] TtsError),
    /// The recogniser is not installed or failed.
    #[error("recognition: {0}")]
    Stt(String),
}

/// One line's outcome.
#[derive(Debug, Clone)]
pub struct SentenceResult {
    /// The line.
    pub text: String,
    /// What the recogniser heard.
    pub heard: String,
    /// Word errors against the line, and its word count (spoken form).
    pub errors: usize,
    /// See `errors`.
    pub words: usize,
    /// Words as written (for the 10-word first-audio figure).
    pub written_words: usize,
    /// `speak` → first audio, ms (wall clock, whatever the machine's load).
    pub first_audio_ms: f64,
    /// CPU time of the first piece's synthesis, ms: the first audio on an idle core.
    pub first_audio_cpu_ms: f64,
    /// Audio length, ms.
    pub audio_ms: u64,
}

/// The report.
#[derive(Debug, Clone)]
pub struct TtsEvalReport {
    /// Voice.
    pub voice: String,
    /// Per line.
    pub sentences: Vec<SentenceResult>,
    /// Word error rate.
    pub wer: f64,
    /// Time to first audio, all lines: p50 / p90, ms.
    pub first_audio_p50_ms: f64,
    /// See `first_audio_p50_ms`.
    pub first_audio_p90_ms: f64,
    /// Time to first audio of lines with 9–11 written words, p50, ms (None without any).
    pub first_audio_10_words_p50_ms: Option<f64>,
    /// First-audio CPU time (idle-core estimate): all lines p50 / p90, 9–11 words p50, ms.
    pub first_audio_cpu_ms: [f64; 3],
    /// Synthesis time / audio time (wall clock).
    pub rtf: f64,
    /// Synthesis CPU time / audio time (one core, whatever the load).
    pub rtf_cpu: f64,
    /// Voice load time, ms.
    pub load_ms: u64,
    /// Peak RSS after synthesis (voice + runtime + workers), KiB.
    pub peak_rss_kib: u64,
    /// Compute threads per synthesis.
    pub threads: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl fmt::Display for TtsEvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.sentences {
            writeln!(
                f,
                "{:>2}/{:<2} first {:>4.0} ms (cpu {:>4.0})  {:>5} ms audio  {:?} -> {:?}",
                s.errors,
                s.words,
                s.first_audio_ms,
                s.first_audio_cpu_ms,
                s.audio_ms,
                s.text,
                s.heard
            )?;
        }
        writeln!(
            f,
            "voice {}  sentences {}  threads per synthesis {}",
            self.voice,
            self.sentences.len(),
            self.threads
        )?;
        writeln!(f, "WER {:.1}%", self.wer * 100.0)?;
        writeln!(
            f,
            "first audio: p50 {:.0} ms, p90 {:.0} ms (all); 10-word sentences p50 {}",
            self.first_audio_p50_ms,
            self.first_audio_p90_ms,
            self.first_audio_10_words_p50_ms
                .map(|v| format!("{v:.0} ms"))
                .unwrap_or_else(|| "-".into())
        )?;
        let [cpu50, cpu90, cpu10] = self.first_audio_cpu_ms;
        writeln!(
            f,
            "first audio, synthesis CPU time (idle core): p50 {cpu50:.0} ms, p90 {cpu90:.0} ms; 10-word sentences p50 {cpu10:.0} ms"
        )?;
        writeln!(
            f,
            "real-time factor {:.3} (wall), {:.3} (CPU, one core)",
            self.rtf, self.rtf_cpu
        )?;
        writeln!(
            f,
            "voice load {} ms, peak RSS after synthesis {:.1} MiB",
            self.load_ms,
            self.peak_rss_kib as f64 / 1024.0
        )
    }
}

/// The lines of a sentence file (blank lines and `#` comments skipped).
pub fn read_sentences(path: &Path) -> Result<Vec<String>, TtsEvalError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| TtsEvalError::BadInput(format!("{}: {e}", path.display())))?;
    let lines: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    if lines.is_empty() {
        return Err(TtsEvalError::BadInput(format!(
            "{}: no sentences (one per line)",
            path.display()
        )));
    }
    Ok(lines)
}

/// One text's whole audio and how soon its first piece came.
#[derive(Debug, Clone)]
pub struct Spoken {
    /// 8 kHz PCM of every sentence in order.
    pub pcm: Vec<i16>,
    /// `speak` → first piece ready, ms.
    pub first_ms: f64,
    /// CPU time of the first piece's synthesis, ms.
    pub first_cpu_ms: f64,
}

/// Speak one text and collect its whole audio.
pub fn speak_all(engine: &TtsEngine, text: &str) -> Result<Spoken, TtsError> {
    let mut stream = engine.speak(text)?;
    let mut pcm = Vec::new();
    let mut first = None;
    loop {
        match stream.next_blocking(Duration::from_secs(120)) {
            TryNext::Chunk(c) => {
                first.get_or_insert((
                    c.ready_after.as_secs_f64() * 1000.0,
                    c.cpu.as_secs_f64() * 1000.0,
                ));
                pcm.extend_from_slice(&c.pcm);
            }
            TryNext::Failed(e) => return Err(e),
            TryNext::Done => break,
            TryNext::Pending => return Err(TtsError::Engine("synthesis timed out".into())),
        }
    }
    let (first_ms, first_cpu_ms) = first.unwrap_or((0.0, 0.0));
    Ok(Spoken {
        pcm,
        first_ms,
        first_cpu_ms,
    })
}

/// The telephone channel: µ-law and back.
pub fn through_g711(pcm: &[i16]) -> Vec<i16> {
    pcm.iter()
        .map(|s| g711::decode(G711Law::Pcmu, g711::encode(G711Law::Pcmu, *s)))
        .collect()
}

/// Contractions written out, so "we're" and "we are" compare equal.
const CONTRACTIONS: [(&str, &str); 12] = [
    ("won't", "will not"),
    ("can't", "can not"),
    ("cannot", "can not"),
    ("n't", " not"),
    ("'re", " are"),
    ("'m", " am"),
    ("'ll", " will"),
    ("'ve", " have"),
    ("'d", " would"),
    ("it's", "it is"),
    ("that's", "that is"),
    ("there's", "there is"),
];

/// Digits written one by one ("6 0 4 8"): a listener writes them as one number ("6048").
static SPACED_DIGITS: std::sync::LazyLock<regex_lite::Regex> = std::sync::LazyLock::new(|| {
    regex_lite::Regex::new(r"\b\d(?: \d){2,}\b").unwrap_or_else(|e| panic!("pattern: {e}"))
});

/// Words in spoken form, for comparing a line with what was heard.
pub fn spoken_words(text: &str) -> Vec<String> {
    let joined =
        SPACED_DIGITS.replace_all(text, |c: &regex_lite::Captures<'_>| c[0].replace(' ', ""));
    let mut t = normalize(&joined).to_lowercase().replace('’', "'");
    for (short, long) in CONTRACTIONS {
        t = t.replace(short, long);
    }
    words(&t)
}

/// Silence that ends an utterance when a synthesised sentence is recognised back: longer
/// than any pause the voice makes inside a sentence (commas, ~300 ms), shorter than the
/// second of silence after it.
const SENTENCE_END_MS: u32 = 800;

/// Recognise 8 kHz audio with the Whisper engine (0.5 s of silence before, as on a call).
///
/// One spoken sentence is recognised as one utterance: the session waits for
/// [`SENTENCE_END_MS`] of silence before it ends an utterance or delivers a sentence-final
/// result. With a call's endpointing (a sentence-final result delivered after 260 ms of
/// silence) a sentence was cut at its comma pauses and the pieces decoded apart ("Your
/// payment." + "of $89.99", "7:05 am" → "705 at m"): the figure then measured the
/// segmenter, not whether the voice is understood.
pub fn recognise(stt: &SttEngine, pcm: &[i16]) -> Result<String, TtsEvalError> {
    let mut clip = vec![0i16; 4000];
    clip.extend(through_g711(pcm));
    clip.extend(std::iter::repeat_n(0i16, 8000));
    let mut cfg = SttSessionConfig::default();
    cfg.segmenter.end_ms = SENTENCE_END_MS;
    cfg.segmenter.final_pause_ms = SENTENCE_END_MS;
    let results = recognise_clip(stt, &clip, cfg).map_err(|e| TtsEvalError::Stt(e.to_string()))?;
    Ok(results
        .iter()
        .map(|r| r.text.as_str())
        .collect::<Vec<_>>()
        .join(" "))
}

/// Run the evaluation over `path` (one sentence per line).
pub fn eval_file(
    path: &Path,
    tts_cfg: TtsConfig,
    stt_cfg: SttEngineConfig,
) -> Result<TtsEvalReport, TtsEvalError> {
    let lines = read_sentences(path)?;
    // No cache: every line is synthesised, as a new message would be.
    let threads = tts_cfg.threads_per_job.max(1);
    let engine = TtsEngine::new(TtsConfig {
        cache_bytes: 0,
        ..tts_cfg
    });
    let (voice, load_ms) = match engine.status() {
        TtsStatus::Ready { voice, load_ms, .. } => (voice, load_ms),
        TtsStatus::Unavailable { reason } => return Err(TtsError::Unavailable(reason).into()),
    };
    let mut spoken = Vec::new();
    for line in &lines {
        spoken.push(speak_all(&engine, line)?);
    }
    let peak_rss_kib = peak_rss_kib();
    let st = engine.stats();
    let get =
        |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed) as f64;
    let audio_ms = get(&st.audio_ms).max(1.0);
    let (rtf, rtf_cpu) = (
        get(&st.synthesis_us) / 1000.0 / audio_ms,
        get(&st.synthesis_cpu_us) / 1000.0 / audio_ms,
    );
    drop(engine);

    let stt = SttEngine::new(stt_cfg);
    if let SttStatus::Unavailable { reason } = stt.status() {
        return Err(TtsEvalError::Stt(reason));
    }
    let mut sentences = Vec::new();
    for (line, s) in lines.iter().zip(spoken) {
        let heard = recognise(&stt, &s.pcm)?;
        let (r, h) = (spoken_words(line), spoken_words(&heard));
        sentences.push(SentenceResult {
            text: line.clone(),
            heard,
            errors: word_errors(&r, &h),
            words: r.len(),
            written_words: line.split_whitespace().count(),
            first_audio_ms: s.first_ms,
            first_audio_cpu_ms: s.first_cpu_ms,
            audio_ms: s.pcm.len() as u64 / 8,
        });
    }
    let mut report = TtsEvalReport {
        voice,
        sentences,
        wer: 0.0,
        first_audio_p50_ms: 0.0,
        first_audio_p90_ms: 0.0,
        first_audio_10_words_p50_ms: None,
        first_audio_cpu_ms: [0.0; 3],
        rtf,
        rtf_cpu,
        load_ms,
        peak_rss_kib,
        threads,
    };
    summarise(&mut report);
    Ok(report)
}

/// WER and first-audio percentiles from the per-line results.
fn summarise(r: &mut TtsEvalReport) {
    let (errors, words) = r
        .sentences
        .iter()
        .fold((0, 0), |(e, w), s| (e + s.errors, w + s.words));
    r.wer = if words == 0 {
        0.0
    } else {
        errors as f64 / words as f64
    };
    let sorted = |ten_words: bool, cpu: bool| {
        let mut v: Vec<f64> = r
            .sentences
            .iter()
            .filter(|s| !ten_words || (9..=11).contains(&s.written_words))
            .map(|s| {
                if cpu {
                    s.first_audio_cpu_ms
                } else {
                    s.first_audio_ms
                }
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (all, ten) = (sorted(false, false), sorted(true, false));
    r.first_audio_p50_ms = percentile(&all, 0.5);
    r.first_audio_p90_ms = percentile(&all, 0.9);
    r.first_audio_10_words_p50_ms = (!ten.is_empty()).then(|| percentile(&ten, 0.5));
    let (all_cpu, ten_cpu) = (sorted(false, true), sorted(true, true));
    r.first_audio_cpu_ms = [
        percentile(&all_cpu, 0.5),
        percentile(&all_cpu, 0.9),
        percentile(&ten_cpu, 0.5),
    ];
}

#[cfg(test)]
mod tests {
    use super::spoken_words;

    #[test]
    fn written_and_heard_forms_compare_equal() {
        assert_eq!(
            spoken_words("It's $12.50, we're at 3:45 pm"),
            spoken_words("it is twelve dollars and fifty cents, we are at 3.45 PM")
        );
        assert_eq!(spoken_words("number 6 0 4 8"), spoken_words("number 6048"));
        assert_ne!(spoken_words("number 6 0 4 8"), spoken_words("number 6049"));
    }
}
