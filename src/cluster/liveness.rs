//! Liveness and takeover on the shared store: every instance renews a lease on its row in
//! PostgreSQL (`instances`, on the database's clock); each one also looks for instances whose
//! lease ran out with calls or SIP legs still on them and takes their work over — one atomic
//! claim, so of several survivors exactly one does it — then ends it as that instance's own
//! restart would have: BYE to legs that were up, CANCEL to those ringing, each unfinished
//! call's one terminal notification (`error`, the reason naming the dead instance); its
//! queued dialouts wait in the survivor's queue. Its outbox needs nothing: items are not owned,
//! only claimed with a lease, and any instance delivers them once the claims run out.
//!
//! Timing, for a lease of `L` (`cluster.lease_sec`): a heartbeat every `L/4` writes a lease of
//! `3L/4`, so an instance killed right after renewing is past its lease `3L/4` later and the
//! next scan (every `L/4`) notices: a dead instance is noticed within `L`. A live one misses
//! two renewals in a row before anyone may take over.
//!
//! After its own heartbeats failed (the database unreachable), an instance takes nothing over
//! until it has renewed for a whole lease again: by then every other live instance that lost
//! the database too has renewed, and is not mistaken for dead.

use crate::call::CallControl;
use crate::call::engine::Engine;
use crate::call::queue::DialQueue;
use crate::metrics::Metrics;
use crate::store::{Heartbeat, Store, StoreError, TakenOver};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// This instance's liveness and its takeovers of dead instances.
pub struct Liveness {
    store: Store,
    metrics: Arc<Metrics>,
    instance: String,
    lease: Duration,
    /// What ends and dials taken-over work, set once the engine and the queue run: the lease
    /// is renewed from the start, nothing is taken over before.
    work: OnceLock<Work>,
}

/// The parts of the running service a takeover hands its work to.
struct Work {
    engine: Arc<Engine>,
    queue: Arc<DialQueue>,
}

/// The lease a heartbeat writes, for a configured lease `lease` (see the module's timing).
pub fn heartbeat_validity(lease: Duration) -> Duration {
    lease * 3 / 4
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl Liveness {
    /// Renews this instance's lease once — at start-up, before restart recovery reads its
    /// calls, so no survivor takes them over meanwhile — and returns the liveness to
    /// [`Liveness::run`] at once (start-up may take longer than a lease).
    pub async fn register(
        store: Store,
        metrics: Arc<Metrics>,
        instance: &str,
        lease: Duration,
    ) -> Result<Arc<Liveness>, StoreError> {
        if let Heartbeat::TakenOver { by } = store.heartbeat(ms(heartbeat_validity(lease))).await? {
            tracing::info!(instance, by = %by, "while this instance was down, instance `{by}` took its calls over");
        }
        Ok(Arc::new(Liveness {
            store,
            metrics,
            instance: instance.to_owned(),
            lease,
            work: OnceLock::new(),
        }))
    }

    /// From now on dead instances' calls are ended by `engine` and their queued dialouts wait
    /// in `queue`.
    pub fn attach(&self, engine: Arc<Engine>, queue: Arc<DialQueue>) {
        let _ = self.work.set(Work { engine, queue });
    }

    /// Renews the lease and looks for dead instances every `lease / 4`, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(self.lease / 4);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Since when every heartbeat succeeded (None: the last one failed).
        let mut healthy_since: Option<Instant> = None;
        let mut down_logged = false;
        // A takeover of this instance the heartbeat reported (it is reported once) whose calls
        // could not be hung up yet: tried again every tick until the store answers.
        let mut taken_over_by: Option<String> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self
                .store
                .heartbeat(ms(heartbeat_validity(self.lease)))
                .await
            {
                Ok(hb) => {
                    if down_logged {
                        tracing::info!(instance = %self.instance, "cluster lease renewed again on the store");
                        down_logged = false;
                    }
                    healthy_since.get_or_insert_with(Instant::now);
                    if let Heartbeat::TakenOver { by } = hb {
                        self.metrics.cluster.declared_dead.inc();
                        taken_over_by = Some(by);
                    }
                }
                Err(e) => {
                    if !down_logged {
                        tracing::warn!(instance = %self.instance, error = %e, "cannot renew this instance's cluster lease; no takeover until it is renewed for a whole lease again");
                        down_logged = true;
                    }
                    healthy_since = None;
                }
            }
            if let Some(by) = &taken_over_by
                && self.was_taken_over(by).await
            {
                taken_over_by = None;
            }
            if self.work.get().is_some() && healthy_since.is_some_and(|t| t.elapsed() >= self.lease)
            {
                self.scan().await;
            }
        }
    }

    /// Takes over every instance found dead; the work it left runs in the background so the
    /// heartbeat goes on meanwhile.
    pub async fn scan(self: &Arc<Self>) {
        let dead = match self.store.dead_instances().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for dead cluster instances");
                return;
            }
        };
        for d in dead {
            match self.store.take_over(&d.instance_id).await {
                Ok(Some(t)) if !t.is_empty() => {
                    let me = self.clone();
                    tokio::spawn(async move { me.finish(t).await });
                }
                Ok(_) => {
                    tracing::debug!(dead = %d.instance_id, "nothing taken over: another instance did it, or it came back")
                }
                Err(e) => {
                    tracing::warn!(dead = %d.instance_id, error = %e, "cannot take a dead instance's calls over")
                }
            }
        }
    }

    /// Ends what was taken over from a dead instance and queues its waiting dialouts here.
    async fn finish(&self, t: TakenOver) {
        let Some(work) = self.work.get() else {
            return;
        };
        tracing::warn!(
            dead = %t.from,
            lease_expired_ms = t.expired_ms,
            calls = t.calls.len(),
            queued = t.waiting.len(),
            legs = t.legs.len(),
            "cluster takeover: instance `{}` stopped renewing its lease; this instance ends its calls and SIP legs and dials its queued dialouts",
            t.from
        );
        let m = &self.metrics.cluster;
        m.takeovers.inc();
        m.calls_taken_over
            .inc_by((t.calls.len() + t.waiting.len()) as u64);
        m.legs_taken_over.inc_by(t.legs.len() as u64);
        let ended = work.engine.end_taken_over(&self.instance, &t).await;
        let queued = work.queue.adopt(t.waiting.clone()).await;
        tracing::info!(
            dead = %t.from,
            ended,
            queued,
            legs = t.legs.len(),
            "cluster takeover of `{}` done: calls ended with their terminal notification, queued dialouts wait here, legs being ended",
            t.from
        );
    }

    /// Another instance took this one's calls over (its lease had run out: it was stalled or
    /// cut off from the database). The calls it took are hung up here, and its queued
    /// dialouts leave this queue: they are the other instance's now.
    /// Hangs up here the calls instance `by` took over; false when the store could not say
    /// which (the caller tries again).
    async fn was_taken_over(&self, by: &str) -> bool {
        let Some(work) = self.work.get() else {
            tracing::error!(instance = %self.instance, by, "this instance's lease had run out while it was starting and instance `{by}` took its calls over");
            return true;
        };
        // Only live calls: on PostgreSQL the queue is shared (`call::queue::shared`), so a
        // dialout queued here is not held here and the survivor's claim needs nothing of us.
        let gone = match self.store.not_owned(work.engine.live_ids()).await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!(by, error = %e, "instance `{by}` took this instance's calls over; cannot read which yet (tried again)");
                return false;
            }
        };
        for id in &gone {
            work.engine.hangup(id);
        }
        tracing::error!(
            instance = %self.instance,
            by,
            calls = gone.len(),
            "this instance's lease had run out (stalled or cut off from the database) and instance `{by}` took its calls over: they are hung up here"
        );
        true
    }
}
