//! Helpers shared by the configuration tests: the environment the fixtures read, set once for
//! the binary; the lock that keeps SIGHUP from reaching another test's watcher; a private temp
//! directory with a config file.

#![allow(dead_code)]

use dialgate::config::{ConfigStore, spawn_watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Once;
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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
                (
                    "DIALGATE_TEST_PG_URL",
                    "postgres://dialgate:pg-pass@127.0.0.1:5432/dialgate",
                ),
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

/// The configuration fixtures' directory.
pub const FIXTURES: &str = "tests/fixtures/config";

/// The fixture `name` (a path below [`FIXTURES`]).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(name)
}

/// The errors of loading the fixture `name` ([`errors_of`]).
pub fn fixture_errors(name: &str) -> Vec<String> {
    errors_of(&fixture(name))
}

/// The errors of loading `path`, one line each (`file:line:col: path: message`); panics if the
/// file loads.
pub fn errors_of(path: &Path) -> Vec<String> {
    env();
    match dialgate::config::load(path) {
        Ok(_) => panic!("{} loaded but must fail", path.display()),
        Err(e) => e.errors().iter().map(|e| e.to_string()).collect(),
    }
}

/// Asserts that `lines` has the error `want`.
pub fn has(lines: &[String], want: &str) {
    assert!(
        lines.iter().any(|l| l == want),
        "missing error:\n  {want}\ngot:\n  {}",
        lines.join("\n  ")
    );
}

/// Asserts that `errors` are exactly `want`, each `file:` + the text given, in any order.
pub fn assert_errors(errors: &[String], file: &str, want: &[&str]) {
    for w in want {
        has(errors, &format!("{file}:{w}"));
    }
    assert_eq!(errors.len(), want.len(), "{}", errors.join("\n"));
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

/// A configuration file (one bot, `max_cps: 1.0`, an empty include directory `conf.d`) in its own
/// temp directory, its store, a subscription to its versions and a running watcher. Holds
/// [`watcher_lock`] for its whole life.
pub struct Watched {
    _alone: MutexGuard<'static, ()>,
    pub dir: TempDir,
    pub file: PathBuf,
    pub store: Arc<ConfigStore>,
    pub versions: watch::Receiver<u64>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Watched {
    /// Writes the file in temp directory `tag` and starts the watcher on it.
    pub async fn start(tag: &str) -> Watched {
        let alone = watcher_lock().await;
        let dir = TempDir::new(tag);
        std::fs::create_dir(dir.path().join("conf.d")).unwrap();
        let file = dir.path().join("dialgate.yaml");
        std::fs::write(&file, config_text("1.0")).unwrap();
        let store = Arc::new(ConfigStore::open(&file).unwrap());
        let versions = store.subscribe();
        let shutdown = CancellationToken::new();
        // spawn_watcher installs the SIGHUP handler before it returns.
        let task = spawn_watcher(store.clone(), shutdown.clone());
        Watched {
            _alone: alone,
            dir,
            file,
            store,
            versions,
            shutdown,
            task,
        }
    }

    /// Stops the watcher; it ends within [`WAIT`].
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.task)
            .await
            .unwrap()
            .unwrap();
    }
}

/// The bot line of [`one_trunk`] files whose bot is a SIP bot.
pub const BOT_SIP_URI: &str = "    sip_uri: \"sip:bot@127.0.0.1:5090\"\n";

/// Writes `dir/dialgate.yaml`: one bot `b` with the lines `bot` and one trunk `carrier`
/// (`127.0.0.1:5061`) with the extra lines `trunk`, both YAML at 4 spaces, routed by one rule.
/// The bot's lines start at line 11 and the trunk's at line 15 + the bot's line count: tests
/// assert error positions against this layout.
pub fn one_trunk(dir: &Path, bot: &str, trunk: &str) -> PathBuf {
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
{bot}sip_connections:
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

/// One error of a configuration that does not load: `(path, line, kind, message)`.
pub type Positioned = (String, usize, dialgate::config::ErrorKind, String);

/// The errors of a [`one_trunk`] file with `bot` and `trunk`, each [`Positioned`]; panics if
/// it loads.
pub fn one_trunk_errors(bot: &str, trunk: &str) -> Vec<Positioned> {
    let dir = tempfile::tempdir().unwrap();
    match dialgate::config::load(&one_trunk(dir.path(), bot, trunk)) {
        Ok(_) => panic!("must fail:\n{bot}{trunk}"),
        Err(e) => e
            .errors()
            .iter()
            .map(|e| (e.path.clone(), e.line, e.kind, e.message.clone()))
            .collect(),
    }
}

/// Writes `text` to `dir/name` (a configuration file); returns its path.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Loads `text` as a configuration file (`config.yaml` in a temporary directory of its own).
pub fn load_text(text: &str) -> Result<dialgate::config::Config, dialgate::config::ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    dialgate::config::load(&write_config(dir.path(), "config.yaml", text))
}

/// Runs `dialgate check <file>`: (succeeded, standard output, standard error).
pub fn check(file: &Path) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .arg("check")
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs [`check`] on `text` written as `name` in a temporary directory of its own.
pub fn check_text(name: &str, text: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    check(&write_config(dir.path(), name, text))
}
