//! The relay thread's side of served bot legs (`media/direct.rs`'s [`ServedLeg`]): a direct
//! leg whose bot socket this thread polls in its own epoll set, beside the call's RTP sockets.
//! Per 20 ms the person's packet is handed to the leg on arrival (it writes the bot's
//! message itself) and the bot's audio read from its socket leaves as RTP when the leg's clock
//! says so: no other thread or task is woken for either.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use super::super::direct::{DIRECT_FRAME, ServedLeg};
use super::super::types::Leg;
use super::direct::on_direct;
use super::{Relay, SessionRt, epoll_ctl, epoll_ctl_events};

/// Token bit of a served leg's socket (the rest is the session's slot).
pub(super) const SERVED_TOKEN: u64 = 1 << 62;

/// Every served leg is ticked at least this often (for the session's own frames, which the
/// person's audio also carries out every 20 ms); otherwise a leg is ticked when it asked to
/// be (`ServedLeg::next_tick`): ticking every leg every millisecond was a sixth of the relay's
/// time at 250 calls.
const SWEEP: Duration = Duration::from_millis(10);

/// How long a handed-over leg waits for its session's bot leg to become direct.
const UNMATCHED: Duration = Duration::from_secs(2);

/// A served leg as the relay holds it, with the interest registered for its socket.
pub(crate) struct ServedRt {
    pub(super) leg: Box<dyn ServedLeg>,
    registered: (bool, bool),
    /// The relay's epoll set and the socket's token in it.
    epfd: RawFd,
    token: u64,
    /// The leg panicked: it is dropped at once (see [`guarded`]).
    pub(super) poisoned: bool,
}

impl ServedRt {
    /// Hands the leg one packet of the person's audio. Its frame may not have gone out whole
    /// (the socket is full): the rest is written when the socket is writable, not at the next
    /// tick.
    pub(super) fn person(&mut self, pcmu: &[u8]) {
        if self.poisoned {
            return;
        }
        let leg = &mut self.leg;
        self.poisoned |= !guarded(|| leg.on_person(pcmu));
        if !self.poisoned {
            self.sync_interest();
        }
    }

    /// Brings the socket's registered interest up to the leg's.
    fn sync_interest(&mut self) {
        let interest = self.leg.interest();
        if interest != self.registered {
            self.registered = interest;
            epoll_set(
                self.epfd,
                libc::EPOLL_CTL_MOD,
                self.leg.fd(),
                self.token,
                interest,
            );
        }
    }
}

/// Runs a call into a served leg, catching a panic: the leg runs protocol code on the relay
/// thread, and a bug there must cost its own call (the leg is dropped, its session resumes on
/// a new socket), not every call of the thread. `false` when it panicked.
fn guarded(f: impl FnOnce()) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(e) => {
            let what = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "a served bot leg panicked: it is dropped");
            false
        }
    }
}

fn events(interest: (bool, bool)) -> u32 {
    let mut ev = 0;
    if interest.0 {
        ev |= libc::EPOLLIN as u32;
    }
    if interest.1 {
        ev |= libc::EPOLLOUT as u32;
    }
    ev
}

fn epoll_set(epfd: RawFd, op: i32, fd: RawFd, token: u64, interest: (bool, bool)) {
    if let Err(e) = epoll_ctl_events(epfd, op, fd, token, events(interest)) {
        tracing::error!(error = %e, "media relay could not watch a bot's socket");
    }
}

impl Relay {
    /// Takes the legs sessions handed over and starts serving them.
    fn adopt_served(&mut self, now: Instant) {
        let mut legs = std::mem::take(&mut self.served_unmatched);
        legs.extend(
            self.outbox
                .take_served()
                .into_iter()
                .map(|(id, leg)| (id, leg, now)),
        );
        for (id, mut leg, since) in legs {
            let slot = self.by_id.get(&id).copied();
            let direct = slot
                .and_then(|i| self.slots.get_mut(i))
                .and_then(Option::as_mut)
                .and_then(|s| s.legs[Leg::Bot.idx()].direct.as_mut());
            let (Some(slot), Some(d)) = (slot, direct) else {
                // The command that makes the bot leg direct travels on the control channel
                // and may come after the hand-over: wait for it, bounded. Past the bound the
                // call's media has ended.
                if now.saturating_duration_since(since) < UNMATCHED {
                    self.served_unmatched.push((id, leg, since));
                } else {
                    guarded(|| leg.finish());
                }
                continue;
            };
            if let Some(mut old) = d.served.take() {
                let _ = epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, old.leg.fd(), 0);
                guarded(|| old.leg.finish());
            }
            let interest = leg.interest();
            let token = SERVED_TOKEN | slot as u64;
            epoll_set(self.epfd, libc::EPOLL_CTL_ADD, leg.fd(), token, interest);
            let mut sv = ServedRt {
                leg,
                registered: interest,
                epfd: self.epfd,
                token,
                poisoned: false,
            };
            // The person's audio queued before the hand-over goes first.
            let queued = d.port.drain_person();
            if !queued.is_empty() {
                sv.person(&queued);
            }
            d.served = Some(sv);
            if !self.served_slots.contains(&slot) {
                self.served_slots.push(slot);
            }
            self.set_served_at(slot, now);
            // Ticked on this pass: its first tick takes what the session read before.
            self.served_due = now;
        }
    }

    /// Notes when the leg of `slot` next wants its tick.
    fn set_served_at(&mut self, slot: usize, at: Instant) {
        if self.served_at.len() <= slot {
            self.served_at.resize(slot + 1, at);
        }
        self.served_at[slot] = at;
    }

    /// A served leg's socket is ready.
    pub(super) fn on_served_socket(&mut self, slot: usize, buf: &mut [u8], now: Instant) {
        let mut frames = std::mem::take(&mut self.served_frames);
        if let Some(Some(s)) = self.slots.get_mut(slot)
            && let Some(sv) = served(s)
        {
            if !sv.poisoned {
                let leg = &mut sv.leg;
                sv.poisoned |= !guarded(|| leg.on_socket(now, &mut frames));
            }
            self.settle(slot, &mut frames, buf, now);
        }
        self.served_frames = frames;
    }

    /// Adopts new served legs and ticks the served legs: those whose tick has come, or all of
    /// them every [`SWEEP`].
    pub(super) fn tick_served(&mut self, buf: &mut [u8], now: Instant) {
        self.adopt_served(now);
        if self.served_slots.is_empty() {
            return;
        }
        let sweep = now.saturating_duration_since(self.served_tick) >= SWEEP;
        if !sweep && now < self.served_due {
            return;
        }
        if sweep {
            self.served_tick = now;
        }
        self.served_due = now + SWEEP;
        let mut frames = std::mem::take(&mut self.served_frames);
        let slots = std::mem::take(&mut self.served_slots);
        let mut kept = Vec::with_capacity(slots.len());
        for slot in slots {
            // Most legs are not due: skipped on the time cached at their last run.
            if let Some(&at) = self.served_at.get(slot)
                && !sweep
                && at > now
            {
                self.served_due = self.served_due.min(at);
                kept.push(slot);
                continue;
            }
            let Some(Some(s)) = self.slots.get_mut(slot) else {
                continue;
            };
            let Some(sv) = served(s) else {
                continue;
            };
            if !sv.poisoned {
                let leg = &mut sv.leg;
                sv.poisoned |= !guarded(|| leg.on_tick(now, &mut frames));
            }
            if self.settle(slot, &mut frames, buf, now) {
                kept.push(slot);
            }
        }
        // (Adoption ran before the loop: nothing was added to the list meanwhile.)
        kept.append(&mut self.served_slots);
        self.served_slots = kept;
        self.served_frames = frames;
    }

    /// After a served leg ran: its frames go to the person, its socket's interest is brought
    /// up to date, and a leg no longer alive is dropped (its socket closes). `true` while the
    /// leg is still served.
    fn settle(
        &mut self,
        slot: usize,
        frames: &mut Vec<[u8; DIRECT_FRAME]>,
        buf: &mut [u8],
        now: Instant,
    ) -> bool {
        let Some(Some(s)) = self.slots.get_mut(slot) else {
            frames.clear();
            return false;
        };
        for f in frames.drain(..) {
            on_direct(s, &f, buf, now, &self.tc, &self.settings);
        }
        let Some(sv) = served(s) else {
            return false;
        };
        if sv.poisoned || !sv.leg.alive() {
            let fd = sv.leg.fd();
            let _ = epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, 0);
            if let Some(d) = s.legs[Leg::Bot.idx()].direct.as_mut() {
                d.served = None;
            }
            return false;
        }
        sv.sync_interest();
        let at = sv.leg.next_tick();
        self.served_due = self.served_due.min(at);
        self.set_served_at(slot, at);
        true
    }
}

/// The session's served leg, if its bot leg is served.
fn served(s: &mut SessionRt) -> Option<&mut ServedRt> {
    s.legs[Leg::Bot.idx()]
        .direct
        .as_mut()
        .and_then(|d| d.served.as_mut())
}

/// The call's media ends (or its bot leg stops being direct): the served leg's socket leaves
/// this thread's epoll set and the leg finishes (`ServedLeg::finish`).
pub(super) fn finish_served(epfd: RawFd, s: &mut SessionRt) {
    if let Some(mut sv) = s.legs[Leg::Bot.idx()]
        .direct
        .as_mut()
        .and_then(|d| d.served.take())
    {
        // Removed before the leg lets go of the socket: a socket handed back to its session
        // must not stay in this set.
        let _ = epoll_ctl(epfd, libc::EPOLL_CTL_DEL, sv.leg.fd(), 0);
        if !sv.poisoned {
            guarded(|| sv.leg.finish());
        }
    }
}
