//! The `cluster` section: resolved URLs, defaults, redaction, and every mistake positioned.

use dialgate::config::{self, ClusterConfig};
use std::path::{Path, PathBuf};
use std::sync::Once;

const FIX: &str = "tests/fixtures/config/cluster";

/// Sets the variables the fixtures read, once, before any test of this binary reads them.
fn env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: runs once, before any test of this binary reads the environment (all call env()
        // first and Once blocks them until it is done).
        unsafe {
            std::env::set_var(
                "DIALGATE_TEST_PG_URL",
                "postgres://dialgate:pg-pass@127.0.0.1:5432/dialgate",
            );
            std::env::remove_var("DIALGATE_TEST_SURELY_UNSET_VAR");
        }
    });
}

fn fixture(name: &str) -> PathBuf {
    Path::new(FIX).join(name)
}

fn errors_of(name: &str) -> Vec<String> {
    env();
    match config::load(&fixture(name)) {
        Ok(_) => panic!("{name} loaded but must fail"),
        Err(e) => e.errors().iter().map(|e| e.to_string()).collect(),
    }
}

fn has(lines: &[String], want: &str) {
    assert!(
        lines.iter().any(|l| l == want),
        "missing error:\n  {want}\ngot:\n  {}",
        lines.join("\n  ")
    );
}

#[test]
fn absent_section_is_single_instance() {
    env();
    // 1. No `cluster`: no cluster mode, the store stays SQLite.
    let c = config::load(&fixture("none.yaml")).unwrap();
    assert_eq!(c.cluster, None);
}

#[test]
fn good_section_resolves_urls_and_redacts_them() {
    env();
    // 1. Load: the PostgreSQL URL comes from the environment, lease_sec defaults to 10.
    let c = config::load(&fixture("good.yaml")).unwrap();
    let want = ClusterConfig {
        instance_id: "dg-1".into(),
        postgres_url: Some("postgres://dialgate:pg-pass@127.0.0.1:5432/dialgate".into()),
        redis_url: Some("redis://:redis-pass@127.0.0.1:6379/0".into()),
        lease_sec: 10,
        redis_ca_file: None,
    };
    assert_eq!(c.cluster.as_ref(), Some(&want));
    // 2. Debug (what logs print) shows neither password.
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("pg-pass") && !dbg.contains("redis-pass"),
        "{dbg}"
    );
    assert!(dbg.contains("postgres://dialgate:<redacted>@127.0.0.1:5432/dialgate"));
}

#[test]
fn mistakes_are_positioned() {
    // 1. Bad identifier, both url and url_env, a missing variable, lease too short.
    let e = errors_of("bad.yaml");
    let f = "tests/fixtures/config/cluster/bad.yaml";
    for want in [
        "10:16: cluster.instance_id: expected 1 to 64 letters, digits, `-` or `_` starting with a letter or digit, got \"dg 1/x\"",
        "12:3: cluster.postgres_url_env: set either `postgres_url` or `postgres_url_env`, not both",
        "13:18: cluster.redis_url_env: environment variable DIALGATE_TEST_SURELY_UNSET_VAR is not set",
        "14:14: cluster.lease_sec: expected a whole number of seconds from 2 to 300, got 1",
    ] {
        has(&e, &format!("{f}:{want}"));
    }
    assert_eq!(e.len(), 4, "{}", e.join("\n"));
    // 2. URLs of the wrong scheme (the one from the environment says so), lease too long;
    //    no password in the message.
    let e = errors_of("scheme.yaml");
    let f = "tests/fixtures/config/cluster/scheme.yaml";
    for want in [
        "11:17: cluster.postgres_url: expected a URL starting with postgres:// or postgresql://, got mysql://u:<redacted>@h/db",
        "12:18: cluster.redis_url_env: expected a URL starting with redis:// or rediss:// or redis+unix:// or unix:// (from DIALGATE_TEST_PG_URL), got postgres://dialgate:<redacted>@127.0.0.1:5432/dialgate",
        "13:14: cluster.lease_sec: expected a whole number of seconds from 2 to 300, got 301",
    ] {
        has(&e, &format!("{f}:{want}"));
    }
    assert_eq!(e.len(), 3, "{}", e.join("\n"));
    // 3. No instance_id (structural) and nothing shared.
    let e = errors_of("missing.yaml");
    assert!(
        e.iter()
            .any(|l| l.contains("cluster") && l.contains("instance_id")),
        "{}",
        e.join("\n")
    );
}
