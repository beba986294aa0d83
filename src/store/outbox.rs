//! The durable outbox: dialer notifications and bot events wait here until
//! delivered (or their retry budget ends), so nothing is lost across a restart.
//! Items of one conversation and channel are delivered strictly in order.
//!
//! Item states: `pending` (waiting or being delivered), `delivered`, `failed` (retry budget
//! spent or not retryable) and `superseded` (an `answered` notification that the call's
//! terminal notification replaced, see [`Store::finish_call`]).

use super::{Store, StoreError, now_ms};
use rusqlite::{Connection, OptionalExtension, Row, params};
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
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Channel::Dialer => "dialer",
            Channel::Bot => "bot",
        }
    }
    pub(super) fn parse(s: &str) -> Channel {
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
    /// Stable across retries and restarts: the receiver's deduplication key
    /// (`X-Dialgate-Event-Id`).
    pub event_id: String,
    /// `scheme://host:port` the item goes to, when known (per-destination concurrency).
    pub destination: Option<String>,
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

pub(super) fn item(r: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    let ch: String = r.get(2)?;
    let id: i64 = r.get(0)?;
    Ok(OutboxItem {
        event_id: r
            .get::<_, Option<String>>(10)?
            .unwrap_or_else(|| format!("legacy-{id}")),
        destination: r.get(11)?,
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

pub(super) const ITEM_COLUMNS: &str = "id, conversation_id, channel, kind, url, payload, attempts, \
    state, created_at, last_error, event_id, destination";

/// `scheme://host:port` of a URL (the default port filled in), the unit of per-destination
/// delivery concurrency; `None` for a URL that does not parse.
pub fn destination_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = u.host_str()?;
    let port = u.port_or_known_default()?;
    Some(format!("{}://{host}:{port}", u.scheme()))
}

/// One item to write into the outbox.
pub(super) struct NewItem<'a> {
    pub conversation_id: &'a str,
    pub channel: Channel,
    pub kind: &'a str,
    pub url: Option<&'a str>,
    pub payload: String,
}

/// Inserts one item (inside the caller's transaction); it becomes due at `now`. Bot requests
/// without their own URL go to the bot of the call's snapshot: that is their destination.
pub(super) fn insert_item(conn: &Connection, it: NewItem<'_>, now: i64) -> Result<i64, StoreError> {
    let destination = match it.url {
        Some(u) => destination_of(u),
        None => bot_destination(conn, it.conversation_id)?,
    };
    conn.execute(
        "INSERT INTO outbox (conversation_id, channel, kind, url, payload, created_at, next_attempt_at, \
         event_id, destination) VALUES (?1,?2,?3,?4,?5,?6,?6,?7,?8)",
        params![
            it.conversation_id,
            it.channel.as_str(),
            it.kind,
            it.url,
            it.payload,
            now,
            uuid::Uuid::new_v4().to_string(),
            destination
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The destination of the call's bot (its snapshot's events URL).
fn bot_destination(conn: &Connection, conversation_id: &str) -> Result<Option<String>, StoreError> {
    let snap: Option<Option<String>> = conn
        .query_row(
            "SELECT snapshot_json FROM calls WHERE conversation_id=?1",
            params![conversation_id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(Some(json)) = snap else {
        return Ok(None);
    };
    let snap: super::CallSnapshot = serde_json::from_str(&json)?;
    Ok(snap.bot_events_url.as_deref().and_then(destination_of))
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
        if let Some(pg) = self.pg() {
            return pg
                .enqueue(conversation_id, channel, kind, url, payload)
                .await;
        }
        let (c, k, u) = (
            conversation_id.to_owned(),
            kind.to_owned(),
            url.map(str::to_owned),
        );
        self.with(move |conn| {
            let item = NewItem {
                conversation_id: &c,
                channel,
                kind: &k,
                url: u.as_deref(),
                payload,
            };
            insert_item(conn, item, now_ms())
        })
        .await
    }

    /// Every outbox item of a conversation with its attempts, oldest first.
    pub async fn deliveries(
        &self,
        conversation_id: &str,
    ) -> Result<Vec<(OutboxItem, Vec<DeliveryAttempt>)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.deliveries(conversation_id).await;
        }
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
        if let Some(pg) = self.pg() {
            return pg
                .save_bot_session(
                    conversation_id,
                    activities_url,
                    refresh_url,
                    disconnect_url,
                    expires_seconds,
                )
                .await;
        }
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
        if let Some(pg) = self.pg() {
            return pg.bot_session(conversation_id).await;
        }
        let c = conversation_id.to_owned();
        self.with(move |conn| {
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
