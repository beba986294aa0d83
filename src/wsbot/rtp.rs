//! A session's RTP side, once the person answered: dialgate's own endpoint on the relay's bot
//! side. The session's task sends the bot's frames as PCMU RTP to the relay, paced at 20 ms
//! (`pacer.rs`: on arrival when the bot streams in real time, never faster), with dialgate's
//! own prompts mixed in (AC mode), and gives the person's audio, which the relay forwards here
//! like to any bot, to the protocol core. Owned by the same task as the socket so
//! that a frame crosses no channel, lock or second task on its way (see `task.rs`).

use super::jitter::FRAME_SAMPLES;
use super::pacer::{HOLD, Pacer};
use crate::media::g711::{self, G711Law};
use crate::media::rtp;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use tokio::net::UdpSocket;
use tokio::time::{Instant, Sleep};

/// dialgate's own prompts (AC mode) waiting to be mixed in: at most 1 s.
const MAX_PROMPT_FRAMES: usize = 50;

/// Where the session's audio goes and comes from.
#[derive(Debug)]
pub struct RtpSide {
    socket: UdpSocket,
    relay: SocketAddr,
    prompts_from: Option<SocketAddr>,
    seq: u16,
    ts: u32,
    ssrc: u32,
    prompts: VecDeque<[i16; FRAME_SAMPLES]>,
    partial: Vec<i16>,
}

impl RtpSide {
    /// The bot's frames go as RTP from `socket` to `relay`; what arrives on `socket` from the
    /// relay is the person's audio; what arrives from `prompts_from` (dialgate's own player,
    /// AC mode) is mixed into the bot's audio.
    pub fn new(socket: UdpSocket, relay: SocketAddr, prompts_from: Option<SocketAddr>) -> RtpSide {
        RtpSide {
            socket,
            relay,
            prompts_from,
            seq: rand::random(),
            ts: rand::random(),
            ssrc: rand::random(),
            prompts: VecDeque::new(),
            partial: Vec::new(),
        }
    }

    /// Moves the socket onto the runtime of the calling task (it was made on the call's):
    /// its readiness then wakes the thread that runs the session (see `io.rs`).
    pub(crate) fn rehome(self) -> std::io::Result<RtpSide> {
        let socket = UdpSocket::from_std(self.socket.into_std()?)?;
        Ok(RtpSide { socket, ..self })
    }

    /// Sends one frame: the bot's, with dialgate's own prompt mixed in.
    pub(crate) async fn send(&mut self, mut frame: [i16; FRAME_SAMPLES]) {
        if let Some(p) = self.prompts.pop_front() {
            for (s, q) in frame.iter_mut().zip(p) {
                *s = s.saturating_add(q);
            }
        }
        let mut pkt = [0u8; rtp::RTP_HEADER + FRAME_SAMPLES];
        pkt[0] = 0x80;
        rtp::set_pt(&mut pkt, 0);
        rtp::set_seq_ts_ssrc(&mut pkt, self.seq, self.ts, self.ssrc);
        for (b, s) in pkt[rtp::RTP_HEADER..].iter_mut().zip(frame) {
            *b = g711::linear_to_ulaw(s);
        }
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(FRAME_SAMPLES as u32);
        if let Err(e) = self.socket.send_to(&pkt, self.relay).await {
            tracing::debug!(error = %e, "cannot send the bot's audio to the relay");
        }
    }

    /// Whether one of dialgate's own prompt frames waits to be sent (it is sent without
    /// waiting for the bot's audio).
    pub(crate) fn has_prompt(&self) -> bool {
        !self.prompts.is_empty()
    }

    /// Waits for the next datagram into `buf`.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }

    /// One datagram: the person's audio (8 kHz PCM) to give the bot, or a prompt frame kept.
    pub(crate) fn receive(&mut self, buf: &[u8], from: SocketAddr) -> Option<Vec<i16>> {
        let view = rtp::parse_rtp(buf)?;
        let law = match view.pt {
            0 => G711Law::Pcmu,
            8 => G711Law::Pcma,
            _ => return None, // telephone-event and comfort noise: not audio
        };
        let pcm: Vec<i16> = buf[view.payload_start..view.payload_end]
            .iter()
            .map(|b| g711::decode(law, *b))
            .collect();
        if Some(from) != self.prompts_from {
            return Some(pcm);
        }
        self.partial.extend(pcm);
        while self.partial.len() >= FRAME_SAMPLES {
            let mut f = [0i16; FRAME_SAMPLES];
            f.copy_from_slice(&self.partial[..FRAME_SAMPLES]);
            self.partial.drain(..FRAME_SAMPLES);
            if self.prompts.len() < MAX_PROMPT_FRAMES {
                self.prompts.push_back(f);
            }
        }
        None
    }
}

/// The playout clock's shell: the sans-IO [`Pacer`] and the timer of its next wake-up (for
/// silence, or a frame waiting for its floor). Ready frames are sent when they arrive, so a
/// bot streaming in real time costs no timer wake-up at all.
#[derive(Debug)]
pub(crate) struct Playout {
    pub pacer: Pacer,
    timer: Pin<Box<Sleep>>,
    armed: Instant,
}

impl Playout {
    /// A clock starting now, silent until the bot's audio comes.
    pub fn new() -> Playout {
        let now = Instant::now();
        let armed = now + HOLD;
        Playout {
            pacer: Pacer::new(now),
            timer: Box::pin(tokio::time::sleep_until(armed)),
            armed,
        }
    }

    /// Sets the next wake-up (a timer reset only when it moved).
    pub fn arm(&mut self, at: Instant) {
        if at != self.armed {
            self.timer.as_mut().reset(at);
            self.armed = at;
        }
    }
}

/// The next wake-up of an optional playout clock (never, without one).
pub(crate) async fn wake_opt(play: &mut Option<Playout>) {
    match play {
        Some(p) => p.timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The next datagram of an optional RTP side (never, without one).
pub(crate) async fn recv_opt(
    rtp: &Option<RtpSide>,
    buf: &mut [u8],
) -> std::io::Result<(usize, SocketAddr)> {
    match rtp {
        Some(r) => r.recv(buf).await,
        None => std::future::pending().await,
    }
}
