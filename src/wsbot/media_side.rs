//! A session's media side, once the person answered: the relay's bot leg served in process
//! (`media::DirectPort`, no socket, no RTP). The session's task hands the relay the bot's
//! frames as PCMU, paced at 20 ms (`pacer.rs`: on arrival when the bot streams in real time,
//! never faster), with dialgate's own prompts mixed in (AC mode, `prompts.rs`), and takes the
//! person's audio from the port's queue, all of it at each wake-up, for the protocol core. Owned
//! by the same task as the socket, so a frame crosses no channel or second task on its way.

use super::jitter::FRAME_SAMPLES;
use super::pacer::{HOLD, Pacer};
use super::prompts::Prompts;
use crate::media::DirectPort;
use crate::media::g711;
use std::pin::Pin;
use tokio::time::{Instant, Sleep};

/// Where the session's audio goes and comes from.
#[derive(Debug)]
pub struct MediaSide {
    port: DirectPort,
    prompts: Option<Prompts>,
    /// The person's audio taken from the port (PCMU), reused between wake-ups.
    taken: Vec<u8>,
}

impl MediaSide {
    /// The bot's frames go to the relay through `port`, the person's audio comes from it;
    /// `prompts` (dialgate's player, AC mode) are mixed into the bot's audio.
    pub fn new(port: DirectPort, prompts: Option<Prompts>) -> MediaSide {
        MediaSide {
            port,
            prompts,
            taken: Vec::with_capacity(crate::media::DIRECT_FRAME * 4),
        }
    }

    /// Moves the prompts' socket onto the runtime of the calling task (see `io.rs`).
    pub(crate) fn rehome(self) -> std::io::Result<MediaSide> {
        let prompts = self.prompts.map(Prompts::rehome).transpose()?;
        Ok(MediaSide { prompts, ..self })
    }

    /// Sends one frame: the bot's, with dialgate's own prompt mixed in; with `due`, the relay
    /// holds it until then.
    pub(crate) fn send(&mut self, mut frame: [i16; FRAME_SAMPLES], due: Option<Instant>) {
        if let Some(p) = &mut self.prompts {
            p.mix_into(&mut frame);
        }
        let mut pcmu = [0u8; crate::media::DIRECT_FRAME];
        for (b, s) in pcmu.iter_mut().zip(frame) {
            *b = g711::linear_to_ulaw(s);
        }
        self.port
            .send_to_person_at(&pcmu, due.map(Instant::into_std));
    }

    /// Whether one of dialgate's own prompt frames waits to be sent (it is sent without
    /// waiting for the bot's audio).
    pub(crate) fn has_prompt(&self) -> bool {
        self.prompts.as_ref().is_some_and(Prompts::has_frame)
    }

    /// All the person's audio waiting (PCMU, 8 kHz), and how many packets of it the relay
    /// dropped meanwhile because the session was behind; `None` when none waits. The bytes
    /// stay in a buffer reused between wake-ups.
    pub(crate) fn take_person(&mut self) -> (Option<&[u8]>, u64) {
        self.taken.clear();
        let dropped = self.port.take_dropped();
        if self.port.take_person_audio(&mut self.taken) == 0 {
            return (None, dropped);
        }
        (Some(&self.taken), dropped)
    }

    /// Ready when the person's audio waiting reached the wake-up size (see
    /// [`DirectPort::poll_person_audio`]).
    pub(crate) fn poll_person(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.port.poll_person_audio(cx)
    }

    /// Polls the prompts' socket, if any, for its next datagram (never ready without one).
    pub(crate) fn poll_prompt(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<(usize, std::net::SocketAddr)>> {
        match &self.prompts {
            Some(p) => p.poll_recv(cx, buf),
            None => std::task::Poll::Pending,
        }
    }

    /// Wakes the session only once `bytes` of the person's audio wait (one message's worth).
    pub(crate) fn set_wake_bytes(&self, bytes: usize) {
        self.port.set_wake_bytes(bytes);
    }

    /// Hands the bot leg to the relay thread, which serves `leg` from now on.
    pub(crate) fn serve(&self, leg: Box<dyn crate::media::ServedLeg>) {
        self.port.serve(leg);
    }

    /// The prompt frames to mix in, for whoever paces the bot's audio.
    pub(crate) fn prompt_frames(&self) -> Option<std::sync::Arc<super::prompts::PromptFrames>> {
        self.prompts.as_ref().map(Prompts::frames)
    }

    /// The prompts' side, if any.
    pub(crate) fn prompts_mut(&mut self) -> Option<&mut Prompts> {
        self.prompts.as_mut()
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

    /// Ready once the next wake-up's time has come (and until it is set again).
    pub fn poll_wake(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::future::Future::poll(self.timer.as_mut(), cx)
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

/// The person's audio arriving on an optional media side (never, without one).
pub(crate) async fn person_opt(side: &Option<MediaSide>) {
    match side {
        Some(s) => s.port.person_audio().await,
        None => std::future::pending().await,
    }
}

/// The next datagram of an optional prompts socket (never, without one).
pub(crate) async fn prompt_opt(
    side: &Option<MediaSide>,
    buf: &mut [u8],
) -> std::io::Result<(usize, std::net::SocketAddr)> {
    match side.as_ref().and_then(|s| s.prompts.as_ref()) {
        Some(p) => p.recv(buf).await,
        None => std::future::pending().await,
    }
}
