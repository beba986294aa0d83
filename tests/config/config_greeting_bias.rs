//! `server.stt.greeting_bias_margin`: reaches the engine, is checked with its position, and
//! defaults to the engine's value when absent.

use crate::config_stt::write_config;
use dialgate::config;

#[test]
fn greeting_bias_margin_reaches_the_engine_and_defaults() {
    // 1. A margin written in the file reaches the engine configuration.
    let (dir, file) = write_config("bias-set", "    greeting_bias_margin: 0.5\n");
    let c = config::load(&file).unwrap();
    let e = c.server.stt.engine_config(&c.server.data_dir);
    assert_eq!(e.greeting_bias_margin, 0.5);
    // 2. 0 (off) is accepted.
    let (dir0, file0) = write_config("bias-off", "    greeting_bias_margin: 0\n");
    let c = config::load(&file0).unwrap();
    assert_eq!(
        c.server
            .stt
            .engine_config(&c.server.data_dir)
            .greeting_bias_margin,
        0.0
    );
    // 3. Absent: the engine's default.
    let (dir1, file1) = write_config("bias-absent", "    workers: 1\n");
    let c = config::load(&file1).unwrap();
    assert_eq!(
        c.server
            .stt
            .engine_config(&c.server.data_dir)
            .greeting_bias_margin,
        dialgate::stt::SttEngineConfig::default().greeting_bias_margin
    );
    for d in [dir, dir0, dir1] {
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn greeting_bias_margin_out_of_range_is_refused_at_its_node() {
    for (tag, v) in [("high", "7.5"), ("negative", "-1")] {
        // 1. A margin outside 0-5.
        let (dir, file) = write_config(tag, &format!("    greeting_bias_margin: {v}\n"));
        let e = config::load(&file).unwrap_err();
        let lines: Vec<String> = e.errors().iter().map(|e| e.to_string()).collect();
        // 2. One error, at the key's value, naming the range.
        let want = format!(
            "{}:7:27: server.stt.greeting_bias_margin: expected a number from 0 to 5, got {v}",
            file.display()
        );
        assert_eq!(lines, vec![want]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn greeting_utterance_ms_reaches_the_engine_and_is_range_checked() {
    // 1. A window written in the file reaches the engine; absent, the engine's default (3000).
    let (dir, file) = write_config("bias-window", "    greeting_utterance_ms: 2500\n");
    let c = config::load(&file).unwrap();
    let e = c.server.stt.engine_config(&c.server.data_dir);
    assert_eq!(e.greeting_utterance_ms, 2500);
    let (dir1, file1) = write_config("bias-window-absent", "    workers: 1\n");
    let c = config::load(&file1).unwrap();
    let e = c.server.stt.engine_config(&c.server.data_dir);
    assert_eq!(e.greeting_utterance_ms, 3000);
    // 2. Beyond 10 s: one error at the key's value, naming the range.
    let (dir2, file2) = write_config("bias-window-high", "    greeting_utterance_ms: 20000\n");
    let e = config::load(&file2).unwrap_err();
    let lines: Vec<String> = e.errors().iter().map(|e| e.to_string()).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!(
            "{}:7:28: server.stt.greeting_utterance_ms:",
            file2.display()
        )),
        "{lines:?}"
    );
    assert!(lines[0].contains("20000"), "{lines:?}");
    for d in [dir, dir1, dir2] {
        let _ = std::fs::remove_dir_all(&d);
    }
}
