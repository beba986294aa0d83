//! A throwaway PostgreSQL cluster for tests: Debian's server binaries
//! (`/usr/lib/postgresql/*/bin`, `scripts/install-peers`), its own data directory under a
//! temporary directory, listening on 127.0.0.1 on a free high port, run as the `postgres` OS
//! user when the tests run as root (the server refuses root). Stopped when dropped; every wait
//! is bounded (`pg_ctl -t`).
//!
//! One cluster is shared by the tests of a binary that run at the same time ([`shared`]); each
//! test takes its own database ([`PgCluster::database`]), so tests never see each other's rows.

#![allow(dead_code)] // Each test binary uses part of it.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Seconds `pg_ctl` may wait for the server to start or stop.
const PG_CTL_WAIT_SEC: &str = "60";

/// A running PostgreSQL cluster.
pub struct PgCluster {
    bin: PathBuf,
    data: PathBuf,
    run: PathBuf,
    pub port: u16,
    /// Owner of the files and the server process (`postgres` when the tests run as root).
    user: Option<(u32, u32)>,
    next_db: AtomicU32,
    _dir: tempfile::TempDir,
}

/// The newest installed server's `bin` directory.
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (scripts/install-peers)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .expect("no /usr/lib/postgresql/*/bin/initdb (scripts/install-peers)")
}

/// uid and gid of the `postgres` user when running as root.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a `postgres` user exists (Debian's postgresql package creates it)")
    };
    Some((id("-u"), id("-g")))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl PgCluster {
    /// initdb + start on a free port.
    pub fn start() -> PgCluster {
        let dir = tempfile::Builder::new()
            .prefix("dialgate-pg-")
            .tempdir()
            .expect("temp dir");
        // The server user must be able to reach its directories inside the temp dir.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod temp dir");
        let user = server_user();
        let (data, run) = (dir.path().join("data"), dir.path().join("run"));
        for d in [&data, &run] {
            std::fs::create_dir(d).expect("mkdir");
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
            if let Some((uid, gid)) = user {
                std::os::unix::fs::chown(d, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let cluster = PgCluster {
            bin: bin_dir(),
            data,
            run,
            port: free_port(),
            user,
            next_db: AtomicU32::new(0),
            _dir: dir,
        };
        cluster.run_tool(
            "initdb",
            &[
                "-D",
                &cluster.data.to_string_lossy(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        cluster.start_server();
        cluster
    }

    fn run_tool(&self, tool: &str, args: &[&str]) {
        let mut cmd = Command::new(self.bin.join(tool));
        cmd.args(args).current_dir(&self.run);
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        let out = cmd.output().unwrap_or_else(|e| panic!("{tool} runs: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts (or restarts) the server on its port; returns when it accepts connections.
    pub fn start_server(&self) {
        let opts = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c max_connections=200",
            self.run.display(),
            self.port
        );
        let log = self.run.join("server.log");
        self.run_tool(
            "pg_ctl",
            &[
                "start",
                "-D",
                &self.data.to_string_lossy(),
                "-l",
                &log.to_string_lossy(),
                "-w",
                "-t",
                PG_CTL_WAIT_SEC,
                "-o",
                &opts,
            ],
        );
    }

    /// Stops the server (fast shutdown: sessions are disconnected), keeping its data.
    pub fn stop_server(&self) {
        self.run_tool(
            "pg_ctl",
            &[
                "stop",
                "-D",
                &self.data.to_string_lossy(),
                "-m",
                "fast",
                "-w",
                "-t",
                PG_CTL_WAIT_SEC,
            ],
        );
    }

    /// URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a fresh database and returns its URL.
    pub async fn database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            self.next_db.fetch_add(1, Ordering::Relaxed)
        );
        let (client, conn) = tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect to the test cluster");
        let task = tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        drop(client);
        let _ = task.await;
        self.url(&name)
    }

    /// Where the server writes its log (for failure messages).
    pub fn log(&self) -> &Path {
        &self.run
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let mut cmd = Command::new(self.bin.join("pg_ctl"));
        cmd.args(["stop", "-D"]).arg(&self.data).args([
            "-m",
            "immediate",
            "-w",
            "-t",
            PG_CTL_WAIT_SEC,
        ]);
        if let Some((uid, gid)) = self.user {
            cmd.uid(uid).gid(gid);
        }
        let _ = cmd.output();
    }
}

/// The cluster shared by the tests running now in this binary (started by the first, stopped
/// when the last drops its handle).
pub fn shared() -> Arc<PgCluster> {
    static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
    let mut g = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(c) = g.upgrade() {
        return c;
    }
    let c = Arc::new(PgCluster::start());
    *g = Arc::downgrade(&c);
    c
}
