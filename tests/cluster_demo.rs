//! `scripts/cluster-demo` keeps working: run in its short mode against this build's binary, it
//! starts PostgreSQL, Redis, SIPp and three dialgate instances on loopback, its own checks hold
//! (one bot's limits across the three instances, a record read from another instance), and it
//! leaves nothing behind (its work directory is gone, PostgreSQL and Redis no longer listen).

use std::net::TcpStream;
use std::process::Command;

/// The script's own waits are bounded; this bounds the whole run on a busy machine too.
const RUN_LIMIT_SEC: &str = "600";

/// The value after `prefix` on the first line holding it, up to the next space or comma.
fn after<'a>(out: &'a str, prefix: &str) -> Option<&'a str> {
    let start = out.find(prefix)? + prefix.len();
    out[start..].split([' ', ',', '\n']).next()
}

#[test]
fn cluster_demo_runs_its_checks_and_cleans_up() {
    // 1. Run the demo, short mode, on the binary cargo built for this test.
    let out = Command::new("timeout")
        .args(["-k", "15", RUN_LIMIT_SEC, "scripts/cluster-demo"])
        .env("CLUSTER_DEMO_SHORT", "1")
        .env("DIALGATE_BIN", env!("CARGO_BIN_EXE_dialgate"))
        .output()
        .expect("scripts/cluster-demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");

    // 2. It succeeded, and each of its checks is reported as held.
    assert!(
        out.status.success(),
        "cluster-demo failed ({}):\n{all}",
        out.status
    );
    assert!(stdout.contains("cluster-demo: OK"), "{all}");
    for check in [
        "ok   never more than 3 calls up at once in the cluster",
        "ok   acceptances at most 1 per second over the cluster",
        "ok   every accepted call ended",
        "serves the record placed on",
        "lists all",
    ] {
        assert!(stdout.contains(check), "missing `{check}`:\n{all}");
    }
    assert!(!stdout.contains("FAIL"), "{all}");

    // 3. Everything it started is gone: the work directory and both servers' ports.
    let work = after(&stdout, "data under ").expect("the demo names its work directory");
    assert!(
        !std::path::Path::new(work).exists(),
        "{work} was left behind"
    );
    for server in ["PostgreSQL", "Redis"] {
        let addr = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(server))
            .and_then(|l| after(l, ": "))
            .unwrap_or_else(|| panic!("the demo names {server}'s address:\n{all}"));
        assert!(
            TcpStream::connect(addr).is_err(),
            "{server} still listens on {addr}"
        );
    }
}
