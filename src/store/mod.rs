//! Durable state in SQLite (one instance) or PostgreSQL (cluster mode, `pg`): call records,
//! idempotency keys and the outbox of notifications and bot events. Both engines sit behind
//! the same [`Store`] methods; each method hands over to the PostgreSQL engine when the store
//! was opened on it, so callers never know which one runs.
//!
//! Every write that the API acknowledges is committed (WAL, `synchronous=FULL`)
//! before the answer is sent, so a process killed right after a `200` still
//! has the call on restart. rusqlite is synchronous: every operation runs on
//! one store thread that commits what arrives together (`writer.rs`).

mod calls;
mod claims;
mod finish;
mod instances;
mod legs;
mod migrations;
mod outbox;
mod pg;
mod queue;
mod retention;
mod writer;

pub use calls::{
    CallFilter, CallRecord, CallSnapshot, CallStatus, ExtraColumn, IDEMPOTENCY_WINDOW_MS, Inserted,
    NewCall,
};
pub use claims::{AttemptOutcome, CallContext, DueItem, DueQuery, Recorded};
pub use finish::{CallEnd, Finished, SUPERSEDED};
pub use instances::{DeadInstance, Heartbeat, TakenOver};
pub use legs::LegJournalOp;
pub use outbox::{Channel, DeliveryAttempt, OutboxItem, destination_of};
pub use queue::BotQueue;
pub use retention::Pruned;

/// Outbox item kinds, as stored.
pub mod kind {
    /// A status notification to the dialer.
    pub const STATUS: &str = "status";
    /// Opens the Bot API conversation.
    pub const BOT_OPEN: &str = "open";
    /// One activity for the bot.
    pub const BOT_ACTIVITY: &str = "activity";
    /// Refreshes the Bot API session.
    pub const BOT_REFRESH: &str = "refresh";
    /// Ends the Bot API conversation.
    pub const BOT_DISCONNECT: &str = "disconnect";
}

use rusqlite::Connection;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors from the store boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this dialgate ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    #[error("store worker failed: {0}")]
    Join(String),
    #[error("database commit failed: {0}")]
    Commit(String),
    /// A statement PostgreSQL refused, or its connection failing mid-operation.
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection to PostgreSQL could be had (down, unreachable, or all busy too long).
    #[error("PostgreSQL unavailable: {0}")]
    PostgresUnavailable(String),
    /// `cluster.postgres_url` does not parse as a connection string.
    #[error("PostgreSQL connection settings: {0}")]
    PostgresConfig(String),
}

impl StoreError {
    /// Whether the database could not be reached (as opposed to refusing an operation): the
    /// operation may succeed once it is back, so the API answers 503 with `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::PostgresUnavailable(_) => true,
            StoreError::Postgres(e) => pg::is_connection_error(e),
            _ => false,
        }
    }
}

/// Handle to the database (SQLite or PostgreSQL); cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The SQLite store thread; `None` when the store runs on PostgreSQL.
    writer: Option<writer::Writer>,
    /// The PostgreSQL engine, in cluster mode.
    pg: Option<Arc<pg::PgStore>>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/dialgate.sqlite` and applies migrations.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join("dialgate.sqlite");
        let mut conn = Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: a commit survives power loss too, not only a killed process.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        migrations::apply(&mut conn)?;
        Ok(Store {
            writer: Some(writer::Writer::start(conn)?),
            pg: None,
            path,
        })
    }

    /// Connects to the PostgreSQL database at `url` (cluster mode) and applies its migrations.
    /// `instance_id` owns the calls this instance accepts: its restart recovery reads only
    /// those. Fails with [`StoreError::PostgresUnavailable`] when the server cannot be reached.
    pub async fn open_postgres(url: &str, instance_id: &str) -> Result<Store, StoreError> {
        let pg = pg::PgStore::open(url, instance_id).await?;
        Ok(Store {
            writer: None,
            pg: Some(Arc::new(pg)),
            path: PathBuf::from(crate::config::redact_url(url)),
        })
    }

    /// `"sqlite"` or `"postgres"`, for logs and status.
    pub fn engine(&self) -> &'static str {
        match self.pg {
            Some(_) => "postgres",
            None => "sqlite",
        }
    }

    /// The PostgreSQL engine, when the store runs on it.
    fn pg(&self) -> Option<&pg::PgStore> {
        self.pg.as_deref()
    }

    /// Where the database file lives (on PostgreSQL: its URL, password redacted).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the store thread; answers once the
    /// batch it ran in is committed.
    pub(crate) async fn with<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let Some(writer) = &self.writer else {
            // Only the one-instance queue's operations (`waiting_calls`, `mark_dialled`) get
            // here on PostgreSQL; every other method hands over to its engine before this.
            return Err(StoreError::Join(
                "SQLite operation on a PostgreSQL store".into(),
            ));
        };
        writer.run(f).await
    }
}

/// Milliseconds since the Unix epoch, the store's time unit.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds as an RFC 3339 JSON string (UTC).
pub fn rfc3339(ms: i64) -> serde_json::Value {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .map(serde_json::Value::String)
        .unwrap_or(serde_json::Value::Null)
}
