//! Versioned schema migrations, applied in order inside one transaction each.

use super::StoreError;
use rusqlite::Connection;

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: calls, idempotency keys, outbox, delivery attempts, call timeline.
    r#"
    CREATE TABLE calls (
        conversation_id   TEXT PRIMARY KEY,
        client_id         TEXT NOT NULL,
        bot_id            TEXT NOT NULL,
        target            TEXT NOT NULL,
        request_json      TEXT NOT NULL,
        status            TEXT NOT NULL,
        config_version    INTEGER NOT NULL,
        created_at        INTEGER NOT NULL,
        dialing_at        INTEGER,
        ringing_at        INTEGER,
        answered_at       INTEGER,
        bot_connected_at  INTEGER,
        ended_at          INTEGER,
        sip_code          INTEGER,
        reason            TEXT,
        reason_code       TEXT,
        amd_result        TEXT,
        amd_decision_ms   INTEGER,
        amd_cause         TEXT,
        amd_beep_ms       INTEGER,
        stt_status        TEXT,
        transcript_json   TEXT NOT NULL DEFAULT '[]',
        recording_path    TEXT,
        media_json        TEXT
    );
    CREATE INDEX calls_created ON calls(created_at);
    CREATE INDEX calls_bot_created ON calls(bot_id, created_at);
    CREATE INDEX calls_status ON calls(status);
    CREATE TABLE idempotency (
        client_id        TEXT NOT NULL,
        key              TEXT NOT NULL,
        conversation_id  TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        PRIMARY KEY (client_id, key)
    );
    CREATE TABLE outbox (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id  TEXT NOT NULL,
        channel          TEXT NOT NULL,
        kind             TEXT NOT NULL,
        url              TEXT,
        payload          TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        next_attempt_at  INTEGER NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        state            TEXT NOT NULL DEFAULT 'pending',
        last_error       TEXT
    );
    CREATE INDEX outbox_pending ON outbox(state, next_attempt_at);
    CREATE INDEX outbox_conv ON outbox(conversation_id, channel, id);
    CREATE TABLE delivery_attempts (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        outbox_id        INTEGER NOT NULL REFERENCES outbox(id),
        conversation_id  TEXT NOT NULL,
        attempt          INTEGER NOT NULL,
        at               INTEGER NOT NULL,
        http_status      INTEGER,
        error            TEXT,
        duration_ms      INTEGER NOT NULL
    );
    CREATE INDEX attempts_conv ON delivery_attempts(conversation_id);
    CREATE TABLE call_events (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id  TEXT NOT NULL,
        at               INTEGER NOT NULL,
        kind             TEXT NOT NULL,
        detail           TEXT NOT NULL
    );
    CREATE INDEX events_conv ON call_events(conversation_id, id);
    CREATE TABLE bot_sessions (
        conversation_id  TEXT PRIMARY KEY,
        activities_url   TEXT NOT NULL,
        refresh_url      TEXT,
        disconnect_url   TEXT,
        expires_seconds  INTEGER
    );
    "#,
    // 2: exactly-once delivery and call snapshots.
    // - outbox: a stable event id per item (the receiver's dedup key), the destination
    //   (scheme://host:port) for per-destination concurrency, and a claim (token + lease) taken
    //   with a conditional UPDATE before an item is delivered.
    // - calls: what the call keeps for life (webhook secret, bot events URL and token), and
    //   whether its terminal outbox items were written (recovery completes those that were not).
    r#"
    ALTER TABLE outbox ADD COLUMN event_id TEXT;
    ALTER TABLE outbox ADD COLUMN destination TEXT;
    ALTER TABLE outbox ADD COLUMN claim_token TEXT;
    ALTER TABLE outbox ADD COLUMN claimed_until INTEGER;
    UPDATE outbox SET event_id = 'legacy-' || id;
    ALTER TABLE calls ADD COLUMN snapshot_json TEXT;
    ALTER TABLE calls ADD COLUMN terminal_queued INTEGER NOT NULL DEFAULT 0;
    UPDATE calls SET terminal_queued = 1
     WHERE status IN ('failed','completed')
       AND (json_extract(request_json, '$.notifyUrl') IS NULL
            OR EXISTS (SELECT 1 FROM outbox o WHERE o.conversation_id = calls.conversation_id
                       AND o.channel = 'dialer'
                       AND json_extract(o.payload, '$.status') IN ('failed','completed')));
    CREATE INDEX calls_terminal_unqueued ON calls(status) WHERE terminal_queued = 0;
    CREATE INDEX calls_ended ON calls(ended_at);
    CREATE INDEX outbox_done_created ON outbox(state, created_at);
    CREATE INDEX attempts_outbox ON delivery_attempts(outbox_id);
    CREATE INDEX idempotency_created ON idempotency(created_at);
    "#,
    // 3: due items are read per destination (index walk with early stop), and the next lease
    //    end is an index minimum.
    r#"
    CREATE INDEX outbox_dest_due ON outbox(state, destination, next_attempt_at);
    CREATE INDEX outbox_claimed ON outbox(claimed_until) WHERE claimed_until IS NOT NULL;
    "#,
    // 4: the dialog state of outbound legs that may still be ringing or up (one row per leg,
    //    deleted when the leg is gone): what restart recovery needs to CANCEL or BYE them.
    r#"
    CREATE TABLE leg_dialogs (
        call_id          TEXT PRIMARY KEY,
        conversation_id  TEXT NOT NULL,
        state            TEXT NOT NULL,
        local_tag        TEXT NOT NULL,
        remote_tag       TEXT,
        cseq             INTEGER NOT NULL,
        remote_target    TEXT NOT NULL,
        route_set        TEXT NOT NULL,
        transport        TEXT NOT NULL,
        destination      TEXT NOT NULL,
        local_contact    TEXT,
        request          TEXT NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    "#,
    // 5: queued dialouts (bots[].outbound.on_limit): when each entered its bot's queue and when
    //    it was dialled; the waiting ones are restored at start in queue order.
    r#"
    ALTER TABLE calls ADD COLUMN queued_at INTEGER;
    ALTER TABLE calls ADD COLUMN dialled_at INTEGER;
    CREATE INDEX calls_waiting ON calls(queued_at) WHERE queued_at IS NOT NULL AND dialled_at IS NULL;
    "#,
];

/// Brings the database to the newest schema version.
pub fn apply(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    Ok(())
}
