//! The dialout queue shared by a cluster (store on PostgreSQL): the waiting rows of `calls`
//! are the queue, and every instance's dispatcher dials from it.
//!
//! Each round a dispatcher reads every bot's depth and oldest `queuedAt` (one indexed query),
//! ends the dialouts that waited past `max_queue_wait_sec`, then, per bot with dialouts
//! waiting and while this instance has room for a call: asks the bot's shared limiter for a
//! permit, and with it claims the bot's oldest waiting dialout (`Store::claim_waiting`, `FOR
//! UPDATE SKIP LOCKED`: two instances never claim one entry, and claims follow queue order)
//! and dials it. The permit comes first so an entry is claimed only when it can be dialled;
//! the price is that an instance that got a permit and found the queue emptied by another
//! spent one token of the bot's `max_cps` for nothing (only as a queue drains).
//!
//! How an idle instance learns there is work: it polls, every [`policy::IDLE_SHARED`] when
//! the queue is empty and every [`policy::RECHECK`] while dialouts wait (the instance that
//! accepted a dialout wakes its own dispatcher at once). No Redis pub/sub: polling is needed
//! anyway — a dialout may wait for a permit freed on any instance, and pub/sub drops
//! messages while a subscriber reconnects — and a queued dialout waits for the bot's pace
//! (`1 / max_cps`, a second by default), beside which a quarter of a second is small.
//!
//! `DELETE` of a waiting dialout and its timeout end it on its row from any instance
//! (`Store::finish_waiting`): of a claim and an end racing, one wins; exactly one terminal
//! notification either way.

use super::policy;
use super::{DialQueue, Waiting};
use crate::call::limiter::Limits;
use crate::call::supervise::end_with;
use crate::core::DialoutRequest;
use crate::store::{BotQueue, CallRecord, CallStatus, now_ms};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// What the dispatcher needs in cluster mode.
pub struct SharedMode {
    /// Whether this instance has room for one more call now (RTP ports, descriptors): an
    /// instance without room claims nothing and leaves the queue to the others.
    pub has_room: Box<dyn Fn() -> bool + Send + Sync>,
}

/// The shared queue as this instance last saw it.
pub(super) struct Shared {
    mode: SharedMode,
    /// Depth per bot at the last look, plus the dialouts queued here since (`len`, metrics).
    seen: Mutex<HashMap<String, usize>>,
    /// The last look failed (logged once until one succeeds again).
    unreadable: AtomicBool,
}

impl Shared {
    pub(super) fn new(mode: SharedMode) -> Shared {
        Shared {
            mode,
            seen: Mutex::new(HashMap::new()),
            unreadable: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `bot`'s depth at the last look.
    pub(super) fn seen(&self, bot: &str) -> usize {
        self.lock().get(bot).copied().unwrap_or(0)
    }

    /// One more dialout of `bot` was queued here; its depth as known now.
    pub(super) fn pushed(&self, bot: &str) -> usize {
        let mut seen = self.lock();
        let d = seen.entry(bot.to_owned()).or_default();
        *d += 1;
        *d
    }

    /// Replaces the depths with a look's; the bots that were waiting and no longer are, with
    /// depth 0 (their gauge must come down).
    fn looked(&self, queues: &[BotQueue]) -> Vec<(String, usize)> {
        let mut seen = self.lock();
        let mut out: Vec<(String, usize)> = seen
            .keys()
            .filter(|b| !queues.iter().any(|q| &q.bot == *b))
            .map(|b| (b.clone(), 0))
            .collect();
        out.extend(queues.iter().map(|q| (q.bot.clone(), q.depth)));
        *seen = queues.iter().map(|q| (q.bot.clone(), q.depth)).collect();
        out
    }
}

impl DialQueue {
    /// One look at the shared queue: ends what waited too long, then claims and dials while
    /// this instance has room and the bots' limits allow. Whether dialouts still wait.
    pub(super) async fn shared_round(&self, shared: &Shared) -> bool {
        let queues = match self.deps.store.waiting_by_bot().await {
            Ok(q) => {
                if shared.unreadable.swap(false, Ordering::SeqCst) {
                    tracing::info!("the shared dialout queue is readable again");
                }
                q
            }
            Err(e) => {
                if !shared.unreadable.swap(true, Ordering::SeqCst) {
                    tracing::warn!(error = %e, "cannot read the shared dialout queue; retrying");
                }
                return true;
            }
        };
        for (bot, depth) in shared.looked(&queues) {
            self.deps.metrics.set_queue_depth(&bot, depth);
        }
        let snap = self.deps.config.current();
        let now = now_ms();
        let mut waiting = false;
        for q in &queues {
            let bot = snap.config.bot(&q.bot);
            let max_wait_ms = bot.map(|b| i64::from(b.outbound.max_queue_wait_sec) * 1000);
            let before = policy::timed_out_before(now, max_wait_ms);
            if q.oldest_ms < before {
                self.expire_shared(&q.bot, bot, before).await;
            }
            if let Some(bot) = bot {
                waiting |= self.claim_and_dial(shared, &snap, bot).await;
            }
        }
        waiting
    }

    /// Claims `bot`'s oldest dialouts and dials them while this instance has room and the
    /// bot's limiter grants permits. Whether dialouts still wait.
    async fn claim_and_dial(
        &self,
        shared: &Shared,
        snap: &std::sync::Arc<crate::config::Snapshot>,
        bot: &crate::config::Bot,
    ) -> bool {
        let limits = Limits {
            max_cps: bot.outbound.max_cps,
            max_concurrent: bot.outbound.max_concurrent,
        };
        loop {
            if self.stopped.load(Ordering::SeqCst) || !(shared.mode.has_room)() {
                return true;
            }
            let Ok(permit) = self.deps.limiter.try_acquire(&bot.id, limits).await else {
                return true;
            };
            let rec = match self.deps.store.claim_waiting(&bot.id).await {
                Ok(Some(rec)) => rec,
                // Another instance took the last one: the permit goes back as it drops.
                Ok(None) => return false,
                Err(e) => {
                    tracing::warn!(bot = %bot.id, error = %e, "cannot claim a queued dialout");
                    return true;
                }
            };
            let wait_ms = rec.queue_wait_ms.unwrap_or(0);
            match waiting_of(&rec) {
                Ok(w) => self.launch(snap, bot, w, permit, wait_ms).await,
                Err(e) => {
                    let reason = format!("the queued request cannot be read back: {e}");
                    self.end(&rec.conversation_id, "error", &reason).await;
                }
            }
        }
    }

    /// Ends `bot_id`'s dialouts queued before `before` (ms): `queue-timeout`, or `error` when
    /// the bot was removed from the configuration. Several instances may do it at once: each
    /// dialout ends once.
    async fn expire_shared(&self, bot_id: &str, bot: Option<&crate::config::Bot>, before: i64) {
        let recs = match self.deps.store.waiting_before(bot_id, before).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(bot = bot_id, error = %e, "cannot read the dialouts that waited too long");
                return;
            }
        };
        for rec in recs {
            let (code, reason) = match bot {
                Some(b) => (
                    "queue-timeout",
                    format!(
                        "not dialled within {} s in the queue of bot `{}`",
                        b.outbound.max_queue_wait_sec, b.id
                    ),
                ),
                None => (
                    "error",
                    format!("bot `{bot_id}` was removed while the call was queued"),
                ),
            };
            self.end_waiting(&rec, code, &reason).await;
        }
    }

    /// `DELETE` of a call in the shared queue: ends it `failed/api-hangup` if it still waits
    /// (whichever instance accepted it). False when it does not (dialled or ended meanwhile).
    pub(super) async fn cancel_shared(&self, conversation_id: &str) -> bool {
        let rec = match self.deps.store.get_call(conversation_id).await {
            Ok(Some(rec)) => rec,
            Ok(None) => return false,
            Err(e) => {
                tracing::error!(conversation_id, error = %e, "cannot read the queued call");
                return false;
            }
        };
        if rec.queued_at.is_none() || rec.dialled_at.is_some() {
            return false;
        }
        self.end_waiting(&rec, "api-hangup", "hung up by the API while queued")
            .await
    }

    /// Ends a dialout that still waits in the shared queue: its terminal state and its one
    /// notification, on its locked row. False when it no longer waits.
    async fn end_waiting(&self, rec: &CallRecord, code: &str, reason: &str) -> bool {
        let id = rec.conversation_id.as_str();
        let end = end_with(rec, CallStatus::Failed, code.into(), reason.into());
        match self.deps.store.finish_waiting(end).await {
            Ok(Some(f)) => {
                if f.queued {
                    self.deps.outbox.wake.notify_one();
                }
                if f.newly_terminal {
                    tracing::info!(conversation_id = %id, reason_code = code, "{reason}");
                }
                true
            }
            Ok(None) => false,
            Err(e) => {
                tracing::error!(conversation_id = %id, error = %e, "cannot end the queued call");
                false
            }
        }
    }
}

/// The queue entry of a claimed record.
fn waiting_of(rec: &CallRecord) -> Result<Waiting, serde_json::Error> {
    Ok(Waiting {
        conversation_id: rec.conversation_id.clone(),
        client_id: rec.client_id.clone(),
        bot_id: rec.bot.clone(),
        request: serde_json::from_value::<DialoutRequest>(rec.request.clone())?,
        queued_at_ms: rec.queued_at.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn look(bot: &str, depth: usize) -> BotQueue {
        BotQueue {
            bot: bot.into(),
            depth,
            oldest_ms: 1,
        }
    }

    #[test]
    fn the_depths_follow_each_look_and_bring_emptied_queues_to_zero() {
        let s = Shared::new(SharedMode {
            has_room: Box::new(|| true),
        });
        // 1. Dialouts queued here count before the next look.
        assert_eq!(s.pushed("a"), 1);
        assert_eq!(s.pushed("a"), 2);
        assert_eq!(s.seen("a"), 2);
        assert_eq!(s.seen("b"), 0);
        // 2. A look replaces them with the shared queue's depths.
        let mut set = s.looked(&[look("a", 5), look("b", 1)]);
        set.sort();
        assert_eq!(set, [("a".to_string(), 5), ("b".to_string(), 1)]);
        assert_eq!(s.seen("a"), 5);
        // 3. A bot no longer waiting is set to 0 once, then forgotten.
        let mut set = s.looked(&[look("b", 2)]);
        set.sort();
        assert_eq!(set, [("a".to_string(), 0), ("b".to_string(), 2)]);
        assert_eq!(s.seen("a"), 0);
        assert_eq!(s.looked(&[]), [("b".to_string(), 0)]);
        assert!(s.looked(&[]).is_empty());
    }
}
