//! The greeting bias (`stt::greeting_bias`) with the real tiny.en model on the greeting set and
//! on the unseen greeting set (`SET=unseen scripts/make-stt-greetings`: other phrases, names,
//! rates, and short answers that are no greeting). Not timed: the texts are deterministic
//! (greedy decoding; the feed waits for each recognition as a call's clock would).

use crate::common;
use std::path::PathBuf;

use dialgate::stt::{SttEngineConfig, SttEvalReport, SttSessionConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/fixtures/<set>` recognised with the installed tiny.en, defaults but for
/// `greeting_bias_margin` (0 = off).
fn eval(set: &str, margin: f32) -> SttEvalReport {
    let model = root().join("data/models/ggml-tiny.en.bin");
    assert!(
        model.is_file(),
        "STT model missing: run scripts/setup-model"
    );
    let cfg = SttEngineConfig {
        model_path: Some(model),
        greeting_bias_margin: margin,
        ..Default::default()
    };
    dialgate::stt::eval_dir(
        &root().join("tests/fixtures").join(set),
        cfg,
        SttSessionConfig::default(),
    )
    .unwrap()
}

/// Word errors over the whole set.
fn errors(r: &SttEvalReport) -> usize {
    r.clips.iter().map(|c| c.errors).sum()
}

/// Nothing said, nothing recognised: the bias never turns noise into a greeting.
fn assert_negatives_silent(r: &SttEvalReport) {
    let negatives: Vec<_> = r
        .clips
        .iter()
        .filter(|c| c.file.starts_with("neg-"))
        .collect();
    assert_eq!(negatives.len(), 3);
    for c in negatives {
        assert!(c.hypothesis.is_empty(), "{}: {:?}", c.file, c.hypothesis);
    }
}

/// Greeting set with the bias (default margin): measured 11.1 % WER (17/153) and 83.8 %
/// (57/68) fully right (13.1 % / 82.4 % without it; README "Speech recognition", greeting
/// bias); the floors leave room for two words and one clip. The goal (≤ 10 %, ≥ 85 %)
/// is not met.
const BIASED_WER: f64 = 0.125;
const BIASED_FULLY_RIGHT: f64 = 0.82;

#[test]
fn greetings_with_the_bias_meet_the_measured_floors() {
    let _cpu = common::cpu::exclusive_blocking();
    // 1. The greeting set with the default settings (the bias on).
    let r = eval(
        "stt-greetings",
        SttEngineConfig::default().greeting_bias_margin,
    );
    println!("{r}");
    assert_eq!(r.clips.len(), 68);
    // 2. Silence, line noise, hum: no text.
    assert_negatives_silent(&r);
    // 3. The measured rates.
    assert!(r.wer <= BIASED_WER, "WER {:.1} %", r.wer * 100.0);
    assert!(
        r.fully_right >= BIASED_FULLY_RIGHT,
        "fully right {:.1} %",
        r.fully_right * 100.0
    );
}

#[test]
fn the_bias_does_not_hurt_the_unseen_set() {
    let _cpu = common::cpu::exclusive_blocking();
    // 1. The unseen set without and with the bias.
    let off = eval("stt-greetings-unseen", 0.0);
    let on = eval(
        "stt-greetings-unseen",
        SttEngineConfig::default().greeting_bias_margin,
    );
    println!("without the bias:\n{off}\nwith the bias:\n{on}");
    assert_eq!(on.clips.len(), 47);
    // 2. No text on the negatives either way.
    assert_negatives_silent(&off);
    assert_negatives_silent(&on);
    // 3. No more word errors, no fewer clips fully right.
    assert!(
        errors(&on) <= errors(&off),
        "{} > {}",
        errors(&on),
        errors(&off)
    );
    assert!(on.fully_right >= off.fully_right);
    // 4. The short answers that are no greeting keep their words ("Wrong number." is not made
    //    into a greeting).
    for c in on.clips.iter().filter(|c| {
        ["wrong-number", "not-interested", "hold-on"]
            .iter()
            .any(|p| c.file.starts_with(p))
    }) {
        let before = off
            .clips
            .iter()
            .find(|o| o.file == c.file)
            .map(|o| o.errors);
        assert!(Some(c.errors) <= before, "{}: {:?}", c.file, c.hypothesis);
    }
}
