//! Queued dialouts (`bots[].outbound.on_limit: queue | on_request`): a dialout over its bot's
//! `max_cps` / `max_concurrent` is accepted, written durably with `queuedAt`, and dialled in
//! order as the bot's limits allow — Twilio's and Bandwidth's behaviour, where Live Hub refuses
//! with 429.
//!
//! One FIFO per bot in memory, mirrored in the store (`calls.queued_at`, `dialled_at`): at
//! start the waiting dialouts are read back in order ([`DialQueue::restore`]). A dispatcher
//! task ([`DialQueue::run`]) takes each bot's head when the limiter grants a permit, marks it
//! dialled (before the call starts: a crash after that ends it like any call in progress,
//! never dials it twice), resolves its route on the configuration of that moment and hands it
//! to the call engine. A dialout waiting longer than `max_queue_wait_sec` ends
//! `failed/queue-timeout`; `DELETE` of a queued call ends it `failed/api-hangup`; either way
//! with exactly one terminal notification (one `finish_call` transaction).
//!
//! Cluster mode on PostgreSQL: the queue is not in memory but the shared table, and every
//! instance's dispatcher claims from it when it has room and the bot's shared limits grant a
//! permit (`shared.rs`), so a dialout accepted by one instance is dialled by whichever has
//! capacity; `DELETE` and the queue timeout end a waiting dialout on its row, from any instance.

use super::limiter::{Limits, RateLimiter};
use super::supervise::end_with;
use super::{AcceptedDialout, CallControl};
use crate::config::ConfigStore;
use crate::core::DialoutRequest;
use crate::metrics::Metrics;
use crate::store::{CallStatus, Store};
use crate::webhook::Outbox;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub mod policy;
mod shared;

pub use shared::SharedMode;

/// One dialout waiting for its bot's limits.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub conversation_id: String,
    pub client_id: String,
    pub bot_id: String,
    pub request: DialoutRequest,
    /// When it entered the queue (ms since the epoch, as stored).
    pub queued_at_ms: i64,
}

/// Why a dialout could not be queued.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueueRefusal {
    /// The bot's queue holds `max_queue` dialouts: 429, retry when about one has drained.
    #[error("the queue of bot `{bot}` is full ({len} waiting)")]
    Full {
        bot: String,
        len: usize,
        retry_after_secs: u64,
    },
}

/// What the dispatcher needs.
pub struct QueueDeps {
    pub store: Store,
    pub outbox: Arc<Outbox>,
    pub limiter: Arc<dyn RateLimiter>,
    pub calls: Arc<dyn CallControl>,
    pub config: Arc<ConfigStore>,
    pub metrics: Arc<Metrics>,
    /// Cluster mode with the store on PostgreSQL: the queue is shared by every instance.
    /// `None`: one instance, the queue in memory.
    pub shared: Option<SharedMode>,
}

/// Every bot's queue of dialouts.
pub struct DialQueue {
    deps: QueueDeps,
    bots: Mutex<HashMap<String, VecDeque<Waiting>>>,
    wake: Notify,
    /// Set when the process stops: nothing more is dialled (the stored queue waits for the
    /// next start).
    stopped: AtomicBool,
    /// The shared queue's state here, in cluster mode.
    shared: Option<shared::Shared>,
}

impl DialQueue {
    /// Empty queues (see [`DialQueue::restore`]).
    pub fn new(mut deps: QueueDeps) -> Arc<DialQueue> {
        let shared = deps.shared.take().map(shared::Shared::new);
        Arc::new(DialQueue {
            deps,
            bots: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
            shared,
        })
    }

    /// Whether the queue is shared by a cluster (any instance dials any queued dialout).
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Dialouts waiting for `bot` now: in cluster mode counted in the shared queue.
    pub async fn depth(&self, bot: &str) -> Result<usize, crate::store::StoreError> {
        match &self.shared {
            Some(_) => self.deps.store.waiting_count(bot).await,
            None => Ok(self.len(bot)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Waiting>>> {
        self.bots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Dialouts waiting for `bot` (in cluster mode: in the shared queue at the last look).
    pub fn len(&self, bot: &str) -> usize {
        if let Some(s) = &self.shared {
            return s.seen(bot);
        }
        self.lock().get(bot).map_or(0, VecDeque::len)
    }

    /// Whether nothing waits for any bot.
    pub fn is_empty(&self) -> bool {
        self.lock().values().all(VecDeque::is_empty)
    }

    /// Checks there is room for one more dialout of `bot` in its queue of `depth` (see
    /// [`DialQueue::depth`]; `max_queue`), before it is stored. `max_cps` gives the drain
    /// rate for `Retry-After`.
    pub fn room(
        &self,
        bot: &str,
        depth: usize,
        max_queue: u32,
        max_cps: f64,
    ) -> Result<(), QueueRefusal> {
        if policy::has_room_in_queue(depth, max_queue) {
            return Ok(());
        }
        Err(QueueRefusal::Full {
            bot: bot.to_owned(),
            len: depth,
            retry_after_secs: policy::full_queue_retry_after(max_cps),
        })
    }

    /// Appends a stored dialout to its bot's queue and wakes the dispatcher. In cluster mode
    /// the stored row is the queue entry: the dispatcher is only woken.
    pub fn push(&self, w: Waiting) {
        let bot = w.bot_id.clone();
        if let Some(s) = &self.shared {
            let depth = s.pushed(&bot);
            self.deps.metrics.set_queue_depth(&bot, depth);
            self.wake.notify_one();
            return;
        }
        let len = {
            let mut bots = self.lock();
            let q = bots.entry(bot.clone()).or_default();
            q.push_back(w);
            q.len()
        };
        self.deps.metrics.set_queue_depth(&bot, len);
        self.wake.notify_one();
    }

    /// Reads the dialouts that were waiting when the process stopped back into their queues,
    /// in their order. Returns how many.
    pub async fn restore(&self) -> usize {
        if self.shared.is_some() {
            // The shared queue is the table itself: nothing to read back, the dispatcher
            // claims from it (this instance's waiting dialouts as anyone's).
            return 0;
        }
        let waiting = match self.deps.store.waiting_calls().await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the queued dialouts");
                return 0;
            }
        };
        let n = self.adopt(waiting).await;
        if n > 0 {
            tracing::info!(dialouts = n, "queued dialouts restored");
        }
        n
    }

    /// Puts stored waiting dialouts (read back at start, or taken over from a dead cluster
    /// instance) into their bots' queues, each at its `queuedAt` place, so the oldest is still
    /// dialled first. One whose request cannot be read back ends `failed/error`. Returns how
    /// many wait now.
    pub async fn adopt(&self, waiting: Vec<crate::store::CallRecord>) -> usize {
        if self.shared.is_some() {
            // Still in the shared queue, where any instance claims them.
            self.wake.notify_one();
            return waiting.len();
        }
        let mut n = 0;
        for c in waiting {
            let Some(queued_at_ms) = c.queued_at else {
                continue;
            };
            match serde_json::from_value::<DialoutRequest>(c.request.clone()) {
                Ok(request) => {
                    self.insert_in_order(Waiting {
                        conversation_id: c.conversation_id.clone(),
                        client_id: c.client_id.clone(),
                        bot_id: c.bot.clone(),
                        request,
                        queued_at_ms,
                    });
                    n += 1;
                }
                Err(e) => {
                    let reason = format!("the queued request cannot be read back: {e}");
                    self.end(&c.conversation_id, "error", &reason).await;
                }
            }
        }
        n
    }

    /// [`DialQueue::push`] at the dialout's `queuedAt` place (after every dialout queued
    /// before or at the same time).
    fn insert_in_order(&self, w: Waiting) {
        let bot = w.bot_id.clone();
        let len = {
            let mut bots = self.lock();
            let q = bots.entry(bot.clone()).or_default();
            let at = q.partition_point(|o| o.queued_at_ms <= w.queued_at_ms);
            q.insert(at, w);
            q.len()
        };
        self.deps.metrics.set_queue_depth(&bot, len);
        self.wake.notify_one();
    }

    /// `DELETE` of a call that is still queued: it leaves the queue and ends
    /// `failed/api-hangup`. False when it is not queued here.
    pub async fn cancel(&self, conversation_id: &str) -> bool {
        if self.shared.is_some() {
            return self.cancel_shared(conversation_id).await;
        }
        if !self
            .take(|w| w.conversation_id == conversation_id)
            .is_empty()
        {
            self.end(
                conversation_id,
                "api-hangup",
                "hung up by the API while queued",
            )
            .await;
            return true;
        }
        false
    }

    /// Removes and returns every waiting dialout matching `pred`, keeping the others' order.
    fn take(&self, pred: impl Fn(&Waiting) -> bool) -> Vec<Waiting> {
        let mut out = Vec::new();
        let mut bots = self.lock();
        for (bot, q) in bots.iter_mut() {
            let before = q.len();
            let (gone, kept): (VecDeque<Waiting>, VecDeque<Waiting>) =
                q.drain(..).partition(|w| pred(w));
            *q = kept;
            out.extend(gone);
            if q.len() != before {
                self.deps.metrics.set_queue_depth(bot, q.len());
            }
        }
        out
    }

    /// Ends a queued call that never started: state, notification, bot disconnect in one
    /// transaction (nothing is sent twice if it already ended).
    async fn end(&self, id: &str, code: &str, reason: &str) {
        let rec = match self.deps.store.get_call(id).await {
            Ok(Some(rec)) => rec,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(conversation_id = %id, error = %e, "cannot read the queued call");
                return;
            }
        };
        let end = end_with(&rec, CallStatus::Failed, code.into(), reason.into());
        match self.deps.outbox.finish_call(end).await {
            Ok(f) if f.newly_terminal => {
                tracing::info!(conversation_id = %id, reason_code = code, "{reason}")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(conversation_id = %id, error = %e, "cannot end the call"),
        }
    }

    /// Stops dialling (the process is stopping); waiting dialouts stay stored, in order.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// The dispatcher: dials each bot's head as its limits allow, ends dialouts that waited
    /// too long. Runs until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            let wait = match &self.shared {
                Some(s) => policy::next_look(self.shared_round(s).await, true),
                None => {
                    self.expire().await;
                    self.dispatch().await;
                    policy::next_look(!self.is_empty(), false)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Ends every dialout that waited longer than its bot's `max_queue_wait_sec` (a bot
    /// removed from the configuration: at once).
    async fn expire(&self) {
        let snap = self.deps.config.current();
        let now = crate::store::now_ms();
        let mut expired = Vec::new();
        {
            let mut bots = self.lock();
            for (bot, q) in bots.iter_mut() {
                let limit_ms = snap
                    .config
                    .bot(bot)
                    .map(|b| i64::from(b.outbound.max_queue_wait_sec) * 1000);
                let before = q.len();
                // A queue is in `queuedAt` order, so only its oldest dialouts can have waited
                // too long: look at the front only, not at every dialout on every round.
                while q
                    .front()
                    .is_some_and(|w| limit_ms.is_none_or(|l| now - w.queued_at_ms >= l))
                {
                    expired.extend(q.pop_front());
                }
                if q.len() != before {
                    self.deps.metrics.set_queue_depth(bot, q.len());
                }
            }
        }
        for w in expired {
            match snap.config.bot(&w.bot_id) {
                Some(b) => {
                    let reason = format!(
                        "not dialled within {} s in the queue of bot `{}`",
                        b.outbound.max_queue_wait_sec, b.id
                    );
                    self.end(&w.conversation_id, "queue-timeout", &reason).await;
                }
                None => {
                    let reason =
                        format!("bot `{}` was removed while the call was queued", w.bot_id);
                    self.end(&w.conversation_id, "error", &reason).await;
                }
            }
        }
    }

    /// Dials the head of each bot's queue while its limiter grants permits.
    async fn dispatch(&self) {
        let snap = self.deps.config.current();
        let bots: Vec<String> = self.lock().keys().cloned().collect();
        for bot_id in bots {
            let Some(bot) = snap.config.bot(&bot_id) else {
                continue;
            };
            let limits = Limits {
                max_cps: bot.outbound.max_cps,
                max_concurrent: bot.outbound.max_concurrent,
            };
            loop {
                if self.len(&bot_id) == 0 || self.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(permit) = self.deps.limiter.try_acquire(&bot.id, limits).await else {
                    break;
                };
                let Some(w) = self.pop(&bot_id) else { break };
                let wait_ms = (crate::store::now_ms() - w.queued_at_ms).max(0);
                match self.deps.store.mark_dialled(&w.conversation_id).await {
                    Ok(true) => {}
                    // Ended meanwhile (a DELETE racing the dispatcher): nothing to dial.
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(conversation_id = %w.conversation_id, error = %e, "cannot mark the queued call dialled");
                        self.end(&w.conversation_id, "error", "the store refused the dial")
                            .await;
                        continue;
                    }
                }
                self.launch(&snap, bot, w, permit, wait_ms).await;
            }
        }
    }

    /// Dials a dialout that left its queue (marked dialled): its route is resolved on the
    /// configuration of this moment and the call engine starts it with `permit`.
    async fn launch(
        &self,
        snap: &Arc<crate::config::Snapshot>,
        bot: &crate::config::Bot,
        w: Waiting,
        permit: super::limiter::Permit,
        wait_ms: i64,
    ) {
        self.deps
            .metrics
            .observe_queue_wait(&bot.id, wait_ms as f64 / 1000.0);
        let route = crate::call::routing::resolve(&snap.config, bot, &w.request.target)
            .map(|r| r.to_route());
        let Some(route) = route else {
            let reason = format!(
                "no routing rule matches {} any more (the configuration changed while it was queued)",
                w.request.target.display()
            );
            self.end(&w.conversation_id, "error", &reason).await;
            return;
        };
        tracing::info!(conversation_id = %w.conversation_id, bot = %bot.id, wait_ms, "queued dialout dialled");
        let _ = self
            .deps
            .store
            .add_event(
                &w.conversation_id,
                "dequeued",
                &format!("left the queue after {wait_ms} ms"),
            )
            .await;
        self.deps.calls.start(AcceptedDialout {
            conversation_id: w.conversation_id,
            client_id: w.client_id,
            bot_id: bot.id.clone(),
            request: w.request,
            config: snap.clone(),
            permit,
            route,
        });
    }

    fn pop(&self, bot: &str) -> Option<Waiting> {
        let mut bots = self.lock();
        let q = bots.get_mut(bot)?;
        let w = q.pop_front();
        self.deps.metrics.set_queue_depth(bot, q.len());
        w
    }
}
