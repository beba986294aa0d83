//! What a full bounded queue left out. Every queue between dialgate's tasks is bounded; where
//! a sender cannot wait (it is synchronous, or waiting would stall a call) and what it sends
//! may be dropped safely, a full queue drops it and says so here: a counter per queue
//! (`dialgate_queue_full_total{queue}` in `/metrics`) and one warning per queue per
//! [`LOG_EVERY`], so a flood costs a counter increment, not a log line per message.
//!
//! A leaf: imports nothing of the crate, so any module (the SIP layer too) may report here.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// One warning per queue per this long.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The queues that may drop when full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// A SIP leg's in-dialog requests (REFER, session refresh, INFO); hanging up never queues.
    LegCommands,
    /// Redis pub/sub messages of this instance's channel (routed hang-ups and their answers).
    ClusterPushes,
    /// Legs' dialog-state changes waiting for the store (coalesced per leg first).
    LegJournal,
    /// SIP TCP/TLS connections refused at accept (`server.sip.max_connections`).
    SipConnections,
    /// A WebSocket bot bridge's commands (activities, DTMF, clear); its media start and
    /// hang-up have their own slots and never queue here.
    BridgeCommands,
    /// The person's audio handed to a WebSocket bot session (`WsBot::send_audio`) while its
    /// task is behind: a frame that would only arrive stale is dropped.
    WsBotAudio,
    /// The bot's frames handed by a WebSocket bot session to its relay thread while the relay
    /// is behind (`media::DirectPort::send_to_person`).
    WsBotPlayout,
}

impl Queue {
    /// Every queue, in the order of [`counts`].
    pub const ALL: [Queue; N] = [
        Queue::LegCommands,
        Queue::ClusterPushes,
        Queue::LegJournal,
        Queue::SipConnections,
        Queue::BridgeCommands,
        Queue::WsBotAudio,
        Queue::WsBotPlayout,
    ];

    /// The `queue` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Queue::LegCommands => "leg_commands",
            Queue::ClusterPushes => "cluster_pushes",
            Queue::LegJournal => "leg_journal",
            Queue::SipConnections => "sip_connections",
            Queue::BridgeCommands => "bridge_commands",
            Queue::WsBotAudio => "wsbot_audio",
            Queue::WsBotPlayout => "wsbot_playout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How many queues there are.
const N: usize = 7;

static COUNTS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
static LAST_LOG: Mutex<[Option<Instant>; N]> = Mutex::new([None; N]);

/// Counts one item `queue` left out and warns (at most once per [`LOG_EVERY`] per queue)
/// with `what` was dropped.
pub fn dropped(queue: Queue, what: &str) {
    let n = COUNTS[queue.index()].fetch_add(1, Relaxed) + 1;
    let now = Instant::now();
    let log = {
        let mut last = LAST_LOG.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut last[queue.index()];
        let due = slot.is_none_or(|at| now.duration_since(at) >= LOG_EVERY);
        if due {
            *slot = Some(now);
        }
        due
    };
    if log {
        tracing::warn!(
            queue = queue.as_str(),
            dropped_total = n,
            what,
            "queue full: dropped"
        );
    }
}

/// How many items each queue left out so far.
pub fn counts() -> [(Queue, u64); N] {
    Queue::ALL.map(|q| (q, COUNTS[q.index()].load(Relaxed)))
}

/// How many items `queue` left out so far.
pub fn count(queue: Queue) -> u64 {
    COUNTS[queue.index()].load(Relaxed)
}

/// Moves events held back from a full queue into it while it has room, oldest first: the
/// other answer to a full queue, for what must not be dropped (a task that may not wait holds
/// its events in `held` and calls this when the queue may have room again). A closed queue
/// has no reader any more: what is held is dropped.
pub fn forward_held<T>(
    queue: &tokio::sync::mpsc::Sender<T>,
    held: &mut std::collections::VecDeque<T>,
) {
    use tokio::sync::mpsc::error::TrySendError;
    while let Some(ev) = held.pop_front() {
        match queue.try_send(ev) {
            Ok(()) => {}
            Err(TrySendError::Full(ev)) => {
                held.push_front(ev);
                return;
            }
            Err(TrySendError::Closed(_)) => {
                held.clear();
                return;
            }
        }
    }
}
