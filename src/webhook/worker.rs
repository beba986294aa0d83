//! The delivery worker: reads due items, admits what the concurrency caps allow, claims each
//! in the store before sending it (so no item is ever sent twice, whatever a stale read
//! says), delivers, and records every attempt.

use super::Outbox;
use super::scheduler::{Limits, Scheduler};
use crate::store::{AttemptOutcome, Channel, DueItem, DueQuery, Recorded};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Retry policy and timeouts.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// First retry delay; doubled after each failure.
    pub base_backoff: Duration,
    /// Upper bound of one retry delay.
    pub max_backoff: Duration,
    /// Attempts before an item is given up.
    pub max_attempts: u32,
    /// Deadline of one HTTP request.
    pub request_timeout: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_attempts: 10,
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl OutboxOptions {
    /// How long a claim holds: longer than any one delivery (request deadline plus the
    /// store writes around it), so only a dead worker's claims ever run out.
    pub fn lease(&self) -> Duration {
        self.request_timeout + Duration::from_secs(15)
    }
}

/// Least time between two dispatch rounds.
const ROUND_GAP: Duration = Duration::from_millis(5);

/// How long shutdown waits for deliveries under way.
const DRAIN: Duration = Duration::from_secs(4);

/// How one delivery went.
pub(super) enum Delivery {
    Ok,
    /// Worth retrying (transport error, 5xx, 408, 429).
    Transient(Option<u16>, String),
    /// Retrying cannot help (4xx, nothing to deliver to).
    Permanent(Option<u16>, String),
}

/// The slot key of an item: its destination, or one shared bucket for items without one.
fn slot_of(d: &DueItem) -> &str {
    d.item.destination.as_deref().unwrap_or("")
}

impl Outbox {
    /// Starts the worker and the retention pruner; both stop when `shutdown` is cancelled.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::join!(me.clone().run(shutdown.clone()), me.prune_loop(shutdown));
        })
    }

    /// The caps of the configuration in force (hot-reloadable).
    fn limits(&self) -> Limits {
        let o = &self.config.current().config.server.outbox;
        Limits {
            global: o.max_concurrent as usize,
            per_destination: o.max_per_destination as usize,
        }
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        // One claim token per worker: a claim is ours only if it carries it.
        let token = uuid::Uuid::new_v4().to_string();
        let sched = Arc::new(Mutex::new(Scheduler::new(self.limits())));
        loop {
            let round = tokio::time::Instant::now();
            let next = self.dispatch(&sched, &token).await;
            let wait = next
                .map(
                    |at| Duration::from_millis((at - crate::store::now_ms()).clamp(1, 1000) as u64),
                )
                .unwrap_or(Duration::from_secs(1));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {
                    // Wakes come with every enqueue and every finished delivery: under load,
                    // one round per ROUND_GAP serves them all.
                    tokio::time::sleep_until(round + ROUND_GAP).await;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.drain(&sched, &token).await;
    }

    /// At shutdown: lets deliveries under way finish (bounded), then gives back the claims
    /// still held, so a restarted process need not wait for their leases to end.
    async fn drain(&self, sched: &Mutex<Scheduler>, token: &str) {
        let deadline = tokio::time::Instant::now() + DRAIN;
        loop {
            let busy = {
                let s = sched.lock().unwrap_or_else(|p| p.into_inner());
                s.free() < s.limits().global
            };
            if !busy || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match self.store.release_claims(token.to_owned()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                items = n,
                "deliveries still under way at shutdown: claims given back"
            ),
            Err(e) => tracing::error!(error = %e, "cannot give back the outbox claims"),
        }
    }

    /// One round: read candidates, admit, claim, start deliveries. Returns when something
    /// else becomes due.
    async fn dispatch(self: &Arc<Self>, sched: &Arc<Mutex<Scheduler>>, token: &str) -> Option<i64> {
        let (free, exclude, per_destination) = {
            let mut s = sched.lock().unwrap_or_else(|p| p.into_inner());
            s.set_limits(self.limits());
            (s.free(), s.saturated(), s.limits().per_destination)
        };
        if free == 0 {
            // A finishing delivery wakes the worker.
            return None;
        }
        let query = DueQuery {
            limit: (free * 2).min(512) as u32,
            per_destination: per_destination as u32,
            exclude,
        };
        let (items, next) = match self.store.due_items(query).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "outbox poll failed");
                return None;
            }
        };
        let admitted = sched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(items, slot_of);
        if admitted.is_empty() {
            return next;
        }
        let ids = admitted.iter().map(|d| d.item.id).collect();
        let lease_until = crate::store::now_ms() + self.opts.lease().as_millis() as i64;
        let won = match self.store.claim(ids, token.to_owned(), lease_until).await {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = %e, "cannot claim outbox items");
                Vec::new()
            }
        };
        for due in admitted {
            if !won.contains(&due.item.id) {
                // Taken or finished by someone else since it was read: not sent again.
                self.metrics.outbox_duplicates_suppressed.inc();
                sched
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .release(slot_of(&due));
                continue;
            }
            self.metrics.outbox_claimed.inc();
            let (me, sched, token) = (self.clone(), sched.clone(), token.to_owned());
            let span = tracing::info_span!("deliver", conversation_id = %due.item.conversation_id,
                kind = %due.item.kind, attempt = due.item.attempts + 1, event_id = %due.item.event_id);
            tokio::spawn(
                async move {
                    let slot = slot_of(&due).to_owned();
                    me.deliver_and_record(due, token).await;
                    sched
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .release(&slot);
                    // A slot is free, and the next item of that conversation may be due.
                    me.wake.notify_one();
                }
                .instrument(span),
            );
        }
        next
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exp = attempts.clamp(0, 20) as u32;
        self.opts
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.opts.max_backoff)
    }

    async fn deliver_and_record(&self, due: DueItem, token: String) {
        let started = Instant::now();
        let item = &due.item;
        let result = match item.channel {
            Channel::Dialer => self.deliver_dialer(&due).await,
            Channel::Bot => self.deliver_bot(&due).await,
        };
        let ms = started.elapsed().as_millis() as i64;
        let attempts_after = item.attempts + 1;
        let (status, error, outcome, label) = match result {
            Delivery::Ok => (None, None, AttemptOutcome::Delivered, "delivered"),
            Delivery::Transient(s, e) if (attempts_after as u32) < self.opts.max_attempts => {
                let at_ms = crate::store::now_ms() + self.backoff(item.attempts).as_millis() as i64;
                tracing::warn!(status = ?s, error = %e, "delivery failed; will retry");
                (s, Some(e), AttemptOutcome::Retry { at_ms }, "retry")
            }
            Delivery::Transient(s, e) | Delivery::Permanent(s, e) => {
                tracing::error!(status = ?s, error = %e, "delivery given up");
                if item.channel == Channel::Bot
                    && let Some(sink) = self.sink()
                {
                    sink.bot_unreachable(&item.conversation_id, &e);
                }
                (s, Some(e), AttemptOutcome::GiveUp, "failed")
            }
        };
        let status = status.or(match outcome {
            AttemptOutcome::Delivered => Some(200),
            _ => None,
        });
        self.metrics
            .notifications
            .get_or_create(&crate::metrics::ResultLabels {
                result: label.to_owned(),
            })
            .inc();
        match self
            .store
            .record_attempt(item.id, token, status, error, ms, outcome)
            .await
        {
            Ok(Recorded::Done { superseded: true }) => {
                tracing::info!("answered notification superseded by the terminal one");
                self.metrics.outbox_superseded.inc();
            }
            Ok(Recorded::Done { .. }) => {}
            Ok(Recorded::LeaseLost) => {
                tracing::warn!("the claim ran out before the attempt was recorded");
                self.metrics.outbox_leases_lost.inc();
            }
            Err(e) => tracing::error!(error = %e, "cannot record a delivery attempt"),
        }
    }
}
