//! Answering-machine detection (AMD): human, machine, fax or unknown from the callee's first
//! seconds of audio.
//!
//! Sans-IO and deterministic: feed [`Detector::push_frame`] 20 ms frames (160 samples of
//! 8 kHz linear PCM) from the moment of answer; time is the frame count. Optional
//! [`Detector::push_transcript`] adds recognised text. [`eval_corpus`] scores a labelled
//! corpus (`dialgate amd-eval DIR`).

mod detector;
pub mod dsp;
mod early;
mod eval;
mod labels;
mod params;
mod report;
mod tones;
mod transcript;
mod vad;

#[cfg(test)]
mod tests;

pub use detector::{AmdEvent, AmdResult, Decision, Detector};
pub use early::{EarlyDetector, EarlyVerdict};
pub use eval::{
    AmdEvalError, ClipOutcome, EvalOptions, EvalReport, EvalRow, Transcripts, compare, eval_corpus,
    eval_corpus_transcribed, eval_corpus_with, eval_corpus_with_transcripts, run_clip,
    run_clip_with, transcribe_corpus, transcript_schedule,
};
pub use labels::{ClipLabel, ClipNotes, CsvRecord, Label, LabelsError, parse_csv, parse_labels};
pub use params::AmdParams;
pub use tones::{ToneSegment, ToneTracker, ToneVerdict};
pub use vad::{NoiseFloor, Vad};
