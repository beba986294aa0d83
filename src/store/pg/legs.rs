//! The leg-dialog journal and retention on PostgreSQL (see `store::legs`, `store::retention`).

use super::PgStore;
use crate::core::{LegDialog, LegDialogState, Transport};
use crate::store::{IDEMPOTENCY_WINDOW_MS, LegJournalOp, Pruned, StoreError, now_ms};

impl PgStore {
    pub(crate) async fn apply_leg_journal(&self, ops: Vec<LegJournalOp>) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        for op in &ops {
            match op {
                LegJournalOp::Save(d) => {
                    tx.execute(
                        &tx.prepare_cached("INSERT INTO leg_dialogs (call_id, conversation_id, state, local_tag, remote_tag,
                            cseq, remote_target, route_set, transport, destination, local_contact, request,
                            updated_at, owner)
                         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14)
                         ON CONFLICT (call_id) DO UPDATE SET
                            state=excluded.state, local_tag=excluded.local_tag,
                            remote_tag=excluded.remote_tag, cseq=excluded.cseq,
                            remote_target=excluded.remote_target, route_set=excluded.route_set,
                            transport=excluded.transport, destination=excluded.destination,
                            local_contact=COALESCE(excluded.local_contact, leg_dialogs.local_contact),
                            request=excluded.request, updated_at=excluded.updated_at").await?,
                        &[
                            &d.call_id,
                            &d.conversation_id,
                            &d.state.as_str(),
                            &d.local_tag,
                            &d.remote_tag,
                            &i64::from(d.cseq),
                            &d.remote_target,
                            &serde_json::to_string(&d.route_set)?,
                            &d.transport.as_str(),
                            &d.destination,
                            &d.local_contact,
                            &d.request,
                            &now_ms(),
                            &self.instance_id,
                        ],
                    )
                    .await?;
                }
                LegJournalOp::Forget(call_id) => {
                    tx.execute(
                        &tx.prepare_cached("DELETE FROM leg_dialogs WHERE call_id=$1")
                            .await?,
                        &[call_id],
                    )
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// This instance's legs (another live instance's legs are its own to end).
    pub(crate) async fn leg_dialogs(&self) -> Result<Vec<LegDialog>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &conn
                    .prepare_cached(&format!(
                        "SELECT {LEG_COLUMNS} FROM leg_dialogs WHERE owner=$1 ORDER BY updated_at"
                    ))
                    .await?,
                &[&self.instance_id],
            )
            .await?;
        let mut out = Vec::new();
        for r in rows {
            out.extend(leg_from_row(&r)?);
        }
        Ok(out)
    }

    pub(crate) async fn prune_before(
        &self,
        cutoff_ms: i64,
        batch: u32,
    ) -> Result<Pruned, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let batch = i64::from(batch);
        let ids: Vec<String> = tx
            .query(
                &tx.prepare_cached("SELECT conversation_id FROM calls WHERE ended_at<$1 \
                   AND status IN ('failed','completed') AND terminal_queued=1 \
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.conversation_id=calls.conversation_id \
                                   AND (o.state='pending' OR o.claimed_until IS NOT NULL)) \
                 LIMIT $2").await?,
                &[&cutoff_ms, &batch],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        for table in [
            "delivery_attempts",
            "outbox",
            "call_events",
            "bot_sessions",
            "calls",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE conversation_id = ANY($1)"),
                &[&ids],
            )
            .await?;
        }
        let old_items = "SELECT id FROM outbox WHERE state IN ('delivered','failed','superseded') \
                         AND created_at<$1 AND claimed_until IS NULL ORDER BY id LIMIT $2";
        tx.execute(
            &format!("DELETE FROM delivery_attempts WHERE outbox_id IN ({old_items})"),
            &[&cutoff_ms, &batch],
        )
        .await?;
        let items = tx
            .execute(
                &format!("DELETE FROM outbox WHERE id IN ({old_items})"),
                &[&cutoff_ms, &batch],
            )
            .await?;
        let keys = tx
            .execute(
                &tx.prepare_cached(
                    "DELETE FROM idempotency WHERE (client_id, key) IN \
                 (SELECT client_id, key FROM idempotency WHERE created_at<$1 LIMIT $2)",
                )
                .await?,
                &[&(now_ms() - IDEMPOTENCY_WINDOW_MS), &batch],
            )
            .await?;
        tx.commit().await?;
        Ok(Pruned {
            calls: ids.len(),
            items: items as usize,
            idempotency_keys: keys as usize,
        })
    }
}

/// The columns [`leg_from_row`] reads, in its order.
pub(super) const LEG_COLUMNS: &str = "call_id, conversation_id, state, local_tag, remote_tag, cseq, \
    remote_target, route_set, transport, destination, local_contact, request";

/// A leg dialog from a row of `SELECT {LEG_COLUMNS}`; `None` (logged) for a state this version
/// cannot read, which is skipped rather than fatal.
pub(super) fn leg_from_row(r: &tokio_postgres::Row) -> Result<Option<LegDialog>, StoreError> {
    let state: String = r.try_get(2)?;
    let call_id: String = r.try_get(0)?;
    let Some(state) = LegDialogState::parse(&state) else {
        tracing::warn!(%call_id, %state, "unknown leg state in the store");
        return Ok(None);
    };
    let routes: String = r.try_get(7)?;
    let transport: String = r.try_get(8)?;
    Ok(Some(LegDialog {
        call_id,
        conversation_id: r.try_get(1)?,
        state,
        local_tag: r.try_get(3)?,
        remote_tag: r.try_get(4)?,
        cseq: u32::try_from(r.try_get::<_, i64>(5)?).unwrap_or(u32::MAX),
        remote_target: r.try_get(6)?,
        route_set: serde_json::from_str(&routes)?,
        transport: match transport.as_str() {
            "tcp" => Transport::Tcp,
            "tls" => Transport::Tls,
            _ => Transport::Udp,
        },
        destination: r.try_get(9)?,
        local_contact: r.try_get(10)?,
        request: r.try_get(11)?,
    }))
}
