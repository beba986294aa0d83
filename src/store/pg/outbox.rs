//! The outbox on PostgreSQL: queuing, reading due items, claiming them with
//! `FOR UPDATE SKIP LOCKED` (two instances never hold one item), recording attempts.

use super::PgStore;
use crate::store::claims::interleave;
use crate::store::outbox::ITEM_COLUMNS;
use crate::store::{
    AttemptOutcome, CallContext, CallSnapshot, Channel, DeliveryAttempt, DueItem, DueQuery,
    OutboxItem, Recorded, StoreError, destination_of, now_ms,
};
// deadpool's transaction: its `prepare_cached` reuses the connection's prepared statements.
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

/// One item to write into the outbox.
pub(super) struct NewItem<'a> {
    pub conversation_id: &'a str,
    pub channel: Channel,
    pub kind: &'a str,
    pub url: Option<&'a str>,
    pub payload: String,
}

/// An item from a row of `SELECT {ITEM_COLUMNS}`.
fn item(r: &Row) -> Result<OutboxItem, StoreError> {
    let id: i64 = r.try_get(0)?;
    let ch: String = r.try_get(2)?;
    Ok(OutboxItem {
        event_id: r
            .try_get::<_, Option<String>>(10)?
            .unwrap_or_else(|| format!("legacy-{id}")),
        destination: r.try_get(11)?,
        id,
        conversation_id: r.try_get(1)?,
        channel: Channel::parse(&ch),
        kind: r.try_get(3)?,
        url: r.try_get(4)?,
        payload: r.try_get(5)?,
        attempts: r.try_get(6)?,
        state: r.try_get(7)?,
        created_at: r.try_get(8)?,
        last_error: r.try_get(9)?,
    })
}

fn channel_str(c: Channel) -> &'static str {
    match c {
        Channel::Dialer => "dialer",
        Channel::Bot => "bot",
    }
}

/// Inserts one item inside the caller's transaction; due at `now`.
pub(super) async fn insert_item(
    tx: &Transaction<'_>,
    it: NewItem<'_>,
    now: i64,
) -> Result<i64, StoreError> {
    let destination = match it.url {
        Some(u) => destination_of(u),
        None => {
            let row = tx
                .query_opt(
                    &tx.prepare_cached("SELECT snapshot_json FROM calls WHERE conversation_id=$1")
                        .await?,
                    &[&it.conversation_id],
                )
                .await?;
            match row.map(|r| r.try_get::<_, Option<String>>(0)).transpose()? {
                Some(Some(json)) => {
                    let snap: CallSnapshot = serde_json::from_str(&json)?;
                    snap.bot_events_url.as_deref().and_then(destination_of)
                }
                _ => None,
            }
        }
    };
    let row = tx
        .query_one(
            &tx.prepare_cached("INSERT INTO outbox (conversation_id, channel, kind, url, payload, created_at, next_attempt_at, \
             event_id, destination) VALUES ($1,$2,$3,$4,$5,$6,$6,$7,$8) RETURNING id").await?,
            &[
                &it.conversation_id,
                &channel_str(it.channel),
                &it.kind,
                &it.url,
                &it.payload,
                &now,
                &uuid::Uuid::new_v4().to_string(),
                &destination,
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

impl PgStore {
    pub(crate) async fn enqueue(
        &self,
        conversation_id: &str,
        channel: Channel,
        kind: &str,
        url: Option<&str>,
        payload: String,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let item = NewItem {
            conversation_id,
            channel,
            kind,
            url,
            payload,
        };
        let id = insert_item(&tx, item, now_ms()).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub(crate) async fn deliveries(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<(OutboxItem, Vec<DeliveryAttempt>)>, StoreError> {
        let conn = self.conn().await?;
        let items = conn
            .query(
                &format!("SELECT {ITEM_COLUMNS} FROM outbox WHERE conversation_id=$1 ORDER BY id"),
                &[&conversation_id],
            )
            .await?
            .iter()
            .map(item)
            .collect::<Result<Vec<_>, _>>()?;
        let attempts = conn
            .query(
                &conn.prepare_cached("SELECT outbox_id, attempt, at, http_status, error, duration_ms FROM delivery_attempts \
                 WHERE conversation_id=$1 ORDER BY id").await?,
                &[&conversation_id],
            )
            .await?
            .iter()
            .map(|r| {
                Ok(DeliveryAttempt {
                    outbox_id: r.try_get(0)?,
                    attempt: r.try_get(1)?,
                    at: r.try_get(2)?,
                    http_status: r.try_get(3)?,
                    error: r.try_get(4)?,
                    duration_ms: r.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(items
            .into_iter()
            .map(|i| {
                let a = attempts
                    .iter()
                    .filter(|a| a.outbox_id == i.id)
                    .cloned()
                    .collect();
                (i, a)
            })
            .collect())
    }

    pub(crate) async fn save_bot_session(
        &self,
        conversation_id: &str,
        activities_url: &str,
        refresh_url: Option<&str>,
        disconnect_url: Option<&str>,
        expires_seconds: Option<i64>,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            &conn.prepare_cached("INSERT INTO bot_sessions VALUES ($1,$2,$3,$4,$5) ON CONFLICT (conversation_id) DO UPDATE \
             SET activities_url=excluded.activities_url, refresh_url=excluded.refresh_url, \
                 disconnect_url=excluded.disconnect_url, expires_seconds=excluded.expires_seconds").await?,
            &[
                &conversation_id,
                &activities_url,
                &refresh_url,
                &disconnect_url,
                &expires_seconds,
            ],
        )
        .await?;
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    pub(crate) async fn bot_session(
        &self,
        conversation_id: &str,
    ) -> Result<Option<(String, Option<String>, Option<String>, Option<i64>)>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &conn.prepare_cached("SELECT activities_url, refresh_url, disconnect_url, expires_seconds FROM bot_sessions \
                 WHERE conversation_id=$1").await?,
                &[&conversation_id],
            )
            .await?;
        match row {
            Some(r) => Ok(Some((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
            ))),
            None => Ok(None),
        }
    }

    pub(crate) async fn due_items(
        &self,
        q: DueQuery,
    ) -> Result<(Vec<DueItem>, Option<i64>), StoreError> {
        let conn = self.conn().await?;
        let now = now_ms();
        let destinations: Vec<Option<String>> = conn
            .query(
                &conn
                    .prepare_cached(
                        "SELECT destination, MIN(next_attempt_at) AS first FROM outbox \
                 WHERE state='pending' AND next_attempt_at<=$1 \
                   AND (destination IS NULL OR NOT (destination = ANY($2))) \
                 GROUP BY destination ORDER BY first LIMIT $3",
                    )
                    .await?,
                &[&now, &q.exclude, &i64::from(q.limit.max(1))],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let cols = ITEM_COLUMNS
            .split(", ")
            .map(|c| format!("o.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {cols}, c.client_id, c.bot_id, c.snapshot_json \
                 FROM outbox o LEFT JOIN calls c ON c.conversation_id=o.conversation_id \
                 WHERE o.state='pending' AND o.destination IS NOT DISTINCT FROM $2 AND o.next_attempt_at<=$1 \
                   AND (o.claimed_until IS NULL OR o.claimed_until<=$1) \
                   AND o.id = (SELECT MIN(p.id) FROM outbox p WHERE p.conversation_id=o.conversation_id \
                               AND p.channel=o.channel AND (p.state='pending' OR p.claimed_until>$1)) \
                 ORDER BY o.next_attempt_at, o.id LIMIT $3"
            ))
            .await?;
        let per_dest = i64::from(q.per_destination.max(1));
        let mut per = Vec::new();
        for d in &destinations {
            let rows = conn.query(&stmt, &[&now, d, &per_dest]).await?;
            per.push(rows);
        }
        let mut items = Vec::new();
        for r in interleave(per, q.limit as usize) {
            let client_id: Option<String> = r.try_get(12)?;
            let bot_id: Option<String> = r.try_get(13)?;
            let snapshot: Option<String> = r.try_get(14)?;
            let call = match client_id.zip(bot_id) {
                Some((client_id, bot_id)) => Some(CallContext {
                    client_id,
                    bot_id,
                    snapshot: snapshot.map(|s| serde_json::from_str(&s)).transpose()?,
                }),
                None => None,
            };
            items.push(DueItem {
                item: item(&r)?,
                call,
            });
        }
        let next = conn
            .query_one(
                &conn.prepare_cached("SELECT LEAST((SELECT MIN(next_attempt_at) FROM outbox WHERE state='pending' AND next_attempt_at>$1), \
                              (SELECT MIN(claimed_until) FROM outbox WHERE claimed_until>$1))").await?,
                &[&now],
            )
            .await?
            .try_get(0)?;
        Ok((items, next))
    }

    pub(crate) async fn claim(
        &self,
        ids: Vec<i64>,
        token: String,
        lease_until: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let conn = self.conn().await?;
        // Rows another instance is claiming right now are skipped, not waited for: it wins
        // them, and re-checking them after its commit would only find them claimed.
        let won: Vec<i64> = conn
            .query(
                &conn.prepare_cached("UPDATE outbox SET claim_token=$2, claimed_until=$3 WHERE id IN ( \
                   SELECT id FROM outbox WHERE id = ANY($1) AND state='pending' AND next_attempt_at<=$4 \
                     AND (claimed_until IS NULL OR claimed_until<=$4) \
                   FOR UPDATE SKIP LOCKED) RETURNING id").await?,
                &[&ids, &token, &lease_until, &now_ms()],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        // In the order asked, as the SQLite engine answers.
        Ok(ids.into_iter().filter(|i| won.contains(i)).collect())
    }

    pub(crate) async fn release_claims(&self, token: String) -> Result<usize, StoreError> {
        let conn = self.conn().await?;
        let n = conn
            .execute(
                &conn.prepare_cached("UPDATE outbox SET claim_token=NULL, claimed_until=NULL WHERE claim_token=$1").await?,
                &[&token],
            )
            .await?;
        Ok(n as usize)
    }

    pub(crate) async fn record_attempt(
        &self,
        id: i64,
        token: String,
        http_status: Option<u16>,
        error: Option<String>,
        duration_ms: i64,
        outcome: AttemptOutcome,
    ) -> Result<Recorded, StoreError> {
        let mut conn = self.conn().await?;
        let now = now_ms();
        let tx = conn.transaction().await?;
        let Some(row) = tx
            .query_opt(
                &tx.prepare_cached(
                    "SELECT conversation_id, attempts, channel, payload, claim_token \
                 FROM outbox WHERE id=$1 FOR UPDATE",
                )
                .await?,
                &[&id],
            )
            .await?
        else {
            // Pruned meanwhile: nothing left to record against.
            return Ok(Recorded::LeaseLost);
        };
        let conv: String = row.try_get(0)?;
        let attempts: i64 = row.try_get(1)?;
        let channel: String = row.try_get(2)?;
        let payload: String = row.try_get(3)?;
        let claim: Option<String> = row.try_get(4)?;
        let status = serde_json::from_str::<serde_json::Value>(&payload)
            .ok()
            .and_then(|v| v["status"].as_str().map(str::to_owned));
        tx.execute(
            &tx.prepare_cached("INSERT INTO delivery_attempts (outbox_id, conversation_id, attempt, at, http_status, error, duration_ms) \
             VALUES ($1,$2,$3,$4,$5,$6,$7)").await?,
            &[
                &id,
                &conv,
                &(attempts + 1),
                &now,
                &http_status.map(i64::from),
                &error,
                &duration_ms,
            ],
        )
        .await?;
        if claim.as_deref() != Some(token.as_str()) {
            tx.commit().await?;
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
            && super::finish::terminal_note_queued(&tx, &conv, id).await?;
        if superseded {
            state = "superseded";
            last_error = Some(crate::store::SUPERSEDED.to_owned());
        }
        // An item superseded while this attempt was under way stays superseded unless this
        // attempt delivered it.
        tx.execute(
            &tx.prepare_cached("UPDATE outbox SET attempts=attempts+1, \
               state=CASE WHEN state='superseded' AND $2<>'delivered' THEN 'superseded' ELSE $2 END, \
               next_attempt_at=$3, last_error=$4, claim_token=NULL, claimed_until=NULL \
             WHERE id=$1").await?,
            &[&id, &state, &next, &last_error],
        )
        .await?;
        tx.commit().await?;
        Ok(Recorded::Done { superseded })
    }
}
