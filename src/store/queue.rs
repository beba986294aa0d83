//! The dialout queue as rows of `calls` (`queued_at` set, `dialled_at` not, not ended), read
//! and taken by whichever process dials: in cluster mode on PostgreSQL every instance's
//! dispatcher claims from the one shared queue (`pg/queue.rs`: `FOR UPDATE SKIP LOCKED`);
//! SQLite runs the same operations for the store suite (one instance keeps its queue in memory,
//! `call::queue`, and only marks what it dials).
//!
//! The row is the arbiter between everything that may take a waiting dialout out of the queue
//! at once — a dispatcher dialling it, a `DELETE`, the queue timeout, on any instance: a claim
//! sets `dialled_at` only on a row still waiting, and an end of a waiting dialout
//! ([`Store::finish_waiting`]) writes its terminal state only on a row still waiting, both on
//! the locked row. So an entry is dialled at most once, or ended once, never both.

use super::calls::{COLUMNS, from_row};
use super::finish::finish_in;
use super::{CallEnd, CallRecord, Finished, Store, StoreError, now_ms};
use rusqlite::{OptionalExtension, params};

/// One bot's share of the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotQueue {
    /// The bot's id.
    pub bot: String,
    /// Dialouts waiting.
    pub depth: usize,
    /// `queuedAt` of the oldest (ms since the epoch).
    pub oldest_ms: i64,
}

/// A row that is still waiting: queued, not dialled, not ended.
pub(super) const WAITING: &str = "queued_at IS NOT NULL AND dialled_at IS NULL \
     AND status NOT IN ('failed','completed')";

impl Store {
    /// Every bot with dialouts waiting: how many and since when, by bot id.
    pub async fn waiting_by_bot(&self) -> Result<Vec<BotQueue>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.waiting_by_bot().await;
        }
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT bot_id, COUNT(*), MIN(queued_at) FROM calls WHERE {WAITING} \
                 GROUP BY bot_id ORDER BY bot_id"
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok(BotQueue {
                    bot: r.get(0)?,
                    depth: r.get::<_, i64>(1)?.max(0) as usize,
                    oldest_ms: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Dialouts waiting for `bot`.
    pub async fn waiting_count(&self, bot: &str) -> Result<usize, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.waiting_count(bot).await;
        }
        let bot = bot.to_owned();
        self.with(move |conn| {
            let n: i64 = conn.query_row(
                &format!("SELECT COUNT(*) FROM calls WHERE bot_id=?1 AND {WAITING}"),
                params![bot],
                |r| r.get(0),
            )?;
            Ok(n.max(0) as usize)
        })
        .await
    }

    /// `bot`'s waiting dialouts queued before `before_ms`, oldest first (the ones past the
    /// queue timeout).
    pub async fn waiting_before(
        &self,
        bot: &str,
        before_ms: i64,
    ) -> Result<Vec<CallRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.waiting_before(bot, before_ms).await;
        }
        let bot = bot.to_owned();
        self.with(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM calls WHERE bot_id=?1 AND queued_at<?2 AND {WAITING} \
                 ORDER BY queued_at, rowid"
            ))?;
            let rows = stmt.query_map(params![bot, before_ms], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Takes the oldest dialout waiting for `bot` out of the queue to dial it: `dialled_at` set
    /// (and, on PostgreSQL, this instance written as its owner), in one statement on a row
    /// nobody else holds. `None` when nothing waits. Two instances claiming at once get two
    /// different dialouts, in queue order.
    pub async fn claim_waiting(&self, bot: &str) -> Result<Option<CallRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.claim_waiting(bot).await;
        }
        let bot = bot.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    &format!(
                        "UPDATE calls SET dialled_at=?2 WHERE conversation_id = \
                         (SELECT conversation_id FROM calls WHERE bot_id=?1 AND {WAITING} \
                          ORDER BY queued_at, rowid LIMIT 1) RETURNING {COLUMNS}"
                    ),
                    params![bot, now_ms()],
                    from_row,
                )
                .optional()?)
        })
        .await
    }

    /// Ends a dialout only if it is still waiting (a `DELETE` or the queue timeout): `None`
    /// when it is not — a dispatcher claimed it meanwhile, or it already ended — and nothing is
    /// written. Otherwise as [`Store::finish_call`], in one transaction on the locked row.
    pub async fn finish_waiting(&self, end: CallEnd) -> Result<Option<Finished>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.finish_waiting(end).await;
        }
        self.with(move |conn| {
            let tx = conn.savepoint()?;
            let waiting: Option<i64> = tx
                .query_row(
                    &format!("SELECT 1 FROM calls WHERE conversation_id=?1 AND {WAITING}"),
                    params![end.conversation_id],
                    |r| r.get(0),
                )
                .optional()?;
            if waiting.is_none() {
                return Ok(None);
            }
            let out = finish_in(&tx, &end, now_ms())?;
            tx.commit()?;
            Ok(Some(out))
        })
        .await
    }
}
