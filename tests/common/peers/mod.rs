//! Real SIP peers as child processes: a scriptable PJSIP UA (`tests/peers/pjsua_peer.py`),
//! Kamailio as a carrier proxy with digest authentication, and SIPp.
//!
//! Each peer gets its own temporary directory (logs, recordings, SIPp traces) that lives as long
//! as the handle. Dropping a handle kills and reaps the process; `stop()` ends it gracefully
//! (SIGTERM) so a PJSIP peer hangs up its calls and closes its recordings first.
//! All waits are async (they poll with `tokio::time::sleep`) so dialgate running in the same
//! runtime keeps working while a test waits, and every wait is bounded by a timeout.

mod dnsmasq;
mod kamailio;
mod pjsua;
mod process;
mod sipp;

// Re-exports: each test binary uses only some of them.
#[allow(unused_imports)]
pub use dnsmasq::{DnsRecords, Dnsmasq};
#[allow(unused_imports)]
pub use kamailio::Kamailio;
#[allow(unused_imports)]
pub use pjsua::{PeerEvent, PjsuaOpts, PjsuaPeer};
#[allow(unused_imports)]
pub use sipp::{Sipp, SippOutcome};

use std::fs;
use std::io;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

/// Why a peer could not be started or did not do what a test waited for.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A program or the PJSIP venv is missing: `scripts/install-peers` has not run.
    #[error("{what} not found at {path}: run scripts/install-peers")]
    NotInstalled { what: &'static str, path: PathBuf },
    /// The process could not be started.
    #[error("cannot start {what}: {source}")]
    Spawn {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// The process did not report readiness in time.
    #[error("{what} not ready within {timeout:?}; log tail:\n{tail}")]
    NotReady {
        what: &'static str,
        timeout: Duration,
        tail: String,
    },
    /// A bounded wait ran out.
    #[error("timed out after {timeout:?} waiting for {what}; log tail:\n{tail}")]
    Timeout {
        what: String,
        timeout: Duration,
        tail: String,
    },
    /// The process ended while a test still waited on it.
    #[error("{what} exited ({status}) while waiting; log tail:\n{tail}")]
    Exited {
        what: &'static str,
        status: ExitStatus,
        tail: String,
    },
    /// Files in the peer's directory could not be read or written.
    #[error("peer I/O: {0}")]
    Io(#[from] io::Error),
}

/// The crate root (where `tests/`, `scripts/` and `.venv-peers/` live).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file under `tests/fixtures/audio/` (e.g. `fixture_audio("hello.wav")`).
pub fn fixture_audio(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/audio").join(name)
}

/// The Python of the project-local venv with pjsua2 (`DIALGATE_PEERS_PYTHON` overrides it).
pub fn peers_python() -> PathBuf {
    std::env::var_os("DIALGATE_PEERS_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv-peers/bin/python"))
}

/// A UDP port on 127.0.0.1 that was free a moment ago (the kernel picks it, so parallel tests
/// get different ones; another process could still take it before the caller binds it).
pub fn free_udp_port() -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    sock.local_addr().expect("local_addr").port()
}

/// Last `lines` lines of a text file ("" when it does not exist), for error messages.
pub fn tail_of(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl PeerError {
    /// A [`PeerError::Timeout`] waiting for `what` to start, told as [`PeerError::NotReady`].
    fn not_ready(self, what: &'static str) -> PeerError {
        match self {
            PeerError::Timeout { tail, timeout, .. } => PeerError::NotReady {
                what,
                timeout,
                tail,
            },
            other => other,
        }
    }
}

fn require(what: &'static str, path: PathBuf) -> Result<PathBuf, PeerError> {
    if path.exists() {
        Ok(path)
    } else {
        Err(PeerError::NotInstalled { what, path })
    }
}

fn find_program(what: &'static str, candidates: &[&str]) -> Result<PathBuf, PeerError> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| PeerError::NotInstalled {
            what,
            path: PathBuf::from(candidates[0]),
        })
}
