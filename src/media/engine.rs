//! The public API: [`MediaEngine`] owns the port pool and the relay threads;
//! [`MediaSession`] is one call's pair of legs.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc::{Receiver, channel};

use super::MediaError;
use super::direct::{DIRECT_REMOTE, DirectPort, Outbox};
use super::inactivity;
use super::leg::LatchMode;
use super::ports::{PortPair, PortPool};
use super::recorder::{self, RecordingSummary};
use super::relay::{Command, LegRt, Relay, RelaySettings, SessionRt};
use super::stats::{GLOBAL, LegCounters, MediaStats};
use super::types::{Leg, MediaConfig, MediaEvent, PcmFrame, RemoteMedia};

/// State shared between a session handle, its relay thread and its
/// inactivity watcher: only atomics.
#[derive(Default)]
pub(crate) struct SessionShared {
    pub(crate) legs: [LegCounters; 2],
    pub(crate) stopped: AtomicBool,
    /// Whether each leg is expected to send (remote set, direction sends).
    pub(crate) should_send: [AtomicBool; 2],
    /// Bumped on every `set_remote`, so the watcher restarts its clock.
    pub(crate) epoch: [AtomicU64; 2],
}

/// Commands that may wait for one relay thread. The thread takes every waiting command each
/// time it wakes (between packet batches, microseconds apart) and never waits for a sender, so
/// a full queue only delays a sender briefly: `send` waits for room rather than lose a command
/// (a lost `Remove` would leak a session's ports). Calls send a handful each.
const RELAY_COMMAND_BOUND: usize = 4096;

struct RelayHandle {
    /// `SyncSender` is `Sync`: senders on several threads need no lock (one held across a
    /// send waiting for room would make every other sender wait behind it).
    tx: SyncSender<Command>,
    /// Shared with the relay thread: the descriptor stays open while either side holds it, so a
    /// wake-up written after the relay exited can never land on a reused descriptor number.
    evfd: Arc<OwnedFd>,
    /// Sessions placed on this thread and not yet stopped.
    sessions: AtomicUsize,
    /// The bot frames of this thread's direct legs (`media/direct.rs`).
    outbox: Arc<Outbox>,
}

impl RelayHandle {
    fn send(&self, cmd: Command) -> Result<(), MediaError> {
        self.tx.send(cmd).map_err(|_| MediaError::Stopped)?;
        let one: u64 = 1;
        // SAFETY: writes 8 bytes to the relay's eventfd to wake it.
        unsafe {
            libc::write(
                self.evfd.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
        Ok(())
    }
}

struct EngineInner {
    cfg: MediaConfig,
    pool: PortPool,
    relays: Vec<RelayHandle>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_id: AtomicU64,
}

impl Drop for EngineInner {
    fn drop(&mut self) {
        for r in &self.relays {
            let _ = r.send(Command::Shutdown);
        }
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// The process's media relay. Cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    inner: Arc<EngineInner>,
}

impl MediaEngine {
    /// Builds the port pool and starts the relay thread(s).
    pub fn new(cfg: MediaConfig) -> Result<Self, MediaError> {
        let pool = PortPool::new(cfg.port_min, cfg.port_max)?;
        let epoch = Instant::now();
        let mut relays = Vec::new();
        let mut threads = Vec::new();
        for i in 0..cfg.relay_threads.max(1) {
            // SAFETY: creating an eventfd has no preconditions.
            let evfd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if evfd < 0 {
                return Err(MediaError::Socket {
                    what: "eventfd".into(),
                    source: std::io::Error::last_os_error(),
                });
            }
            // SAFETY: `evfd` is a fresh descriptor that nothing else owns.
            let evfd = Arc::new(unsafe { OwnedFd::from_raw_fd(evfd) });
            let (tx, rx) = mpsc::sync_channel(RELAY_COMMAND_BOUND);
            let settings = RelaySettings {
                probation: cfg.latch_probation,
                epoch,
            };
            let outbox = Arc::new(Outbox::default());
            let relay =
                Relay::new(evfd.clone(), rx, settings, outbox.clone()).map_err(|source| {
                    MediaError::Socket {
                        what: "epoll".into(),
                        source,
                    }
                })?;
            let t = std::thread::Builder::new()
                .name(format!("media-relay-{i}"))
                .spawn(move || relay.run())
                .map_err(|source| MediaError::Socket {
                    what: "relay thread".into(),
                    source,
                })?;
            relays.push(RelayHandle {
                tx,
                evfd,
                outbox,
                sessions: AtomicUsize::new(0),
            });
            threads.push(t);
        }
        Ok(MediaEngine {
            inner: Arc::new(EngineInner {
                cfg,
                pool,
                relays,
                threads: Mutex::new(threads),
                next_id: AtomicU64::new(1),
            }),
        })
    }

    /// The port pool (for capacity figures).
    pub fn port_pool(&self) -> &PortPool {
        &self.inner.pool
    }

    /// Allocates and binds one RTP/RTCP pair per leg and registers the session
    /// with a relay thread. Must be called inside a tokio runtime (the
    /// inactivity watcher is a tokio task).
    pub fn create_session(&self, conversation_id: &str) -> Result<MediaSession, MediaError> {
        let ip = self.inner.cfg.bind_ip;
        self.create_session_on(conversation_id, [ip, ip])
    }

    /// [`create_session`](Self::create_session) with each leg's sockets on its own address
    /// (`[carrier, bot]`): a call may mix an IPv6 carrier and an IPv4 bot.
    pub fn create_session_on(
        &self,
        conversation_id: &str,
        ips: [std::net::IpAddr; 2],
    ) -> Result<MediaSession, MediaError> {
        let cfg = &self.inner.cfg;
        let (c_ports, c_rtp, c_rtcp) = self.bind_pair(ips[0])?;
        let (b_ports, b_rtp, b_rtcp) = self.bind_pair(ips[1])?;
        let local = [
            c_rtp
                .local_addr()
                .map_err(|source| sock_err("local_addr", source))?,
            b_rtp
                .local_addr()
                .map_err(|source| sock_err("local_addr", source))?,
        ];
        let id = self.inner.next_id.fetch_add(1, Relaxed);
        let shared = Arc::new(SessionShared::default());
        let rt = SessionRt::new(
            id,
            shared.clone(),
            [
                LegRt::new(c_rtp, c_rtcp, cfg.latching),
                LegRt::new(b_rtp, b_rtcp, cfg.latching),
            ],
            [c_ports, b_ports],
        );
        let load: Vec<usize> = self
            .inner
            .relays
            .iter()
            .map(|r| r.sessions.load(Relaxed))
            .collect();
        let relay = place(&load, cfg.relay_pack_sessions);
        self.inner.relays[relay].send(Command::Add(Box::new(rt)))?;
        self.inner.relays[relay].sessions.fetch_add(1, Relaxed);
        GLOBAL.sessions_created.fetch_add(1, Relaxed);
        GLOBAL.sessions_active.fetch_add(1, Relaxed);
        let (ev_tx, ev_rx) = channel(4);
        if let Some(timeout) = cfg.inactivity_timeout {
            tokio::spawn(inactivity::watch(shared.clone(), timeout, ev_tx));
        }
        tracing::debug!(conversation_id, id, ?local, "media session created");
        Ok(MediaSession {
            engine: self.inner.clone(),
            relay,
            id,
            conversation_id: conversation_id.to_string(),
            local,
            shared,
            events: Mutex::new(Some(ev_rx)),
            recording: tokio::sync::Mutex::new(None),
        })
    }

    /// Takes a pair and binds RTP + RTCP on it, trying further pairs when a
    /// port is held by another process.
    fn bind_pair(
        &self,
        ip: std::net::IpAddr,
    ) -> Result<(PortPair, UdpSocket, UdpSocket), MediaError> {
        let cfg = &self.inner.cfg;
        let mut last = None;
        for _ in 0..8 {
            let pair = self.inner.pool.alloc().inspect_err(|_| {
                GLOBAL.port_exhausted.fetch_add(1, Relaxed);
            })?;
            let rtp = bind_udp(SocketAddr::new(ip, pair.rtp()), cfg);
            let rtcp = bind_udp(SocketAddr::new(ip, pair.rtcp()), cfg);
            match (rtp, rtcp) {
                (Ok(a), Ok(b)) => return Ok((pair, a, b)),
                (Err(e), _) | (_, Err(e)) => {
                    // keep `pair` reserved while trying others is not needed:
                    // the cursor moves on, so it is simply retried much later
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(MediaError::Stopped))
    }
}

fn sock_err(what: &str, source: std::io::Error) -> MediaError {
    MediaError::Socket {
        what: what.to_string(),
        source,
    }
}

fn bind_udp(addr: SocketAddr, cfg: &MediaConfig) -> Result<UdpSocket, MediaError> {
    let what = format!("bind {addr}");
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| sock_err(&what, e))?;
    s.set_nonblocking(true).map_err(|e| sock_err(&what, e))?;
    // Best effort: a smaller buffer or no DSCP mark is not a reason to refuse a call.
    let _ = s.set_recv_buffer_size(cfg.recv_buffer_bytes);
    if addr.is_ipv4() {
        let _ = s.set_tos_v4(cfg.tos);
    } else {
        let _ = s.set_tclass_v6(cfg.tos);
    }
    s.bind(&addr.into()).map_err(|e| sock_err(&what, e))?;
    Ok(s.into())
}

/// One call's media: a carrier leg and a bot leg. Dropping it stops it.
pub struct MediaSession {
    engine: Arc<EngineInner>,
    relay: usize,
    id: u64,
    conversation_id: String,
    local: [SocketAddr; 2],
    shared: Arc<SessionShared>,
    events: Mutex<Option<Receiver<MediaEvent>>>,
    recording: tokio::sync::Mutex<Option<recorder::RecordingTask>>,
}

impl MediaSession {
    fn send(&self, cmd: Command) -> Result<(), MediaError> {
        if self.shared.stopped.load(Relaxed) {
            return Err(MediaError::Stopped);
        }
        self.engine.relays[self.relay].send(cmd)
    }

    /// The conversation this session belongs to.
    pub fn conversation_id(&self) -> &str {
        &self.conversation_id
    }

    /// The relay's RTP address for `leg` (put it in that leg's SDP).
    pub fn local_rtp_addr(&self, leg: Leg) -> SocketAddr {
        self.local[leg.idx()]
    }

    /// Sets (or, on re-INVITE, replaces) what `leg`'s remote SDP said.
    /// Forwarding starts once both legs have one; a new address resets latching.
    pub fn set_remote(&self, leg: Leg, remote: RemoteMedia) -> Result<(), MediaError> {
        self.send(Command::SetRemote(self.id, leg, remote))?;
        self.shared.should_send[leg.idx()].store(remote.direction.sends(), Relaxed);
        self.shared.epoch[leg.idx()].fetch_add(1, Relaxed);
        Ok(())
    }

    /// Serves the bot leg in process: the returned port's owner (a WebSocket bot's session)
    /// takes the person's audio from it and hands it the bot's 20 ms frames, with no socket in
    /// between (`media/direct.rs`). Replaces the bot leg's remote; dialgate's own injected
    /// stream (`set_inject_source`) still comes on the bot leg's socket.
    pub fn attach_direct(&self) -> Result<DirectPort, MediaError> {
        let outbox = self.engine.relays[self.relay].outbox.clone();
        let (port, shared) = DirectPort::new(self.id, outbox);
        self.set_remote(Leg::Bot, DIRECT_REMOTE)?;
        self.send(Command::SetDirect(self.id, Some(shared)))?;
        Ok(port)
    }

    /// Turns SRTP on (`Some`, keys negotiated by SDES) or off for `leg`. Call it before
    /// [`set_remote`](Self::set_remote) so no packet crosses unprotected. The libsrtp2
    /// sessions are made here, off the relay thread's packet path.
    pub fn set_srtp(
        &self,
        leg: Leg,
        keys: Option<super::srtp::SrtpKeys>,
    ) -> Result<(), super::srtp::SrtpError> {
        let srtp = keys
            .map(super::srtp::SrtpLeg::new)
            .transpose()?
            .map(Box::new);
        self.send(Command::SetSrtp(self.id, leg, srtp))
            .map_err(|_| super::srtp::SrtpError::Stopped)
    }

    /// Sets how `leg` accepts packets from addresses other than its SDP one
    /// (per trunk: `sip_connections[].rtp_latching`). Call it before
    /// [`set_remote`](Self::set_remote) so the first packets see it.
    pub fn set_latching(&self, leg: Leg, mode: LatchMode) -> Result<(), MediaError> {
        self.send(Command::SetLatching(self.id, leg, mode))
    }

    /// A bounded queue of decoded 20 ms frames from `leg`; frames flow once
    /// [`start_taps`](Self::start_taps) was called. A full queue drops frames
    /// (counted in `tap_drops`), it never slows forwarding.
    pub fn subscribe_tap(
        &self,
        leg: Leg,
        capacity: usize,
    ) -> Result<Receiver<PcmFrame>, MediaError> {
        let (tx, rx) = channel(capacity.max(1));
        self.send(Command::Subscribe(self.id, leg, tx))?;
        Ok(rx)
    }

    /// The key presses (RFC 4733 telephone-events) that arrive on `leg`, one digit per press.
    pub fn subscribe_dtmf(&self, leg: Leg, capacity: usize) -> Result<Receiver<char>, MediaError> {
        let (tx, rx) = channel(capacity.max(1));
        self.send(Command::SubscribeDtmf(self.id, leg, tx))?;
        Ok(rx)
    }

    /// Accepts dialgate's own stream toward the person (prompts, key presses) on the bot leg's
    /// port from `source` (the player's socket); while it flows the bot's audio is held back and
    /// the person still receives one continuous stream (see [`super::inject`]). `None` stops.
    pub fn set_inject_source(&self, source: Option<SocketAddr>) -> Result<(), MediaError> {
        self.send(Command::SetInjectSource(self.id, source))
    }

    /// Starts the taps (at answer; early media is not tapped). `at_ms` of
    /// frames counts from here.
    pub fn start_taps(&self) -> Result<(), MediaError> {
        self.send(Command::StartTaps(self.id, Instant::now()))
    }

    /// The session's event stream (can be taken once).
    pub fn events(&self) -> Option<Receiver<MediaEvent>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Starts a stereo 8 kHz 16-bit WAV recording (left = carrier/callee,
    /// right = bot), written by a blocking task fed through a bounded queue.
    /// A relative `path` is placed under `recording_dir`.
    pub async fn start_recording(&self, path: impl AsRef<Path>) -> Result<(), MediaError> {
        let path = self.engine.cfg.recording_dir.join(path.as_ref());
        let mut slot = self.recording.lock().await;
        if slot.is_some() {
            return Err(MediaError::Recording("already recording".into()));
        }
        let start = Instant::now();
        let (tx, task) = recorder::spawn(&path, start)?;
        self.send(Command::StartRecording(self.id, tx, start))?;
        *slot = Some(task);
        Ok(())
    }

    /// Stops the recording and waits until the WAV file is finalised.
    pub async fn stop_recording(&self) -> Result<Option<RecordingSummary>, MediaError> {
        let task = self.recording.lock().await.take();
        let Some(task) = task else { return Ok(None) };
        // If the session is already stopped the relay dropped the sender itself.
        let _ = self.send(Command::StopRecording(self.id));
        task.finish().await.map(Some)
    }

    /// Pauses or resumes the running recording (`pauseCallRecording` / `resumeCallRecording`):
    /// a paused stretch is silence in the file. `false` when nothing is being recorded.
    pub async fn pause_recording(&self, paused: bool) -> bool {
        let slot = self.recording.lock().await;
        let Some(task) = slot.as_ref() else {
            return false;
        };
        task.set_paused(paused);
        true
    }

    /// Current counters of both legs.
    pub fn stats(&self) -> MediaStats {
        MediaStats {
            carrier: self.shared.legs[0].snapshot(),
            bot: self.shared.legs[1].snapshot(),
        }
    }

    /// Stops forwarding, closes the sockets and frees the ports (idempotent).
    /// A recording in progress is finalised by its writer; await
    /// [`stop_recording`](Self::stop_recording) to be sure it is on disk.
    pub fn stop(&self) {
        if self.shared.stopped.swap(true, Relaxed) {
            return;
        }
        let _ = self.engine.relays[self.relay].send(Command::Remove(self.id));
        self.engine.relays[self.relay]
            .sessions
            .fetch_sub(1, Relaxed);
    }
}

/// Picks the relay thread for a new session: the first one holding fewer than
/// `pack` sessions, else the least loaded. Packing (rather than round-robin)
/// keeps light loads on few threads, so each wake-up of a thread finds more
/// packets waiting: measured here, 250 calls cost about 8 % less CPU per
/// packet on one thread than spread over two. Beyond `pack` per thread the
/// load spreads, so capacity is unchanged.
fn place(load: &[usize], pack: usize) -> usize {
    load.iter()
        .position(|&n| n < pack)
        .or_else(|| (0..load.len()).min_by_key(|&i| load[i]))
        .unwrap_or(0)
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod placement_tests {
    use super::place;

    #[test]
    fn packs_light_loads_then_spreads() {
        // 1. The first thread takes sessions until it holds `pack`.
        assert_eq!(place(&[0, 0], 256), 0);
        assert_eq!(place(&[255, 0], 256), 0);
        // 2. Then the next one.
        assert_eq!(place(&[256, 0], 256), 1);
        assert_eq!(place(&[256, 255], 256), 1);
        // 3. All full: the least loaded, so capacity is shared evenly.
        assert_eq!(place(&[300, 256], 256), 1);
        assert_eq!(place(&[300, 301], 256), 0);
        // 4. Sessions ending on the first thread bring new ones back to it.
        assert_eq!(place(&[10, 256], 256), 0);
        // 5. pack = 0 means plain least-loaded.
        assert_eq!(place(&[3, 2, 5], 0), 1);
    }
}
