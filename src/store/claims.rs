//! Taking outbox items for delivery, exactly once.
//!
//! A worker reads candidates ([`Store::due_items`]), which may be stale by the time it acts on
//! them, then claims each with a conditional `UPDATE` ([`Store::claim`]): only a pending, due,
//! unclaimed item can be claimed, so an item is sent by one worker (of one or of several
//! processes) at a time. A claim is a lease: a process that dies while delivering leaves its
//! items to be taken again once the lease ends (the receiver sees the same event id again).
//! [`Store::record_attempt`] releases the claim with the attempt's outcome.

use super::outbox::{ITEM_COLUMNS, item};
use super::{CallSnapshot, OutboxItem, Store, StoreError, now_ms};
use rusqlite::{OptionalExtension, params};

/// A due item with what its delivery needs from its call.
#[derive(Debug, Clone)]
pub struct DueItem {
    pub item: OutboxItem,
    /// The call the item belongs to (`None` if the record is gone).
    pub call: Option<CallContext>,
}

/// The parts of the call record a delivery uses.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub client_id: String,
    pub bot_id: String,
    /// `None` for calls stored before snapshots existed.
    pub snapshot: Option<CallSnapshot>,
}

/// Which candidates [`Store::due_items`] returns.
#[derive(Debug, Clone, Default)]
pub struct DueQuery {
    /// At most this many items.
    pub limit: u32,
    /// At most this many items per destination (the batch interleaves destinations, so one
    /// destination's backlog cannot fill it).
    pub per_destination: u32,
    /// Destinations to leave out (they are at their concurrency limit).
    pub exclude: Vec<String>,
}

/// How an attempt ended, for [`Store::record_attempt`].
#[derive(Debug, Clone)]
pub enum AttemptOutcome {
    Delivered,
    /// Try again at this time (unix ms).
    Retry {
        at_ms: i64,
    },
    /// Retry budget exhausted or not retryable.
    GiveUp,
}

/// What [`Store::record_attempt`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The item moved on; `superseded`: an `answered` notification that failed while the
    /// call's terminal notification waited behind it was given up as superseded.
    Done { superseded: bool },
    /// The claim was no longer ours (its lease ended and the item was taken again): the
    /// attempt is recorded, the item's state is left to its new owner.
    LeaseLost,
}

impl Store {
    /// Pending items that are due, not claimed, and at the head of their conversation's queue
    /// on their channel (an item still being delivered holds the items behind it, so one
    /// conversation's items go out in order), interleaved by destination; plus the earliest
    /// time something else becomes due (a retry time or the end of a lease).
    pub async fn due_items(&self, q: DueQuery) -> Result<(Vec<DueItem>, Option<i64>), StoreError> {
        self.with(move |conn| {
            let now = now_ms();
            let exclude = serde_json::to_string(&q.exclude)?;
            let cols = ITEM_COLUMNS
                .split(", ")
                .map(|c| format!("h.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "WITH heads AS ( \
                   SELECT o.*, ROW_NUMBER() OVER (PARTITION BY o.destination ORDER BY o.next_attempt_at, o.id) AS rn \
                   FROM outbox o \
                   WHERE o.state='pending' AND o.next_attempt_at<=?1 \
                     AND (o.claimed_until IS NULL OR o.claimed_until<=?1) \
                     AND (o.destination IS NULL OR o.destination NOT IN (SELECT value FROM json_each(?2))) \
                     AND o.id = (SELECT MIN(p.id) FROM outbox p WHERE p.conversation_id=o.conversation_id \
                                 AND p.channel=o.channel AND (p.state='pending' OR p.claimed_until>?1))) \
                 SELECT {cols}, c.client_id, c.bot_id, c.snapshot_json \
                 FROM heads h LEFT JOIN calls c ON c.conversation_id=h.conversation_id \
                 WHERE h.rn<=?3 ORDER BY h.rn, h.next_attempt_at, h.id LIMIT ?4"
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(
                params![now, exclude, q.per_destination.max(1), q.limit],
                |r| {
                    let client_id: Option<String> = r.get(12)?;
                    let bot_id: Option<String> = r.get(13)?;
                    let snapshot: Option<String> = r.get(14)?;
                    Ok((item(r)?, client_id, bot_id, snapshot))
                },
            )?;
            let mut items = Vec::new();
            for row in rows {
                let (item, client_id, bot_id, snapshot) = row?;
                let call = match (client_id, bot_id) {
                    (Some(client_id), Some(bot_id)) => Some(CallContext {
                        client_id,
                        bot_id,
                        snapshot: snapshot.map(|s| serde_json::from_str(&s)).transpose()?,
                    }),
                    _ => None,
                };
                items.push(DueItem { item, call });
            }
            let next: Option<i64> = conn.query_row(
                "SELECT MIN(max(next_attempt_at, COALESCE(claimed_until, 0))) FROM outbox \
                 WHERE state='pending' AND max(next_attempt_at, COALESCE(claimed_until, 0))>?1",
                params![now],
                |r| r.get(0),
            )?;
            Ok((items, next))
        })
        .await
    }

    /// Claims the items `ids` for `token` until `lease_until` (unix ms), each with a
    /// conditional UPDATE that only a pending, due, unclaimed item passes. Returns the ids
    /// claimed; the others were taken or finished by someone else since they were read.
    pub async fn claim(
        &self,
        ids: Vec<i64>,
        token: String,
        lease_until: i64,
    ) -> Result<Vec<i64>, StoreError> {
        self.with(move |conn| {
            let now = now_ms();
            let tx = conn.transaction()?;
            let mut won = Vec::with_capacity(ids.len());
            {
                let mut stmt = tx.prepare(
                    "UPDATE outbox SET claim_token=?2, claimed_until=?3 \
                     WHERE id=?1 AND state='pending' AND next_attempt_at<=?4 \
                       AND (claimed_until IS NULL OR claimed_until<=?4)",
                )?;
                for id in ids {
                    if stmt.execute(params![id, token, lease_until, now])? == 1 {
                        won.push(id);
                    }
                }
            }
            tx.commit()?;
            Ok(won)
        })
        .await
    }

    /// Gives back every claim held with `token` (a worker stopping); returns how many.
    pub async fn release_claims(&self, token: String) -> Result<usize, StoreError> {
        self.with(move |conn| {
            Ok(conn.execute(
                "UPDATE outbox SET claim_token=NULL, claimed_until=NULL WHERE claim_token=?1",
                params![token],
            )?)
        })
        .await
    }

    /// Records one attempt of a claimed item, moves the item on and releases the claim.
    pub async fn record_attempt(
        &self,
        id: i64,
        token: String,
        http_status: Option<u16>,
        error: Option<String>,
        duration_ms: i64,
        outcome: AttemptOutcome,
    ) -> Result<Recorded, StoreError> {
        self.with(move |conn| {
            let now = now_ms();
            let tx = conn.transaction()?;
            let Some((conv, attempts, channel, status, claim)) = tx
                .query_row(
                    "SELECT conversation_id, attempts, channel, json_extract(payload, '$.status'), claim_token \
                     FROM outbox WHERE id=?1",
                    params![id],
                    |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<String>>(3).ok().flatten(),
                            r.get::<_, Option<String>>(4)?,
                        ))
                    },
                )
                .optional()?
            else {
                // Pruned meanwhile: nothing left to record against.
                return Ok(Recorded::LeaseLost);
            };
            tx.execute(
                "INSERT INTO delivery_attempts (outbox_id, conversation_id, attempt, at, http_status, error, duration_ms) \
                 VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![id, conv, attempts + 1, now, http_status.map(i64::from), error, duration_ms],
            )?;
            if claim.as_deref() != Some(token.as_str()) {
                tx.commit()?;
                return Ok(Recorded::LeaseLost);
            }
            let (mut state, next) = match outcome {
                AttemptOutcome::Delivered => ("delivered", now),
                AttemptOutcome::Retry { at_ms } => ("pending", at_ms),
                AttemptOutcome::GiveUp => ("failed", now),
            };
            let mut last_error = error;
            let superseded = state == "pending"
                && channel == "dialer"
                && status.as_deref() == Some("answered")
                && super::finish::terminal_note_queued(&tx, &conv, id)?;
            if superseded {
                state = "superseded";
                last_error = Some(super::finish::SUPERSEDED.to_owned());
            }
            // An item superseded while this attempt was under way stays superseded unless
            // this attempt delivered it.
            tx.execute(
                "UPDATE outbox SET attempts=attempts+1, \
                   state=CASE WHEN state='superseded' AND ?2<>'delivered' THEN 'superseded' ELSE ?2 END, \
                   next_attempt_at=?3, last_error=?4, claim_token=NULL, claimed_until=NULL \
                 WHERE id=?1",
                params![id, state, next, last_error],
            )?;
            tx.commit()?;
            Ok(Recorded::Done { superseded })
        })
        .await
    }
}
