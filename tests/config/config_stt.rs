//! `server.stt`: the recogniser's model and decoder keys reach the engine the call engine
//! builds, are checked with positions, a chosen model that is not installed is a clear error
//! (path + install command), and `dialgate check` shows the settings.

use dialgate::config::{self, ErrorKind};
use std::path::PathBuf;

/// A fresh directory holding `dialgate.yaml` with `stt` (indented under `server:`) and a
/// data directory `data/` beside it (also used by `config_greeting_bias`).
pub(crate) fn write_config(tag: &str, stt: &str) -> (PathBuf, PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("dialgate-config-stt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data/models")).unwrap();
    let file = dir.join("dialgate.yaml");
    let text = format!(
        "server:\n  sip:\n    listen: [{{ transport: udp, address: \"127.0.0.1:5060\" }}]\n  http: {{ plain_http: true }}\n  data_dir: data\n  stt:\n{stt}bots:\n  - id: demo-bot\n    name: Demo Bot\n    sip_uri: \"sip:bot@127.0.0.1:5090\"\n"
    );
    std::fs::write(&file, text).unwrap();
    (dir, file)
}

const CHOSEN: &str = "    model: base.en\n    short_prompt: \"Hello? Yes? Speaking.\"\n    initial_prompt: \"Hello.\"\n    pad_ms: 1500\n    temperature_inc: 0.2\n    short_utterance_ms: 2500\n    max_no_speech: 0.5\n    audio_ctx_min: 300\n";

#[test]
fn chosen_model_and_decoder_settings_reach_the_engine() {
    // 1. A config choosing base.en and decoder settings, with the model file installed.
    let (dir, file) = write_config("chosen", CHOSEN);
    let model = dir.join("data/models/ggml-base.en.bin");
    std::fs::write(&model, b"not a real model").unwrap();
    let c = config::load(&file).unwrap();
    // 2. The engine configuration the call engine builds (`SttSettings::engine_config`) holds
    //    what the file says.
    let e = c.server.stt.engine_config(&c.server.data_dir);
    assert_eq!(e.model, "base.en");
    assert_eq!(e.model_file(), model);
    assert_eq!(e.short_prompt, "Hello? Yes? Speaking.");
    assert_eq!(e.initial_prompt, "Hello.");
    assert_eq!(
        (e.pad_ms, e.short_utterance_ms, e.audio_ctx_min),
        (1500, 2500, 300)
    );
    assert_eq!((e.temperature_inc, e.max_no_speech), (0.2, 0.5));
    // 3. Keys not written keep the engine's defaults.
    let d = dialgate::stt::SttEngineConfig::default();
    assert_eq!(
        (e.min_confidence, e.beam_size),
        (d.min_confidence, d.beam_size)
    );
    // 4. The engine keeps them (the file is no model, so recognition is unavailable, saying
    //    where it looked).
    let engine = dialgate::stt::SttEngine::new(e);
    assert_eq!(engine.config().short_prompt, "Hello? Yes? Speaking.");
    assert!(matches!(
        engine.status(),
        dialgate::stt::SttStatus::Unavailable { .. }
    ));
    // 5. `dialgate check` shows the model, its file and the decoder settings.
    let (ok, stdout, stderr) = crate::config_kit::check(&file);
    assert!(ok, "{stdout}{stderr}");
    let want = format!(
        "Speech recognition: model base.en ({}, installed); short_utterance_ms 2500 greeting_utterance_ms 3000 short_prompt \"Hello? Yes? Speaking.\"",
        model.display()
    );
    assert!(stdout.contains(&want), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_chosen_model_that_is_not_installed_is_an_error_naming_path_and_script() {
    // 1. The same config without the model file.
    let (dir, file) = write_config("missing", CHOSEN);
    let e = config::load(&file).unwrap_err();
    // 2. One error, at `model:` (line 7, column 12), naming the file and the install command.
    let errs = e.errors();
    assert_eq!(errs.len(), 1, "{e}");
    let want = dir.join("data/models/ggml-base.en.bin");
    assert_eq!(errs[0].kind, ErrorKind::MissingFile);
    assert_eq!(errs[0].path, "server.stt.model");
    assert_eq!((errs[0].line, errs[0].column), (7, 12));
    assert_eq!(
        errs[0].message,
        format!(
            "model file {} does not exist; run scripts/setup-model DATA_DIR base.en to install it",
            want.display()
        )
    );
    // 3. `dialgate check` fails with that line.
    let (ok, stdout, stderr) = crate::config_kit::check(&file);
    let all = format!("{stdout}{stderr}");
    assert!(!ok, "{all}");
    assert!(
        all.contains("scripts/setup-model DATA_DIR base.en"),
        "{all}"
    );
    // 4. The default model missing stays a warning (calls work without recognition): the file
    //    loads and `check` says what to run.
    let (dir2, file2) = write_config("default", "    model: tiny.en\n");
    let c = config::load(&file2).unwrap();
    let s = config::summary(&c);
    assert!(
        s.contains("Speech recognition: model tiny.en")
            && s.contains("NOT INSTALLED: run scripts/setup-model);"),
        "{s}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

#[test]
fn decoder_keys_out_of_range_are_refused_at_their_node() {
    // 1. Every decoder key out of its range (and a prompt over two lines).
    let stt = "    pad_ms: 20000\n    temperature_inc: 1.5\n    beam_size: 0\n    min_confidence: -0.1\n    audio_ctx: 1501\n    short_prompt: \"Hello?\\nHi.\"\n";
    let (dir, file) = write_config("range", stt);
    let e = config::load(&file).unwrap_err();
    let lines: Vec<String> = e.errors().iter().map(|e| e.to_string()).collect();
    let f = file.display();
    // 2. Each is reported at its own line and column with the accepted range.
    for want in [
        "7:13: server.stt.pad_ms: expected a whole number from 0 to 10000, got 20000",
        "8:22: server.stt.temperature_inc: expected a number from 0 to 1, got 1.5",
        "9:16: server.stt.beam_size: expected a whole number from 1 to 8, got 0",
        "10:21: server.stt.min_confidence: expected a number from 0 to 1, got -0.1",
        "11:16: server.stt.audio_ctx: expected a whole number from 0 to 1500, got 1501",
        "12:19: server.stt.short_prompt: expected one line of at most 400 characters, got a line break or control character",
    ] {
        let want = format!("{f}:{want}");
        assert!(
            lines.contains(&want),
            "missing {want}\ngot:\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(lines.len(), 6, "{}", lines.join("\n"));
    let _ = std::fs::remove_dir_all(&dir);
}
