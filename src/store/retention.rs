//! Retention: call records with their timeline and deliveries, delivered outbox items and old
//! idempotency keys are deleted once older than `server.retention_days`, in bounded batches
//! (each its own short transaction, so the API and the calls keep the store in between).

use super::{IDEMPOTENCY_WINDOW_MS, Store, StoreError, now_ms};
use rusqlite::params;

/// What one [`Store::prune_before`] batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Call records (with their timeline, outbox items and attempts).
    pub calls: usize,
    /// Finished outbox items whose call record was already gone.
    pub items: usize,
    /// Idempotency keys past their 24 h window.
    pub idempotency_keys: usize,
}

impl Pruned {
    /// Whether any part of the batch was full (there may be more to delete).
    pub fn full(&self, batch: u32) -> bool {
        let b = batch as usize;
        self.calls >= b || self.items >= b || self.idempotency_keys >= b
    }
}

impl Store {
    /// Deletes, at most `batch` of each kind: terminal calls that ended before `cutoff_ms`
    /// (unix ms) and have nothing left to deliver, with everything recorded about them;
    /// finished outbox items created before `cutoff_ms`; idempotency keys past their window.
    pub async fn prune_before(&self, cutoff_ms: i64, batch: u32) -> Result<Pruned, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.prune_before(cutoff_ms, batch).await;
        }
        self.with(move |conn| {
            let tx = conn.savepoint()?;
            let ids: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT conversation_id FROM calls WHERE ended_at<?1 \
                       AND status IN ('failed','completed') AND terminal_queued=1 \
                       AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.conversation_id=calls.conversation_id \
                                       AND (o.state='pending' OR o.claimed_until IS NOT NULL)) \
                     LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![cutoff_ms, batch], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let list = serde_json::to_string(&ids)?;
            for table in ["delivery_attempts", "outbox", "call_events", "bot_sessions", "calls"] {
                tx.execute(
                    &format!(
                        "DELETE FROM {table} WHERE conversation_id IN (SELECT value FROM json_each(?1))"
                    ),
                    params![list],
                )?;
            }
            let old_items = "SELECT id FROM outbox WHERE state IN ('delivered','failed','superseded') \
                             AND created_at<?1 AND claimed_until IS NULL LIMIT ?2";
            tx.execute(
                &format!("DELETE FROM delivery_attempts WHERE outbox_id IN ({old_items})"),
                params![cutoff_ms, batch],
            )?;
            let items = tx.execute(
                &format!("DELETE FROM outbox WHERE id IN ({old_items})"),
                params![cutoff_ms, batch],
            )?;
            let keys = tx.execute(
                "DELETE FROM idempotency WHERE rowid IN \
                 (SELECT rowid FROM idempotency WHERE created_at<?1 LIMIT ?2)",
                params![now_ms() - IDEMPOTENCY_WINDOW_MS, batch],
            )?;
            tx.commit()?;
            Ok(Pruned {
                calls: ids.len(),
                items,
                idempotency_keys: keys,
            })
        })
        .await
    }
}
