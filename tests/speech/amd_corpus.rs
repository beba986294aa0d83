//! Runs `eval_corpus` on real clips: the committed fixture subset always, the full dev corpus
//! when it is present beside the crate. Floors sit a few points under what the detector
//! achieves so that a real regression fails and a rounding change does not.

use crate::common;
use std::path::{Path, PathBuf};

use dialgate::amd::{AmdParams, AmdResult, EvalOptions, Label, eval_corpus, eval_corpus_with};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}

#[test]
fn fixture_subset_scores_and_reports() {
    let _cpu = common::cpu::exclusive_blocking();
    // 1. Evaluate the 16-clip subset.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/amd");
    let report = eval_corpus(&dir, &AmdParams::default()).unwrap();
    println!("{report}");
    assert_eq!(report.rows.len(), 16);
    // 2. Everything but (at most) the hard long business greeting is right.
    let bad = report.misclassified();
    assert!(bad.len() <= 1, "misclassified: {bad:#?}");
    assert!(bad.iter().all(|r| r.notes.hard.is_some()), "{bad:#?}");
    assert_eq!(report.accuracy(Label::Fax), Some(1.0));
    assert_eq!(report.accuracy(Label::Silence), Some(1.0));
    assert_eq!(report.machine_as_human(), 0);
    // 3. Rows CSV: header + one row per clip, with the README's columns.
    let csv = report.to_csv();
    assert_eq!(csv.lines().count(), 17);
    assert!(csv.starts_with("file,label,decision,t_d\n"));
    assert!(csv.contains("dev-012.wav,silence,unknown,5.00"));
    // 4. The printed report has its sections.
    let text = report.to_string();
    for needle in [
        "confusion",
        "unweighted",
        "before the beep",
        "misclassified",
        "hard clips",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
}

#[test]
fn eval_errors_classify_themselves() {
    let err = eval_corpus(Path::new("/nonexistent/amd"), &AmdParams::default()).unwrap_err();
    assert_eq!(err.kind(), "io");
    let tmp = std::env::temp_dir().join(format!("amd-eval-err-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("labels.csv"), "file,label\nx.wav,robot\n").unwrap();
    let err = eval_corpus(&tmp, &AmdParams::default()).unwrap_err();
    assert_eq!(err.kind(), "labels");
    std::fs::write(tmp.join("labels.csv"), "file,label\nx.wav,human\n").unwrap();
    std::fs::write(tmp.join("x.wav"), b"not a wav").unwrap();
    let err = eval_corpus(&tmp, &AmdParams::default()).unwrap_err();
    assert_eq!(err.kind(), "wav");
    std::fs::remove_dir_all(&tmp).unwrap();
}

/// The AMD dev corpus, if it is there; if not, says the test is skipped.
fn dev_corpus() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let found = [
        root.join("../shared/amd-corpus/dev"),
        PathBuf::from("/work/shared/amd-corpus/dev"),
    ]
    .into_iter()
    .find(|p| p.join("labels.csv").is_file());
    if found.is_none() {
        println!("NOTE: AMD dev corpus not found (../shared/amd-corpus/dev); test skipped");
    }
    found
}

#[test]
fn dev_corpus_meets_the_floors() {
    let _cpu = common::cpu::exclusive_blocking();
    let Some(dir) = dev_corpus() else {
        return;
    };
    // 1. Evaluate all 60 clips with the defaults.
    let report = eval_corpus(&dir, &AmdParams::default()).unwrap();
    println!("{report}");
    // 2. Accuracy floors (achieved: 98.3 % overall, human 95 %, others 100 %).
    assert!(report.overall_accuracy() >= 0.93, "{report}");
    for (label, floor) in [
        (Label::Human, 0.85),
        (Label::Machine, 0.92),
        (Label::Fax, 0.9),
        (Label::Silence, 0.8),
    ] {
        let accuracy = report.accuracy(label).unwrap_or(0.0);
        assert!(accuracy >= floor, "{label:?}: {report}");
    }
    assert!(report.human_as_machine_or_fax() <= 2, "{report}");
    // Silence must never be called human.
    assert!(
        report
            .rows
            .iter()
            .filter(|r| r.label == Label::Silence)
            .all(|r| r.outcome.decision != AmdResult::Human)
    );
    // 3. Timing goals (simulated time): humans within 2 s (median) of the end of their
    //    greeting, faxes within 1.5 s of the tone onset, beeps reported.
    assert!(median(report.human_delays()) <= 2.0, "{report}");
    assert!(report.fax_delays().iter().all(|d| *d <= 1.5), "{report}");
    let (ok, total, _) = report.beep_notices();
    assert!(ok * 10 >= total * 9, "beeps {ok}/{total}");
}

#[test]
fn dev_corpus_with_simulated_recognition() {
    let _cpu = common::cpu::exclusive_blocking();
    let Some(dir) = dev_corpus() else {
        return;
    };
    // 1. Feed the notes' texts word by word, 300 ms after they are spoken, with a 2.5 s hold.
    let params = AmdParams {
        transcript_hold_ms: 2500,
        ..AmdParams::default()
    };
    let opts = EvalOptions {
        simulate_transcripts: true,
        stt_latency_ms: 300,
    };
    let report = eval_corpus_with(&dir, &params, &opts).unwrap();
    println!("{report}");
    // 2. Achieved 100 %; the floor allows for a changed phrase list.
    assert!(report.overall_accuracy() >= 0.95, "{report}");
    assert!(report.human_as_machine_or_fax() <= 1, "{report}");
}

#[test]
fn dev_corpus_with_real_recognition() {
    let _cpu = common::cpu::exclusive_blocking();
    let Some(dir) = dev_corpus() else {
        return;
    };
    // 1. The installed Whisper model transcribes each clip as a call would; each text reaches
    //    the detector when a real-time feed would have it (end of speech + measured latency).
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models/ggml-tiny.en.bin");
    assert!(
        model.is_file(),
        "STT model missing at {}: run scripts/setup-model",
        model.display()
    );
    let engine = dialgate::stt::SttEngine::new(dialgate::stt::SttEngineConfig {
        model_path: Some(model),
        ..Default::default()
    });
    let transcribe = |samples: &[i16]| -> Vec<(u64, String)> {
        dialgate::stt::eval::transcript_for_amd(&engine, samples).unwrap()
    };
    // 2. Default parameters (3 s transcript hold).
    let report =
        dialgate::amd::eval_corpus_transcribed(&dir, &AmdParams::default(), &transcribe).unwrap();
    println!("{report}");
    // 3. Measured 100 % (60/60), no human taken for a machine: the long business greeting
    //    ("…how can I help you?") is caught by its transcript. Floors leave room for one clip.
    assert!(report.overall_accuracy() >= 0.97, "{report}");
    assert_eq!(report.human_as_machine_or_fax(), 0, "{report}");
    assert!(median(report.human_delays()) <= 2.0, "{report}");
}
