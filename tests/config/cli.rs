//! The command line: `check` reports every error with its position and exits
//! non-zero; `hash-secret` prints a hash the configuration accepts.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::config_kit::{check, check_text, load_text};

fn dialgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dialgate"))
}

/// `dialgate check` refuses `text` (written as `name`), its standard error naming each of
/// `words`.
fn check_refuses(name: &str, text: &str, words: &[&str]) {
    let (ok, out, err) = check_text(name, text);
    assert!(!ok, "{out}{err}");
    for w in words {
        assert!(err.contains(w), "{w:?}: {err}");
    }
}

#[test]
fn check_accepts_the_shipped_defaults() {
    // 1. conf/dialgate.yaml needs the dev certificate that scripts/setup makes.
    let status = Command::new("scripts/make-dev-certs")
        .status()
        .expect("scripts/make-dev-certs runs");
    assert!(status.success());
    // 2. The shipped configuration validates and is summarised.
    let (ok, text, err) = check(Path::new("conf/dialgate.yaml"));
    assert!(ok, "{text}{err}");
    assert!(text.contains("OK") && text.contains("demo-bot"), "{text}");
}

#[test]
fn check_reports_errors_with_positions_and_fails() {
    // 1. A file with a misspelt field and a dangling reference.
    // 2. `check` exits non-zero and names file:line:column and the closest valid field.
    check_refuses(
        "bad.yaml",
        "server:\n  sip:\n    listen: [ { transport: udp, address: \"127.0.0.1:5060\" } ]\n  http: { listen: \"127.0.0.1:8443\", plain_http: true }\nbots:\n  - { id: b, name: B, sip_url: \"sip:b@127.0.0.1\" }\n",
        &["bad.yaml:6:", "sip_url", "sip_uri"],
    );
}

#[test]
fn hash_secret_round_trip() {
    // 1. The secret comes on standard input.
    let mut child = dialgate()
        .arg("hash-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    // 2. It is an argon2id PHC string and it verifies the secret.
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let cfg = load_text(&format!("server:\n  sip:\n    listen: [ {{ transport: udp, address: \"127.0.0.1:5060\" }} ]\n  http: {{ listen: \"127.0.0.1:8443\", plain_http: true }}\napi_clients:\n  - {{ client_id: d, secret_hash: \"{hash}\", groups: [call_control] }}\n")).unwrap();
    assert!(cfg.api_client("d").unwrap().verify_secret("s3cret"));
    assert!(!cfg.api_client("d").unwrap().verify_secret("other"));
    // 3. An empty secret is refused.
    let mut child = dialgate()
        .arg("hash-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    assert!(!child.wait_with_output().unwrap().status.success());
}

#[test]
fn check_refuses_text_bots_without_speech_synthesis_and_says_what_to_run() {
    // 1. A text bot (no sip_uri) and a data directory without the voice.
    // 2. Refused, naming the bot and the command to run.
    check_refuses(
        "text.yaml",
        "server:\n  sip:\n    listen: [ { transport: udp, address: \"127.0.0.1:5060\" } ]\n  http: { listen: \"127.0.0.1:8443\", plain_http: true }\n  data_dir: empty-data\nbots:\n  - { id: talker, name: Talker, events_url: \"http://127.0.0.1:9/bot\" }\n",
        &["talker", "scripts/setup-model"],
    );
    // 3. A text bot without events_url is a configuration error with its position.
    check_refuses(
        "text.yaml",
        "server:\n  sip:\n    listen: [ { transport: udp, address: \"127.0.0.1:5060\" } ]\n  http: { listen: \"127.0.0.1:8443\", plain_http: true }\nbots:\n  - { id: mute, name: Mute }\n",
        &["events_url", "text bot"],
    );
}
