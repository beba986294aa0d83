//! Call records: inserted when a dialout is accepted, updated as the call
//! progresses, read by the call-record API.

use super::{Store, StoreError, now_ms};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a call is in its life, as stored and reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    /// Accepted, not yet dialled.
    Queued,
    /// INVITE sent to the carrier.
    Dialing,
    /// A provisional response arrived.
    Ringing,
    /// The person answered; the bot leg is being set up.
    Answered,
    /// Both legs up and bridged.
    Connected,
    /// Ended without an answer (terminal).
    Failed,
    /// Answered, then ended (terminal).
    Completed,
}

impl CallStatus {
    /// The wire/storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Dialing => "dialing",
            CallStatus::Ringing => "ringing",
            CallStatus::Answered => "answered",
            CallStatus::Connected => "connected",
            CallStatus::Failed => "failed",
            CallStatus::Completed => "completed",
        }
    }

    /// Parses the storage spelling.
    pub fn parse(s: &str) -> Option<CallStatus> {
        Some(match s {
            "queued" => CallStatus::Queued,
            "dialing" => CallStatus::Dialing,
            "ringing" => CallStatus::Ringing,
            "answered" => CallStatus::Answered,
            "connected" => CallStatus::Connected,
            "failed" => CallStatus::Failed,
            "completed" => CallStatus::Completed,
            _ => return None,
        })
    }

    /// True for `failed` and `completed`.
    pub fn is_terminal(self) -> bool {
        matches!(self, CallStatus::Failed | CallStatus::Completed)
    }
}

/// What is written when a dialout is accepted.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub conversation_id: String,
    pub client_id: String,
    pub bot_id: String,
    pub target: String,
    /// The normalised dialout request (everything the call engine needs to
    /// place the call again after a restart).
    pub request: Value,
    pub config_version: u64,
    /// What the call keeps for life, whatever later reloads remove.
    pub snapshot: CallSnapshot,
}

/// What a call keeps from the configuration it was accepted under, for its whole life
/// (DESIGN §3: calls in flight keep their snapshot): its API client's webhook secret and its
/// bot's Bot API settings. Stored with the call, so deliveries after a reload (or a restart)
/// that removed the client or the bot are still signed and still reach the bot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSnapshot {
    /// The API client's `webhook_secret` (signs the dialer's notifications).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<String>,
    /// The bot's display name (sent when the Bot API conversation opens).
    #[serde(default)]
    pub bot_name: String,
    /// The bot's `events_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_events_url: Option<String>,
    /// The bearer token sent to the bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<String>,
}

/// The outcome of [`Store::insert_call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// A new call was written.
    New,
    /// The idempotency key was seen before: the first call's ID.
    Duplicate(String),
}

/// A call record as the API returns it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub conversation_id: String,
    pub client_id: String,
    pub bot: String,
    pub target: String,
    pub status: CallStatus,
    pub request: Value,
    pub config_version: i64,
    pub created_at: i64,
    pub dialing_at: Option<i64>,
    pub ringing_at: Option<i64>,
    pub answered_at: Option<i64>,
    pub bot_connected_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub sip_code: Option<i64>,
    pub reason: Option<String>,
    pub reason_code: Option<String>,
    pub machine_detection: Option<Value>,
    pub recognition: Option<String>,
    pub transcript: Value,
    pub recording: Option<String>,
    pub media: Option<Value>,
    /// When the dialout entered its bot's queue (`outbound.on_limit`); absent when it was
    /// dialled at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queued_at: Option<i64>,
    /// When a queued dialout left the queue to be dialled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialled_at: Option<i64>,
    /// `dialledAt - queuedAt`, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue_wait_ms: Option<i64>,
}

/// Filter and paging for `GET /api/v1/calls`.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    /// Only this API client's calls (`None`: every client's).
    pub client: Option<String>,
    pub bot: Option<String>,
    pub status: Option<CallStatus>,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: u32,
    pub offset: u32,
}

pub(super) const COLUMNS: &str = "conversation_id, client_id, bot_id, target, request_json, status, \
    config_version, created_at, dialing_at, ringing_at, answered_at, bot_connected_at, ended_at, \
    sip_code, reason, reason_code, amd_result, amd_decision_ms, amd_cause, amd_beep_ms, stt_status, \
    transcript_json, recording_path, media_json, queued_at, dialled_at";

pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<CallRecord> {
    let json = |i: usize| -> rusqlite::Result<Option<Value>> {
        let s: Option<String> = r.get(i)?;
        Ok(s.and_then(|s| serde_json::from_str(&s).ok()))
    };
    let status: String = r.get(5)?;
    let amd_result: Option<String> = r.get(16)?;
    let machine_detection = amd_result.map(|result| {
        serde_json::json!({
            "result": result,
            "decisionMs": r.get::<_, Option<i64>>(17).ok().flatten(),
            "cause": r.get::<_, Option<String>>(18).ok().flatten(),
            "beepMs": r.get::<_, Option<i64>>(19).ok().flatten(),
        })
    });
    Ok(CallRecord {
        conversation_id: r.get(0)?,
        client_id: r.get(1)?,
        bot: r.get(2)?,
        target: r.get(3)?,
        request: json(4)?.unwrap_or(Value::Null),
        status: CallStatus::parse(&status).unwrap_or(CallStatus::Failed),
        config_version: r.get(6)?,
        created_at: r.get(7)?,
        dialing_at: r.get(8)?,
        ringing_at: r.get(9)?,
        answered_at: r.get(10)?,
        bot_connected_at: r.get(11)?,
        ended_at: r.get(12)?,
        sip_code: r.get(13)?,
        reason: r.get(14)?,
        reason_code: r.get(15)?,
        machine_detection,
        recognition: r.get(20)?,
        transcript: json(21)?.unwrap_or(Value::Array(vec![])),
        recording: r.get(22)?,
        media: json(23)?,
        queued_at: r.get(24)?,
        dialled_at: r.get(25)?,
        queue_wait_ms: match (r.get::<_, Option<i64>>(24)?, r.get::<_, Option<i64>>(25)?) {
            (Some(q), Some(d)) => Some((d - q).max(0)),
            _ => None,
        },
    })
}

/// Idempotency keys are honoured for this long.
pub const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

impl Store {
    /// Writes an accepted dialout, atomically with its idempotency key.
    /// With a key already used by the same client within 24 h, nothing is
    /// written and the first call's ID is returned.
    pub async fn insert_call(
        &self,
        call: NewCall,
        idempotency_key: Option<String>,
    ) -> Result<Inserted, StoreError> {
        self.insert(call, idempotency_key, false).await
    }

    /// The same for a dialout that waits in its bot's queue (`queuedAt` set, not dialled):
    /// restart recovery leaves it waiting instead of ending it.
    pub async fn insert_queued_call(
        &self,
        call: NewCall,
        idempotency_key: Option<String>,
    ) -> Result<Inserted, StoreError> {
        self.insert(call, idempotency_key, true).await
    }

    async fn insert(
        &self,
        call: NewCall,
        idempotency_key: Option<String>,
        queued: bool,
    ) -> Result<Inserted, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.insert(call, idempotency_key, queued).await;
        }
        self.with(move |conn| {
            let now = now_ms();
            let tx = conn.savepoint()?;
            if let Some(key) = &idempotency_key {
                let prior: Option<(String, i64)> = tx
                    .query_row(
                        "SELECT conversation_id, created_at FROM idempotency WHERE client_id=?1 AND key=?2",
                        params![call.client_id, key],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                match prior {
                    Some((id, at)) if now - at < IDEMPOTENCY_WINDOW_MS => {
                        return Ok(Inserted::Duplicate(id));
                    }
                    Some(_) => {
                        tx.execute(
                            "DELETE FROM idempotency WHERE client_id=?1 AND key=?2",
                            params![call.client_id, key],
                        )?;
                    }
                    None => {}
                }
                tx.execute(
                    "INSERT INTO idempotency (client_id, key, conversation_id, created_at) VALUES (?1,?2,?3,?4)",
                    params![call.client_id, key, call.conversation_id, now],
                )?;
            }
            tx.execute(
                "INSERT INTO calls (conversation_id, client_id, bot_id, target, request_json, status, config_version, created_at, snapshot_json, queued_at) \
                 VALUES (?1,?2,?3,?4,?5,'queued',?6,?7,?8,?9)",
                params![
                    call.conversation_id,
                    call.client_id,
                    call.bot_id,
                    call.target,
                    call.request.to_string(),
                    call.config_version as i64,
                    now,
                    serde_json::to_string(&call.snapshot)?,
                    queued.then_some(now)
                ],
            )?;
            let detail = match queued {
                true => "dialout accepted and queued: the bot is at its limits",
                false => "dialout accepted",
            };
            tx.execute(
                "INSERT INTO call_events (conversation_id, at, kind, detail) VALUES (?1,?2,'accepted',?3)",
                params![call.conversation_id, now, detail],
            )?;
            tx.commit()?;
            Ok(Inserted::New)
        })
        .await
    }

    /// Reads one call record.
    pub async fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.get_call(id).await;
        }
        let id = id.to_owned();
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    &format!("SELECT {COLUMNS} FROM calls WHERE conversation_id=?1"),
                    params![id],
                    from_row,
                )
                .optional()?)
        })
        .await
    }

    /// Lists call records, newest first, with the filter's paging.
    pub async fn list_calls(&self, f: CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.list_calls(f).await;
        }
        self.with(move |conn| {
            let mut sql = format!("SELECT {COLUMNS} FROM calls WHERE 1=1");
            let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
            if let Some(c) = f.client {
                args.push(Box::new(c));
                sql.push_str(&format!(" AND client_id=?{}", args.len()));
            }
            if let Some(b) = f.bot {
                args.push(Box::new(b));
                sql.push_str(&format!(" AND bot_id=?{}", args.len()));
            }
            if let Some(s) = f.status {
                args.push(Box::new(s.as_str()));
                sql.push_str(&format!(" AND status=?{}", args.len()));
            }
            if let Some(t) = f.from_ms {
                args.push(Box::new(t));
                sql.push_str(&format!(" AND created_at>=?{}", args.len()));
            }
            if let Some(t) = f.to_ms {
                args.push(Box::new(t));
                sql.push_str(&format!(" AND created_at<?{}", args.len()));
            }
            sql.push_str(&format!(
                " ORDER BY created_at DESC, conversation_id LIMIT {} OFFSET {}",
                f.limit, f.offset
            ));
            let mut stmt = conn.prepare(&sql)?;
            let refs: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref()).collect();
            let rows = stmt.query_map(refs.as_slice(), from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Queued dialouts not yet dialled (and not ended), oldest first: the queue to restore at
    /// start. One instance (SQLite) only: in cluster mode on PostgreSQL the queue is the
    /// shared table, nothing is restored and `claim_waiting` takes from it (asked of
    /// PostgreSQL this is an error).
    pub async fn waiting_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM calls WHERE queued_at IS NOT NULL AND dialled_at IS NULL \
                 AND status NOT IN ('failed','completed') ORDER BY queued_at, rowid"
            ))?;
            let rows = stmt.query_map([], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// A queued dialout leaves its queue to be dialled (before its call starts, so a restart
    /// after this ends it like any call in progress instead of dialling it twice). One
    /// instance (SQLite) only, as [`Store::waiting_calls`]: the shared queue's dialouts leave
    /// it by `claim_waiting`.
    pub async fn mark_dialled(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.with(move |conn| {
            let n = conn.execute(
                "UPDATE calls SET dialled_at = ?2 WHERE conversation_id = ?1 AND dialled_at IS NULL \
                 AND status NOT IN ('failed','completed')",
                params![id, now_ms()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    /// Calls that were not terminal when the process last stopped (queued dialouts still
    /// waiting are not: they stay queued).
    pub async fn unfinished_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.unfinished_calls().await;
        }
        self.with(|conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM calls WHERE status NOT IN ('failed','completed') \
                 AND NOT (queued_at IS NOT NULL AND dialled_at IS NULL) ORDER BY created_at"
            ))?;
            let rows = stmt.query_map([], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Moves a call to a non-terminal status, stamping the matching time column.
    pub async fn set_progress(
        &self,
        id: &str,
        status: CallStatus,
        sip_code: Option<u16>,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.set_progress(id, status, sip_code).await;
        }
        let id = id.to_owned();
        self.with(move |conn| {
            let col = match status {
                CallStatus::Dialing => "dialing_at",
                CallStatus::Ringing => "ringing_at",
                CallStatus::Answered => "answered_at",
                CallStatus::Connected => "bot_connected_at",
                _ => "ended_at",
            };
            conn.execute(
                &format!(
                    "UPDATE calls SET status=?2, {col}=COALESCE({col}, ?3), sip_code=COALESCE(?4, sip_code) \
                     WHERE conversation_id=?1 AND status NOT IN ('failed','completed')"
                ),
                params![id, status.as_str(), now_ms(), sip_code.map(i64::from)],
            )?;
            Ok(())
        })
        .await
    }

    /// Stores the machine-detection decision (and later the beep time).
    pub async fn set_amd(
        &self,
        id: &str,
        result: Option<(&str, i64, &str)>,
        beep_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.set_amd(id, result, beep_ms).await;
        }
        let id = id.to_owned();
        let result = result.map(|(r, t, c)| (r.to_owned(), t, c.to_owned()));
        self.with(move |conn| {
            if let Some((r, t, c)) = result {
                conn.execute(
                    "UPDATE calls SET amd_result=?2, amd_decision_ms=?3, amd_cause=?4 WHERE conversation_id=?1",
                    params![id, r, t, c],
                )?;
            }
            if let Some(b) = beep_ms {
                conn.execute(
                    "UPDATE calls SET amd_beep_ms=?2 WHERE conversation_id=?1",
                    params![id, b],
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Sets a free-form column holding JSON or text: `stt_status`,
    /// `recording_path` or `media_json`.
    pub async fn set_extra(
        &self,
        id: &str,
        column: ExtraColumn,
        value: String,
    ) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.set_extra(id, column, value).await;
        }
        let id = id.to_owned();
        self.with(move |conn| {
            conn.execute(
                &format!(
                    "UPDATE calls SET {}=?2 WHERE conversation_id=?1",
                    column.name()
                ),
                params![id, value],
            )?;
            Ok(())
        })
        .await
    }

    /// Appends one recognised utterance to the call's transcript.
    pub async fn append_transcript(&self, id: &str, entry: Value) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.append_transcript(id, entry).await;
        }
        let id = id.to_owned();
        self.with(move |conn| {
            conn.execute(
                "UPDATE calls SET transcript_json=json_insert(transcript_json, '$[#]', json(?2)) WHERE conversation_id=?1",
                params![id, entry.to_string()],
            )?;
            Ok(())
        })
        .await
    }

    /// Appends a line to the call's timeline.
    pub async fn add_event(&self, id: &str, kind: &str, detail: &str) -> Result<(), StoreError> {
        if let Some(pg) = self.pg() {
            return pg.add_event(id, kind, detail).await;
        }
        let (id, kind, detail) = (id.to_owned(), kind.to_owned(), detail.to_owned());
        self.with(move |conn| {
            conn.execute(
                "INSERT INTO call_events (conversation_id, at, kind, detail) VALUES (?1,?2,?3,?4)",
                params![id, now_ms(), kind, detail],
            )?;
            Ok(())
        })
        .await
    }

    /// The call's timeline, oldest first: `(at_ms, kind, detail)`.
    pub async fn events(&self, id: &str) -> Result<Vec<(i64, String, String)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.events(id).await;
        }
        let id = id.to_owned();
        self.with(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT at, kind, detail FROM call_events WHERE conversation_id=?1 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Number of calls per status, for metrics.
    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.count_by_status().await;
        }
        self.with(|conn| {
            let mut stmt = conn.prepare("SELECT status, COUNT(*) FROM calls GROUP BY status")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

/// Free-form columns of the call record.
#[derive(Debug, Clone, Copy)]
pub enum ExtraColumn {
    SttStatus,
    Recording,
    Media,
}

impl ExtraColumn {
    pub(super) fn name(self) -> &'static str {
        match self {
            ExtraColumn::SttStatus => "stt_status",
            ExtraColumn::Recording => "recording_path",
            ExtraColumn::Media => "media_json",
        }
    }
}

impl Store {
    /// The call first accepted under this idempotency key, within 24 h.
    pub async fn find_idempotent(
        &self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        if let Some(pg) = self.pg() {
            return pg.find_idempotent(client_id, key).await;
        }
        let (c, k) = (client_id.to_owned(), key.to_owned());
        self.with(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT conversation_id FROM idempotency WHERE client_id=?1 AND key=?2 AND created_at>?3",
                    params![c, k, now_ms() - IDEMPOTENCY_WINDOW_MS],
                    |r| r.get(0),
                )
                .optional()?)
        })
        .await
    }
}
