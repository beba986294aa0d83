//! Scoring the detector on a labelled corpus (`labels.csv` + 8 kHz mono 16-bit WAVs), as the
//! corpus README prescribes: frames from t = 0, first decision is final, undecided at the end
//! of the clip = `unknown` at clip length (a time-out).

use std::path::{Path, PathBuf};

use super::detector::{AmdEvent, AmdResult, Detector};
use super::dsp::{FRAME_MS, FRAME_SAMPLES};
use super::labels::{ClipLabel, ClipNotes, Label, parse_labels};
use super::params::AmdParams;
pub use super::report::EvalReport;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum AmdEvalError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `labels.csv` is malformed.
    #[error("{path}:{line}: {msg}")]
    Labels {
        /// The labels file.
        path: PathBuf,
        /// 1-based line of the bad record.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A WAV file is unreadable.
    #[error("bad WAV {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: hound::Error,
    },
    /// A WAV file is readable but not 8 kHz mono 16-bit PCM.
    #[error("unsupported WAV {path}: {detail} (need 8000 Hz mono 16-bit PCM)")]
    Format {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        detail: String,
    },
    /// `labels.csv` lists no clip.
    #[error("{0} lists no clips")]
    Empty(PathBuf),
}

impl AmdEvalError {
    /// Short machine-readable class: `io`, `labels`, `wav`, `format`, `empty`.
    pub fn kind(&self) -> &'static str {
        match self {
            AmdEvalError::Io { .. } => "io",
            AmdEvalError::Labels { .. } => "labels",
            AmdEvalError::Wav { .. } => "wav",
            AmdEvalError::Format { .. } => "format",
            AmdEvalError::Empty(_) => "empty",
        }
    }
}

/// What the detector did on one clip.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipOutcome {
    /// First (final) decision; `unknown` on time-out.
    pub decision: AmdResult,
    /// Decision time in ms since answer (clip length on time-out).
    pub t_d_ms: u64,
    /// The detector's cause string (`"timeout"` on time-out).
    pub cause: String,
    /// No decision before the clip ended.
    pub timeout: bool,
    /// First beep notice: (end of beep ms, frequency Hz).
    pub beep: Option<(u64, f32)>,
    /// Clip length in ms (whole frames).
    pub len_ms: u64,
}

/// How to run an evaluation beyond the detector parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EvalOptions {
    /// Simulate speech recognition from the notes: each quoted text's words are fed with
    /// [`Detector::push_transcript`] one by one, spread evenly over the utterance's span, each
    /// `stt_latency_ms` after it was spoken. Off by default (the README's protocol is audio
    /// only).
    pub simulate_transcripts: bool,
    /// Recogniser latency for the simulation.
    pub stt_latency_ms: u64,
}

/// The simulated recogniser output for a clip: (time ms, word), in time order.
pub fn transcript_schedule(notes: &ClipNotes, latency_ms: u64) -> Vec<(u64, String)> {
    let spans: Vec<(f64, f64)> = notes
        .greeting
        .iter()
        .chain(&notes.speech)
        .copied()
        .collect();
    let mut out = Vec::new();
    for ((a, b), text) in spans.iter().zip(&notes.texts) {
        let words: Vec<&str> = text.split_whitespace().collect();
        for (k, w) in words.iter().enumerate() {
            let t = a + (b - a) * (k + 1) as f64 / words.len() as f64;
            out.push(((t * 1000.0) as u64 + latency_ms, (*w).to_owned()));
        }
    }
    out.sort_by_key(|x| x.0);
    out
}

/// Runs a detector over a whole clip (whole 20 ms frames; a partial last frame is dropped).
pub fn run_clip(samples: &[i16], params: &AmdParams) -> ClipOutcome {
    run_clip_with(samples, params, &[])
}

/// Like [`run_clip`], feeding `transcript` words (time ms, text) when their time comes.
pub fn run_clip_with(
    samples: &[i16],
    params: &AmdParams,
    transcript: &[(u64, String)],
) -> ClipOutcome {
    run_clip_fed(samples, params, transcript, !transcript.is_empty())
}

/// [`run_clip_with`], saying whether a recogniser feeds the detector (it may find no words).
fn run_clip_fed(
    samples: &[i16],
    params: &AmdParams,
    transcript: &[(u64, String)],
    expect_transcripts: bool,
) -> ClipOutcome {
    let mut det = Detector::new(params.clone());
    if expect_transcripts {
        det.expect_transcripts();
    }
    let mut decision = None;
    let mut beep = None;
    let chunks = samples.chunks_exact(FRAME_SAMPLES);
    let len_ms = chunks.len() as u64 * u64::from(FRAME_MS);
    let mut next_word = 0;
    for frame in chunks {
        let mut evs = det.push_frame(frame);
        while let Some((t, w)) = transcript.get(next_word) {
            if *t > det.elapsed_ms() {
                break;
            }
            evs.extend(det.push_transcript(w));
            next_word += 1;
        }
        for ev in evs {
            match ev {
                AmdEvent::Decision(d) => decision = decision.or(Some(d)),
                AmdEvent::Beep { at_ms, freq_hz } => beep = beep.or(Some((at_ms, freq_hz))),
            }
        }
        if det.is_done() {
            break;
        }
    }
    match decision {
        Some(d) => ClipOutcome {
            decision: d.result,
            t_d_ms: d.at_ms,
            cause: d.cause,
            timeout: false,
            beep,
            len_ms,
        },
        None => ClipOutcome {
            decision: AmdResult::Unknown,
            t_d_ms: len_ms,
            cause: "timeout".to_owned(),
            timeout: true,
            beep,
            len_ms,
        },
    }
}

/// One evaluated clip.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRow {
    /// File name as listed.
    pub file: String,
    /// Ground truth.
    pub label: Label,
    /// Parsed notes.
    pub notes: ClipNotes,
    /// What the detector did.
    pub outcome: ClipOutcome,
}

impl EvalRow {
    /// Decision matches the label.
    pub fn correct(&self) -> bool {
        self.outcome.decision == self.label.expected()
    }

    /// Decision time in seconds.
    pub fn t_d(&self) -> f64 {
        self.outcome.t_d_ms as f64 / 1000.0
    }
}

fn read_wav(path: &Path) -> Result<Vec<i16>, AmdEvalError> {
    let reader = hound::WavReader::open(path).map_err(|e| match e {
        hound::Error::IoError(source) => AmdEvalError::Io {
            path: path.to_owned(),
            source,
        },
        source => AmdEvalError::Wav {
            path: path.to_owned(),
            source,
        },
    })?;
    let spec = reader.spec();
    if spec.sample_rate != 8000
        || spec.channels != 1
        || spec.bits_per_sample != 16
        || spec.sample_format != hound::SampleFormat::Int
    {
        return Err(AmdEvalError::Format {
            path: path.to_owned(),
            detail: format!(
                "{} Hz, {} channel(s), {}-bit {:?}",
                spec.sample_rate, spec.channels, spec.bits_per_sample, spec.sample_format
            ),
        });
    }
    reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| AmdEvalError::Wav {
            path: path.to_owned(),
            source,
        })
}

/// Evaluates the detector with `params` on the corpus in `dir` (`dir/labels.csv` and the WAVs
/// it lists), audio only. Reads only; writes nothing.
pub fn eval_corpus(dir: &Path, params: &AmdParams) -> Result<EvalReport, AmdEvalError> {
    eval_corpus_with(dir, params, &EvalOptions::default())
}

/// [`eval_corpus`] with options (simulated transcripts).
pub fn eval_corpus_with(
    dir: &Path,
    params: &AmdParams,
    opts: &EvalOptions,
) -> Result<EvalReport, AmdEvalError> {
    let expect = opts.simulate_transcripts;
    eval_corpus_by(
        dir,
        params,
        expect,
        &|_: &str, notes: &ClipNotes, _: &[i16]| {
            if opts.simulate_transcripts {
                transcript_schedule(notes, opts.stt_latency_ms)
            } else {
                Vec::new()
            }
        },
    )
}

/// Timed transcript texts: (ms from answer when available, text).
pub type Transcript = Vec<(u64, String)>;

/// [`eval_corpus`] with a real recogniser: `transcribe` turns a clip's audio into the texts a
/// call would feed the detector, each with the time (ms from answer) it becomes available.
pub fn eval_corpus_transcribed(
    dir: &Path,
    params: &AmdParams,
    transcribe: &dyn Fn(&[i16]) -> Transcript,
) -> Result<EvalReport, AmdEvalError> {
    eval_corpus_by(
        dir,
        params,
        true,
        &|_: &str, _: &ClipNotes, samples: &[i16]| transcribe(samples),
    )
}

/// Each clip's transcript (file name → timed texts), recognised once so that several detector
/// settings can be scored on the same recognition (the detector is cheap, recognition is not).
pub type Transcripts = std::collections::HashMap<String, Transcript>;

/// Recognise every clip of the corpus in `dir` with `transcribe` (see
/// [`eval_corpus_transcribed`]).
pub fn transcribe_corpus(
    dir: &Path,
    transcribe: &dyn Fn(&[i16]) -> Transcript,
) -> Result<Transcripts, AmdEvalError> {
    let mut out = Transcripts::new();
    for l in read_labels(dir)? {
        let samples = read_wav(&dir.join(&l.file))?;
        out.insert(l.file, transcribe(&samples));
    }
    Ok(out)
}

/// [`eval_corpus`] fed with transcripts recognised before ([`transcribe_corpus`]).
pub fn eval_corpus_with_transcripts(
    dir: &Path,
    params: &AmdParams,
    transcripts: &Transcripts,
) -> Result<EvalReport, AmdEvalError> {
    eval_corpus_by(
        dir,
        params,
        true,
        &|file: &str, _: &ClipNotes, _: &[i16]| transcripts.get(file).cloned().unwrap_or_default(),
    )
}

/// The audio-only and the transcript-assisted figures side by side, and the assisted ones for
/// each `transcript_hold_ms` in `holds` (how the default was chosen).
pub fn compare(
    dir: &Path,
    params: &AmdParams,
    transcripts: &Transcripts,
    holds: &[u32],
) -> Result<String, AmdEvalError> {
    use std::fmt::Write;
    let audio = eval_corpus(dir, params)?;
    let assisted = eval_corpus_with_transcripts(dir, params, transcripts)?;
    let mut out = String::new();
    let line = |out: &mut String, name: &str, r: &EvalReport| {
        let (before, beeps) = r.machine_before_beep();
        let mut td: Vec<f64> = r
            .rows
            .iter()
            .filter(|r| r.correct())
            .map(|r| r.t_d())
            .collect();
        td.sort_by(f64::total_cmp);
        let median = td.get(td.len() / 2).copied().unwrap_or(0.0);
        let _ = writeln!(
            out,
            "{name:<28} {:>6.1}% {:>9} {:>9} {:>8}/{:<3} {:>8.2} s",
            r.overall_accuracy() * 100.0,
            r.human_as_machine_or_fax(),
            r.machine_as_human(),
            before,
            beeps,
            median
        );
    };
    let _ = writeln!(
        out,
        "{:<28} {:>7} {:>9} {:>9} {:>12} {:>10}",
        "", "correct", "human→mf", "mach→hum", "before beep", "median t_d"
    );
    line(&mut out, "audio only", &audio);
    line(
        &mut out,
        &format!("with transcripts (hold {})", params.transcript_hold_ms),
        &assisted,
    );
    for &hold in holds {
        let p = AmdParams {
            transcript_hold_ms: hold,
            ..params.clone()
        };
        let r = eval_corpus_with_transcripts(dir, &p, transcripts)?;
        line(&mut out, &format!("  hold {hold} ms"), &r);
    }
    Ok(out)
}

fn read_labels(dir: &Path) -> Result<Vec<ClipLabel>, AmdEvalError> {
    let labels_path = dir.join("labels.csv");
    let text = std::fs::read_to_string(&labels_path).map_err(|source| AmdEvalError::Io {
        path: labels_path.clone(),
        source,
    })?;
    let labels = parse_labels(&text).map_err(|e| AmdEvalError::Labels {
        path: labels_path.clone(),
        line: e.line,
        msg: e.msg,
    })?;
    if labels.is_empty() {
        return Err(AmdEvalError::Empty(labels_path));
    }
    Ok(labels)
}

fn eval_corpus_by(
    dir: &Path,
    params: &AmdParams,
    expect_transcripts: bool,
    schedule_for: &dyn Fn(&str, &ClipNotes, &[i16]) -> Transcript,
) -> Result<EvalReport, AmdEvalError> {
    let labels = read_labels(dir)?;
    let mut rows = Vec::with_capacity(labels.len());
    for l in labels {
        let samples = read_wav(&dir.join(&l.file))?;
        let schedule = schedule_for(&l.file, &l.notes, &samples);
        rows.push(EvalRow {
            outcome: run_clip_fed(&samples, params, &schedule, expect_transcripts),
            file: l.file,
            label: l.label,
            notes: l.notes,
        });
    }
    Ok(EvalReport { rows })
}
