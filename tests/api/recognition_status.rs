//! Truthful status without a speech model: bots that need recognition (recognition on connect,
//! machine-detection transcripts) are named by `dialgate check`, at start-up and on
//! `GET /api/v1/status`; their dialouts are refused with a clear 503 when the bot sets
//! `outbound.require_recognition`, else placed with a warning on the call record.

use crate::common;
use common::api::{Answer, StartOpts, TestApp, basic, start};
use common::binary::{server_yaml, stdout_of_success, trunk_yaml};
use hyper::StatusCode;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECRET: &str = common::env::REC_DIALER_SECRET;

/// Four bots (and a dead trunk on loopback, [`trunk`]): one requires recognition, one uses machine detection (placed with a warning),
/// one needs nothing, one needs it but may not dial out.
const BOTS: &str = r#"bots:
  - id: strict-bot
    name: Strict
    sip_uri: "sip:strict@127.0.0.1:5999"
    outbound: { enabled: true, start_recognition_on_connect: true, require_recognition: true }
  - id: amd-bot
    name: AMD
    sip_uri: "sip:amd@127.0.0.1:5999"
    outbound: { enabled: true, machine_detection: detect }
  - id: plain-bot
    name: Plain
    sip_uri: "sip:plain@127.0.0.1:5999"
    outbound: { enabled: true }
  - id: off-bot
    name: Off
    sip_uri: "sip:off@127.0.0.1:5999"
    outbound: { enabled: false, start_recognition_on_connect: true }
"#;

/// `POST /api/v1/actions/dialout` of `bot` to `target`.
async fn dialout(t: &TestApp, auth: &str, bot: &str, target: &str) -> Answer {
    let body = json!({"bot": bot, "target": target});
    t.http.dialout(auth, &body).await
}

/// A dead trunk on loopback every bot's calls are routed to.
fn trunk() -> String {
    trunk_yaml("127.0.0.1:5998")
}

fn api_clients() -> String {
    "api_clients:\n  - client_id: dialer\n    secret_env: REC_DIALER_SECRET\n    groups: [call_control, call_data_manager]\n".into()
}

/// A whole file for the binary: plain HTTP, data in `dir/data` (no model there).
fn write_config(dir: &std::path::Path, sip_port: u16) -> std::path::PathBuf {
    let p = dir.join("dialgate.yaml");
    let server = server_yaml(sip_port, 0, Some((22100, 22199)), &dir.join("data"));
    std::fs::write(&p, format!("{server}{BOTS}{}", trunk())).unwrap();
    p
}

/// `dialgate check <file>`.
fn check(file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .arg("check")
        .arg(file)
        .output()
        .unwrap()
}

#[test]
fn check_names_the_bots_that_will_lack_recognition() {
    // 1. A configuration whose data directory has no speech model.
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), 5070);
    let text = stdout_of_success(&check(&file));
    // 2. The file is valid (exit 0), and the two outbound bots needing recognition are named
    //    with what they need, what happens to their dialouts and what to run.
    let warnings: Vec<&str> = text.lines().filter(|l| l.starts_with("WARNING")).collect();
    assert_eq!(warnings.len(), 2, "{text}");
    assert!(
        warnings[0].starts_with("WARNING: bot `strict-bot` needs speech recognition (start_recognition_on_connect) but no speech model is installed (")
            && warnings[0].contains("models/ggml-tiny.en.bin")
            && warnings[0].contains("its dialouts are refused (outbound.require_recognition: true)")
            && warnings[0].ends_with("run scripts/setup-model to install it"),
        "{text}"
    );
    assert!(
        warnings[1].starts_with(
            "WARNING: bot `amd-bot` needs speech recognition (machine_detection transcripts)"
        ) && warnings[1].contains("its dialouts run without it, with a warning on the call record"),
        "{text}"
    );
    // 3. With a model file in place, nothing is reported.
    std::fs::create_dir_all(dir.path().join("data/models")).unwrap();
    std::fs::write(dir.path().join("data/models/ggml-tiny.en.bin"), b"ggml").unwrap();
    let text = stdout_of_success(&check(&file));
    assert!(!text.contains("WARNING"), "{text}");
}

#[test]
fn start_up_log_names_the_bots_that_will_lack_recognition() {
    // 1. dialgate runs on a data directory without a model, its log going to a file.
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = write_config(dir.path(), port);
    let log = dir.path().join("run.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .args(["run", "--config"])
        .arg(&file)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // 2. Wait (bounded) until it is running.
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("dialgate running") || child.try_wait().ok().flatten().is_some() {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "not running within 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    // 3. The start-up log has one WARN line per bot lacking recognition.
    let warn = |bot: &str| {
        text.lines().any(|l| {
            l.contains("WARN") && l.contains(&format!("bot `{bot}` needs speech recognition"))
        })
    };
    assert!(warn("strict-bot") && warn("amd-bot"), "{text}");
    assert!(!warn("plain-bot") && !warn("off-bot"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_dialouts_tell_the_truth_without_a_model() {
    // 1. dialgate in-process on a fresh data directory: no speech model.
    let t = start(
        &format!("{BOTS}{}{}", trunk(), api_clients()),
        StartOpts::default(),
    )
    .await;
    let auth = basic("dialer", SECRET);
    // 2. The status says recognition is unavailable and which bots lack it, and how.
    let st = t.http.get("/api/v1/status", &auth).await;
    assert_eq!(st.status, StatusCode::OK, "{}", st.text);
    let rec = &st.json["recognition"];
    assert_eq!(rec["available"], false, "{rec:#}");
    assert_eq!(
        rec["botsWithoutRecognition"],
        json!([
            {"bot": "strict-bot", "needs": ["start_recognition_on_connect"], "dialouts": "refused"},
            {"bot": "amd-bot", "needs": ["machine_detection transcripts"], "dialouts": "placed-with-warning"},
        ]),
        "{rec:#}"
    );
    // 3. A dialout of the bot that requires recognition: 503, naming the model and the fix.
    let r = dialout(&t, &auth, "strict-bot", "+15550100").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    let e = &r.json["error"];
    assert_eq!(e["code"], "recognition_unavailable", "{e}");
    assert!(
        e["missingModel"]
            .as_str()
            .is_some_and(|m| m.ends_with("models/ggml-tiny.en.bin")),
        "{e}"
    );
    assert_eq!(e["fix"], "scripts/setup-model", "{e}");
    assert!(
        e["message"]
            .as_str()
            .is_some_and(|m| m.contains("strict-bot") && m.contains("require_recognition")),
        "{e}"
    );
    // 4. A bot that needs nothing is placed as usual.
    let plain = dialout(&t, &auth, "plain-bot", "+15550101").await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.text);
    // 5. The machine-detection bot is placed, with a warning on its call record.
    let r = dialout(&t, &auth, "amd-bot", "+15550102").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let id = r.json["conversationId"].as_str().unwrap().to_owned();
    let record = t.http.get(&format!("/api/v1/calls/{id}"), &auth).await;
    let warnings: Vec<String> = record.json["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["detail"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(warnings.len(), 1, "{:#}", record.json);
    assert!(
        warnings[0].starts_with("speech recognition unavailable (")
            && warnings[0].contains("machine_detection transcripts")
            && warnings[0].contains("scripts/setup-model"),
        "{warnings:?}"
    );
    // 6. The plain bot's record has no warning.
    let pid = plain.json["conversationId"].as_str().unwrap().to_owned();
    let record = t.http.get(&format!("/api/v1/calls/{pid}"), &auth).await;
    assert!(
        !record.json["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "warning"),
        "{:#}",
        record.json
    );
    t.stop().await;
}
