//! The queue's decisions, without I/O: when a dialout waits in the queue instead of being
//! dialled or refused, when a waiting one has waited too long, and how soon a dispatcher looks
//! again. The API (`api::handlers::admit`) and the dispatchers (`call::queue`) act on them.

use std::time::Duration;

/// How often a dispatcher looks again while dialouts wait and the bot is at its limits (a
/// permit coming back is not signalled, on one instance nor across instances; this bounds
/// the extra wait).
pub const RECHECK: Duration = Duration::from_millis(50);
/// One instance, nothing waiting: every new dialout wakes the dispatcher, so this is only a
/// safety net.
pub const IDLE_LOCAL: Duration = Duration::from_secs(1);
/// Cluster mode, nothing waiting: how long an idle instance may take to notice a dialout
/// queued on another one. Short, because it is the only signal across instances, and cheap:
/// one indexed query on the waiting rows (none, when idle).
pub const IDLE_SHARED: Duration = Duration::from_millis(250);

/// Step 6's first decision: whether a dialout is refused (503) because this instance has no
/// room for another call. `has_room`: RTP ports and descriptors for one more call here;
/// `queues`: the bot (and request) queue over the limits; `shared`: the queue is shared by a
/// cluster (any instance may dial the dialout). The queue's depth does not change this answer.
pub fn refused_for_room(has_room: bool, queues: bool, shared: bool) -> bool {
    // On one instance a queued dialout could only be dialled here: refuse, as before.
    // In a cluster another instance with room dials it.
    !(has_room || (queues && shared))
}

/// What step 6 of a dialout does before asking the bot's limiter, once [`refused_for_room`]
/// let it through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeLimits {
    /// Ask the limiter for a permit to dial now.
    AskLimiter,
    /// Wait in the queue without asking (behind the dialouts already waiting, or for an
    /// instance with room).
    Queue,
}

/// Step 6's second decision, for a dialout [`refused_for_room`] did not refuse. `has_room`
/// and `queues` as there; `depth`: dialouts waiting for the bot now.
pub fn before_limits(has_room: bool, queues: bool, depth: usize) -> BeforeLimits {
    // Without room here the queue is shared (else the dialout was refused): it waits there
    // for an instance with room. A queue that holds dialouts keeps its order: a new one
    // waits behind them.
    match !has_room || (queues && depth > 0) {
        true => BeforeLimits::Queue,
        false => BeforeLimits::AskLimiter,
    }
}

/// Whether one more dialout fits in a queue of `depth` (`max_queue`).
pub fn has_room_in_queue(depth: usize, max_queue: u32) -> bool {
    depth < max_queue as usize
}

/// `Retry-After` of a full queue: about one dialout leaves it every `1 / max_cps` seconds.
pub fn full_queue_retry_after(max_cps: f64) -> u64 {
    (1.0 / max_cps.max(0.001)).ceil().clamp(1.0, 3600.0) as u64
}

/// Dialouts queued before this time (ms) have waited too long at `now_ms`: those whose wait
/// reached `max_wait_ms`. `None` (the bot was removed from the configuration): every one.
pub fn timed_out_before(now_ms: i64, max_wait_ms: Option<i64>) -> i64 {
    match max_wait_ms {
        Some(l) => now_ms.saturating_sub(l).saturating_add(1),
        None => i64::MAX,
    }
}

/// How long a dispatcher sleeps before its next look (a local new dialout wakes it earlier).
pub fn next_look(waiting: bool, shared: bool) -> Duration {
    match (waiting, shared) {
        (true, _) => RECHECK,
        (false, true) => IDLE_SHARED,
        (false, false) => IDLE_LOCAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_without_room_queues_only_when_the_queue_is_shared() {
        // 1. One instance: no room is a 503 whatever the bot does over its limits.
        assert!(refused_for_room(false, true, false));
        assert!(refused_for_room(false, false, false));
        // 2. Cluster: a queueing bot's dialout waits for an instance with room...
        assert!(!refused_for_room(false, true, true));
        assert_eq!(before_limits(false, true, 0), BeforeLimits::Queue);
        assert_eq!(before_limits(false, true, 5), BeforeLimits::Queue);
        // 3. ...a rejecting bot's is refused as before.
        assert!(refused_for_room(false, false, true));
        // 4. With room, nothing is refused for room.
        for (queues, shared) in [(false, false), (true, false), (false, true), (true, true)] {
            assert!(!refused_for_room(true, queues, shared));
        }
    }

    #[test]
    fn a_new_dialout_waits_behind_a_non_empty_queue() {
        // 1. Dialouts waiting: a queueing bot's new one joins the end, no limiter asked.
        assert_eq!(before_limits(true, true, 1), BeforeLimits::Queue);
        // 2. Empty queue, or a bot that does not queue: the limiter decides.
        assert_eq!(before_limits(true, true, 0), BeforeLimits::AskLimiter);
        assert_eq!(before_limits(true, false, 3), BeforeLimits::AskLimiter);
    }

    #[test]
    fn a_full_queue_refuses_with_one_dialouts_drain_time() {
        assert!(has_room_in_queue(0, 1));
        assert!(!has_room_in_queue(1, 1));
        assert!(has_room_in_queue(999, 1000));
        assert_eq!(full_queue_retry_after(1.0), 1);
        assert_eq!(full_queue_retry_after(0.2), 5);
        assert_eq!(full_queue_retry_after(50.0), 1);
        assert_eq!(full_queue_retry_after(0.0), 1000);
        assert_eq!(full_queue_retry_after(0.000_001), 1000);
    }

    #[test]
    fn a_dialout_times_out_when_its_wait_reaches_the_limit() {
        // 1. Limit 10 s at t = 100 s: queued at 90 s (waited 10 s) is out, 90.001 s is not.
        let before = timed_out_before(100_000, Some(10_000));
        assert!(90_000 < before);
        assert!(90_001 >= before);
        // 2. A removed bot: every waiting dialout ends.
        assert!(i64::MAX - 1 < timed_out_before(100_000, None));
        // 3. No overflow at the edges.
        assert_eq!(timed_out_before(i64::MIN, Some(i64::MAX)), i64::MIN + 1);
    }

    #[test]
    fn dispatchers_look_again_soon_while_dialouts_wait() {
        assert_eq!(next_look(true, false), RECHECK);
        assert_eq!(next_look(true, true), RECHECK);
        assert_eq!(next_look(false, true), IDLE_SHARED);
        assert_eq!(next_look(false, false), IDLE_LOCAL);
        // An idle cluster instance notices others' dialouts sooner than it needs for one
        // instance, where every dialout wakes the dispatcher that dials it.
        assert!(IDLE_SHARED < IDLE_LOCAL);
    }
}
