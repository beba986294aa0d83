//! Versioned schema of the PostgreSQL store: the SQLite schema's tables with PostgreSQL types,
//! applied in order, one transaction each, the version kept in `schema_version`. Instances
//! starting together serialise on an advisory lock, so each migration runs once.

use super::super::StoreError;
use deadpool_postgres::Object;

/// Key of the advisory lock held while migrating (any constant unique to dialgate).
const MIGRATION_LOCK: i64 = 0x6469_616c_6761_7465; // "dialgate"

/// Each entry moves the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: the whole of SQLite's schema version 5, plus `calls.seq` (insertion order, SQLite's
    //    rowid) and `calls.owner` (the instance that accepted the call).
    r#"
    CREATE TABLE calls (
        conversation_id   TEXT PRIMARY KEY,
        seq               BIGSERIAL NOT NULL,
        owner             TEXT NOT NULL,
        client_id         TEXT NOT NULL,
        bot_id            TEXT NOT NULL,
        target            TEXT NOT NULL,
        request_json      TEXT NOT NULL,
        status            TEXT NOT NULL,
        config_version    BIGINT NOT NULL,
        created_at        BIGINT NOT NULL,
        dialing_at        BIGINT,
        ringing_at        BIGINT,
        answered_at       BIGINT,
        bot_connected_at  BIGINT,
        ended_at          BIGINT,
        sip_code          BIGINT,
        reason            TEXT,
        reason_code       TEXT,
        amd_result        TEXT,
        amd_decision_ms   BIGINT,
        amd_cause         TEXT,
        amd_beep_ms       BIGINT,
        stt_status        TEXT,
        transcript_json   TEXT NOT NULL DEFAULT '[]',
        recording_path    TEXT,
        media_json        TEXT,
        snapshot_json     TEXT,
        terminal_queued   BIGINT NOT NULL DEFAULT 0,
        queued_at         BIGINT,
        dialled_at        BIGINT
    );
    CREATE INDEX calls_created ON calls(created_at);
    CREATE INDEX calls_bot_created ON calls(bot_id, created_at);
    CREATE INDEX calls_status ON calls(status);
    CREATE INDEX calls_terminal_unqueued ON calls(status) WHERE terminal_queued = 0;
    CREATE INDEX calls_ended ON calls(ended_at);
    CREATE INDEX calls_waiting ON calls(queued_at, seq) WHERE queued_at IS NOT NULL AND dialled_at IS NULL;
    CREATE TABLE idempotency (
        client_id        TEXT NOT NULL,
        key              TEXT NOT NULL,
        conversation_id  TEXT NOT NULL,
        created_at       BIGINT NOT NULL,
        PRIMARY KEY (client_id, key)
    );
    CREATE INDEX idempotency_created ON idempotency(created_at);
    CREATE TABLE outbox (
        id               BIGSERIAL PRIMARY KEY,
        conversation_id  TEXT NOT NULL,
        channel          TEXT NOT NULL,
        kind             TEXT NOT NULL,
        url              TEXT,
        payload          TEXT NOT NULL,
        created_at       BIGINT NOT NULL,
        next_attempt_at  BIGINT NOT NULL,
        attempts         BIGINT NOT NULL DEFAULT 0,
        state            TEXT NOT NULL DEFAULT 'pending',
        last_error       TEXT,
        event_id         TEXT,
        destination      TEXT,
        claim_token      TEXT,
        claimed_until    BIGINT
    );
    CREATE INDEX outbox_pending ON outbox(state, next_attempt_at);
    CREATE INDEX outbox_conv ON outbox(conversation_id, channel, id);
    CREATE INDEX outbox_done_created ON outbox(state, created_at);
    CREATE INDEX outbox_dest_due ON outbox(state, destination, next_attempt_at);
    CREATE INDEX outbox_claimed ON outbox(claimed_until) WHERE claimed_until IS NOT NULL;
    CREATE TABLE delivery_attempts (
        id               BIGSERIAL PRIMARY KEY,
        outbox_id        BIGINT NOT NULL REFERENCES outbox(id),
        conversation_id  TEXT NOT NULL,
        attempt          BIGINT NOT NULL,
        at               BIGINT NOT NULL,
        http_status      BIGINT,
        error            TEXT,
        duration_ms      BIGINT NOT NULL
    );
    CREATE INDEX attempts_conv ON delivery_attempts(conversation_id);
    CREATE INDEX attempts_outbox ON delivery_attempts(outbox_id);
    CREATE TABLE call_events (
        id               BIGSERIAL PRIMARY KEY,
        conversation_id  TEXT NOT NULL,
        at               BIGINT NOT NULL,
        kind             TEXT NOT NULL,
        detail           TEXT NOT NULL
    );
    CREATE INDEX events_conv ON call_events(conversation_id, id);
    CREATE TABLE bot_sessions (
        conversation_id  TEXT PRIMARY KEY,
        activities_url   TEXT NOT NULL,
        refresh_url      TEXT,
        disconnect_url   TEXT,
        expires_seconds  BIGINT
    );
    CREATE TABLE leg_dialogs (
        call_id          TEXT PRIMARY KEY,
        conversation_id  TEXT NOT NULL,
        state            TEXT NOT NULL,
        local_tag        TEXT NOT NULL,
        remote_tag       TEXT,
        cseq             BIGINT NOT NULL,
        remote_target    TEXT NOT NULL,
        route_set        TEXT NOT NULL,
        transport        TEXT NOT NULL,
        destination      TEXT NOT NULL,
        local_contact    TEXT,
        request          TEXT NOT NULL,
        updated_at       BIGINT NOT NULL,
        owner            TEXT NOT NULL
    );
    "#,
    // 2: liveness and takeover (`pg/instances.rs`): one row per instance, renewed while it
    //    runs (`alive_until`, on the database's clock); a survivor that takes a dead instance's
    //    calls over writes who did it. Owner indexes: the takeover moves one instance's rows.
    r#"
    CREATE TABLE instances (
        instance_id      TEXT PRIMARY KEY,
        alive_until      BIGINT NOT NULL,
        taken_over_by    TEXT,
        taken_over_at    BIGINT
    );
    CREATE INDEX calls_owner_live ON calls(owner) WHERE status NOT IN ('failed','completed');
    CREATE INDEX leg_dialogs_owner ON leg_dialogs(owner);
    "#,
];

/// Brings the database to the newest schema version.
pub(super) async fn apply(conn: &mut Object) -> Result<(), StoreError> {
    let tx = conn.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await?;
    let current: i64 = match tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO schema_version VALUES (0)", &[])
                .await?;
            0
        }
    };
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported,
        });
    }
    // One transaction for the lock and every step: a failed step leaves the old version whole.
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql).await?;
        tx.execute("UPDATE schema_version SET version=$1", &[&((i + 1) as i64)])
            .await?;
        tracing::info!(version = i + 1, "PostgreSQL store schema migrated");
    }
    tx.commit().await?;
    Ok(())
}
