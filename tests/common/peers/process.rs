//! Child processes that lead their own process group and are killed and reaped on drop.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the async waits look at a log file or a process.
pub(super) const POLL: Duration = Duration::from_millis(20);
/// How long `stop()` lets a process end after SIGTERM before killing it (PJSIP needs ~1.5 s).
pub(super) const STOP_GRACE: Duration = Duration::from_secs(10);

/// Sends a signal by name (`TERM`, `KILL`) to the process group `pgid` with the system `kill`
/// (keeps libc out of the deps). Every peer leads its own group, so forked workers (Kamailio's)
/// go with it.
pub(super) fn send_signal(pgid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args(["-s", sig, "--", &format!("-{pgid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A child process (leader of its own process group) that is killed and reaped when dropped.
#[derive(Debug)]
pub(super) struct Proc {
    what: &'static str,
    /// The child and, once reaped, its status.
    child: Mutex<(Child, Option<ExitStatus>)>,
    pub(super) pid: u32,
}

impl Proc {
    /// Spawns `cmd` in `dir` as the leader of its own process group, stdin closed, stdout and
    /// stderr to `log`.
    pub(super) fn spawn_logged(
        what: &'static str,
        cmd: &mut Command,
        dir: &std::path::Path,
        log: std::fs::File,
    ) -> Result<Self, super::PeerError> {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .current_dir(dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|source| super::PeerError::Spawn { what, source })?;
        Ok(Proc::new(what, child))
    }

    pub(super) fn new(what: &'static str, child: Child) -> Self {
        let pid = child.id();
        Proc {
            what,
            child: Mutex::new((child, None)),
            pid,
        }
    }

    /// `Err(Exited)` once the process has ended, `Err(Timeout)` (waiting for `what`) once
    /// `deadline` has passed; either with `tail`, the end of its log.
    pub(super) fn alive_before(
        &self,
        deadline: Instant,
        what: &str,
        timeout: Duration,
        tail: impl Fn() -> String,
    ) -> Result<(), super::PeerError> {
        if let Some(status) = self.exited() {
            let what = self.what;
            return Err(super::PeerError::Exited {
                what,
                status,
                tail: tail(),
            });
        }
        if Instant::now() >= deadline {
            let what = what.to_string();
            return Err(super::PeerError::Timeout {
                what,
                timeout,
                tail: tail(),
            });
        }
        Ok(())
    }

    /// `Some(status)` once the process has ended (and has been reaped).
    pub(super) fn exited(&self) -> Option<ExitStatus> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1.is_none() {
            guard.1 = guard.0.try_wait().ok().flatten();
        }
        guard.1
    }

    /// Waits (async) up to `timeout` for the process to end by itself.
    pub(super) async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// SIGTERM to the group, then up to `STOP_GRACE` for a clean exit, then SIGKILL.
    pub(super) async fn stop(&self) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        send_signal(self.pid, "TERM");
        if let Some(status) = self.wait_exit(STOP_GRACE).await {
            return Some(status);
        }
        self.kill()
    }

    /// SIGKILL to the whole group and reap, synchronously (used by Drop). The group is
    /// signalled only while the leader is unreaped: until then its id cannot be reused.
    pub(super) fn kill(&self) -> Option<ExitStatus> {
        let mut guard = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1.is_some() {
            return guard.1;
        }
        send_signal(self.pid, "KILL");
        let _ = guard.0.kill();
        guard.1 = guard.0.wait().ok();
        guard.1
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
