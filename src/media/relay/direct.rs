//! The relay thread's side of direct bot legs (`media/direct.rs`): attaching one, and sending
//! the frames its session queued in this thread's outbox to the person as if the bot had sent
//! them as RTP.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::super::direct::{DIRECT_FRAME, DIRECT_TICK_MS, DirectShared, OutFrame};
use super::super::g711::Transcoder;
use super::super::rtp;
use super::super::stats::GLOBAL;
use super::super::types::Leg;
use super::{Origin, Relay, RelaySettings, SessionRt, relay_packet};

/// Epoll timeout with no direct leg to serve: the thread sleeps until a packet or a command.
const IDLE_TIMEOUT_MS: i32 = 1000;

/// A direct bot leg as the relay thread holds it: the shared queue of the person's audio,
/// and the RTP header its frames are given on their way (one stream: its own SSRC, sequence
/// numbers and timestamps that advance by one frame each).
pub(crate) struct DirectRt {
    pub(super) port: Arc<DirectShared>,
    /// The bot's socket, when this thread serves it (`served.rs`).
    pub(super) served: Option<super::served::ServedRt>,
    seq: u16,
    ts: u32,
    ssrc: u32,
}

impl Relay {
    /// Attaches (or detaches) session `id`'s direct bot leg.
    pub(super) fn set_direct(&mut self, id: u64, port: Option<Arc<DirectShared>>) {
        let Some(slot) = self.by_id.get(&id).copied() else {
            return;
        };
        let Some(s) = self.slots[slot].as_mut() else {
            return;
        };
        super::served::finish_served(self.epfd, s);
        let leg = &mut s.legs[Leg::Bot.idx()];
        let was = leg.direct.is_some();
        leg.direct = port.map(|port| DirectRt {
            port,
            served: None,
            seq: rand::random(),
            ts: rand::random(),
            ssrc: rand::random(),
        });
        match (was, leg.direct.is_some()) {
            (false, true) => self.direct_legs += 1,
            (true, false) => self.direct_legs -= 1,
            _ => {}
        }
    }

    /// How long `epoll_wait` may sleep: while a direct leg is served, the outbox is drained at
    /// least every [`DIRECT_TICK_MS`].
    pub(super) fn epoll_timeout(&self) -> i32 {
        if self.direct_legs > 0 {
            DIRECT_TICK_MS
        } else {
            IDLE_TIMEOUT_MS
        }
    }

    /// Sends every frame the direct legs' sessions queued since the last drain whose time has
    /// come; a frame given a later time waits in `direct_held` (a session hands over at most
    /// one frame ahead, so a call's frames still leave in order: the held one first).
    pub(super) fn drain_direct(&mut self, buf: &mut [u8], now: Instant) {
        if self.direct_legs == 0 {
            return;
        }
        let mut frames = std::mem::take(&mut self.direct_frames);
        let mut held = std::mem::take(&mut self.direct_held);
        // The held frames first: they came before anything their sessions queued since.
        held.retain(|f| {
            let later = f.due.is_some_and(|due| due > now);
            if !later {
                self.send_direct(f, buf, now);
            }
            later
        });
        self.outbox.take(&mut frames);
        for f in frames.drain(..) {
            match f.due {
                Some(due) if due > now => held.push(f),
                _ => self.send_direct(&f, buf, now),
            }
        }
        self.direct_frames = frames;
        self.direct_held = held;
    }

    /// Sends one frame of a direct leg (none when its call ended meanwhile).
    fn send_direct(&mut self, f: &OutFrame, buf: &mut [u8], now: Instant) {
        let Some(&slot) = self.by_id.get(&f.id) else {
            return;
        };
        if let Some(Some(s)) = self.slots.get_mut(slot) {
            on_direct(s, &f.pcmu, buf, now, &self.tc, &self.settings);
        }
    }
}

/// One frame of a direct leg: made an RTP packet of the bot's and relayed like one.
pub(super) fn on_direct(
    s: &mut SessionRt,
    frame: &[u8; DIRECT_FRAME],
    buf: &mut [u8],
    now: Instant,
    tc: &Transcoder,
    settings: &RelaySettings,
) {
    let bot = Leg::Bot.idx();
    let Some(d) = s.legs[bot].direct.as_mut() else {
        return;
    };
    let len = rtp::RTP_HEADER + DIRECT_FRAME;
    buf[0] = 0x80;
    buf[1] = 0; // PCMU, no marker: the outgoing map sets it at switches
    rtp::set_seq_ts_ssrc(buf, d.seq, d.ts, d.ssrc);
    buf[rtp::RTP_HEADER..len].copy_from_slice(frame);
    d.seq = d.seq.wrapping_add(1);
    d.ts = d.ts.wrapping_add(DIRECT_FRAME as u32);
    let c = &s.shared.legs[bot];
    c.rx_packets.fetch_add(1, Relaxed);
    c.rx_bytes.fetch_add(len as u64, Relaxed);
    GLOBAL.rx_packets.fetch_add(1, Relaxed);
    relay_packet(s, bot, buf, len, Origin::Direct, now, tc, settings);
}
