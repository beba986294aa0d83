//! dialgate's own prompts in AC mode (the bot's `message` text spoken by dialgate's player),
//! mixed into the bot's audio: the player sends paced PCMU RTP to this socket, whose frames
//! wait here (at most 1 s) to be added to the bot's next frames. The only socket left on a
//! WebSocket session's media side: the player is an RTP sender shared with every other bot
//! kind, and it sends only while a prompt plays, so it costs nothing per frame otherwise.

use super::jitter::FRAME_SAMPLES;
use crate::media::g711::{self, G711Law};
use crate::media::rtp;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

/// Prompt frames waiting to be mixed in: at most 1 s.
const MAX_PROMPT_FRAMES: usize = 50;

/// The socket dialgate's player speaks to, and what it said not yet mixed in.
#[derive(Debug)]
pub struct Prompts {
    socket: UdpSocket,
    player: SocketAddr,
    frames: Arc<PromptFrames>,
    partial: Vec<i16>,
}

/// Prompt frames waiting to be mixed in, shared with whoever paces the bot's audio (the
/// session's task, or the relay thread serving the bot's socket: `served.rs`).
#[derive(Debug, Default)]
pub(crate) struct PromptFrames {
    frames: Mutex<VecDeque<[i16; FRAME_SAMPLES]>>,
    /// How many wait (read without the lock on every frame).
    len: AtomicUsize,
}

impl PromptFrames {
    /// Whether a prompt frame waits (it is sent without waiting for the bot's audio).
    pub(crate) fn has_frame(&self) -> bool {
        self.len.load(Relaxed) > 0
    }

    /// Adds the next prompt frame, if any, to the bot's `frame`.
    pub(crate) fn mix_into(&self, frame: &mut [i16; FRAME_SAMPLES]) {
        if !self.has_frame() {
            return;
        }
        let mut q = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = q.pop_front() {
            for (s, q) in frame.iter_mut().zip(p) {
                *s = s.saturating_add(q);
            }
        }
        self.len.store(q.len(), Relaxed);
    }

    fn push(&self, f: [i16; FRAME_SAMPLES]) {
        let mut q = self.frames.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() < MAX_PROMPT_FRAMES {
            q.push_back(f);
        }
        self.len.store(q.len(), Relaxed);
    }
}

impl Prompts {
    /// Prompts arriving on `socket` from the player at `player` (others are ignored).
    pub fn new(socket: UdpSocket, player: SocketAddr) -> Prompts {
        Prompts {
            socket,
            player,
            frames: Arc::default(),
            partial: Vec::new(),
        }
    }

    /// Moves the socket onto the runtime of the calling task (it was made on the call's).
    pub(crate) fn rehome(self) -> std::io::Result<Prompts> {
        let socket = UdpSocket::from_std(self.socket.into_std()?)?;
        Ok(Prompts { socket, ..self })
    }

    /// Waits for the next datagram into `buf`.
    pub(crate) async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.socket.recv_from(buf).await
    }

    /// Polls for the next datagram into `buf`: its length and sender.
    pub(crate) fn poll_recv(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<(usize, SocketAddr)>> {
        let mut buf = tokio::io::ReadBuf::new(buf);
        let polled = self.socket.poll_recv_from(cx, &mut buf);
        polled.map_ok(|from| (buf.filled().len(), from))
    }

    /// Whether a prompt frame waits (it is sent without waiting for the bot's audio).
    pub(crate) fn has_frame(&self) -> bool {
        self.frames.has_frame()
    }

    /// Adds the next prompt frame, if any, to the bot's `frame`.
    pub(crate) fn mix_into(&mut self, frame: &mut [i16; FRAME_SAMPLES]) {
        self.frames.mix_into(frame);
    }

    /// The frames, for whoever paces the bot's audio.
    pub(crate) fn frames(&self) -> Arc<PromptFrames> {
        self.frames.clone()
    }

    /// One datagram: the player's audio is cut into 20 ms frames and kept.
    pub(crate) fn receive(&mut self, buf: &[u8], from: SocketAddr) {
        if from != self.player {
            return;
        }
        let Some(view) = rtp::parse_rtp(buf) else {
            return;
        };
        let law = match view.pt {
            0 => G711Law::Pcmu,
            8 => G711Law::Pcma,
            _ => return, // telephone-event and comfort noise: not audio
        };
        let payload = &buf[view.payload_start..view.payload_end];
        self.partial
            .extend(payload.iter().map(|b| g711::decode(law, *b)));
        while self.partial.len() >= FRAME_SAMPLES {
            let mut f = [0i16; FRAME_SAMPLES];
            f.copy_from_slice(&self.partial[..FRAME_SAMPLES]);
            self.partial.drain(..FRAME_SAMPLES);
            self.frames.push(f);
        }
    }
}
