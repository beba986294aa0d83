//! The end of a call, written once: its terminal state, its timeline line, the dialer's
//! terminal notification and the bot's disconnect in ONE transaction, so a crash can never
//! leave a terminal call without its notification (or a notification for a live call).

use super::outbox::{NewItem, insert_item};
use super::{CallRecord, CallStatus, Channel, Store, StoreError, kind, now_ms};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// `last_error` of an `answered` notification replaced by the terminal one.
pub const SUPERSEDED: &str = "superseded by the call's terminal notification";

/// Everything that is written when a call ends.
#[derive(Debug, Clone)]
pub struct CallEnd {
    pub conversation_id: String,
    /// `failed` or `completed`.
    pub status: CallStatus,
    pub reason_code: String,
    pub reason: String,
    pub sip_code: Option<u16>,
    /// The dialer's terminal notification: `(notifyUrl, body)`.
    pub notification: Option<(String, Value)>,
    /// The Bot API disconnect body; queued only when the bot conversation was opened (its
    /// `open` request is in the outbox).
    pub bot_disconnect: Option<Value>,
}

/// What [`Store::finish_call`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Finished {
    /// The call became terminal now (false: it already was).
    pub newly_terminal: bool,
    /// The terminal items were queued now (false: they already were, or the call is unknown).
    pub queued: bool,
    /// `answered` notifications given up as superseded by the terminal one.
    pub superseded: usize,
}

impl Store {
    /// Ends a call: terminal state, timeline, terminal notification and bot disconnect in one
    /// transaction. The first end wins; a call already terminal whose terminal items were
    /// never queued (stored by an older dialgate) gets them now, once.
    ///
    /// Superseding: an `answered` notification still pending that has already failed at
    /// least once is given up (state `superseded`) so the terminal notification is due at
    /// once with its own retry budget instead of waiting for `answered` to spend its budget.
    /// An `answered` that has not been tried yet stays, so healthy dialers still see it first.
    pub async fn finish_call(&self, end: CallEnd) -> Result<Finished, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.finish_call(end).await;
        }
        self.with(move |conn| {
            let now = now_ms();
            let tx = conn.savepoint()?;
            let out = finish_in(&tx, &end, now)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Calls that are terminal but whose terminal items were never queued.
    pub async fn terminal_without_note(&self) -> Result<Vec<CallRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.terminal_without_note().await;
        }
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {} FROM calls WHERE terminal_queued=0 AND status IN ('failed','completed') \
                 ORDER BY created_at",
                super::calls::COLUMNS
            ))?;
            let rows = stmt.query_map([], super::calls::from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

pub(super) fn finish_in(tx: &Connection, end: &CallEnd, now: i64) -> Result<Finished, StoreError> {
    let id = end.conversation_id.as_str();
    let row: Option<(String, i64)> = tx
        .query_row(
            "SELECT status, terminal_queued FROM calls WHERE conversation_id=?1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((status, queued)) = row else {
        return Ok(Finished::default());
    };
    let was_terminal = CallStatus::parse(&status).is_some_and(CallStatus::is_terminal);
    if was_terminal && queued != 0 {
        return Ok(Finished::default());
    }
    if was_terminal {
        tx.execute(
            "UPDATE calls SET terminal_queued=1 WHERE conversation_id=?1",
            params![id],
        )?;
    } else {
        tx.execute(
            "UPDATE calls SET status=?2, ended_at=?3, reason_code=?4, reason=?5, sip_code=?6, terminal_queued=1 \
             WHERE conversation_id=?1",
            params![
                id,
                end.status.as_str(),
                now,
                end.reason_code,
                end.reason,
                end.sip_code.map(i64::from)
            ],
        )?;
        tx.execute(
            "INSERT INTO call_events (conversation_id, at, kind, detail) VALUES (?1,?2,?3,?4)",
            params![
                id,
                now,
                end.status.as_str(),
                format!("{}: {}", end.reason_code, end.reason)
            ],
        )?;
    }
    let mut superseded = 0;
    if let Some((url, body)) = &end.notification {
        superseded = tx.execute(
            "UPDATE outbox SET state='superseded', last_error=?2 \
             WHERE conversation_id=?1 AND channel='dialer' AND state='pending' AND attempts>0 \
               AND json_extract(payload, '$.status')='answered'",
            params![id, SUPERSEDED],
        )?;
        let item = NewItem {
            conversation_id: id,
            channel: Channel::Dialer,
            kind: kind::STATUS,
            url: Some(url),
            payload: body.to_string(),
        };
        insert_item(tx, item, now)?;
    }
    if let Some(body) = &end.bot_disconnect
        && bot_conversation_opened(tx, id)?
    {
        let item = NewItem {
            conversation_id: id,
            channel: Channel::Bot,
            kind: kind::BOT_DISCONNECT,
            url: None,
            payload: body.to_string(),
        };
        insert_item(tx, item, now)?;
    }
    Ok(Finished {
        newly_terminal: !was_terminal,
        queued: true,
        superseded,
    })
}

/// Whether the Bot API conversation was (asked to be) opened for this call and its
/// disconnect is not queued yet.
fn bot_conversation_opened(tx: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE conversation_id=?1 AND channel='bot' AND kind=?2) \
           AND NOT EXISTS (SELECT 1 FROM outbox WHERE conversation_id=?1 AND channel='bot' AND kind=?3)",
        params![id, kind::BOT_OPEN, kind::BOT_DISCONNECT],
        |r| r.get(0),
    )?)
}

/// Whether a terminal notification of the conversation waits behind the item `after`.
pub(super) fn terminal_note_queued(
    tx: &Connection,
    conversation_id: &str,
    after: i64,
) -> Result<bool, StoreError> {
    Ok(tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE conversation_id=?1 AND channel='dialer' AND id>?2 \
         AND state='pending' AND json_extract(payload, '$.status') IN ('failed','completed'))",
        params![conversation_id, after],
        |r| r.get(0),
    )?)
}
