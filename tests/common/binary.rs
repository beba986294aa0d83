//! The real `dialgate` binary as a child process, for the tests that kill it (SIGKILL, SIGTERM)
//! and restart it on the same data directory, and the `server:` section such tests write.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port of 127.0.0.1 (bound, then released), for an HTTP listener that must keep its
/// port across restarts.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `server:` section of a dialgate on 127.0.0.1: SIP over UDP on `sip_port`, plain HTTP on
/// `http_port` (0 for free ports), relay RTP in `rtp` (none: the default range), its data in
/// `data`. Callers append further `server` keys indented by two spaces, then the other sections.
pub fn server_yaml(sip_port: u16, http_port: u16, rtp: Option<(u16, u16)>, data: &Path) -> String {
    let rtp = rtp
        .map(|(min, max)| format!("  rtp: {{ port_min: {min}, port_max: {max} }}\n"))
        .unwrap_or_default();
    format!(
        "server:\n  sip:\n    listen: [ {{ transport: udp, address: \"127.0.0.1:{sip_port}\" }} ]\n  http: {{ listen: \"127.0.0.1:{http_port}\", plain_http: true }}\n{rtp}  data_dir: {}\n",
        data.display()
    )
}

/// A trunk `c` at `address` and a routing rule sending every bot's calls to it (YAML).
pub fn trunk_yaml(address: &str) -> String {
    format!(
        "sip_connections:\n  - {{ id: c, name: C, address: \"{address}\" }}\nrouting_rules:\n  - {{ name: all, type: call, origin_bot: \"*\", route: {{ sip_connection: c }} }}\n"
    )
}

/// The standard output of a finished `dialgate` command, which must have succeeded (its
/// standard output and error are in the failure message).
pub fn stdout_of_success(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout
}

/// What a child `dialgate` wrote to its log file so far (empty when there is none yet).
pub fn log_of(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// `dialgate run` as a child process; SIGKILLed and reaped when dropped.
pub struct Dialgate(pub Child);

impl Dialgate {
    /// Runs `dialgate run --config <config>` with `env` added, its output appended to `log`
    /// (discarded without one).
    pub fn spawn(config: &Path, log: Option<&Path>, env: &[(&str, &str)]) -> Dialgate {
        let (stdout, stderr) = match log {
            Some(path) => {
                let f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap();
                (Stdio::from(f.try_clone().unwrap()), Stdio::from(f))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new(env!("CARGO_BIN_EXE_dialgate"))
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("dialgate binary starts");
        Dialgate(child)
    }

    /// [`Dialgate::spawn`] with its output appended to `log` and `RUST_LOG=dialgate=info` (the
    /// kit's secrets come from the environment it inherits: `common::env`), then waits (bounded:
    /// 30 s) until `http` answers `/healthz`; the log is in the failure message.
    pub async fn spawn_healthy(config: &Path, log: &Path, http: &super::api::Http) -> Dialgate {
        let d = Dialgate::spawn(config, Some(log), &[("RUST_LOG", "dialgate=info")]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while http.probe("/healthz").await != Some(hyper::StatusCode::OK) {
            assert!(
                Instant::now() < deadline,
                "dialgate ({}) not healthy:\n{}",
                config.display(),
                log_of(log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        d
    }

    /// SIGKILL: no chance to clean up or flush anything.
    pub fn kill9(self) {
        drop(self)
    }

    /// SIGTERM, then waits (bounded: 30 s) for the process to exit by itself. Async: the
    /// test's own peers (the dialer's sink) must keep answering meanwhile.
    pub async fn sigterm(mut self) -> ExitStatus {
        let pid = self.0.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.0.try_wait().unwrap() {
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "dialgate did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Dialgate {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
