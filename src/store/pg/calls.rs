//! Call records and idempotency keys on PostgreSQL (see `store::calls` for the semantics).

use super::PgStore;
use crate::store::calls::COLUMNS;
use crate::store::{
    CallFilter, CallRecord, CallStatus, ExtraColumn, IDEMPOTENCY_WINDOW_MS, Inserted, NewCall,
    StoreError, now_ms,
};
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// A call record from a row of `SELECT {COLUMNS}`.
pub(super) fn from_row(r: &Row) -> Result<CallRecord, StoreError> {
    let json = |i: usize| -> Result<Option<Value>, StoreError> {
        let s: Option<String> = r.try_get(i)?;
        Ok(s.and_then(|s| serde_json::from_str(&s).ok()))
    };
    let status: String = r.try_get(5)?;
    let amd_result: Option<String> = r.try_get(16)?;
    let machine_detection = match amd_result {
        Some(result) => Some(serde_json::json!({
            "result": result,
            "decisionMs": r.try_get::<_, Option<i64>>(17)?,
            "cause": r.try_get::<_, Option<String>>(18)?,
            "beepMs": r.try_get::<_, Option<i64>>(19)?,
        })),
        None => None,
    };
    let queued_at: Option<i64> = r.try_get(24)?;
    let dialled_at: Option<i64> = r.try_get(25)?;
    Ok(CallRecord {
        conversation_id: r.try_get(0)?,
        client_id: r.try_get(1)?,
        bot: r.try_get(2)?,
        target: r.try_get(3)?,
        request: json(4)?.unwrap_or(Value::Null),
        status: CallStatus::parse(&status).unwrap_or(CallStatus::Failed),
        config_version: r.try_get(6)?,
        created_at: r.try_get(7)?,
        dialing_at: r.try_get(8)?,
        ringing_at: r.try_get(9)?,
        answered_at: r.try_get(10)?,
        bot_connected_at: r.try_get(11)?,
        ended_at: r.try_get(12)?,
        sip_code: r.try_get(13)?,
        reason: r.try_get(14)?,
        reason_code: r.try_get(15)?,
        machine_detection,
        recognition: r.try_get(20)?,
        transcript: json(21)?.unwrap_or(Value::Array(vec![])),
        recording: r.try_get(22)?,
        media: json(23)?,
        queued_at,
        dialled_at,
        queue_wait_ms: match (queued_at, dialled_at) {
            (Some(q), Some(d)) => Some((d - q).max(0)),
            _ => None,
        },
    })
}

fn records(rows: Vec<Row>) -> Result<Vec<CallRecord>, StoreError> {
    rows.iter().map(from_row).collect()
}

impl PgStore {
    pub(crate) async fn insert(
        &self,
        call: NewCall,
        idempotency_key: Option<String>,
        queued: bool,
    ) -> Result<Inserted, StoreError> {
        let mut conn = self.conn().await?;
        let now = now_ms();
        let tx = conn.transaction().await?;
        if let Some(key) = &idempotency_key {
            // An expired key is given up; a live one answers with its call.
            tx.execute(
                &tx.prepare_cached(
                    "DELETE FROM idempotency WHERE client_id=$1 AND key=$2 AND created_at<=$3",
                )
                .await?,
                &[&call.client_id, key, &(now - IDEMPOTENCY_WINDOW_MS)],
            )
            .await?;
            // Two instances inserting the same key at once: the second waits for the first's
            // commit and inserts nothing, then reads the winner's call below.
            let n = tx
                .execute(
                    &tx.prepare_cached(
                        "INSERT INTO idempotency (client_id, key, conversation_id, created_at) \
                     VALUES ($1,$2,$3,$4) ON CONFLICT (client_id, key) DO NOTHING",
                    )
                    .await?,
                    &[&call.client_id, key, &call.conversation_id, &now],
                )
                .await?;
            if n == 0 {
                let row = tx
                    .query_opt(
                        &tx.prepare_cached(
                            "SELECT conversation_id FROM idempotency WHERE client_id=$1 AND key=$2",
                        )
                        .await?,
                        &[&call.client_id, key],
                    )
                    .await?;
                if let Some(row) = row {
                    return Ok(Inserted::Duplicate(row.try_get(0)?));
                }
            }
        }
        let queued_at = queued.then_some(now);
        tx.execute(
            &tx.prepare_cached("INSERT INTO calls (conversation_id, owner, client_id, bot_id, target, request_json, status, \
             config_version, created_at, snapshot_json, queued_at) \
             VALUES ($1,$2,$3,$4,$5,$6,'queued',$7,$8,$9,$10)").await?,
            &[
                &call.conversation_id,
                &self.instance_id,
                &call.client_id,
                &call.bot_id,
                &call.target,
                &call.request.to_string(),
                &(call.config_version as i64),
                &now,
                &serde_json::to_string(&call.snapshot)?,
                &queued_at,
            ],
        )
        .await?;
        let detail = match queued {
            true => "dialout accepted and queued: the bot is at its limits",
            false => "dialout accepted",
        };
        tx.execute(
            &tx.prepare_cached("INSERT INTO call_events (conversation_id, at, kind, detail) VALUES ($1,$2,'accepted',$3)").await?,
            &[&call.conversation_id, &now, &detail],
        )
        .await?;
        tx.commit().await?;
        Ok(Inserted::New)
    }

    pub(crate) async fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM calls WHERE conversation_id=$1"
            ))
            .await?;
        let row = conn.query_opt(&stmt, &[&id]).await?;
        row.as_ref().map(from_row).transpose()
    }

    pub(crate) async fn list_calls(&self, f: CallFilter) -> Result<Vec<CallRecord>, StoreError> {
        let conn = self.conn().await?;
        let mut sql = format!("SELECT {COLUMNS} FROM calls WHERE 1=1");
        let status = f.status.map(CallStatus::as_str);
        let mut args: Vec<&(dyn ToSql + Sync)> = Vec::new();
        // Each present filter adds its condition and its argument, numbered in order.
        if let Some(c) = &f.client {
            args.push(c);
            sql.push_str(&format!(" AND client_id=${}", args.len()));
        }
        if let Some(b) = &f.bot {
            args.push(b);
            sql.push_str(&format!(" AND bot_id=${}", args.len()));
        }
        if let Some(s) = &status {
            args.push(s);
            sql.push_str(&format!(" AND status=${}", args.len()));
        }
        if let Some(t) = &f.from_ms {
            args.push(t);
            sql.push_str(&format!(" AND created_at>=${}", args.len()));
        }
        if let Some(t) = &f.to_ms {
            args.push(t);
            sql.push_str(&format!(" AND created_at<${}", args.len()));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, conversation_id LIMIT {} OFFSET {}",
            f.limit, f.offset
        ));
        records(conn.query(&sql, &args).await?)
    }

    pub(crate) async fn unfinished_calls(&self) -> Result<Vec<CallRecord>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM calls WHERE status NOT IN ('failed','completed') \
                     AND NOT (queued_at IS NOT NULL AND dialled_at IS NULL) AND owner=$1 \
                     ORDER BY created_at"
                ),
                &[&self.instance_id],
            )
            .await?;
        records(rows)
    }

    pub(crate) async fn set_progress(
        &self,
        id: &str,
        status: CallStatus,
        sip_code: Option<u16>,
    ) -> Result<(), StoreError> {
        let col = match status {
            CallStatus::Dialing => "dialing_at",
            CallStatus::Ringing => "ringing_at",
            CallStatus::Answered => "answered_at",
            CallStatus::Connected => "bot_connected_at",
            _ => "ended_at",
        };
        let conn = self.conn().await?;
        // One statement per column (five at most), each prepared once per connection.
        let stmt = conn
            .prepare_cached(&format!(
                "UPDATE calls SET status=$2, {col}=COALESCE({col}, $3), sip_code=COALESCE($4, sip_code) \
                 WHERE conversation_id=$1 AND status NOT IN ('failed','completed')"
            ))
            .await?;
        conn.execute(
            &stmt,
            &[&id, &status.as_str(), &now_ms(), &sip_code.map(i64::from)],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn set_amd(
        &self,
        id: &str,
        result: Option<(&str, i64, &str)>,
        beep_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        if let Some((r, t, c)) = result {
            conn.execute(
                &conn.prepare_cached("UPDATE calls SET amd_result=$2, amd_decision_ms=$3, amd_cause=$4 WHERE conversation_id=$1").await?,
                &[&id, &r, &t, &c],
            )
            .await?;
        }
        if let Some(b) = beep_ms {
            conn.execute(
                &conn
                    .prepare_cached("UPDATE calls SET amd_beep_ms=$2 WHERE conversation_id=$1")
                    .await?,
                &[&id, &b],
            )
            .await?;
        }
        Ok(())
    }

    pub(crate) async fn set_extra(
        &self,
        id: &str,
        column: ExtraColumn,
        value: String,
    ) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            &format!(
                "UPDATE calls SET {}=$2 WHERE conversation_id=$1",
                column.name()
            ),
            &[&id, &value],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn append_transcript(&self, id: &str, entry: Value) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        conn.execute(
            &conn.prepare_cached("UPDATE calls SET transcript_json=(transcript_json::jsonb || jsonb_build_array($2::text::jsonb))::text \
             WHERE conversation_id=$1").await?,
            &[&id, &entry.to_string()],
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn add_event(
        &self,
        id: &str,
        kind: &str,
        detail: &str,
    ) -> Result<(), StoreError> {
        self.events.add(id, kind, detail).await
    }

    pub(crate) async fn events(&self, id: &str) -> Result<Vec<(i64, String, String)>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &conn.prepare_cached("SELECT at, kind, detail FROM call_events WHERE conversation_id=$1 ORDER BY id").await?,
                &[&id],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    pub(crate) async fn count_by_status(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &conn
                    .prepare_cached("SELECT status, COUNT(*) FROM calls GROUP BY status")
                    .await?,
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    pub(crate) async fn find_idempotent(
        &self,
        client_id: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(
                &conn.prepare_cached("SELECT conversation_id FROM idempotency WHERE client_id=$1 AND key=$2 AND created_at>$3").await?,
                &[&client_id, &key, &(now_ms() - IDEMPOTENCY_WINDOW_MS)],
            )
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}
