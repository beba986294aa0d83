//! Liveness and takeover on PostgreSQL (see `store::instances`): each instance renews its row
//! in `instances`; a survivor moves a dead instance's calls and leg dialogs to itself in one
//! transaction that first locks the dead instance's row, so two survivors serialise on it and
//! the second finds nothing left to move.

use super::PgStore;
use super::legs::{LEG_COLUMNS, leg_from_row};
use crate::store::calls::COLUMNS;
use crate::store::{CallRecord, DeadInstance, Heartbeat, StoreError, TakenOver};

/// The database's clock in unix milliseconds: the one clock every instance's lease is measured
/// on, so instances whose clocks disagree still agree on who is alive.
const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Calls whose outcome is not written yet.
const LIVE: &str = "status NOT IN ('failed','completed')";

impl PgStore {
    pub(crate) async fn heartbeat(&self, lease_ms: i64) -> Result<Heartbeat, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let before = tx
            .query_opt(
                "SELECT taken_over_by FROM instances WHERE instance_id=$1 FOR UPDATE",
                &[&self.instance_id],
            )
            .await?;
        tx.execute(
            &format!(
                "INSERT INTO instances (instance_id, alive_until) VALUES ($1, {DB_NOW_MS} + $2) \
                 ON CONFLICT (instance_id) DO UPDATE SET alive_until=excluded.alive_until, \
                 taken_over_by=NULL, taken_over_at=NULL"
            ),
            &[&self.instance_id, &lease_ms],
        )
        .await?;
        tx.commit().await?;
        let by: Option<String> = before.map(|r| r.try_get(0)).transpose()?.flatten();
        Ok(match by {
            Some(by) => Heartbeat::TakenOver { by },
            None => Heartbeat::Alive,
        })
    }

    pub(crate) async fn dead_instances(&self) -> Result<Vec<DeadInstance>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT i.instance_id, {DB_NOW_MS} - i.alive_until FROM instances i \
                     WHERE i.instance_id <> $1 AND i.alive_until < {DB_NOW_MS} \
                       AND (EXISTS (SELECT 1 FROM calls c WHERE c.owner=i.instance_id AND c.{LIVE}) \
                            OR EXISTS (SELECT 1 FROM leg_dialogs l WHERE l.owner=i.instance_id)) \
                     ORDER BY i.alive_until"
                ),
                &[&self.instance_id],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadInstance {
                    instance_id: r.try_get(0)?,
                    expired_ms: r.try_get(1)?,
                })
            })
            .collect()
    }

    pub(crate) async fn take_over(&self, dead: &str) -> Result<Option<TakenOver>, StoreError> {
        let me = &self.instance_id;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let Some((until, now)) = lock_expired(&tx, dead).await? else {
            return Ok(None);
        };
        // Only a survivor whose own lease holds takes over: one whose lease ran out may itself
        // be the instance cut off from the others.
        if !lease_holds(&tx, me).await? {
            return Ok(None);
        }
        let records = move_calls(&tx, me, dead).await?;
        let mut legs = Vec::new();
        for r in tx
            .query(
                &format!("UPDATE leg_dialogs SET owner=$1 WHERE owner=$2 RETURNING {LEG_COLUMNS}"),
                &[me, &dead],
            )
            .await?
        {
            legs.extend(leg_from_row(&r)?);
        }
        // Who took over is recorded only by the survivor that moved something: a second one,
        // finding nothing left, must not overwrite it.
        if !records.is_empty() || !legs.is_empty() {
            tx.execute(
                &format!(
                    "UPDATE instances SET taken_over_by=$2, taken_over_at={DB_NOW_MS} WHERE instance_id=$1"
                ),
                &[&dead, me],
            )
            .await?;
        }
        tx.commit().await?;
        let (waiting, calls) = records
            .into_iter()
            .partition(|c| c.queued_at.is_some() && c.dialled_at.is_none());
        Ok(Some(TakenOver {
            from: dead.to_owned(),
            expired_ms: now - until,
            calls,
            waiting,
            legs,
        }))
    }

    pub(crate) async fn not_owned(&self, ids: Vec<String>) -> Result<Vec<String>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT conversation_id FROM calls WHERE conversation_id = ANY($1) AND owner<>$2",
                &[&ids, &self.instance_id],
            )
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect::<Result<_, StoreError>>()
    }
}

/// Locks the dead instance's row (the lock two survivors serialise on); its lease's end and
/// the database's now, or `None` when there is no such instance or it renewed meanwhile
/// (alive after all).
async fn lock_expired(
    tx: &deadpool_postgres::Transaction<'_>,
    dead: &str,
) -> Result<Option<(i64, i64)>, StoreError> {
    let Some(row) = tx
        .query_opt(
            &format!(
                "SELECT alive_until, {DB_NOW_MS} FROM instances WHERE instance_id=$1 FOR UPDATE"
            ),
            &[&dead],
        )
        .await?
    else {
        return Ok(None);
    };
    let (until, now): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
    Ok((until < now).then_some((until, now)))
}

/// Whether the lease of instance `me` holds now.
async fn lease_holds(
    tx: &deadpool_postgres::Transaction<'_>,
    me: &str,
) -> Result<bool, StoreError> {
    let mine: Option<bool> = tx
        .query_opt(
            &format!("SELECT alive_until >= {DB_NOW_MS} FROM instances WHERE instance_id=$1"),
            &[&me],
        )
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    Ok(mine == Some(true))
}

/// Moves the dead instance's unfinished calls (queued dialouts among them) to `me`; their
/// records, queued ones in queue order.
async fn move_calls(
    tx: &deadpool_postgres::Transaction<'_>,
    me: &str,
    dead: &str,
) -> Result<Vec<CallRecord>, StoreError> {
    let ids: Vec<String> = tx
        .query(
            &format!(
                "UPDATE calls SET owner=$1 WHERE owner=$2 AND {LIVE} RETURNING conversation_id"
            ),
            &[&me, &dead],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    tx.query(
        &format!(
            "SELECT {COLUMNS} FROM calls WHERE conversation_id = ANY($1) \
             ORDER BY queued_at NULLS FIRST, seq"
        ),
        &[&ids],
    )
    .await?
    .iter()
    .map(super::calls::from_row)
    .collect()
}
