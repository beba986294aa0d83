//! When the bot's next 20 ms frame goes to the person (sans-IO: the caller gives the time and
//! whether a frame is ready, the pacer says send now or wait until when).
//!
//! Frame `n` of the stream may not leave before `start + n × 20 ms` (its *floor*): the
//! person never gets audio faster than real time, however fast the bot sends. A frame that is
//! ready once its floor has passed leaves at once — when the bot streams in real time, on the
//! frame's arrival, as a SIP bot's packet is relayed on arrival — instead of waiting for the next
//! tick of a fixed 20 ms clock (which cost a uniform 0–20 ms, 10 ms on average, plus a whole
//! frame for the rest of the stream after every late frame). When no frame is ready the pacer
//! waits [`HOLD`] past the floor for a late one before it sends silence: an empty buffer still
//! gives 20 ms packets of silence, sent one hold late (nobody hears silence's delay).
//!
//! While the bot is silent the floors therefore trail the clock by the hold, so when audio
//! starts again at most one frame leaves ahead of the 20 ms cadence. On that first frame after
//! silence the floors are moved later so that they trail its arrival by [`SLACK`]: later frames
//! of a real-time stream may then come up to `SLACK` early without waiting and up to
//! `HOLD − SLACK` late without silence being put in. Moving floors later never makes the stream
//! faster; nothing ever moves them earlier.

use std::time::Duration;
use tokio::time::Instant;

/// One frame of audio.
pub(crate) const FRAME: Duration = Duration::from_millis(20);
/// How long past its floor a frame is waited for before silence goes instead.
pub(crate) const HOLD: Duration = FRAME;
/// How far the floors trail the first frame after silence.
pub(crate) const SLACK: Duration = Duration::from_millis(10);

/// What the caller does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send the next frame now: the buffer's next frame, silence when none is ready.
    Send,
    /// Nothing to send before this instant (sooner if a frame becomes ready meanwhile: ask again).
    Wait(Instant),
}

/// The playout clock of one call's bot audio.
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    /// The floor of the next frame.
    next: Instant,
    /// The last frame sent was silence for want of audio.
    idle: bool,
}

impl Pacer {
    /// A clock whose first frame may leave at `start`; the stream starts silent.
    pub fn new(start: Instant) -> Pacer {
        Pacer {
            next: start,
            idle: true,
        }
    }

    /// Whether to send a frame at `now`, `ready` saying whether the buffer holds one. After a
    /// stall (the caller asked late) it says [`Step::Send`] until the stream has caught up with
    /// real time: the caller asks again after every send.
    pub fn poll(&mut self, now: Instant, ready: bool) -> Step {
        if ready && self.idle && now > self.next + SLACK {
            self.next = now - SLACK;
        }
        let due = if ready { self.next } else { self.next + HOLD };
        if now < due {
            return Step::Wait(due);
        }
        self.next += FRAME;
        self.idle = !ready;
        Step::Send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends at `now` until the pacer says wait; returns how many frames went.
    fn drain(p: &mut Pacer, now: Instant, mut ready: impl FnMut() -> bool) -> (usize, Step) {
        let mut sent = 0;
        loop {
            match p.poll(now, ready()) {
                Step::Send => sent += 1,
                wait => return (sent, wait),
            }
        }
    }

    #[test]
    fn an_empty_buffer_gives_one_silent_frame_per_20_ms_one_hold_late() {
        // 1. Nothing ready at the start: wait one hold, then one frame per 20 ms.
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        assert_eq!(p.poll(t0, false), Step::Wait(t0 + HOLD));
        for k in 0..50u32 {
            let at = t0 + HOLD + FRAME * k;
            assert_eq!(p.poll(at - ms(1), false), Step::Wait(at), "frame {k}");
            assert_eq!(drain(&mut p, at, || false), (1, Step::Wait(at + FRAME)));
        }
    }

    #[test]
    fn a_flood_leaves_at_20_ms_never_faster() {
        // 1. The bot sends far faster than real time: the buffer always has a frame.
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        // 2. Over one simulated second, polled every millisecond, at most one frame per 20 ms
        //    of elapsed time (plus the first) leaves.
        let mut sent = 0;
        for m in 0..=1000u64 {
            let now = t0 + ms(m);
            sent += drain(&mut p, now, || true).0;
            assert!(sent as u64 <= m / 20 + 1, "{sent} frames by {m} ms");
        }
        assert_eq!(sent, 51);
    }

    #[test]
    fn a_real_time_stream_leaves_on_arrival() {
        // 1. 100 ms of silence, then a frame every 20 ms arriving at phase 7 ms of the old
        //    cadence, with ±4 ms of jitter.
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        for k in 0..5u32 {
            drain(&mut p, t0 + HOLD + FRAME * k, || false);
        }
        let jitter = [0i64, 4, -4, 3, -2, 1, -3, 4, 0, -4];
        let arrivals: Vec<Instant> = (0..200u64)
            .map(|k| {
                let at = t0 + ms(111 + 20 * k);
                let j = jitter[k as usize % jitter.len()];
                if j >= 0 {
                    at + ms(j as u64)
                } else {
                    at - ms(j.unsigned_abs())
                }
            })
            .collect();
        let mut wake = None;
        for (k, at) in arrivals.iter().enumerate() {
            // 2. The pacer's own wake-up (for silence) is never before the frame arrives ...
            if let Some(Step::Wait(w)) = wake {
                assert!(w > *at, "silence would have gone before frame {k}");
            }
            // 3. ... and each frame leaves the moment it arrives, alone.
            let mut ready = true;
            let (sent, next) = drain(&mut p, *at, || std::mem::take(&mut ready));
            assert_eq!(sent, 1, "frame {k} did not leave on arrival");
            wake = Some(next);
        }
    }

    #[test]
    fn a_late_frame_leaves_on_arrival_and_a_missing_one_becomes_silence() {
        // 1. A real-time stream starts at 30 ms (after one silent frame at 20 ms).
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        assert_eq!(drain(&mut p, t0 + ms(20), || false).0, 1);
        assert_eq!(drain(&mut p, t0 + ms(30), || true).0, 1); // floors now trail by SLACK
        // 2. The next frame, due at 50 ms, is 8 ms late: nothing goes before it, it leaves
        //    at 58 ms on arrival.
        assert_eq!(p.poll(t0 + ms(50), false), Step::Wait(t0 + ms(40) + HOLD));
        assert_eq!(drain(&mut p, t0 + ms(58), || true).0, 1);
        // 3. The next one never comes: silence goes one hold after its floor (60 + 20 ms).
        assert_eq!(p.poll(t0 + ms(70), false), Step::Wait(t0 + ms(80)));
        assert_eq!(drain(&mut p, t0 + ms(80), || false).0, 1);
    }

    #[test]
    fn after_a_stall_the_missed_frames_go_at_once_then_the_cadence_resumes() {
        // 1. A full buffer; the caller is stalled 100 ms after the first frame.
        let t0 = Instant::now();
        let mut p = Pacer::new(t0);
        assert_eq!(drain(&mut p, t0, || true).0, 1);
        // 2. Five frames were due meanwhile: they go at once (real time is kept, not the gap).
        assert_eq!(
            drain(&mut p, t0 + ms(100), || true),
            (5, Step::Wait(t0 + ms(120)))
        );
    }
}
