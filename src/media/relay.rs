//! The forwarding thread: one level-triggered epoll set over every session
//! socket. Per packet: one `recvfrom` into a reused buffer, checks and in-place
//! rewrites, one `sendto`. No allocation, no lock, no channel hop; control
//! (new session, re-INVITE, taps) arrives through a channel + eventfd and is
//! handled between packet batches (`control.rs`). A bot leg may instead be served in
//! process (`direct.rs`, for WebSocket bots): its frames come from an outbox drained on every
//! wake-up and the person's audio goes to a queue, not a socket.

mod control;
mod direct;
mod served;

use std::collections::HashMap;
use std::net::UdpSocket;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::direct::{DirectShared, Outbox};
use super::dtmf::DtmfDetector;
use super::engine::SessionShared;
use super::g711::{self, Transcoder};
use super::inject::InjectSource;
use super::leg::{Latch, LatchMode, RxStats, SeqMap};
use super::ports::PortPair;
use super::rtp;
use super::srtp::SrtpLeg;
use super::stats::{DropCause, GLOBAL, LegCounters};
use super::types::{Leg, PcmFrame, RemoteMedia};

/// A consumer of decoded frames (tap or recording).
pub(crate) struct Sink {
    pub(crate) tx: Sender<PcmFrame>,
    pub(crate) start: Instant,
    pub(crate) seq: u64,
}

/// Control messages from the engine/session API to the relay thread.
pub(crate) enum Command {
    Add(Box<SessionRt>),
    SetRemote(u64, Leg, RemoteMedia),
    SetLatching(u64, Leg, LatchMode),
    Subscribe(u64, Leg, Sender<PcmFrame>),
    /// Report the key presses (RFC 4733) arriving on a leg.
    SubscribeDtmf(u64, Leg, Sender<char>),
    StartTaps(u64, Instant),
    StartRecording(u64, Sender<PcmFrame>, Instant),
    StopRecording(u64),
    /// Accept dialgate's own stream toward the person from this address on the bot leg's
    /// socket (see `inject`); `None` stops.
    SetInjectSource(u64, Option<std::net::SocketAddr>),
    /// SRTP on a leg (made by the caller, so key errors surface there); `None` = plain RTP.
    SetSrtp(u64, Leg, Option<Box<SrtpLeg>>),
    /// Serve the bot leg in process (`media/direct.rs`); `None` returns it to its socket.
    SetDirect(u64, Option<Arc<DirectShared>>),
    Remove(u64),
    Shutdown,
}

/// One leg as the relay thread owns it.
pub(crate) struct LegRt {
    pub(crate) rtp: UdpSocket,
    pub(crate) rtcp: UdpSocket,
    remote: Option<RemoteMedia>,
    latch: Latch,
    rtcp_src: Option<std::net::SocketAddr>,
    seq: SeqMap,
    rx: RxStats,
    acc: [i16; 160],
    acc_len: usize,
    taps: Vec<Sink>,
    /// Key presses read from this leg's telephone-events, and where they go.
    dtmf: Option<(DtmfDetector, Sender<char>)>,
    /// SRTP toward and from this leg's peer (the carrier of an `srtp` trunk).
    srtp: Option<Box<SrtpLeg>>,
    /// The bot leg served in process: the peer is dialgate's own session, not a socket.
    direct: Option<direct::DirectRt>,
}

impl LegRt {
    pub(crate) fn new(rtp: UdpSocket, rtcp: UdpSocket, latching: LatchMode) -> Self {
        LegRt {
            rtp,
            rtcp,
            remote: None,
            latch: Latch::new(latching),
            rtcp_src: None,
            seq: SeqMap::new(),
            rx: RxStats::default(),
            acc: [0; 160],
            acc_len: 0,
            taps: Vec::new(),
            dtmf: None,
            srtp: None,
            direct: None,
        }
    }
}

/// One session as the relay thread owns it. Field order matters: sockets
/// (in `legs`) close before the ports return to the pool.
pub(crate) struct SessionRt {
    pub(crate) id: u64,
    pub(crate) shared: Arc<SessionShared>,
    pub(crate) legs: [LegRt; 2],
    taps_started: bool,
    rec: Option<Sink>,
    /// Dialgate's own audio toward the person, in place of the bot's.
    inject: InjectSource,
    pub(crate) _ports: [PortPair; 2],
}

impl SessionRt {
    pub(crate) fn new(
        id: u64,
        shared: Arc<SessionShared>,
        legs: [LegRt; 2],
        ports: [PortPair; 2],
    ) -> Self {
        SessionRt {
            id,
            shared,
            legs,
            taps_started: false,
            rec: None,
            inject: InjectSource::default(),
            _ports: ports,
        }
    }
}

/// Static settings of a relay thread.
pub(crate) struct RelaySettings {
    pub(crate) probation: u32,
    pub(crate) epoch: Instant,
}

pub(crate) struct Relay {
    epfd: RawFd,
    /// The wake-up descriptor, shared with the engine's handle (closed when both are gone).
    evfd: Arc<OwnedFd>,
    rx: Receiver<Command>,
    slots: Vec<Option<SessionRt>>,
    free_slots: Vec<usize>,
    by_id: HashMap<u64, usize>,
    tc: Transcoder,
    settings: RelaySettings,
    /// Bot frames of this thread's direct legs, queued by their sessions.
    outbox: Arc<Outbox>,
    /// Sessions whose bot leg is direct (the thread then wakes every few ms to drain).
    direct_legs: usize,
    /// The outbox's frames being sent (the allocation is kept from drain to drain).
    direct_frames: Vec<super::direct::OutFrame>,
    /// Frames of direct legs given a later time, held until it comes (`relay/direct.rs`).
    direct_held: Vec<super::direct::OutFrame>,
    /// Slots whose bot leg's socket this thread serves (`relay/served.rs`).
    served_slots: Vec<usize>,
    /// When every served leg was last ticked, and when the next one wants its tick.
    served_tick: Instant,
    served_due: Instant,
    /// When each served leg (by slot) next wants its tick, as it said at its last run.
    served_at: Vec<Instant>,
    /// Legs handed over before their session's bot leg became direct, and since when.
    served_unmatched: Vec<(u64, Box<dyn super::direct::ServedLeg>, Instant)>,
    /// Frames a served leg gave for the person (reused).
    served_frames: Vec<[u8; super::direct::DIRECT_FRAME]>,
}

const CTRL_TOKEN: u64 = u64::MAX;

fn epoll_ctl(epfd: RawFd, op: i32, fd: RawFd, token: u64) -> std::io::Result<()> {
    epoll_ctl_events(epfd, op, fd, token, libc::EPOLLIN as u32)
}

/// [`epoll_ctl`] with the events to watch for.
fn epoll_ctl_events(
    epfd: RawFd,
    op: i32,
    fd: RawFd,
    token: u64,
    events: u32,
) -> std::io::Result<()> {
    let mut ev = libc::epoll_event { events, u64: token };
    // SAFETY: plain syscall on descriptors we own; `ev` lives across the call.
    let r = unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

impl Relay {
    pub(crate) fn new(
        evfd: Arc<OwnedFd>,
        rx: Receiver<Command>,
        settings: RelaySettings,
        outbox: Arc<Outbox>,
    ) -> std::io::Result<Self> {
        // SAFETY: creating an epoll descriptor has no preconditions.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        epoll_ctl(epfd, libc::EPOLL_CTL_ADD, evfd.as_raw_fd(), CTRL_TOKEN)?;
        Ok(Relay {
            epfd,
            evfd,
            rx,
            slots: Vec::new(),
            free_slots: Vec::new(),
            by_id: HashMap::new(),
            tc: Transcoder::new(),
            settings,
            outbox,
            direct_legs: 0,
            direct_frames: Vec::new(),
            direct_held: Vec::new(),
            served_slots: Vec::new(),
            served_tick: Instant::now(),
            served_due: Instant::now(),
            served_at: Vec::new(),
            served_unmatched: Vec::new(),
            served_frames: Vec::new(),
        })
    }

    /// Runs until `Command::Shutdown` or the command channel closes.
    pub(crate) fn run(mut self) {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
        let mut buf = vec![0u8; 2048];
        loop {
            // SAFETY: `events` is a valid buffer of the length passed.
            let timeout = self.epoll_timeout();
            let n = unsafe {
                libc::epoll_wait(self.epfd, events.as_mut_ptr(), events.len() as i32, timeout)
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "media relay epoll_wait failed");
                break;
            }
            // One clock read per batch: precise enough for jitter and taps
            // (a batch is handled in microseconds) and cheaper than per packet.
            let now = Instant::now();
            let batch = &events[..n as usize];
            // Control first: a packet sent after `set_remote` returned must
            // see the new remote even when both are in this batch.
            if batch.iter().any(|e| e.u64 == CTRL_TOKEN) && !self.control() {
                break;
            }
            for ev in batch {
                let token = ev.u64;
                if token == CTRL_TOKEN {
                    continue;
                }
                if token & served::SERVED_TOKEN != 0 {
                    self.on_served_socket((token & !served::SERVED_TOKEN) as usize, &mut buf, now);
                    continue;
                }
                let slot = (token >> 2) as usize;
                let leg = ((token >> 1) & 1) as usize;
                let Some(Some(s)) = self.slots.get_mut(slot) else {
                    continue;
                };
                if token & 1 == 0 {
                    on_rtp(s, leg, &mut buf, now, &self.tc, &self.settings);
                } else {
                    on_rtcp(s, leg, &mut buf);
                }
            }
            self.drain_direct(&mut buf, now);
            self.tick_served(&mut buf, now);
        }
        let all: Vec<SessionRt> = self.slots.iter_mut().filter_map(Option::take).collect();
        for s in all {
            self.finish(s);
        }
        // SAFETY: closing the epoll descriptor we created.
        unsafe { libc::close(self.epfd) };
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Audio,
    Dtmf,
    ComfortNoise,
}

fn split(legs: &mut [LegRt; 2], src: usize) -> (&mut LegRt, &mut LegRt) {
    let [a, b] = legs;
    if src == 0 { (a, b) } else { (b, a) }
}

/// Hands a full 20 ms frame to every sink; a full queue drops (and counts)
/// instead of waiting.
fn emit(sinks: &mut [Sink], frame: &mut PcmFrame, now: Instant, c: &LegCounters) {
    for s in sinks {
        frame.seq = s.seq;
        frame.at_ms = now.saturating_duration_since(s.start).as_millis() as u64;
        s.seq += 1;
        match s.tx.try_send(*frame) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                c.tap_drops.fetch_add(1, Relaxed);
                GLOBAL.tap_drops.fetch_add(1, Relaxed);
            }
            Err(TrySendError::Closed(_)) => {}
        }
    }
}

/// Hands a new key press to the leg's DTMF subscriber (a full queue drops it).
fn report_dtmf(a: &mut LegRt, v: &rtp::RtpView, pkt: &[u8]) {
    if let Some((det, tx)) = a.dtmf.as_mut()
        && let Some(digit) = det.observe(v.ssrc, v.ts, &pkt[v.payload_start..v.payload_end])
    {
        let _ = tx.try_send(digit);
    }
}

/// Where a packet to relay came from.
#[derive(Clone, Copy)]
enum Origin {
    /// Received on the leg's socket from this address.
    Peer(std::net::SocketAddr),
    /// The leg's in-process peer (`media/direct.rs`).
    Direct,
}

/// One RTP packet from leg `src`'s peer: received, then relayed.
#[inline]
fn on_rtp(
    s: &mut SessionRt,
    src: usize,
    buf: &mut [u8],
    now: Instant,
    tc: &Transcoder,
    settings: &RelaySettings,
) {
    let c = &s.shared.legs[src];
    let Some((len, from)) = receive(&mut s.legs[src], c, buf) else {
        return;
    };
    relay_packet(s, src, buf, len, Origin::Peer(from), now, tc, settings);
}

/// One RTP packet of leg `src` (the first `len` bytes of `buf`): checked, seen by taps,
/// forwarded to the other leg's peer (or handed to its in-process peer).
#[inline]
#[allow(clippy::too_many_arguments)]
fn relay_packet(
    s: &mut SessionRt,
    src: usize,
    buf: &mut [u8],
    len: usize,
    origin: Origin,
    now: Instant,
    tc: &Transcoder,
    settings: &RelaySettings,
) {
    let c = &s.shared.legs[src];
    let (a, b) = split(&mut s.legs, src);
    let pkt = &mut buf[..len];
    let Some(v) = rtp::parse_rtp(pkt) else {
        return c.drop_packet(DropCause::Malformed);
    };
    let bot = src == Leg::Bot.idx();
    let (remote, injected) = match admit(a, c, &mut s.inject, bot, origin, &v, now, settings) {
        Ok(r) => r,
        Err(Some(cause)) => return c.drop_packet(cause),
        Err(None) => return,
    };
    let kind = match classify(v.pt, &remote) {
        Ok(k) => k,
        Err(cause) => return c.drop_packet(cause),
    };
    if kind == Kind::Dtmf {
        report_dtmf(a, &v, pkt);
    }
    if !injected {
        let arrival = now.saturating_duration_since(settings.epoch).as_micros() as i64 * 8 / 1000;
        let (expected, jitter) = a.rx.update(&v, arrival, kind == Kind::Audio);
        c.expected.store(expected, Relaxed);
        c.jitter_x16.store(jitter, Relaxed);
    }
    // Taps and recording read the audio before any transcoding.
    if kind == Kind::Audio && ((s.taps_started && !a.taps.is_empty()) || s.rec.is_some()) {
        let payload = &pkt[v.payload_start..v.payload_end];
        let rec = s.rec.as_mut();
        feed_sinks(
            a,
            rec,
            s.taps_started,
            src,
            payload,
            remote.codec.law,
            now,
            c,
        );
    }
    let Some(dst) = b.remote else {
        return c.drop_packet(DropCause::NotReady);
    };
    if !remote.direction.sends() || !dst.direction.receives() {
        return c.drop_packet(DropCause::Direction);
    }
    if let Err(cause) = rewrite(pkt, &v, kind, &remote, &dst, tc) {
        return c.drop_packet(cause);
    }
    if let Some(d) = &mut b.direct {
        // The in-process peer takes the audio alone (PCMU: `rewrite` made it so); it hears
        // key presses from the call, not as telephone-events.
        if kind == Kind::Audio {
            let payload = &pkt[v.payload_start..v.payload_end];
            match &mut d.served {
                Some(served) => served.person(payload),
                None => d.port.push_person(payload),
            }
            c.fwd_packets.fetch_add(1, Relaxed);
            c.fwd_bytes.fetch_add(len as u64, Relaxed);
        }
        return;
    }
    // Switches between the bot and dialgate's own stream are not the bot changing its source.
    let returning = bot && !injected && s.inject.take_return();
    if a.seq.apply(pkt, &v, now) && !injected && !returning {
        c.source_changes.fetch_add(1, Relaxed);
    }
    forward(b, c, buf, len, dst);
}

/// Reads the packet waiting on the leg's RTP socket (decrypted, for SRTP legs) and counts it;
/// `None` when there was none or it failed SRTP authentication (counted as malformed).
#[inline]
fn receive(
    a: &mut LegRt,
    c: &LegCounters,
    buf: &mut [u8],
) -> Option<(usize, std::net::SocketAddr)> {
    let (mut len, from) = a.rtp.recv_from(buf).ok()?;
    c.rx_packets.fetch_add(1, Relaxed);
    c.rx_bytes.fetch_add(len as u64, Relaxed);
    GLOBAL.rx_packets.fetch_add(1, Relaxed);
    if let Some(srtp) = a.srtp.as_mut() {
        // Decrypted in place; a packet that fails authentication is not a packet.
        match srtp.unprotect(buf, len) {
            Ok(n) => len = n,
            Err(_) => {
                c.drop_packet(DropCause::Malformed);
                return None;
            }
        }
    }
    Some((len, from))
}

/// Whether the packet's source may speak on this leg, and as what: dialgate's own stream
/// toward the person (on the bot leg's socket from one known address: no latching, no receive
/// statistics of the bot, `true`), the leg's in-process peer, or the leg's peer as the latch
/// admits it (`false`). `Err(None)`: a valid packet of the bot held back while dialgate's
/// prompt plays.
#[inline]
#[allow(clippy::too_many_arguments)]
fn admit(
    a: &mut LegRt,
    c: &LegCounters,
    inject: &mut InjectSource,
    bot: bool,
    origin: Origin,
    v: &rtp::RtpView,
    now: Instant,
    settings: &RelaySettings,
) -> Result<(RemoteMedia, bool), Option<DropCause>> {
    if let Origin::Peer(from) = origin
        && bot
        && inject.accept(from, now)
    {
        return Ok((InjectSource::remote(from), true));
    }
    let Some(remote) = a.remote else {
        return Err(Some(DropCause::NotReady));
    };
    match origin {
        // Nothing but dialgate's own stream may speak on a direct leg's socket.
        Origin::Peer(_) if a.direct.is_some() => return Err(Some(DropCause::ForeignSource)),
        Origin::Peer(from) => {
            a.latch
                .check(from, v.ssrc, remote.rtp, settings.probation)
                .map_err(Some)?;
        }
        Origin::Direct => {}
    }
    c.valid_rx.fetch_add(1, Relaxed);
    if bot && inject.holds_bot(now) {
        // The person hears dialgate's prompt now, not the bot.
        return Err(None);
    }
    Ok((remote, false))
}

/// What the payload type says the packet is, as negotiated with its sender.
#[inline]
fn classify(pt: u8, remote: &RemoteMedia) -> Result<Kind, DropCause> {
    if pt == remote.codec.pt {
        Ok(Kind::Audio)
    } else if Some(pt) == remote.dtmf_pt {
        Ok(Kind::Dtmf)
    } else if pt == 13 {
        Ok(Kind::ComfortNoise)
    } else {
        Err(DropCause::UnknownPayloadType)
    }
}

/// Decodes the packet's audio into the leg's 20 ms accumulator and hands each full frame to
/// the taps (once started) and the recording.
#[inline]
#[allow(clippy::too_many_arguments)]
fn feed_sinks(
    a: &mut LegRt,
    mut rec: Option<&mut Sink>,
    taps_started: bool,
    src: usize,
    payload: &[u8],
    law: g711::G711Law,
    now: Instant,
    c: &LegCounters,
) {
    for &byte in payload {
        a.acc[a.acc_len] = g711::decode(law, byte);
        a.acc_len += 1;
        if a.acc_len == 160 {
            a.acc_len = 0;
            let mut frame = PcmFrame {
                leg: Leg::from_idx(src),
                seq: 0,
                samples: a.acc,
                at_ms: 0,
            };
            if taps_started {
                emit(&mut a.taps, &mut frame, now, c);
            }
            if let Some(r) = rec.as_deref_mut() {
                emit(std::slice::from_mut(r), &mut frame, now, c);
            }
        }
    }
}

/// Rewrites the packet for the other leg: its payload type, and the audio when the two legs
/// negotiated different G.711 laws.
#[inline]
fn rewrite(
    pkt: &mut [u8],
    v: &rtp::RtpView,
    kind: Kind,
    remote: &RemoteMedia,
    dst: &RemoteMedia,
    tc: &Transcoder,
) -> Result<(), DropCause> {
    let out_pt = match kind {
        Kind::Audio => {
            if remote.codec.law != dst.codec.law {
                tc.transcode_in_place(
                    remote.codec.law,
                    dst.codec.law,
                    &mut pkt[v.payload_start..v.payload_end],
                );
            }
            dst.codec.pt
        }
        Kind::Dtmf => dst.dtmf_pt.ok_or(DropCause::UnknownPayloadType)?,
        Kind::ComfortNoise => 13,
    };
    if out_pt != v.pt {
        rtp::set_pt(pkt, out_pt);
    }
    Ok(())
}

/// Sends the packet (the first `len` bytes of `buf`) to the other leg's peer, encrypted for an
/// SRTP leg, and counts it.
#[inline]
fn forward(b: &mut LegRt, c: &LegCounters, buf: &mut [u8], len: usize, dst: RemoteMedia) {
    // Counted before the send so that a reader who has seen the packet
    // arrive also sees it counted; undone if the send fails.
    c.fwd_packets.fetch_add(1, Relaxed);
    c.fwd_bytes.fetch_add(len as u64, Relaxed);
    let mut out_len = len;
    if let Some(srtp) = b.srtp.as_mut() {
        // Encrypted in place: the buffer has room for the tag after the packet.
        match srtp.protect(buf, len) {
            Ok(n) => out_len = n,
            Err(_) => {
                c.fwd_packets.fetch_sub(1, Relaxed);
                c.fwd_bytes.fetch_sub(len as u64, Relaxed);
                return c.drop_packet(DropCause::SendError);
            }
        }
    }
    if b.rtp
        .send_to(&buf[..out_len], b.latch.target(dst.rtp))
        .is_ok()
    {
        GLOBAL.fwd_packets.fetch_add(1, Relaxed);
        GLOBAL.fwd_bytes.fetch_add(len as u64, Relaxed);
    } else {
        c.fwd_packets.fetch_sub(1, Relaxed);
        c.fwd_bytes.fetch_sub(len as u64, Relaxed);
        c.drop_packet(DropCause::SendError);
    }
}

fn on_rtcp(s: &mut SessionRt, src: usize, buf: &mut [u8]) {
    let c = &s.shared.legs[src];
    let (a, b) = split(&mut s.legs, src);
    let (mut len, from) = match a.rtcp.recv_from(buf) {
        Ok(v) => v,
        Err(_) => return,
    };
    c.rtcp_rx.fetch_add(1, Relaxed);
    if let Some(srtp) = a.srtp.as_mut() {
        match srtp.unprotect_rtcp(buf, len) {
            Ok(n) => len = n,
            Err(_) => return c.drop_packet(DropCause::Malformed),
        }
    }
    let pkt = &mut buf[..len];
    if !rtp::valid_rtcp(pkt) {
        return c.drop_packet(DropCause::Malformed);
    }
    let (Some(remote), Some(dst)) = (a.remote, b.remote) else {
        return c.drop_packet(DropCause::NotReady);
    };
    if a.direct.is_some() || b.direct.is_some() {
        // An in-process peer neither sends nor reads RTCP.
        return;
    }
    // RTCP must come from the host the leg's RTP comes from (port may differ).
    if from.ip() != a.latch.target(remote.rtp).ip() {
        return c.drop_packet(DropCause::ForeignSource);
    }
    a.rtcp_src = Some(from);
    if a.seq.rewriting {
        rtp::rewrite_rtcp_sender_ssrc(pkt, a.seq.in_ssrc, a.seq.out_ssrc);
    }
    let target = b.rtcp_src.or(dst.rtcp).unwrap_or_else(|| {
        let t = b.latch.target(dst.rtp);
        std::net::SocketAddr::new(t.ip(), t.port().wrapping_add(1))
    });
    let mut out_len = len;
    if let Some(srtp) = b.srtp.as_mut() {
        match srtp.protect_rtcp(buf, len) {
            Ok(n) => out_len = n,
            Err(_) => return c.drop_packet(DropCause::SendError),
        }
    }
    c.rtcp_fwd.fetch_add(1, Relaxed);
    if b.rtcp.send_to(&buf[..out_len], target).is_err() {
        c.rtcp_fwd.fetch_sub(1, Relaxed);
        c.drop_packet(DropCause::SendError);
    }
}
