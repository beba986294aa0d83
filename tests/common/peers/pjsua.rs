//! The PJSIP peer: `tests/peers/pjsua_peer.py` as a child process and its JSONL events.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::process::{POLL, Proc};
use super::*;

/// Options of one `pjsua_peer.py` process; see `--help` of the script for the full list.
/// `Default` is a UAS on a free port that answers every call with 200 after a 180.
#[derive(Debug, Clone)]
pub struct PjsuaOpts {
    /// SIP UDP port; 0 lets the peer pick one (read it from `PjsuaPeer::sip_port`).
    pub port: u16,
    /// First RTP port and range size; 0 lets PJSIP choose.
    pub rtp_port: u16,
    pub rtp_port_range: u16,
    /// User part of the peer's own URI.
    pub user: String,
    /// `"200"`, `"486"`, `"603"`, `"480"`, …, `"ring"` (180 and never a final answer) or
    /// `"none"` (only 100 Trying); a comma list answers call by call, the last entry repeats.
    pub answer: String,
    /// Provisional sent at once: 180, or 183 (early media).
    pub ring_code: u16,
    /// Delay between the provisional and the final answer.
    pub answer_after_ms: u64,
    /// WAV (8 kHz mono 16-bit) played to the other side when media starts.
    pub play: Option<PathBuf>,
    /// Loop `play` instead of playing it once.
    pub play_loop: bool,
    /// Hang up this many ms after `play` ended (not with `play_loop`).
    pub bye_after_play_ms: Option<u64>,
    /// Record what the other side sends; a relative path is inside the peer's directory. Call N>1
    /// records to `<stem>-N.wav`; the `disconnected` event names the file.
    pub record: Option<PathBuf>,
    /// Send BYE this long after the call is confirmed.
    pub bye_after_ms: Option<u64>,
    /// Keys to press (RFC 4733) once the call is confirmed, and after how long.
    pub dtmf: Option<(String, u64)>,
    /// Hard stop of the process (it hangs up everything first); a safety net for every test.
    pub max_seconds: f64,
    /// Digest credentials (user, password) for challenges to calls we place.
    pub auth: Option<(String, String)>,
    /// UAC mode: call this URI once ready.
    pub call: Option<String>,
    /// UAC: number of sequential calls and the pause between them.
    pub call_count: u32,
    pub call_interval_ms: u64,
    /// UAC: CANCEL a call not answered after this long.
    pub cancel_after_ms: Option<u64>,
    /// UAC: extra `Name: value` headers on the INVITE.
    pub headers: Vec<String>,
    /// UAC: our identity (From) instead of `sip:<user>@127.0.0.1:<port>`.
    pub from_uri: Option<String>,
    /// UAC: keep running after the last call (else the process exits by itself).
    pub stay: bool,
    /// The only codec offered and accepted: `PCMU` or `PCMA`.
    pub codec: String,
    /// Also log every SIP message sent or received as a `sip` event (dir, start, headers, body).
    pub log_sip: bool,
    /// More raw arguments for the script.
    pub extra_args: Vec<String>,
    /// Bound on the wait for the `ready` event (Python start-up on a loaded machine).
    pub ready_timeout: Duration,
}

impl Default for PjsuaOpts {
    fn default() -> Self {
        PjsuaOpts {
            port: 0,
            rtp_port: 0,
            rtp_port_range: 20,
            user: "peer".into(),
            answer: "200".into(),
            ring_code: 180,
            answer_after_ms: 0,
            play: None,
            play_loop: false,
            bye_after_play_ms: None,
            record: None,
            bye_after_ms: None,
            dtmf: None,
            max_seconds: 120.0,
            auth: None,
            call: None,
            call_count: 1,
            call_interval_ms: 0,
            cancel_after_ms: None,
            headers: Vec::new(),
            from_uri: None,
            stay: false,
            codec: "PCMU".into(),
            log_sip: false,
            extra_args: Vec::new(),
            ready_timeout: Duration::from_secs(30),
        }
    }
}

impl PjsuaOpts {
    /// A UAS answering with `answer` (see the field).
    pub fn uas(answer: &str) -> Self {
        PjsuaOpts {
            answer: answer.into(),
            ..Default::default()
        }
    }

    /// A UAC that calls `uri` once and exits after the call.
    pub fn uac(uri: &str) -> Self {
        PjsuaOpts {
            call: Some(uri.into()),
            ..Default::default()
        }
    }

    fn to_args(&self, dir: &Path) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "--port".into(),
            self.port.to_string(),
            "--rtp-port".into(),
            self.rtp_port.to_string(),
            "--rtp-port-range".into(),
            self.rtp_port_range.to_string(),
            "--user".into(),
            self.user.clone(),
            "--answer".into(),
            self.answer.clone(),
            "--ring-code".into(),
            self.ring_code.to_string(),
            "--answer-after-ms".into(),
            self.answer_after_ms.to_string(),
            "--max-seconds".into(),
            self.max_seconds.to_string(),
            "--codec".into(),
            self.codec.clone(),
            "--call-count".into(),
            self.call_count.to_string(),
            "--call-interval-ms".into(),
            self.call_interval_ms.to_string(),
        ];
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(flag.into());
                a.push(v);
            }
        };
        opt(
            "--play",
            self.play.as_ref().map(|p| p.display().to_string()),
        );
        opt(
            "--record",
            self.record
                .as_ref()
                .map(|p| dir.join(p).display().to_string()),
        );
        opt("--bye-after-ms", self.bye_after_ms.map(|v| v.to_string()));
        opt("--dtmf", self.dtmf.as_ref().map(|(d, _)| d.clone()));
        opt(
            "--dtmf-after-ms",
            self.dtmf.as_ref().map(|(_, ms)| ms.to_string()),
        );
        opt(
            "--bye-after-play-ms",
            self.bye_after_play_ms.map(|v| v.to_string()),
        );
        opt(
            "--auth",
            self.auth.as_ref().map(|(u, p)| format!("{u}:{p}")),
        );
        opt("--call", self.call.clone());
        opt(
            "--cancel-after-ms",
            self.cancel_after_ms.map(|v| v.to_string()),
        );
        opt("--from-uri", self.from_uri.clone());
        for h in &self.headers {
            a.push("--header".into());
            a.push(h.clone());
        }
        if self.play_loop {
            a.push("--play-loop".into());
        }
        if self.bye_after_play_ms.is_some() {
            a.push("--bye-after-play".into());
        }
        if self.stay {
            a.push("--stay".into());
        }
        if self.log_sip {
            a.push("--log-sip".into());
        }
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

/// One event line of the peer's JSONL log, e.g. `{"event":"incoming","call":1,"headers":{…}}`.
#[derive(Debug, Clone)]
pub struct PeerEvent(pub Value);

impl PeerEvent {
    /// The `event` field: ready, incoming, response, answer, state, media, dtmf, play_done,
    /// cancelled, disconnected, error, exit, calling.
    pub fn name(&self) -> &str {
        self.0["event"].as_str().unwrap_or("")
    }

    /// True when this is the event called `name`.
    pub fn is(&self, name: &str) -> bool {
        self.name() == name
    }

    /// The peer's call number (1, 2, … in arrival order).
    pub fn call(&self) -> Option<u64> {
        self.0["call"].as_u64()
    }

    /// SIP status code of `response`, `answer`, `state` and `disconnected` events.
    pub fn code(&self) -> Option<u64> {
        self.0["code"].as_u64()
    }

    /// A string field (`state`, `reason`, `by`, `recording`, `request_uri`, `sdp`, …).
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0[key].as_str()
    }

    /// A header of an `incoming` request or a `response` (case-insensitive name; compact forms
    /// were expanded by the peer; `Request-URI` is included for requests).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0["headers"]
            .as_object()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    }

    /// The SDP body of an `incoming` request or a `response` ("" when there was none).
    pub fn sdp(&self) -> Option<&str> {
        self.str("sdp")
    }
}

/// A running `pjsua_peer.py`: a PJSIP UA acting as carrier callee, bot, or caller.
#[derive(Debug)]
pub struct PjsuaPeer {
    proc: Proc,
    dir: TempDir,
    log_path: PathBuf,
    /// The SIP UDP port it listens on (127.0.0.1).
    pub sip_port: u16,
}

impl PjsuaPeer {
    /// Starts the peer and waits (bounded by `opts.ready_timeout`) for its `ready` event.
    pub async fn spawn(opts: PjsuaOpts) -> Result<Self, PeerError> {
        let python = require("pjsua2 venv python", peers_python())?;
        let script = require(
            "pjsua_peer.py",
            repo_root().join("tests/peers/pjsua_peer.py"),
        )?;
        let dir = tempfile::Builder::new().prefix("pjsua-peer-").tempdir()?;
        let log_path = dir.path().join("events.jsonl");
        let mut args = opts.to_args(dir.path());
        args.extend([
            "--log".into(),
            log_path.display().to_string(),
            "--pj-log".into(),
            dir.path().join("pjsip.log").display().to_string(),
            "--pj-log-level".into(),
            "4".into(), // level 4 includes every SIP message: the first place to look on failure
        ]);
        let child = Command::new(python)
            .arg(script)
            .args(&args)
            .current_dir(dir.path())
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.path().join("stdout.log"))?)
            .stderr(fs::File::create(dir.path().join("stderr.log"))?)
            .spawn()
            .map_err(|source| PeerError::Spawn {
                what: "pjsua_peer.py",
                source,
            })?;
        let mut peer = PjsuaPeer {
            proc: Proc::new("pjsua_peer.py", child),
            dir,
            log_path,
            sip_port: 0,
        };
        let ready = match peer.wait_event("ready", opts.ready_timeout).await {
            Ok(ev) => ev,
            Err(PeerError::Timeout { tail, .. }) => {
                return Err(PeerError::NotReady {
                    what: "pjsua_peer.py",
                    timeout: opts.ready_timeout,
                    tail,
                });
            }
            Err(e) => return Err(e),
        };
        peer.sip_port = ready.0["sip_port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0);
        Ok(peer)
    }

    /// `sip:<user>@127.0.0.1:<port>`: how to call this peer.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@127.0.0.1:{}", self.sip_port)
    }

    /// The peer's own directory (event log, PJSIP log, recordings with relative paths).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid
    }

    /// Every event logged so far, in order (a half-written last line is left for later).
    pub fn events(&self) -> Vec<PeerEvent> {
        let text = fs::read_to_string(&self.log_path).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(PeerEvent)
            .collect()
    }

    /// The events called `name`.
    pub fn events_named(&self, name: &str) -> Vec<PeerEvent> {
        self.events().into_iter().filter(|e| e.is(name)).collect()
    }

    /// Waits for the first event (from the start of the log) that satisfies `pred`.
    /// Fails early when the process exits without it.
    pub async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&PeerEvent) -> bool,
        timeout: Duration,
    ) -> Result<PeerEvent, PeerError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.events().into_iter().find(|e| pred(e)) {
                return Ok(ev);
            }
            if let Err(e) = self
                .proc
                .alive_before(deadline, what, timeout, || self.tail())
            {
                // An exit may have raced the last lines: look once more before giving up.
                if let Some(ev) = self.events().into_iter().find(|e| pred(e)) {
                    return Ok(ev);
                }
                return Err(e);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for the first event called `name`.
    pub async fn wait_event(&self, name: &str, timeout: Duration) -> Result<PeerEvent, PeerError> {
        self.wait_for(&format!("event {name:?}"), |e| e.is(name), timeout)
            .await
    }

    /// Waits for the `n`-th (1-based) event called `name`.
    pub async fn wait_nth(
        &self,
        name: &str,
        n: usize,
        timeout: Duration,
    ) -> Result<PeerEvent, PeerError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.events_named(name).into_iter().nth(n.saturating_sub(1)) {
                return Ok(ev);
            }
            if Instant::now() >= deadline || self.proc.exited().is_some() {
                return Err(PeerError::Timeout {
                    what: format!("event {name:?} #{n}"),
                    timeout,
                    tail: self.tail(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until call `call` (1-based) has ended and returns its finished recording (the
    /// recorder is closed, so the WAV header is complete). `None` in the event means the call
    /// had no media or the peer does not record: that is an `Io(NotFound)` error.
    pub async fn wait_recording(&self, call: u64, timeout: Duration) -> Result<PathBuf, PeerError> {
        let what = format!("disconnected call {call}");
        let ev = self
            .wait_for(
                &what,
                |e| e.is("disconnected") && e.call() == Some(call),
                timeout,
            )
            .await?;
        match ev.str("recording") {
            Some(p) => Ok(PathBuf::from(p)),
            None => Err(PeerError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("call {call} has no recording"),
            ))),
        }
    }

    /// Waits for the process to end by itself (a UAC after its last call); `None` on timeout.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.wait_exit(timeout).await
    }

    /// Ends the peer gracefully: SIGTERM makes it hang up, close recordings and log `exit`.
    /// The directory (and the recordings) stay until the handle is dropped.
    pub async fn stop(&self) -> Option<ExitStatus> {
        self.proc.stop().await
    }

    /// The last lines of the event log and of stderr, for error messages.
    pub fn tail(&self) -> String {
        format!(
            "events:\n{}\nstderr:\n{}",
            tail_of(&self.log_path, 15),
            tail_of(&self.dir.path().join("stderr.log"), 10)
        )
    }
}

/// Builders for the carrier extensions of `pjsua_peer.py` (issue 16); each adds its flags to
/// `extra_args`, so the struct and its `Default` stay as they are.
impl PjsuaOpts {
    /// `--prack off|optional|mandatory`: 100rel (RFC 3262). `mandatory` sends every 18x
    /// reliably (`Require: 100rel`, `RSeq`) and waits for the PRACK. PJSIP honours a caller's
    /// `Require: 100rel` whatever this says: it never answers 420 for it.
    pub fn prack(mut self, mode: &str) -> Self {
        self.extra_args.extend(["--prack".into(), mode.into()]);
        self
    }

    /// `--timer inactive|optional|required|always`: PJSIP's session timer use (RFC 4028).
    pub fn session_timer(mut self, mode: &str) -> Self {
        self.extra_args.extend(["--timer".into(), mode.into()]);
        self
    }

    /// `--answer-header`: one more `Name: value` header on the final answer.
    pub fn answer_header(mut self, header: &str) -> Self {
        self.extra_args
            .extend(["--answer-header".into(), header.into()]);
        self
    }

    /// `--reinvite-after-ms`: a re-INVITE (same media, PJSIP's session headers) this long
    /// after the call is confirmed.
    pub fn reinvite_after_ms(mut self, ms: u64) -> Self {
        self.extra_args
            .extend(["--reinvite-after-ms".into(), ms.to_string()]);
        self
    }

    /// `--refuse-require`: an INVITE whose `Require` lists `tag` is answered 420 Bad Extension
    /// with `Unsupported: <tag>` (scripted: PJSIP itself honours a required 100rel).
    pub fn refuse_require(mut self, tag: &str) -> Self {
        self.extra_args
            .extend(["--refuse-require".into(), tag.into()]);
        self
    }

    /// `--reinvite-srtp off`: that re-INVITE offers plain RTP/AVP without crypto (the account
    /// drops SRTP and the media transport is re-created).
    pub fn reinvite_without_srtp(mut self) -> Self {
        self.extra_args
            .extend(["--reinvite-srtp".into(), "off".into()]);
        self
    }
}

impl PeerEvent {
    /// The method of a message's `CSeq` (`INVITE`, `PRACK`, `UPDATE`, …), upper-case.
    pub fn cseq_method(&self) -> String {
        self.header("CSeq")
            .and_then(|c| c.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_ascii_uppercase()
    }
}

impl PjsuaPeer {
    /// The `sip` events (logged with `log_sip`) sent (`"tx"`) or received (`"rx"`) whose start
    /// line begins with `start` (e.g. `"PRACK "`, `"SIP/2.0 183"`), in order.
    pub fn sip_messages(&self, dir: &str, start: &str) -> Vec<PeerEvent> {
        self.events_named("sip")
            .into_iter()
            .filter(|e| {
                e.str("dir") == Some(dir) && e.str("start").is_some_and(|s| s.starts_with(start))
            })
            .collect()
    }
}
