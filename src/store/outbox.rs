//! The durable outbox: dialer notifications and bot events wait here until
//! delivered (or their retry budget ends), so nothing is lost across a restart.
//! Items of one conversation and channel are delivered strictly in order.

use super::{Store, StoreError, now_ms};
use rusqlite::{Row, params};
use serde::Serialize;

/// Who an outbox item is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Status notifications to the dialer's `notifyUrl`.
    Dialer,
    /// Bot API requests to the bot's `events_url`.
    Bot,
}

impl Channel {
    fn as_str(self) -> &'static str {
        match self {
            Channel::Dialer => "dialer",
            Channel::Bot => "bot",
        }
    }
    fn parse(s: &str) -> Channel {
        if s == "bot" {
            Channel::Bot
        } else {
            Channel::Dialer
        }
    }
}

/// One pending delivery.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxItem {
    pub id: i64,
    pub conversation_id: String,
    pub channel: Channel,
    pub kind: String,
    pub url: Option<String>,
    pub payload: String,
    pub attempts: i64,
    pub state: String,
    pub created_at: i64,
    pub last_error: Option<String>,
}

/// One delivery attempt, as shown on the call record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    pub outbox_id: i64,
    pub attempt: i64,
    pub at: i64,
    pub http_status: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

fn item(r: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    let ch: String = r.get(2)?;
    Ok(OutboxItem {
        id: r.get(0)?,
        conversation_id: r.get(1)?,
        channel: Channel::parse(&ch),
        kind: r.get(3)?,
        url: r.get(4)?,
        payload: r.get(5)?,
        attempts: r.get(6)?,
        state: r.get(7)?,
        created_at: r.get(8)?,
        last_error: r.get(9)?,
    })
}

const ITEM_COLUMNS: &str =
    "id, conversation_id, channel, kind, url, payload, attempts, state, created_at, last_error";

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

impl Store {
    /// Queues one delivery; it becomes due at once.
    pub async fn enqueue(
        &self,
        conversation_id: &str,
        channel: Channel,
        kind: &str,
        url: Option<&str>,
        payload: String,
    ) -> Result<i64, StoreError> {
        let (c, k, u) = (
            conversation_id.to_owned(),
            kind.to_owned(),
            url.map(str::to_owned),
        );
        self.with(move |conn| {
            let now = now_ms();
            conn.execute(
                "INSERT INTO outbox (conversation_id, channel, kind, url, payload, created_at, next_attempt_at) \
                 VALUES (?1,?2,?3,?4,?5,?6,?6)",
                params![c, channel.as_str(), k, u, payload, now],
            )?;
            Ok(conn.last_insert_rowid())
        })
        .await
    }

    /// Pending items that are due now and at the head of their
    /// conversation's queue (so one conversation's items go out in order),
    /// plus the earliest future due time of any pending item.
    pub async fn due_items(
        &self,
        limit: u32,
    ) -> Result<(Vec<OutboxItem>, Option<i64>), StoreError> {
        self.with(move |conn| {
            let now = now_ms();
            let mut stmt = conn.prepare(&format!(
                "SELECT {ITEM_COLUMNS} FROM outbox o WHERE state='pending' AND next_attempt_at<=?1 \
                 AND id = (SELECT MIN(id) FROM outbox p WHERE p.conversation_id=o.conversation_id \
                           AND p.channel=o.channel AND p.state='pending') \
                 ORDER BY next_attempt_at, id LIMIT ?2"
            ))?;
            let items = stmt
                .query_map(params![now, limit], item)?
                .collect::<Result<Vec<_>, _>>()?;
            let next: Option<i64> = conn.query_row(
                "SELECT MIN(next_attempt_at) FROM outbox WHERE state='pending' AND next_attempt_at>?1",
                params![now],
                |r| r.get(0),
            )?;
            Ok((items, next))
        })
        .await
    }

    /// Records one attempt and moves the item on.
    pub async fn record_attempt(
        &self,
        id: i64,
        http_status: Option<u16>,
        error: Option<String>,
        duration_ms: i64,
        outcome: AttemptOutcome,
    ) -> Result<(), StoreError> {
        self.with(move |conn| {
            let now = now_ms();
            let tx = conn.transaction()?;
            let (conv, attempts): (String, i64) = tx.query_row(
                "SELECT conversation_id, attempts FROM outbox WHERE id=?1",
                params![id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            tx.execute(
                "INSERT INTO delivery_attempts (outbox_id, conversation_id, attempt, at, http_status, error, duration_ms) \
                 VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![id, conv, attempts + 1, now, http_status.map(i64::from), error, duration_ms],
            )?;
            let (state, next) = match outcome {
                AttemptOutcome::Delivered => ("delivered", now),
                AttemptOutcome::Retry { at_ms } => ("pending", at_ms),
                AttemptOutcome::GiveUp => ("failed", now),
            };
            tx.execute(
                "UPDATE outbox SET attempts=attempts+1, state=?2, next_attempt_at=?3, last_error=?4 WHERE id=?1",
                params![id, state, next, error],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Every outbox item of a conversation with its attempts, oldest first.
    pub async fn deliveries(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<(OutboxItem, Vec<DeliveryAttempt>)>, StoreError> {
        let c = conversation_id.to_owned();
        self.with(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {ITEM_COLUMNS} FROM outbox WHERE conversation_id=?1 ORDER BY id"
            ))?;
            let items = stmt
                .query_map(params![c], item)?
                .collect::<Result<Vec<_>, _>>()?;
            let mut stmt = conn.prepare(
                "SELECT outbox_id, attempt, at, http_status, error, duration_ms FROM delivery_attempts \
                 WHERE conversation_id=?1 ORDER BY id",
            )?;
            let attempts = stmt
                .query_map(params![c], |r| {
                    Ok(DeliveryAttempt {
                        outbox_id: r.get(0)?,
                        attempt: r.get(1)?,
                        at: r.get(2)?,
                        http_status: r.get(3)?,
                        error: r.get(4)?,
                        duration_ms: r.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(items
                .into_iter()
                .map(|i| {
                    let a = attempts.iter().filter(|a| a.outbox_id == i.id).cloned().collect();
                    (i, a)
                })
                .collect())
        })
        .await
    }

    /// Saves the Bot API conversation URLs returned when it was opened.
    pub async fn save_bot_session(
        &self,
        conversation_id: &str,
        activities_url: &str,
        refresh_url: Option<&str>,
        disconnect_url: Option<&str>,
        expires_seconds: Option<i64>,
    ) -> Result<(), StoreError> {
        let v = (
            conversation_id.to_owned(),
            activities_url.to_owned(),
            refresh_url.map(str::to_owned),
            disconnect_url.map(str::to_owned),
        );
        self.with(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO bot_sessions VALUES (?1,?2,?3,?4,?5)",
                params![v.0, v.1, v.2, v.3, expires_seconds],
            )?;
            Ok(())
        })
        .await
    }

    /// The Bot API conversation URLs, if the conversation was opened.
    pub async fn bot_session(
        &self,
        conversation_id: &str,
    ) -> Result<Option<(String, Option<String>, Option<String>, Option<i64>)>, StoreError> {
        let c = conversation_id.to_owned();
        self.with(move |conn| {
            use rusqlite::OptionalExtension;
            Ok(conn
                .query_row(
                    "SELECT activities_url, refresh_url, disconnect_url, expires_seconds FROM bot_sessions WHERE conversation_id=?1",
                    params![c],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?)
        })
        .await
    }
}
