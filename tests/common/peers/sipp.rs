//! SIPp runs with traces in their own directory.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::process::Proc;
use super::*;

/// What a finished SIPp run left behind.
#[derive(Debug)]
pub struct SippOutcome {
    /// 0: every call succeeded; 1: some failed; 97/99: stopped without calls; 255/254: fatal.
    pub status: ExitStatus,
    /// The `-trace_msg` log: every SIP message sent and received.
    pub messages: String,
    /// The `-trace_err` log: unexpected messages and errors.
    pub errors: String,
    /// The last statistics screen.
    pub screen: String,
}

/// A SIPp process: a scenario against (or for) dialgate on loopback.
#[derive(Debug)]
pub struct Sipp {
    proc: Proc,
    dir: TempDir,
    /// The SIP port SIPp uses (127.0.0.1).
    pub port: u16,
}

impl Sipp {
    /// Runs the scenario file `scenario_xml` (`-sf`) with `args` (e.g. the remote host:port,
    /// `-m 1`, `-s service`). Adds `-i 127.0.0.1 -mi 127.0.0.1 -nostdin`, traces into its own
    /// directory, and `-p <free port>` unless `args` has `-p`.
    pub fn spawn(scenario_xml: &Path, args: &[&str]) -> Result<Self, PeerError> {
        let xml = require("SIPp scenario", scenario_xml.to_path_buf())?;
        Self::start(vec!["-sf".into(), xml.display().to_string()], args)
    }

    /// Runs a built-in scenario (`-sn uac`, `uas`, `uac_pcap`, …) with `args`.
    pub fn spawn_builtin(name: &str, args: &[&str]) -> Result<Self, PeerError> {
        Self::start(vec!["-sn".into(), name.into()], args)
    }

    fn start(mut scenario: Vec<String>, args: &[&str]) -> Result<Self, PeerError> {
        let bin = find_program("sipp (sip-tester)", &["/usr/bin/sipp"])?;
        let dir = tempfile::Builder::new().prefix("sipp-").tempdir()?;
        let d = dir.path();
        let port = match args.iter().position(|a| *a == "-p") {
            Some(i) => args.get(i + 1).and_then(|p| p.parse().ok()).unwrap_or(0),
            None => {
                let p = free_udp_port();
                scenario.extend(["-p".into(), p.to_string()]);
                p
            }
        };
        let path = |name: &str| d.join(name).display().to_string();
        scenario.extend([
            "-i".into(),
            "127.0.0.1".into(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-nostdin".into(),
            "-trace_msg".into(),
            "-message_file".into(),
            path("messages.log"),
            "-trace_err".into(),
            "-error_file".into(),
            path("errors.log"),
            "-trace_screen".into(),
            "-screen_file".into(),
            path("screen.log"),
        ]);
        let child = Command::new(bin)
            .args(&scenario)
            .args(args)
            .current_dir(d)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(fs::File::create(d.join("stdout.log"))?)
            .stderr(fs::File::create(d.join("stderr.log"))?)
            .spawn()
            .map_err(|source| PeerError::Spawn {
                what: "sipp",
                source,
            })?;
        Ok(Sipp {
            proc: Proc::new("sipp", child),
            dir,
            port,
        })
    }

    /// The SIP messages traced so far.
    pub fn messages(&self) -> String {
        fs::read_to_string(self.dir.path().join("messages.log")).unwrap_or_default()
    }

    /// The run's directory (traces, stdout, stderr).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Waits up to `timeout` for SIPp to end by itself and returns its status and logs.
    /// On timeout it is killed and a `Timeout` error carries the trace tail.
    pub async fn wait(&self, timeout: Duration) -> Result<SippOutcome, PeerError> {
        match self.proc.wait_exit(timeout).await {
            Some(status) => Ok(self.outcome(status)),
            None => {
                self.proc.kill();
                Err(PeerError::Timeout {
                    what: "sipp to finish".into(),
                    timeout,
                    tail: format!(
                        "{}\nstderr:\n{}",
                        tail_of(&self.dir.path().join("messages.log"), 30),
                        tail_of(&self.dir.path().join("stderr.log"), 10)
                    ),
                })
            }
        }
    }

    /// Stops a SIPp that would run on (a UAS): SIGTERM, then the logs.
    pub async fn stop(&self) -> Option<SippOutcome> {
        self.proc.stop().await.map(|s| self.outcome(s))
    }

    fn outcome(&self, status: ExitStatus) -> SippOutcome {
        let read = |n: &str| fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        // SIPp appends a pid to -screen_file/-error_file names in some versions: fall back to a glob.
        let screen = if self.dir.path().join("screen.log").exists() {
            read("screen.log")
        } else {
            read_prefixed(self.dir.path(), "screen")
        };
        SippOutcome {
            status,
            messages: read("messages.log"),
            errors: read("errors.log"),
            screen,
        }
    }
}

fn read_prefixed(dir: &Path, prefix: &str) -> String {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .collect::<Vec<_>>()
        .join("\n")
}
