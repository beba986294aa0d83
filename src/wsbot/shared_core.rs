//! The protocol core of one session, shared by the session's task and — while the relay
//! thread serves the bot's socket (`served.rs`) — that thread: the task runs the call's
//! commands through it, the relay the bot's messages and the person's audio. One lock keeps
//! the core's frames in the order it made them: while served, the task's frames are queued
//! under the lock that made them, and the relay writes that queue before any frame it makes.

use super::protocol::{Output, Protocol};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};

/// The core and what goes with it while the relay serves the socket.
pub(crate) struct CoreState {
    /// The protocol's state machine.
    pub proto: Box<dyn Protocol>,
    /// The task's frames for the bot while served, oldest first (written by the relay).
    pub outq: Vec<String>,
    /// Whether the relay serves the socket now.
    pub served: bool,
    /// The session ended: the relay writes `outq`, then closes the socket.
    pub close: bool,
    /// The relay let go of the socket (the call's media ended) and is handing it back: frames
    /// still queue in `outq` until the task takes the socket and them.
    pub released: bool,
}

/// A session's core behind its lock.
pub(crate) struct CoreCell {
    state: Mutex<CoreState>,
    /// Set when the task queued frames or asked to close (the relay looks without the lock).
    attention: AtomicBool,
}

impl CoreCell {
    /// A core, its socket not served.
    pub fn new(proto: Box<dyn Protocol>) -> CoreCell {
        CoreCell {
            state: Mutex::new(CoreState {
                proto,
                outq: Vec::new(),
                served: false,
                close: false,
                released: false,
            }),
            attention: AtomicBool::new(false),
        }
    }

    /// The core, locked.
    pub fn lock(&self) -> MutexGuard<'_, CoreState> {
        // A panic while holding the lock leaves a protocol state that is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the core. While served, the frames it makes for the bot are queued for the
    /// relay (under this same lock, so in the core's order) and the other outputs returned;
    /// otherwise every output is returned.
    pub fn run(&self, f: impl FnOnce(&mut dyn Protocol, &mut Vec<Output>)) -> Vec<Output> {
        let mut st = self.lock();
        let mut out = Vec::new();
        f(st.proto.as_mut(), &mut out);
        if !st.served {
            return out;
        }
        let mut rest = Vec::with_capacity(out.len());
        let mut queued = false;
        for o in out {
            match o {
                Output::Send(frame) => {
                    st.outq.push(frame);
                    queued = true;
                }
                other => rest.push(other),
            }
        }
        if queued {
            self.attention.store(true, Relaxed);
        }
        rest
    }

    /// Ends the session while served: the goodbye `closing` makes goes last, then the relay
    /// closes the socket. The goodbye is made and queued under one lock, so no frame of the
    /// relay's comes between (a media stream's `media` after its `stop`), and the relay's
    /// hand-back (`released`) is decided under the same lock. `Err(frames)` when the relay let
    /// go of the socket (it failed, or comes back to the task): the task says goodbye itself.
    pub fn close_served(
        &self,
        closing: impl FnOnce(&mut dyn Protocol) -> Vec<String>,
    ) -> Result<(), Vec<String>> {
        let mut st = self.lock();
        let frames = closing(st.proto.as_mut());
        if !st.served || st.released {
            return Err(frames);
        }
        st.outq.extend(frames);
        st.close = true;
        self.attention.store(true, Relaxed);
        Ok(())
    }

    /// The relay serves a new socket from now on: the task's frames go to it, and whatever an
    /// earlier socket left set (a hand-back, a goodbye) does not apply to this one.
    pub fn start_serving(&self) {
        let mut st = self.lock();
        st.served = true;
        st.released = false;
        st.close = false;
    }

    /// The socket came back from the relay: frames are the task's to write again, starting
    /// with those queued meanwhile (returned, in order).
    pub fn take_back(&self) -> Vec<String> {
        let mut st = self.lock();
        st.served = false;
        st.released = false;
        st.close = false;
        std::mem::take(&mut st.outq)
    }

    /// Whether the task asked for the relay's attention (without taking the request).
    pub fn wants_attention(&self) -> bool {
        self.attention.load(Relaxed)
    }

    /// Whether the task asked for the relay's attention since the last call.
    pub fn take_attention(&self) -> bool {
        self.attention.load(Relaxed) && self.attention.swap(false, Relaxed)
    }
}
