//! The log of a running `dialgate run`: written to a file it has no ANSI escape codes (unless
//! `--color always`), and at the default level one SIP request does not put the SIP stack's
//! per-message lines ("udp received" / "udp send") into it.

use crate::common::binary::server_yaml;
use crate::common::peers::free_udp_port;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A minimal plain-HTTP configuration listening on `sip_port`, data in `dir/data`.
fn write_config(dir: &Path, sip_port: u16) -> std::path::PathBuf {
    let p = dir.join("dialgate.yaml");
    let server = server_yaml(sip_port, 0, Some((22000, 22099)), &dir.join("data"));
    std::fs::write(&p, server).unwrap();
    p
}

/// Starts `dialgate run` with standard error going to `log`; extra arguments come first.
fn run_dialgate(config: &Path, log: &Path, extra: &[&str]) -> Child {
    let file = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .args(extra)
        .arg("run")
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap()
}

/// Waits (bounded) until the log contains `needle`; returns the log text.
fn wait_for_log(log: &Path, needle: &str, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("dialgate exited ({status}) before logging {needle:?}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in the log within 60 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends one SIP OPTIONS to `port` and waits (bounded) for any answer.
fn options_ping(port: u16) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let local = sock.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:probe@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-log-1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:test@127.0.0.1>;tag=log1\r\nTo: <sip:probe@127.0.0.1:{port}>\r\nCall-ID: log-test-1@127.0.0.1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let mut buf = [0u8; 4096];
    for _ in 0..5 {
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    panic!("no answer to OPTIONS from 127.0.0.1:{port}");
}

fn stop(mut child: Child) {
    // SIGTERM: the graceful path, then reap (bounded).
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn log_to_a_file_has_no_colour_and_no_per_message_sip_lines() {
    // 1. dialgate runs with its log going to a file (not a terminal), default level.
    let dir = tempfile::tempdir().unwrap();
    let port = free_udp_port();
    let config = write_config(dir.path(), port);
    let log = dir.path().join("dialgate.log");
    let mut child = run_dialgate(&config, &log, &[]);
    wait_for_log(&log, "dialgate running", &mut child);
    // 2. One SIP request reaches it and is answered.
    let answer = options_ping(port);
    assert!(answer.starts_with("SIP/2.0 "), "{answer}");
    // 3. Stop it; the log is complete.
    stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    // 4. Not a single escape code, and the SIP stack did not log the message itself.
    assert!(
        !text.contains('\u{1b}'),
        "escape codes in a log file:\n{text}"
    );
    assert!(text.contains("INFO"), "{text}");
    assert!(
        !text.contains("udp received") && !text.contains("udp send"),
        "per-message SIP lines at the default level:\n{text}"
    );
}

#[test]
fn colour_always_and_json_are_as_asked() {
    // 1. `--color always` colours even into a file.
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_udp_port());
    let log = dir.path().join("colour.log");
    let mut child = run_dialgate(&config, &log, &["--color", "always"]);
    let text = wait_for_log(&log, "dialgate running", &mut child);
    stop(child);
    assert!(
        text.contains("\u{1b}["),
        "no colour with --color always:\n{text}"
    );
    // 2. `--log-json` writes one JSON object per line, without escape codes.
    let config = write_config(dir.path(), free_udp_port());
    let log = dir.path().join("json.log");
    let mut child = run_dialgate(&config, &log, &["--log-json"]);
    let text = wait_for_log(&log, "dialgate running", &mut child);
    stop(child);
    assert!(!text.contains('\u{1b}'), "{text}");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v.get("level").is_some(), "{line}");
    }
}
