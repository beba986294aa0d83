//! `server.stt.greeting_bias_margin`: reaches the engine, is checked with its position, and
//! defaults to the engine's value when absent.

use crate::config_stt::write_config;
use dialgate::config;
use dialgate::stt::SttEngineConfig;

/// The engine configuration the call engine builds from a `dialgate.yaml` whose `stt` section
/// is `stt` (the file's directory is removed afterwards).
fn engine_of(tag: &str, stt: &str) -> SttEngineConfig {
    let (dir, file) = write_config(tag, stt);
    let c = config::load(&file).unwrap();
    let e = c.server.stt.engine_config(&c.server.data_dir);
    let _ = std::fs::remove_dir_all(&dir);
    e
}

/// The errors, as printed, of loading a `dialgate.yaml` whose `stt` section is `stt`, and the
/// file's path as they name it.
fn errors_of(tag: &str, stt: &str) -> (Vec<String>, String) {
    let (dir, file) = write_config(tag, stt);
    let e = config::load(&file).unwrap_err();
    let lines = e.errors().iter().map(|e| e.to_string()).collect();
    let _ = std::fs::remove_dir_all(&dir);
    (lines, file.display().to_string())
}

#[test]
fn greeting_bias_margin_reaches_the_engine_and_defaults() {
    // 1. A margin written in the file reaches the engine configuration.
    let e = engine_of("bias-set", "    greeting_bias_margin: 0.5\n");
    assert_eq!(e.greeting_bias_margin, 0.5);
    // 2. 0 (off) is accepted.
    let e = engine_of("bias-off", "    greeting_bias_margin: 0\n");
    assert_eq!(e.greeting_bias_margin, 0.0);
    // 3. Absent: the engine's default.
    let e = engine_of("bias-absent", "    workers: 1\n");
    assert_eq!(
        e.greeting_bias_margin,
        SttEngineConfig::default().greeting_bias_margin
    );
}

#[test]
fn greeting_bias_margin_out_of_range_is_refused_at_its_node() {
    for (tag, v) in [("high", "7.5"), ("negative", "-1")] {
        // 1. A margin outside 0-5.
        let (lines, file) = errors_of(tag, &format!("    greeting_bias_margin: {v}\n"));
        // 2. One error, at the key's value, naming the range.
        let want = format!(
            "{file}:7:27: server.stt.greeting_bias_margin: expected a number from 0 to 5, got {v}"
        );
        assert_eq!(lines, vec![want]);
    }
}

#[test]
fn greeting_utterance_ms_reaches_the_engine_and_is_range_checked() {
    // 1. A window written in the file reaches the engine; absent, the engine's default (3000).
    let e = engine_of("bias-window", "    greeting_utterance_ms: 2500\n");
    assert_eq!(e.greeting_utterance_ms, 2500);
    let e = engine_of("bias-window-absent", "    workers: 1\n");
    assert_eq!(e.greeting_utterance_ms, 3000);
    // 2. Beyond 10 s: one error at the key's value, naming the range.
    let (lines, file) = errors_of("bias-window-high", "    greeting_utterance_ms: 20000\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("{file}:7:28: server.stt.greeting_utterance_ms:")),
        "{lines:?}"
    );
    assert!(lines[0].contains("20000"), "{lines:?}");
}
