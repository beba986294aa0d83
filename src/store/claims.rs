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
    /// conversation's items go out in order), at most `per_destination` per destination,
    /// destinations taken by their longest-waiting item and interleaved in the result (so one
    /// destination's backlog cannot fill the batch); plus the earliest time something else
    /// becomes due (a retry time or the end of a lease).
    ///
    /// Each destination is read through the `(state, destination, next_attempt_at)` index and
    /// stops at its limit, so a backlog of thousands of items costs a few index steps, not a
    /// sort of the whole backlog on every round.
    pub async fn due_items(&self, q: DueQuery) -> Result<(Vec<DueItem>, Option<i64>), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.due_items(q).await;
        }
        self.with(move |conn| {
            let now = now_ms();
            let destinations = due_destinations(conn, now, &q)?;
            let per_dest = q.per_destination.max(1);
            let cols = ITEM_COLUMNS
                .split(", ")
                .map(|c| format!("o.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {cols}, c.client_id, c.bot_id, c.snapshot_json \
                 FROM outbox o LEFT JOIN calls c ON c.conversation_id=o.conversation_id \
                 WHERE o.state='pending' AND o.destination IS ?2 AND o.next_attempt_at<=?1 \
                   AND (o.claimed_until IS NULL OR o.claimed_until<=?1) \
                   AND o.id = (SELECT MIN(p.id) FROM outbox p WHERE p.conversation_id=o.conversation_id \
                               AND p.channel=o.channel AND (p.state='pending' OR p.claimed_until>?1)) \
                 ORDER BY o.next_attempt_at, o.id LIMIT ?3"
            ))?;
            let mut per: Vec<Vec<(OutboxItem, Option<CallRow>)>> = Vec::new();
            for d in &destinations {
                let rows = stmt.query_map(params![now, d, per_dest], due_row)?;
                per.push(rows.collect::<Result<Vec<_>, _>>()?);
            }
            let items = interleave(per, q.limit as usize)
                .into_iter()
                .map(|(item, call)| Ok(DueItem { item, call: call.map(CallRow::into_context).transpose()? }))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((items, next_due(conn, now)?))
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
        if let Some(pg) = self.pg() {
            return pg.claim(ids, token, lease_until).await;
        }
        self.with(move |conn| {
            let now = now_ms();
            let tx = conn.savepoint()?;
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
        if let Some(pg) = self.pg() {
            return pg.release_claims(token).await;
        }
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
        if let Some(pg) = self.pg() {
            return pg
                .record_attempt(id, token, http_status, error, duration_ms, outcome)
                .await;
        }
        self.with(move |conn| {
            let now = now_ms();
            let tx = conn.savepoint()?;
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

/// The call columns read with an item, before their JSON is parsed.
struct CallRow {
    client_id: String,
    bot_id: String,
    snapshot: Option<String>,
}

impl CallRow {
    fn into_context(self) -> Result<CallContext, StoreError> {
        Ok(CallContext {
            client_id: self.client_id,
            bot_id: self.bot_id,
            snapshot: self
                .snapshot
                .map(|s| serde_json::from_str(&s))
                .transpose()?,
        })
    }
}

fn due_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(OutboxItem, Option<CallRow>)> {
    let client_id: Option<String> = r.get(12)?;
    let bot_id: Option<String> = r.get(13)?;
    let snapshot: Option<String> = r.get(14)?;
    let call = client_id.zip(bot_id).map(|(client_id, bot_id)| CallRow {
        client_id,
        bot_id,
        snapshot,
    });
    Ok((item(r)?, call))
}

/// Destinations with due pending items, longest-waiting first, without the excluded ones;
/// at most `limit` of them.
fn due_destinations(
    conn: &rusqlite::Connection,
    now: i64,
    q: &DueQuery,
) -> Result<Vec<Option<String>>, StoreError> {
    let exclude = serde_json::to_string(&q.exclude)?;
    let mut stmt = conn.prepare_cached(
        "SELECT destination, MIN(next_attempt_at) AS first FROM outbox \
         WHERE state='pending' AND next_attempt_at<=?1 \
           AND (destination IS NULL OR destination NOT IN (SELECT value FROM json_each(?2))) \
         GROUP BY destination ORDER BY first LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![now, exclude, q.limit.max(1)], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Round-robin over the destinations' lists: the first item of each, then the second…
pub(super) fn interleave<T>(per: Vec<Vec<T>>, limit: usize) -> Vec<T> {
    let mut iters: Vec<_> = per.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::new();
    loop {
        let before = out.len();
        for it in iters.iter_mut() {
            if out.len() >= limit {
                return out;
            }
            out.extend(it.next());
        }
        if out.len() == before {
            return out;
        }
    }
}

/// The earliest future retry time or lease end, when the worker must look again.
fn next_due(conn: &rusqlite::Connection, now: i64) -> Result<Option<i64>, StoreError> {
    let retry: Option<i64> = conn.query_row(
        "SELECT MIN(next_attempt_at) FROM outbox WHERE state='pending' AND next_attempt_at>?1",
        params![now],
        |r| r.get(0),
    )?;
    let lease: Option<i64> = conn.query_row(
        "SELECT MIN(claimed_until) FROM outbox WHERE claimed_until>?1",
        params![now],
        |r| r.get(0),
    )?;
    Ok(match (retry, lease) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

#[cfg(test)]
mod tests {
    use super::interleave;

    #[test]
    fn interleave_takes_one_of_each_in_turn_up_to_the_limit() {
        let per = vec![vec![1, 2, 3], vec![10], vec![20, 21]];
        assert_eq!(interleave(per.clone(), 10), vec![1, 10, 20, 2, 21, 3]);
        assert_eq!(interleave(per, 4), vec![1, 10, 20, 2]);
        assert!(interleave(Vec::<Vec<u8>>::new(), 3).is_empty());
    }
}
