//! `dialgate check` reports libsrtp2 when a trunk uses SRTP (issue 16): its version when the
//! library loads, a clear failure naming the Debian package when it does not (the loader is
//! pointed at a missing file with `DIALGATE_LIBSRTP2`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A configuration whose only trunk has the extra lines `trunk` (YAML at 4 spaces).
fn config(dir: &Path, trunk: &str) -> PathBuf {
    let text = format!(
        r#"server:
  sip:
    listen:
      - {{ transport: udp, address: "127.0.0.1:0" }}
  http: {{ listen: "127.0.0.1:0", plain_http: true }}
  rtp: {{ port_min: 20000, port_max: 20099 }}
  data_dir: data
bots:
  - id: b
    name: B
    sip_uri: "sip:bot@127.0.0.1:5090"
sip_connections:
  - id: carrier
    name: Carrier
    address: "127.0.0.1:5061"
{trunk}routing_rules:
  - name: all
    origin_bot: "*"
    route: {{ sip_connection: carrier }}
"#
    );
    let path = dir.join("dialgate.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn check(path: &Path, library: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialgate"));
    cmd.arg("check").arg(path);
    match library {
        Some(l) => cmd.env("DIALGATE_LIBSRTP2", l),
        None => cmd.env_remove("DIALGATE_LIBSRTP2"),
    };
    cmd.output().expect("dialgate runs")
}

const SRTP_TRUNK: &str = "    transport: tls\n    tls_verify: false\n    srtp: required\n";

#[test]
fn check_reports_the_loaded_libsrtp2_and_its_version() {
    // 1. A TLS trunk with `srtp: required`; libsrtp2-1 is installed here (scripts/install-peers).
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), SRTP_TRUNK);
    let out = check(&path, None);
    let text = String::from_utf8_lossy(&out.stdout);
    // 2. It passes and says which library answered, with the version libsrtp2 reports.
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("SRTP (trunks carrier)"))
        .unwrap_or_else(|| panic!("no SRTP line: {text}"));
    assert!(line.contains("libsrtp2.so.1 loaded"), "{line}");
    assert!(line.contains("libsrtp2 2."), "{line}");
}

#[test]
fn check_fails_naming_the_package_when_libsrtp2_cannot_be_loaded() {
    // 1. The same trunk, the loader pointed at a file that does not exist.
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), SRTP_TRUNK);
    let missing = dir.path().join("no-libsrtp2.so");
    let out = check(&path, Some(&missing.display().to_string()));
    // 2. `check` fails and says why, naming the Debian package and the override.
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SRTP (trunks carrier)"), "{err}");
    assert!(err.contains("libsrtp2-1"), "{err}");
    assert!(err.contains("no-libsrtp2.so"), "{err}");
    assert!(err.contains("DIALGATE_LIBSRTP2"), "{err}");
}

#[test]
fn check_says_nothing_of_srtp_without_srtp_trunks() {
    // 1. A plain trunk and a missing library: SRTP is never needed, so `check` passes.
    let dir = tempfile::tempdir().unwrap();
    let path = config(dir.path(), "");
    let out = check(&path, Some("/nonexistent/libsrtp2.so"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("SRTP"), "{text}");
}
