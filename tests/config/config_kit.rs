//! Helpers shared by the configuration tests: the environment the fixtures read, set once for
//! the binary; the lock that keeps SIGHUP from reaching another test's watcher; a private temp
//! directory with a config file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

/// Sets every environment variable the configuration fixtures and examples read. Every test that
/// loads a configuration calls this first, so no test reads the environment while another writes
/// it (one `Once` for the whole binary: two would write concurrently).
pub fn env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: runs once, before any test of this binary reads the environment (all call env()
        // first and Once blocks them until it is done).
        unsafe {
            for (name, value) in [
                ("DIALGATE_TEST_BOT_TOKEN", "bot-token-1"),
                ("DIALGATE_TEST_CARRIER_PASS", "carrier-pass"),
                ("DIALGATE_TEST_CLIENT_SECRET", "client-secret"),
                ("DIALGATE_TEST_PG_URL", "postgres://dialgate:pg-pass@127.0.0.1:5432/dialgate"),
                // Variables named by conf/dialgate.example.yaml and conf/websocket-bots.example.yaml.
                ("DEMO_BOT_TOKEN", "demo-token"),
                ("CARRIER_A_PASS", "carrier-a-pass"),
                ("DIALER_WEBHOOK_SECRET", "webhook-secret"),
                ("AC_WS_BOT_TOKEN", "ac-token"),
                ("DIALER_SECRET", "change-me"),
            ] {
                std::env::set_var(name, value);
            }
            std::env::remove_var("DIALGATE_TEST_SURELY_UNSET_VAR");
        }
    });
}

/// Held by every test that runs a config watcher: the watcher reloads on SIGHUP, which goes to
/// the whole process, so the SIGHUP test must not run while another test's watcher counts
/// versions.
pub async fn watcher_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}

/// Upper bound for every wait on the watcher (a bound, not a performance threshold).
pub const WAIT: Duration = Duration::from_secs(10);

/// Temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("dialgate-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A valid config whose single bot allows `cps` calls per second.
pub fn config_text(cps: &str) -> String {
    format!(
        "server:\n  sip:\n    listen: [{{ transport: udp, address: \"127.0.0.1:5060\" }}]\n  http: {{ plain_http: true }}\n  include: conf.d\nbots:\n  - id: b\n    name: B\n    sip_uri: \"sip:b@127.0.0.1\"\n    outbound:\n      max_cps: {cps}\n"
    )
}

/// Writes `text` to `path` the way editors do: temp file, then rename over the original.
pub fn write_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
