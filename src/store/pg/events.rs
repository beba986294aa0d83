//! Timeline lines (`call_events`) written in batches.
//!
//! A call writes about ten timeline lines, each one statement and one round trip when written
//! alone: at 100 dialouts/s that was a sixth of every statement PostgreSQL ran. Lines queued while
//! the previous batch is being written go together in one `INSERT … SELECT FROM UNNEST(…)`, a
//! single prepared statement whatever the batch size. Nothing waits to fill a batch: a line on an
//! idle instance is written at once, and batches only form under load, when lines queue anyway.
//!
//! Each caller still waits for its own line's commit, so a timeline read after `add_event`
//! returned contains the line, as with SQLite. One call's lines are written in the order it added
//! them (each waits for the previous), and `WITH ORDINALITY … ORDER BY` keeps a batch's order in
//! the serial ids the timeline is sorted by.

use super::super::{StoreError, now_ms};
use deadpool_postgres::Pool;
use tokio::sync::{mpsc, oneshot};

/// Lines written by one statement at most (the arrays' size; a bound on one round trip's work).
const MAX_BATCH: usize = 512;
/// Lines waiting for the writer before `add` waits for room (backpressure, not loss).
const QUEUE: usize = 4096;

const INSERT: &str = "INSERT INTO call_events (conversation_id, at, kind, detail) \
     SELECT c, a, k, d FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[]) \
     WITH ORDINALITY AS t(c, a, k, d, n) ORDER BY n";

/// One line waiting to be written, and who waits for its commit.
struct Line {
    conversation_id: String,
    at: i64,
    kind: String,
    detail: String,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The handle the store writes timeline lines through; the writer task ends when it is dropped.
pub(super) struct EventWriter {
    tx: mpsc::Sender<Line>,
}

impl EventWriter {
    /// Starts the writer task on `pool`.
    pub(super) fn start(pool: Pool) -> EventWriter {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(pool, rx));
        EventWriter { tx }
    }

    /// Writes one line; returns once it is committed (or the batch it was in failed).
    pub(super) async fn add(&self, id: &str, kind: &str, detail: &str) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        let line = Line {
            conversation_id: id.to_owned(),
            at: now_ms(),
            kind: kind.to_owned(),
            detail: detail.to_owned(),
            done,
        };
        let stopped = || StoreError::Join("the timeline writer stopped".to_owned());
        self.tx.send(line).await.map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

/// The writer: takes whatever is queued (up to [`MAX_BATCH`]), writes it, answers every waiter.
/// A batch PostgreSQL refused (not one it could not be reached for) is written again line by
/// line, so one bad line fails only its own caller, not the other calls batched with it.
async fn run(pool: Pool, mut rx: mpsc::Receiver<Line>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write(&pool, &batch).await {
            Err(e) if batch.len() > 1 && !e.is_unavailable() => {
                for line in batch.drain(..) {
                    let result = write(&pool, std::slice::from_ref(&line)).await;
                    // A waiter that gave up (its call task ended) is no one to tell.
                    let _ = line.done.send(result);
                }
            }
            result => {
                for line in batch.drain(..) {
                    let _ = line.done.send(result.as_ref().map(|_| ()).map_err(copy));
                }
            }
        }
    }
}

async fn write(pool: &Pool, batch: &[Line]) -> Result<(), StoreError> {
    let conn = pool
        .get()
        .await
        .map_err(|e| StoreError::PostgresUnavailable(e.to_string()))?;
    let ids: Vec<&str> = batch.iter().map(|l| l.conversation_id.as_str()).collect();
    let ats: Vec<i64> = batch.iter().map(|l| l.at).collect();
    let kinds: Vec<&str> = batch.iter().map(|l| l.kind.as_str()).collect();
    let details: Vec<&str> = batch.iter().map(|l| l.detail.as_str()).collect();
    let stmt = conn.prepare_cached(INSERT).await?;
    conn.execute(&stmt, &[&ids, &ats, &kinds, &details]).await?;
    Ok(())
}

/// The batch's error for each of its waiters (a `tokio_postgres::Error` cannot be cloned): one
/// that means the database is unreachable stays "unavailable", so the API still answers 503.
fn copy(e: &StoreError) -> StoreError {
    if e.is_unavailable() {
        StoreError::PostgresUnavailable(e.to_string())
    } else {
        StoreError::Commit(e.to_string())
    }
}
