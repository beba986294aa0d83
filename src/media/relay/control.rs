//! The relay thread's control path: commands from the engine and the sessions' handles,
//! taken between packet batches (see the parent module). One function per kind of command:
//! the session table's own (add, remove, direct legs), one leg's, one session's.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::TryRecvError;
use std::time::Instant;

use super::super::dtmf::DtmfDetector;
use super::super::stats::GLOBAL;
use super::super::types::{Leg, RemoteMedia};
use super::{Command, LegRt, Relay, SessionRt, Sink, epoll_ctl};
use crate::media::srtp::SrtpLeg;

impl Relay {
    /// Handles pending commands; false means shut down.
    pub(super) fn control(&mut self) -> bool {
        self.clear_wakeup();
        loop {
            match self.rx.try_recv() {
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Ok(cmd) => self.command(cmd),
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    /// Resets the eventfd the handles write to wake this thread.
    fn clear_wakeup(&self) {
        let mut v = 0u64;
        // SAFETY: reads 8 bytes into a u64 from our eventfd (nonblocking).
        unsafe {
            libc::read(
                self.evfd.as_raw_fd(),
                &mut v as *mut u64 as *mut libc::c_void,
                8,
            )
        };
    }

    /// One command other than `Shutdown`.
    fn command(&mut self, cmd: Command) {
        match cmd {
            Command::Shutdown => {}
            Command::Add(s) => self.add(*s),
            Command::Remove(id) => self.remove(id),
            Command::SetDirect(id, port) => self.set_direct(id, port),
            Command::SetRemote(id, leg, remote) => self.with_leg(id, leg, |l| l.set_remote(remote)),
            Command::SetSrtp(id, leg, srtp) => self.with_leg(id, leg, |l| l.set_srtp(srtp)),
            Command::SetLatching(id, leg, mode) => {
                self.with_leg(id, leg, |l| l.latch.set_mode(mode))
            }
            Command::Subscribe(id, leg, tx) => self.with_leg(id, leg, |l| {
                let start = Instant::now();
                l.taps.push(Sink { tx, start, seq: 0 });
            }),
            Command::SubscribeDtmf(id, leg, tx) => {
                self.with_leg(id, leg, |l| l.dtmf = Some((DtmfDetector::default(), tx)))
            }
            Command::StartTaps(id, at) => self.with_session(id, |s| s.start_taps(at)),
            Command::StartRecording(id, tx, start) => {
                self.with_session(id, |s| s.rec = Some(Sink { tx, start, seq: 0 }))
            }
            Command::StopRecording(id) => self.with_session(id, |s| s.rec = None),
            Command::SetInjectSource(id, addr) => self.with_session(id, |s| s.inject.set(addr)),
        }
    }

    pub(super) fn session(&mut self, id: u64) -> Option<&mut SessionRt> {
        let slot = *self.by_id.get(&id)?;
        self.slots[slot].as_mut()
    }

    /// Applies `f` to session `id` (gone sessions ignore their late commands).
    pub(super) fn with_session(&mut self, id: u64, f: impl FnOnce(&mut SessionRt)) {
        if let Some(s) = self.session(id) {
            f(s);
        }
    }

    fn with_leg(&mut self, id: u64, leg: Leg, f: impl FnOnce(&mut LegRt)) {
        self.with_session(id, |s| f(&mut s.legs[leg.idx()]));
    }

    fn add(&mut self, s: SessionRt) {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let base = (slot as u64) << 2;
        for (li, l) in s.legs.iter().enumerate() {
            let t = base | ((li as u64) << 1);
            for (fd, tok) in [(l.rtp.as_raw_fd(), t), (l.rtcp.as_raw_fd(), t | 1)] {
                if let Err(e) = epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, tok) {
                    tracing::error!(error = %e, "media relay could not watch a socket");
                }
            }
        }
        self.by_id.insert(s.id, slot);
        self.slots[slot] = Some(s);
    }

    fn remove(&mut self, id: u64) {
        if let Some(slot) = self.by_id.remove(&id) {
            if let Some(s) = self.slots[slot].take() {
                self.finish(s);
            }
            self.free_slots.push(slot);
        }
    }

    pub(super) fn finish(&mut self, mut s: SessionRt) {
        super::served::finish_served(self.epfd, &mut s);
        for l in &s.legs {
            for fd in [l.rtp.as_raw_fd(), l.rtcp.as_raw_fd()] {
                let _ = epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, 0);
            }
        }
        if s.legs[Leg::Bot.idx()].direct.is_some() {
            self.direct_legs -= 1;
        }
        GLOBAL.sessions_active.fetch_sub(1, Relaxed);
        // dropping `s` closes sockets, ends taps/recording, then frees ports
        drop(s);
    }
}

impl LegRt {
    /// What the leg's remote SDP said (first time or re-INVITE); a new address resets latching.
    fn set_remote(&mut self, remote: RemoteMedia) {
        let changed = self.remote.map(|r| r.rtp) != Some(remote.rtp);
        self.latch.on_remote(changed);
        if changed {
            self.rtcp_src = None;
        }
        self.remote = Some(remote);
    }

    fn set_srtp(&mut self, mut srtp: Option<Box<SrtpLeg>>) {
        // A re-key of the peer's side only keeps our outbound context.
        if let (Some(new), Some(old)) = (srtp.as_mut(), self.srtp.take()) {
            new.keep_outbound_of(*old);
        }
        self.srtp = srtp;
    }
}

impl SessionRt {
    fn start_taps(&mut self, at: Instant) {
        self.taps_started = true;
        for l in &mut self.legs {
            for t in &mut l.taps {
                t.start = at;
            }
        }
    }
}
