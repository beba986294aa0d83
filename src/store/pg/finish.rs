//! The end of a call on PostgreSQL: terminal state, timeline line, the dialer's notification and
//! the bot's disconnect in one transaction. The call's row is locked first, so two instances
//! ending the same call at once write one terminal and one notification.

use super::PgStore;
use super::outbox::{NewItem, insert_item};
use crate::store::calls::COLUMNS;
use crate::store::{
    CallEnd, CallRecord, CallStatus, Channel, Finished, SUPERSEDED, StoreError, kind, now_ms,
};
// deadpool's transaction: its `prepare_cached` reuses the connection's prepared statements.
use deadpool_postgres::Transaction;

impl PgStore {
    pub(crate) async fn finish_call(&self, end: CallEnd) -> Result<Finished, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let out = finish_in(&tx, &end, now_ms()).await?;
        tx.commit().await?;
        Ok(out)
    }

    pub(crate) async fn terminal_without_note(&self) -> Result<Vec<CallRecord>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM calls WHERE terminal_queued=0 \
                     AND status IN ('failed','completed') ORDER BY created_at"
                ),
                &[],
            )
            .await?;
        rows.iter().map(super::calls::from_row).collect()
    }
}

pub(super) async fn finish_in(
    tx: &Transaction<'_>,
    end: &CallEnd,
    now: i64,
) -> Result<Finished, StoreError> {
    let id = end.conversation_id.as_str();
    let Some(was_terminal) = lock_unqueued(tx, id).await? else {
        return Ok(Finished::default());
    };
    if was_terminal {
        tx.execute(
            &tx.prepare_cached("UPDATE calls SET terminal_queued=1 WHERE conversation_id=$1")
                .await?,
            &[&id],
        )
        .await?;
    } else {
        write_terminal(tx, end, now).await?;
    }
    let superseded = queue_notes(tx, end, now).await?;
    Ok(Finished {
        newly_terminal: !was_terminal,
        queued: true,
        superseded,
    })
}

/// Locks the call's row; whether the call is terminal already, or `None` when there is no
/// such call or its terminal notification is queued already (nothing left to do).
async fn lock_unqueued(tx: &Transaction<'_>, id: &str) -> Result<Option<bool>, StoreError> {
    let Some(row) = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT status, terminal_queued FROM calls WHERE conversation_id=$1 FOR UPDATE",
            )
            .await?,
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let status: String = row.try_get(0)?;
    let queued: i64 = row.try_get(1)?;
    let was_terminal = CallStatus::parse(&status).is_some_and(CallStatus::is_terminal);
    Ok((!(was_terminal && queued != 0)).then_some(was_terminal))
}

/// The call's terminal state, reason and end time, and its timeline line.
async fn write_terminal(tx: &Transaction<'_>, end: &CallEnd, now: i64) -> Result<(), StoreError> {
    let id = end.conversation_id.as_str();
    tx.execute(
        &tx.prepare_cached("UPDATE calls SET status=$2, ended_at=$3, reason_code=$4, reason=$5, sip_code=$6, terminal_queued=1 \
         WHERE conversation_id=$1").await?,
        &[
            &id,
            &end.status.as_str(),
            &now,
            &end.reason_code,
            &end.reason,
            &end.sip_code.map(i64::from),
        ],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO call_events (conversation_id, at, kind, detail) VALUES ($1,$2,$3,$4)",
        )
        .await?,
        &[
            &id,
            &now,
            &end.status.as_str(),
            &format!("{}: {}", end.reason_code, end.reason),
        ],
    )
    .await?;
    Ok(())
}

/// The dialer's terminal notification (superseding an `answered` one still being retried;
/// returns how many it superseded) and the bot's disconnect, when the conversation was opened.
async fn queue_notes(tx: &Transaction<'_>, end: &CallEnd, now: i64) -> Result<usize, StoreError> {
    let id = end.conversation_id.as_str();
    let mut superseded = 0;
    if let Some((url, body)) = &end.notification {
        superseded = tx
            .execute(
                &tx.prepare_cached(
                    "UPDATE outbox SET state='superseded', last_error=$2 \
                 WHERE conversation_id=$1 AND channel='dialer' AND state='pending' AND attempts>0 \
                   AND payload::jsonb->>'status'='answered'",
                )
                .await?,
                &[&id, &SUPERSEDED],
            )
            .await? as usize;
        let item = NewItem {
            conversation_id: id,
            channel: Channel::Dialer,
            kind: kind::STATUS,
            url: Some(url),
            payload: body.to_string(),
        };
        insert_item(tx, item, now).await?;
    }
    if let Some(body) = &end.bot_disconnect
        && bot_conversation_opened(tx, id).await?
    {
        let item = NewItem {
            conversation_id: id,
            channel: Channel::Bot,
            kind: kind::BOT_DISCONNECT,
            url: None,
            payload: body.to_string(),
        };
        insert_item(tx, item, now).await?;
    }
    Ok(superseded)
}

/// Whether the Bot API conversation was (asked to be) opened and its disconnect is not queued.
async fn bot_conversation_opened(tx: &Transaction<'_>, id: &str) -> Result<bool, StoreError> {
    let row = tx
        .query_one(
            &tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM outbox WHERE conversation_id=$1 AND channel='bot' AND kind=$2) \
               AND NOT EXISTS (SELECT 1 FROM outbox WHERE conversation_id=$1 AND channel='bot' AND kind=$3)").await?,
            &[&id, &kind::BOT_OPEN, &kind::BOT_DISCONNECT],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Whether a terminal notification of the conversation waits behind the item `after`.
pub(super) async fn terminal_note_queued(
    tx: &Transaction<'_>,
    conversation_id: &str,
    after: i64,
) -> Result<bool, StoreError> {
    let row = tx
        .query_one(
            &tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM outbox WHERE conversation_id=$1 AND channel='dialer' AND id>$2 \
             AND state='pending' AND payload::jsonb->>'status' IN ('failed','completed'))").await?,
            &[&conversation_id, &after],
        )
        .await?;
    Ok(row.try_get(0)?)
}
