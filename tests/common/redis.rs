//! A throwaway Redis for cluster tests: Debian's `redis-server` on 127.0.0.1 on a free high
//! port, no persistence (`--save ''`, `--appendonly no`), its own directory; stopped when
//! dropped. A test may stop it and start it again on the same port (a Redis outage).
//! Every wait is bounded.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer PING after it was started.
const START_WAIT: Duration = Duration::from_secs(10);

/// A running (or stopped) redis-server owned by the test.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server and waits until it answers PING. Panics, naming the package, when
    /// redis-server is not installed (scripts/install-peers installs it).
    pub fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free TCP port");
        let mut s = RedisServer {
            child: None,
            port,
            dir: tempfile::tempdir().expect("a directory for redis-server"),
        };
        s.restart();
        s
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server (again) on its port and waits until it answers PING.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        let log = std::fs::File::create(self.dir.path().join("redis.log")).expect("log file");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--protected-mode", "no"])
            .stdout(Stdio::from(log))
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server; run scripts/install-peers)");
        self.child = Some(child);
        let deadline = Instant::now() + START_WAIT;
        while !self.pings() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer PING on port {} within {START_WAIT:?}; log: {}",
                self.port,
                std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server at once (SIGKILL: an outage, nothing saved) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Whether the server answers PING now.
    pub fn pings(&self) -> bool {
        self.command(&["PING"])
            .is_some_and(|r| r.starts_with("+PONG"))
    }

    /// Sends one command (inline protocol) and returns the raw reply, or `None` when the
    /// server does not answer within a second. Enough for PING, INFO and small lookups.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        // One reply: read until a read would block past a short pause after data arrived.
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    if reply_complete(&out) {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
    }

    /// Calls per command name since the server started (`INFO commandstats`), e.g.
    /// `evalsha` → 12.
    pub fn command_calls(&self) -> std::collections::BTreeMap<String, u64> {
        let info = self.command(&["INFO", "commandstats"]).unwrap_or_default();
        info.lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.trim().parse().ok()?))
            })
            .collect()
    }
}

/// Whether `out` holds one whole RESP reply (simple, error, integer, or bulk string).
fn reply_complete(out: &[u8]) -> bool {
    let Some(first_line_end) = out.windows(2).position(|w| w == b"\r\n") else {
        return false;
    };
    match out.first() {
        Some(b'$') => {
            let len: i64 = std::str::from_utf8(&out[1..first_line_end])
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            len < 0 || out.len() >= first_line_end + 2 + len as usize + 2
        }
        _ => true,
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
