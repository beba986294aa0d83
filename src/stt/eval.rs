//! Evaluation over a directory of 8 kHz WAV clips with `labels.csv` (`file,text`): word error
//! rate after normalisation, latency from end of speech to final result, real-time factor, peak
//! memory.
//!
//! Method: each clip is fed frame by frame in simulated real time ([`recognise_clip`]: as fast
//! as possible while the worker is idle, waiting for it when a pause queued a recognition); the
//! session computes each result's latency as max(silence needed for the decision, silence at
//! submission + measured queue + inference wall time) — what a real-time feed would see, with
//! real compute.
//! Clips run one after another; each clip's text is all its final results joined.

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{
    FRAME_SAMPLES, Recognizer, SttEngine, SttEngineConfig, SttError, SttSessionConfig, SttStatus,
};

/// One clip's outcome.
#[derive(Debug, Clone)]
pub struct ClipResult {
    /// File name.
    pub file: String,
    /// Reference text.
    pub reference: String,
    /// Recognised text (finals joined).
    pub hypothesis: String,
    /// Word errors (substitutions + deletions + insertions) and reference words.
    pub errors: usize,
    /// Reference word count (normalised).
    pub words: usize,
    /// Latency of the first final result, ms.
    pub first_latency_ms: Option<u64>,
}

/// Evaluation report.
#[derive(Debug, Clone)]
pub struct SttEvalReport {
    /// Model used.
    pub model: String,
    /// Per clip.
    pub clips: Vec<ClipResult>,
    /// Overall WER (errors / reference words).
    pub wer: f64,
    /// Share of clips recognised without a word error (a clip with an empty reference counts
    /// when nothing was recognised).
    pub fully_right: f64,
    /// Latency of all final results, p50 / p90, ms.
    pub latency_p50_ms: u64,
    /// See `latency_p50_ms`.
    pub latency_p90_ms: u64,
    /// See `latency_p50_ms` (with few results, the slowest).
    pub latency_p99_ms: u64,
    /// Inference time / recognised audio time.
    pub rtf: f64,
    /// Model load time, ms.
    pub load_ms: u64,
    /// Peak resident memory (VmHWM), KiB.
    pub peak_rss_kib: u64,
}

impl fmt::Display for SttEvalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.clips {
            writeln!(
                f,
                "{:<28} {:>2}/{:<2} {:>5} ms  ref={:?} hyp={:?}",
                c.file,
                c.errors,
                c.words,
                c.first_latency_ms
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "-".into()),
                c.reference,
                c.hypothesis
            )?;
        }
        writeln!(f, "model {}  clips {}", self.model, self.clips.len())?;
        writeln!(
            f,
            "WER {:.1}%  fully right {:.1}% ({}/{})",
            self.wer * 100.0,
            self.fully_right * 100.0,
            self.clips.iter().filter(|c| c.errors == 0).count(),
            self.clips.len()
        )?;
        writeln!(
            f,
            "latency end-of-speech -> final: p50 {} ms, p90 {} ms, p99 {} ms",
            self.latency_p50_ms, self.latency_p90_ms, self.latency_p99_ms
        )?;
        writeln!(f, "real-time factor {:.3}", self.rtf)?;
        writeln!(
            f,
            "model load {} ms, peak RSS {:.1} MiB",
            self.load_ms,
            self.peak_rss_kib as f64 / 1024.0
        )
    }
}

/// A number as words for comparing texts: up to 999 as said ("one hundred five"), longer ones
/// (phone numbers) digit by digit, as people read them. The speech-synthesis normaliser's number
/// words, so what dialgate says and what it hears are compared alike.
fn number_words(n: u64) -> String {
    use crate::tts::numbers::{cardinal, digits};
    if n < 1000 {
        cardinal(n)
    } else {
        digits(&n.to_string())
    }
}

/// Whole-word contractions of Whisper's English text normaliser, checked before the suffixes.
const WHOLE_CONTRACTIONS: &[(&str, &str)] = &[
    ("won't", "will not"),
    ("can't", "can not"),
    ("let's", "let us"),
    ("ain't", "aint"),
];

/// Contraction suffixes as Whisper's English text normaliser expands them ("who's" → "who is",
/// "I'm" → "I am"): a written "who's" and a recognised "who is" are the same words.
const SUFFIX_CONTRACTIONS: &[(&str, &str)] = &[
    ("n't", " not"),
    ("'re", " are"),
    ("'s", " is"),
    ("'d", " would"),
    ("'ll", " will"),
    ("'ve", " have"),
    ("'m", " am"),
];

/// Hesitations Whisper's normaliser removes ("mm-hmm" is "mm" + "hmm").
const FILLERS: &[&str] = &["hmm", "mm", "mhm", "mmm", "uh", "um"];

/// Spellings that are the same word ("OK" and "okay").
const SPELLINGS: &[(&str, &str)] = &[("ok", "okay")];

/// Normalise for WER the way Whisper's English text normaliser does for its evaluations, so a
/// mismatch of spelling only is no error: lower case, contractions expanded ("who's" → "who
/// is"), hesitations ("um", "mm-hmm") dropped, "ok" = "okay", punctuation removed, numbers as
/// words (Whisper writes words as digits instead; compared both ways alike, that is the same).
pub fn normalize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace('’', "'");
    // Tokens of letters, digits and apostrophes; anything else separates.
    let mut expanded = String::with_capacity(lower.len() + 16);
    for token in lower.split(|c: char| !(c.is_alphanumeric() || c == '\'')) {
        let token = token.trim_matches('\'');
        if token.is_empty() {
            continue;
        }
        let word = WHOLE_CONTRACTIONS
            .iter()
            .find(|(w, _)| *w == token)
            .map(|(_, full)| (*full).to_owned())
            .or_else(|| {
                SUFFIX_CONTRACTIONS.iter().find_map(|(suffix, full)| {
                    token
                        .strip_suffix(suffix)
                        .filter(|stem| !stem.is_empty())
                        .map(|stem| format!("{stem}{full}"))
                })
            })
            .unwrap_or_else(|| token.to_owned());
        expanded.push_str(&word.replace('\'', ""));
        expanded.push(' ');
    }
    let mut out = Vec::new();
    for w in expanded.split_whitespace() {
        if FILLERS.contains(&w) {
            continue;
        }
        if w.chars().all(|c| c.is_ascii_digit()) && w.len() <= 18 {
            let n: u64 = w.parse().unwrap_or(0);
            out.extend(number_words(n).split(' ').map(str::to_owned));
        } else {
            let w = SPELLINGS
                .iter()
                .find(|(s, _)| *s == w)
                .map_or(w, |(_, same)| same);
            out.push(w.to_owned());
        }
    }
    out
}

/// Word-level edit distance.
pub fn word_errors(reference: &[String], hyp: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hyp.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut cur = vec![i + 1; hyp.len() + 1];
        for (j, h) in hyp.iter().enumerate() {
            let sub = prev[j] + usize::from(r != h);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[hyp.len()]
}

/// Peak resident set (VmHWM) of this process, KiB (0 when unknown).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

pub use super::wav::read_wav_8k;

/// Parse `labels.csv` (`file,text`, header optional, text may be quoted).
pub fn read_labels(path: &Path) -> Result<Vec<(String, String)>, SttError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SttError::Io(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.starts_with("file,")) {
            continue;
        }
        let Some((file, label)) = line.split_once(',') else {
            return Err(SttError::BadInput(format!(
                "{}:{}: expected file,text",
                path.display(),
                n + 1
            )));
        };
        out.push((
            file.trim().to_owned(),
            label.trim().trim_matches('"').to_owned(),
        ));
    }
    Ok(out)
}

/// Waits (bounded: 60 s) until the engine's workers have finished every queued job.
fn wait_for_workers(engine: &SttEngine) {
    use std::sync::atomic::Ordering::Acquire;
    let st = engine.stats();
    let deadline = Instant::now() + Duration::from_secs(60);
    while st.jobs_done.load(Acquire) < st.jobs_submitted.load(Acquire) && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Run one clip through a session as a call would feed it, and collect its final results.
///
/// Simulated real time: frames go in as fast as possible while the worker is idle, but when a
/// frame makes the session queue a recognition (one per pause, as in a call), feeding stops
/// until the worker is done with it, and the session applies the result at the audio time it
/// was queued ([`SttSessionConfig::simulated_clock`]) — what an idle machine does, where a
/// recognition ends within the pause. So no job waits behind a burst the clock could not have
/// produced ("recognition queue full" never happens), the texts do not depend on how loaded
/// the evaluating machine is, and each result's latency is its decision silence plus the
/// measured queue and inference time.
pub fn recognise_clip(
    engine: &SttEngine,
    samples: &[i16],
    mut cfg: SttSessionConfig,
) -> Result<Vec<super::SttResult>, SttError> {
    cfg.simulated_clock = true;
    let mut session = engine.session(cfg)?;
    let mut rx = session
        .results()
        .ok_or_else(|| SttError::Engine("results already taken".into()))?;
    let silence = [0i16; FRAME_SAMPLES];
    // Trailing silence so the last utterance always reaches its end-of-speech decision.
    let trailer = std::iter::repeat_n(&silence[..], 50);
    for chunk in samples.chunks(FRAME_SAMPLES).chain(trailer) {
        session.push_frame(chunk);
        wait_for_workers(engine);
    }
    drop(session);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        match rx.try_recv() {
            Ok(r) => {
                if r.is_final {
                    out.push(r);
                }
            }
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                std::thread::sleep(Duration::from_millis(2))
            }
        }
    }
    Ok(out)
}

/// What a call's machine-detection session would hand the detector for this clip: each final
/// text with the time (ms from the first frame) a real-time feed would have it (end of speech +
/// measured latency).
pub fn transcript_for_amd(
    engine: &SttEngine,
    samples: &[i16],
) -> Result<Vec<(u64, String)>, SttError> {
    let cfg = SttSessionConfig::for_machine_detection("en");
    Ok(recognise_clip(engine, samples, cfg)?
        .into_iter()
        .map(|r| (r.end_ms + r.latency_ms, r.text))
        .collect())
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Evaluate every clip listed in `dir/labels.csv`.
pub fn eval_dir(
    dir: &Path,
    cfg: SttEngineConfig,
    session_cfg: SttSessionConfig,
) -> Result<SttEvalReport, SttError> {
    let labels = read_labels(&dir.join("labels.csv"))?;
    let engine = SttEngine::new(cfg);
    let (model, load_ms) = match engine.status() {
        SttStatus::Ready { model, load_ms } => (model, load_ms),
        SttStatus::Unavailable { reason } => return Err(SttError::Unavailable(reason)),
    };
    let mut clips = Vec::new();
    let mut lat = Vec::new();
    let (mut errs, mut words) = (0usize, 0usize);
    for (file, reference) in labels {
        let samples = read_wav_8k(&dir.join(&file))?;
        let results = recognise_clip(&engine, &samples, session_cfg.clone())?;
        lat.extend(results.iter().map(|r| r.latency_ms));
        let hypothesis = results
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let (rn, hn) = (normalize(&reference), normalize(&hypothesis));
        let e = word_errors(&rn, &hn);
        errs += e;
        words += rn.len();
        clips.push(ClipResult {
            file,
            reference,
            hypothesis,
            errors: e,
            words: rn.len(),
            first_latency_ms: results.first().map(|r| r.latency_ms),
        });
    }
    lat.sort_unstable();
    let right = clips.iter().filter(|c| c.errors == 0).count();
    let fully_right = right as f64 / clips.len().max(1) as f64;
    let st = engine.stats();
    let inf = st.inference_ms.load(std::sync::atomic::Ordering::Relaxed) as f64;
    let audio = st
        .audio_ms
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(1) as f64;
    Ok(SttEvalReport {
        model,
        clips,
        fully_right,
        wer: if words == 0 {
            0.0
        } else {
            errs as f64 / words as f64
        },
        latency_p50_ms: percentile(&lat, 0.5),
        latency_p90_ms: percentile(&lat, 0.9),
        latency_p99_ms: percentile(&lat, 0.99),
        rtf: inf / audio,
        load_ms,
        peak_rss_kib: peak_rss_kib(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_as_words_said_up_to_999_and_digit_by_digit_above() {
        for (n, words) in [
            (0, "zero"),
            (19, "nineteen"),
            (20, "twenty"),
            (42, "forty two"),
            (100, "one hundred"),
            (105, "one hundred five"),
            (999, "nine hundred ninety nine"),
            (1000, "one zero zero zero"),
            (5551234, "five five five one two three four"),
        ] {
            assert_eq!(number_words(n), words, "{n}");
        }
    }

    #[test]
    fn normalisation_and_wer() {
        // 1. Case, punctuation, numbers; contractions expanded as Whisper's normaliser does.
        assert_eq!(
            normalize("Hi, I'm 2 minutes away!"),
            vec!["hi", "i", "am", "two", "minutes", "away"]
        );
        assert_eq!(normalize("Room 42"), vec!["room", "forty", "two"]);
        assert_eq!(
            normalize("We can’t, won't."),
            vec!["we", "can", "not", "will", "not"]
        );
        // 2. A written "who's" and a recognised "who is" are the same words.
        let r = normalize("hello who is this");
        assert_eq!(word_errors(&r, &normalize("Hello, who's this?")), 0);
        assert_eq!(word_errors(&r, &normalize("hello who was this")), 1);
        // 3. Hesitations are no words; "OK" is "okay".
        assert_eq!(normalize("Um, OK. Mm-hmm."), vec!["okay"]);
        assert_eq!(normalize("'Hello'"), vec!["hello"]);
    }
}
