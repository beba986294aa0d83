//! The shared dialout queue on PostgreSQL (see `store::queue`): every instance claims the
//! oldest waiting dialout of a bot with `FOR UPDATE SKIP LOCKED`, so two instances claiming at
//! once take two different rows and neither waits for the other; the claim writes the
//! claimer as the call's owner, so its restart recovery or a takeover of it ends the call.

use super::PgStore;
use super::finish::finish_in;
use crate::store::calls::COLUMNS;
use crate::store::queue::WAITING;
use crate::store::{BotQueue, CallEnd, CallRecord, Finished, StoreError, now_ms};

impl PgStore {
    pub(crate) async fn waiting_by_bot(&self) -> Result<Vec<BotQueue>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &conn
                    .prepare_cached(&format!(
                        "SELECT bot_id, COUNT(*), MIN(queued_at) FROM calls WHERE {WAITING} \
                         GROUP BY bot_id ORDER BY bot_id"
                    ))
                    .await?,
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(BotQueue {
                    bot: r.try_get(0)?,
                    depth: r.try_get::<_, i64>(1)?.max(0) as usize,
                    oldest_ms: r.try_get(2)?,
                })
            })
            .collect()
    }

    pub(crate) async fn waiting_count(&self, bot: &str) -> Result<usize, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                &conn
                    .prepare_cached(&format!(
                        "SELECT COUNT(*) FROM calls WHERE bot_id=$1 AND {WAITING}"
                    ))
                    .await?,
                &[&bot],
            )
            .await?;
        Ok(row.try_get::<_, i64>(0)?.max(0) as usize)
    }

    pub(crate) async fn waiting_before(
        &self,
        bot: &str,
        before_ms: i64,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM calls WHERE bot_id=$1 AND queued_at<$2 AND {WAITING} \
                         ORDER BY queued_at, seq"
                    ))
                    .await?,
                &[&bot, &before_ms],
            )
            .await?;
        rows.iter().map(super::calls::from_row).collect()
    }

    pub(crate) async fn claim_waiting(&self, bot: &str) -> Result<Option<CallRecord>, StoreError> {
        let conn = self.conn().await?;
        // One statement, so the row lock is held only for it: a row another instance is
        // claiming (or a DELETE is ending) is skipped, not waited for, and the next oldest is
        // taken. The outer WHERE repeats the condition: the row is re-checked once locked.
        let row = conn
            .query_opt(
                &conn
                    .prepare_cached(&format!(
                        "UPDATE calls SET dialled_at=$3, owner=$2 WHERE conversation_id = \
                         (SELECT conversation_id FROM calls WHERE bot_id=$1 AND {WAITING} \
                          ORDER BY queued_at, seq LIMIT 1 FOR UPDATE SKIP LOCKED) AND {WAITING} \
                         RETURNING {COLUMNS}"
                    ))
                    .await?,
                &[&bot, &self.instance_id, &now_ms()],
            )
            .await?;
        row.as_ref().map(super::calls::from_row).transpose()
    }

    pub(crate) async fn finish_waiting(
        &self,
        end: CallEnd,
    ) -> Result<Option<Finished>, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        // The row lock first: a claim in progress holds it until it committed (then the row is
        // no longer waiting), and a claim after this one skips the row.
        let waiting = tx
            .query_opt(
                &tx.prepare_cached(&format!(
                    "SELECT 1 FROM calls WHERE conversation_id=$1 AND {WAITING} FOR UPDATE"
                ))
                .await?,
                &[&end.conversation_id],
            )
            .await?;
        if waiting.is_none() {
            return Ok(None);
        }
        let out = finish_in(&tx, &end, now_ms()).await?;
        tx.commit().await?;
        Ok(Some(out))
    }
}
