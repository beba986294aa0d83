//! The background pruner: every hour (and at start), deletes what `server.retention_days`
//! no longer keeps, in bounded batches.

use super::Outbox;
use crate::store::Pruned;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows of each kind deleted per transaction.
const BATCH: u32 = 500;
/// At most this many batches per round; the rest waits for the next round.
const MAX_BATCHES: usize = 200;
/// Time between rounds.
const EVERY: Duration = Duration::from_secs(3600);

impl Outbox {
    pub(super) async fn prune_loop(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let days = self.config.current().config.server.retention_days;
            if days > 0 {
                let p = self.prune_older_than(days).await;
                if p != Pruned::default() {
                    tracing::info!(
                        calls = p.calls,
                        items = p.items,
                        idempotency_keys = p.idempotency_keys,
                        retention_days = days,
                        "old records pruned"
                    );
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    }

    /// Deletes what is older than `days` days, batch by batch; returns the totals.
    pub async fn prune_older_than(&self, days: u32) -> Pruned {
        let cutoff = crate::store::now_ms() - i64::from(days) * 86_400_000;
        let mut total = Pruned::default();
        for _ in 0..MAX_BATCHES {
            let p = match self.store.prune_before(cutoff, BATCH).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "pruning old records failed");
                    break;
                }
            };
            total.calls += p.calls;
            total.items += p.items;
            total.idempotency_keys += p.idempotency_keys;
            self.metrics.calls_pruned.inc_by(p.calls as u64);
            if !p.full(BATCH) {
                break;
            }
            // Let calls and the API use the store between batches.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        total
    }
}
