//! A bot leg served in process: dialgate's own endpoint on the relay's bot side (a WebSocket
//! bot's session) without a socket between the two.
//!
//! Before, the session owned a UDP socket the relay forwarded the person's audio to, and sent
//! the bot's frames back to the relay's bot port as RTP: per 20 ms frame and direction a
//! `sendto`, a `recvfrom`, an RTP encode and decode and a wake-up of the receiving side — half
//! of a WebSocket call's CPU was that loopback hop. Now:
//!
//! * **person → bot**: the relay appends the person's audio (PCMU, transcoded if the carrier
//!   speaks A-law) to the port's bounded byte queue and wakes the session's task only when the
//!   queue reaches the session's wake-up size (one message's worth of audio: 20 ms, or the
//!   chunk size it sends; one wake-up per batch however many packets are waiting); the
//!   session takes everything waiting at once.
//! * **bot → person**: the session's playout clock pushes each due frame (PCMU) into its relay
//!   thread's outbox, one bounded queue per relay thread shared by its sessions, without a
//!   syscall; the relay drains the outbox every time it wakes, and wakes at least every
//!   [`DIRECT_TICK_MS`] while it serves a direct leg. The clock may hand over the next frame up
//!   to 20 ms before its time, with that time ([`DirectPort::send_to_person_at`]): the relay
//!   holds it until then, and the session is not woken again just for it (a bot sending 40 ms
//!   chunks would otherwise wake it 20 ms after each). A drained frame takes the same path as a
//!   bot's RTP packet (recording, dialgate's own injected stream holding it back, sequence
//!   rewriting, SRTP toward the carrier).
//!
//! Neither side ever waits for the other: a full queue drops the frame and counts it
//! (`dialgate_queue_full_total{queue="wsbot_audio"|"wsbot_playout"}`).

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};

use super::doorbell::Doorbell;
use super::types::{AudioCodec, Direction, RemoteMedia};
use crate::overflow::{self, Queue};

/// Bytes (8 kHz PCMU samples) in one 20 ms frame.
pub const DIRECT_FRAME: usize = 160;
/// How long a relay thread serving a direct leg sleeps at most between outbox drains: the
/// most a bot frame waits there when no packet wakes the thread sooner. One wake-up per tick
/// for the whole thread, not per call.
pub const DIRECT_TICK_MS: i32 = 2;
/// The person's audio kept for a session that has not taken it: 1 s (its task is behind, on a
/// busy machine; beyond that, older audio would only reach the bot late).
const PERSON_BYTES: usize = 8000;
/// Bot frames waiting for one relay thread, all its sessions together (~1 s for 250 calls).
const OUTBOX_FRAMES: usize = 12_800;

/// What the relay's bot leg believes about a direct peer: PCMU at payload type 0, both ways.
/// The address is never sent to (nothing leaves the bot leg's socket toward it).
pub(crate) const DIRECT_REMOTE: RemoteMedia = RemoteMedia {
    rtp: SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9),
    rtcp: None,
    codec: AudioCodec::PCMU,
    dtmf_pt: None,
    direction: Direction::SendRecv,
};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain bytes: a panic elsewhere while holding the lock leaves them usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One frame for the person from session `id`, to leave at once or not before `due`.
#[derive(Clone, Copy)]
pub(crate) struct OutFrame {
    pub id: u64,
    pub pcmu: [u8; DIRECT_FRAME],
    pub due: Option<std::time::Instant>,
}

/// A bot leg whose socket the relay thread serves itself, both ways, in its own epoll set (a
/// `ws://` WebSocket bot: `wsbot/served.rs`): the bot's audio is read, decoded and paced, and
/// the person's audio encoded and written, with no task of the session's woken per frame.
/// The relay knows only this interface; the protocol lives with the implementation.
pub trait ServedLeg: Send {
    /// The socket to poll.
    fn fd(&self) -> std::os::fd::RawFd;
    /// Whether the socket is to be polled for reading and for writing now.
    fn interest(&self) -> (bool, bool);
    /// The socket is ready: read and write what can be. Frames due for the person go to `out`.
    fn on_socket(&mut self, now: std::time::Instant, out: &mut Vec<[u8; DIRECT_FRAME]>);
    /// One packet of the person's audio (PCMU).
    fn on_person(&mut self, pcmu: &[u8]);
    /// Called once [`ServedLeg::next_tick`] has come, and at least every few tens of ms: the
    /// session's own frames, the playout clock. Frames due for the person go to `out`.
    fn on_tick(&mut self, now: std::time::Instant, out: &mut Vec<[u8; DIRECT_FRAME]>);
    /// When the leg next needs [`ServedLeg::on_tick`] (its next frame or silence, a write
    /// bound), asked after every call into it.
    fn next_tick(&self) -> std::time::Instant;
    /// `false` once the socket failed or was closed: the relay then drops the leg (which
    /// closes the socket) and the bot leg is served by its session again.
    fn alive(&self) -> bool;
    /// The call's media ended (the socket is already out of the relay's epoll set): the leg
    /// lets go of its socket without waiting — closed after its goodbye, or handed back to its
    /// session, which still has to say goodbye on it.
    fn finish(&mut self);
}

/// One relay thread's queue of bot frames from its sessions' endpoints.
#[derive(Default)]
pub(crate) struct Outbox {
    frames: Mutex<Vec<OutFrame>>,
    /// Served legs handed over by their sessions, not yet taken by the relay thread.
    served: Mutex<Vec<(u64, Box<dyn ServedLeg>)>>,
    /// Whether `served` holds any (read on every pass without taking the lock).
    served_waiting: AtomicBool,
}

impl Outbox {
    /// Queues a frame; `false` when full (the frame is dropped).
    fn push(&self, frame: OutFrame) -> bool {
        let mut q = lock(&self.frames);
        if q.len() >= OUTBOX_FRAMES {
            return false;
        }
        q.push(frame);
        true
    }

    /// Swaps everything queued into `into` (empty on entry; its allocation is reused next time).
    pub(crate) fn take(&self, into: &mut Vec<OutFrame>) {
        std::mem::swap(&mut *lock(&self.frames), into);
    }

    /// The served legs handed over since the last call (none without taking the lock).
    pub(crate) fn take_served(&self) -> Vec<(u64, Box<dyn ServedLeg>)> {
        if !self.served_waiting.swap(false, Relaxed) {
            return Vec::new();
        }
        std::mem::take(&mut *lock(&self.served))
    }
}

/// What the relay thread and the session's endpoint share.
pub(crate) struct DirectShared {
    /// The person's audio (PCMU) not yet taken by the session.
    person: Mutex<VecDeque<u8>>,
    /// Rung when the person's audio in the queue reaches `wake_bytes` (a doorbell, not a
    /// `Notify`: the session polls it on every wake-up, see `doorbell.rs`).
    wake: Doorbell,
    /// The endpoint is gone: the relay stops handing it audio.
    closed: AtomicBool,
    /// Packets of the person's audio dropped because the queue was full, not yet reported.
    dropped: AtomicU64,
    /// The session is woken when the queue reaches this many bytes (one message's worth of
    /// audio: a session sending 40 ms chunks has nothing to do with 20 ms of it).
    wake_bytes: AtomicUsize,
}

impl DirectShared {
    /// The person's audio still queued for the session (taken by the relay when the leg
    /// becomes served: it goes to the served leg first).
    pub(crate) fn drain_person(&self) -> Vec<u8> {
        lock(&self.person).drain(..).collect()
    }

    /// The relay's side: appends the person's audio (PCMU) and wakes the session when the
    /// queue reaches its wake-up size (once per batch). Never waits; a full queue drops the
    /// packet and counts it.
    pub(crate) fn push_person(&self, pcmu: &[u8]) {
        if self.closed.load(Relaxed) {
            return;
        }
        let wake = self.wake_bytes.load(Relaxed);
        let reached = {
            let mut q = lock(&self.person);
            if q.len() + pcmu.len() > PERSON_BYTES {
                drop(q);
                self.dropped.fetch_add(1, Relaxed);
                overflow::dropped(Queue::WsBotAudio, "the person's audio for a WebSocket bot");
                return;
            }
            let before = q.len();
            q.extend(pcmu);
            before < wake && q.len() >= wake
        };
        if reached {
            self.wake.ring();
        }
    }
}

/// The session's end of a direct bot leg (made by
/// [`MediaSession::attach_direct`](super::MediaSession::attach_direct)). Dropping it stops the
/// person's audio from being queued for it.
pub struct DirectPort {
    id: u64,
    shared: Arc<DirectShared>,
    outbox: Arc<Outbox>,
}

impl std::fmt::Debug for DirectPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectPort").field("id", &self.id).finish()
    }
}

impl DirectPort {
    /// A port for session `id` on the relay thread that drains `outbox`, and the half the
    /// relay thread keeps.
    pub(crate) fn new(id: u64, outbox: Arc<Outbox>) -> (DirectPort, Arc<DirectShared>) {
        let shared = Arc::new(DirectShared {
            person: Mutex::new(VecDeque::with_capacity(PERSON_BYTES)),
            wake: Doorbell::new(),
            closed: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
            wake_bytes: AtomicUsize::new(1),
        });
        let port = DirectPort {
            id,
            shared: shared.clone(),
            outbox,
        };
        (port, shared)
    }

    /// Hands one 20 ms frame of the bot's audio (PCMU) to the relay, which sends it to the
    /// person the next time it wakes (within [`DIRECT_TICK_MS`]). Never waits: when the relay
    /// is that far behind the frame is dropped and counted.
    pub fn send_to_person(&self, pcmu: &[u8; DIRECT_FRAME]) {
        self.send_to_person_at(pcmu, None);
    }

    /// [`DirectPort::send_to_person`], but the relay holds the frame until `due` (when given):
    /// the session hands over a frame whose time is near without waking again for it.
    pub fn send_to_person_at(&self, pcmu: &[u8; DIRECT_FRAME], due: Option<std::time::Instant>) {
        let frame = OutFrame {
            id: self.id,
            pcmu: *pcmu,
            due,
        };
        if !self.outbox.push(frame) {
            overflow::dropped(
                Queue::WsBotPlayout,
                "the bot's audio for the person (the relay is behind)",
            );
        }
    }

    /// Hands the bot leg to the relay thread, which serves `leg`'s socket from now on (until
    /// the leg says it is no longer alive). The person's audio still queued goes to it first.
    pub fn serve(&self, leg: Box<dyn ServedLeg>) {
        lock(&self.outbox.served).push((self.id, leg));
        self.outbox.served_waiting.store(true, Relaxed);
    }

    /// Moves the person's audio waiting (PCMU) to the end of `out`; how many bytes came.
    pub fn take_person_audio(&self, out: &mut Vec<u8>) -> usize {
        let mut q = lock(&self.shared.person);
        let n = q.len();
        // Two slice copies, not a byte-at-a-time drain.
        let (a, b) = q.as_slices();
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        q.clear();
        n
    }

    /// Wakes the session only once `bytes` of the person's audio wait (at least 1, the
    /// default: on the first byte). Capped below the queue's bound.
    pub fn set_wake_bytes(&self, bytes: usize) {
        let bytes = bytes.clamp(1, PERSON_BYTES / 2);
        self.shared.wake_bytes.store(bytes, Relaxed);
    }

    /// Packets of the person's audio dropped (queue full) since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.shared.dropped.swap(0, Relaxed)
    }

    /// Waits until the person's audio waiting reached the wake-up size
    /// ([`DirectPort::set_wake_bytes`]; at once if it did since the last
    /// [`DirectPort::take_person_audio`] emptied the queue).
    pub async fn person_audio(&self) {
        self.shared.wake.rung().await
    }

    /// [`DirectPort::person_audio`] as a poll: ready when the person's audio waiting reached
    /// the wake-up size, else the task of `cx` is woken when it does. Registers nothing per
    /// poll.
    pub fn poll_person_audio(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.shared.wake.poll_rung(cx)
    }
}

impl Drop for DirectPort {
    fn drop(&mut self) {
        self.shared.closed.store(true, Relaxed);
        lock(&self.shared.person).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_person_queue_drops_and_counts_and_wakes_once_per_batch() {
        // 1. A port; 50 packets of 20 ms fit (1 s), the 51st does not.
        let outbox = Arc::new(Outbox::default());
        let (port, relay_side) = DirectPort::new(7, outbox);
        let before = overflow::count(Queue::WsBotAudio);
        for _ in 0..51 {
            relay_side.push_person(&[0xffu8; DIRECT_FRAME]);
        }
        assert!(overflow::count(Queue::WsBotAudio) > before);
        // 2. The session takes all fifty at once.
        let mut got = Vec::new();
        assert_eq!(port.take_person_audio(&mut got), PERSON_BYTES);
        // 3. One wake-up was stored for the whole batch: the first wait returns at once, the
        //    second does not.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(async {
            port.person_audio().await;
            let again =
                tokio::time::timeout(std::time::Duration::from_millis(20), port.person_audio());
            assert!(again.await.is_err());
        });
    }

    #[test]
    fn with_a_wake_up_size_the_session_is_woken_once_a_whole_chunk_waits() {
        // 1. A port whose session sends 40 ms chunks: woken at 320 bytes, not before.
        let outbox = Arc::new(Outbox::default());
        let (port, relay_side) = DirectPort::new(3, outbox);
        port.set_wake_bytes(2 * DIRECT_FRAME);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let woken = |port: &DirectPort| {
            rt.block_on(async {
                let wait = std::time::Duration::from_millis(20);
                tokio::time::timeout(wait, port.person_audio())
                    .await
                    .is_ok()
            })
        };
        relay_side.push_person(&[1; DIRECT_FRAME]);
        assert!(!woken(&port), "woken by half a chunk");
        // 2. The second 20 ms completes the chunk: one wake-up, and both frames are there.
        relay_side.push_person(&[2; DIRECT_FRAME]);
        assert!(woken(&port));
        let mut got = Vec::new();
        assert_eq!(port.take_person_audio(&mut got), 2 * DIRECT_FRAME);
        // 3. A third frame alone wakes nobody again.
        relay_side.push_person(&[3; DIRECT_FRAME]);
        assert!(!woken(&port));
    }

    #[test]
    fn a_full_outbox_drops_and_counts_instead_of_waiting() {
        // 1. A relay that does not drain: the outbox fills to its bound.
        let outbox = Arc::new(Outbox::default());
        let (port, _relay_side) = DirectPort::new(1, outbox.clone());
        let before = overflow::count(Queue::WsBotPlayout);
        for _ in 0..OUTBOX_FRAMES + 5 {
            port.send_to_person(&[0; DIRECT_FRAME]);
        }
        // 2. The five beyond the bound were dropped and counted; the rest are drained whole.
        assert!(overflow::count(Queue::WsBotPlayout) >= before + 5);
        let mut got = Vec::new();
        outbox.take(&mut got);
        assert_eq!(got.len(), OUTBOX_FRAMES);
    }

    #[test]
    fn a_dropped_port_is_handed_no_more_audio() {
        let outbox = Arc::new(Outbox::default());
        let (port, relay_side) = DirectPort::new(1, outbox);
        drop(port);
        for _ in 0..20 {
            relay_side.push_person(&[0; DIRECT_FRAME]);
        }
        assert!(lock(&relay_side.person).is_empty());
    }
}
