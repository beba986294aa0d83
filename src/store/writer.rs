//! The store's one database thread, with group commit.
//!
//! With `synchronous=FULL` every commit waits for the disk; one transaction
//! per operation made the store the gateway's serial bottleneck (about 30
//! operations per call, each paying its own sync, callers queued behind one
//! mutex on the blocking pool). Here one dedicated thread owns the
//! connection: operations that arrive while a commit is under way are run
//! together in one transaction, each inside its own savepoint (a failing
//! operation rolls back alone), and committed with one sync. Every caller is
//! answered only after that commit, so "acknowledged means durable" holds
//! exactly as before. The thread is not tokio's blocking pool, so long
//! blocking work elsewhere (recordings, argon2) cannot starve the store.

use super::StoreError;
use rusqlite::Connection;
use std::panic::{AssertUnwindSafe, catch_unwind};
use tokio::sync::{mpsc, oneshot};

/// Operations committed together at most (bounds one commit's latency).
const MAX_BATCH: usize = 256;
/// Operations waiting for the thread; a full queue makes callers wait.
const QUEUE: usize = 4096;

/// Answers one caller once the fate of its batch is known: `None` when the
/// batch committed, else why the commit failed.
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
/// One operation: runs on the store thread and returns its deferred answer.
type Job = Box<dyn FnOnce(&mut Connection) -> Reply + Send>;

/// Handle to the store thread; cheap to clone.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Moves `conn` to a new thread that serves operations until every
    /// handle is dropped.
    pub(crate) fn start(conn: Connection) -> Result<Writer, StoreError> {
        let (jobs, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("dialgate-store".into())
            .spawn(move || serve(conn, rx))
            .map_err(|e| StoreError::Join(format!("cannot start the store thread: {e}")))?;
        Ok(Writer { jobs })
    }

    /// Runs `f` on the store thread and returns its result once committed.
    pub(crate) async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = run_one(conn, f);
            Box::new(move |commit_error: Option<&str>| {
                let result = match (result, commit_error) {
                    (Ok(_), Some(e)) => Err(StoreError::Commit(e.to_owned())),
                    (result, _) => result,
                };
                // The caller may have gone (its task cancelled): nothing to tell.
                let _ = tx.send(result);
            })
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Join("the store thread has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Join("the store thread dropped the operation".into()))?
    }
}

/// Runs one operation inside its own savepoint: released when it succeeds,
/// rolled back when it fails or panics, so a batch never commits half of a
/// failed operation. Outside a batch transaction the savepoint is the
/// transaction itself.
fn run_one<R, F>(conn: &mut Connection, f: F) -> Result<R, StoreError>
where
    F: FnOnce(&mut Connection) -> Result<R, StoreError>,
{
    conn.execute_batch("SAVEPOINT op")?;
    let result = catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|p| Err(StoreError::Join(panic_text(p.as_ref()))));
    let end = if result.is_ok() {
        conn.execute_batch("RELEASE op")
    } else {
        conn.execute_batch("ROLLBACK TO op; RELEASE op")
    };
    // SQLite may already have ended the whole transaction (e.g. a full
    // disk): then the savepoint is gone and the batch loop notices.
    match (result, end) {
        (Ok(r), Ok(())) => Ok(r),
        (Ok(_), Err(e)) => Err(e.into()),
        (Err(e), _) => Err(e),
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("store operation panicked: {what}")
}

/// The thread's loop: take what is waiting (up to `MAX_BATCH`), run it in
/// one transaction, commit, answer everyone.
fn serve(mut conn: Connection, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        run_batch(&mut conn, batch);
    }
}

fn run_batch(conn: &mut Connection, batch: Vec<Job>) {
    // Even a lone operation runs in an IMMEDIATE transaction: a savepoint
    // alone is a deferred transaction, and in WAL mode one that reads and
    // then writes after another connection (another process on the same
    // file) committed fails at once with SQLITE_BUSY_SNAPSHOT, which no busy
    // timeout waits out — a claimed outbox item whose attempt could not be
    // recorded stayed claimed until its lease ended and was sent again.
    // Without the outer transaction (BEGIN itself failed) each operation's
    // savepoint commits on its own.
    let mut in_tx = conn.execute_batch("BEGIN IMMEDIATE").is_ok();
    let mut pending: Vec<Reply> = Vec::with_capacity(batch.len());
    for job in batch {
        let reply = job(conn);
        if in_tx && conn.is_autocommit() {
            // SQLite rolled the batch back under us: the earlier operations
            // are undone and must not be reported as done.
            answer(
                pending.drain(..),
                Some("the batch was rolled back by the database"),
            );
            answer(std::iter::once(reply), None);
            in_tx = conn.execute_batch("BEGIN IMMEDIATE").is_ok();
            continue;
        }
        pending.push(reply);
    }
    if !in_tx {
        answer(pending.drain(..), None);
        return;
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => answer(pending.drain(..), None),
        Err(e) => {
            let why = e.to_string();
            tracing::error!(error = %why, "store commit failed; the batch's operations are reported failed");
            let _ = conn.execute_batch("ROLLBACK");
            answer(pending.drain(..), Some(&why));
        }
    }
}

fn answer(replies: impl Iterator<Item = Reply>, commit_error: Option<&str>) {
    for reply in replies {
        reply(commit_error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> Writer {
        let conn = Connection::open_in_memory().expect("memory db");
        conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .expect("table");
        Writer::start(conn).expect("thread")
    }

    async fn count(w: &Writer) -> i64 {
        w.run(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .expect("count")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_operations_all_commit_and_a_failing_one_rolls_back_alone() {
        // 1. 200 inserts at once (batched together), one of which writes a
        //    row and then fails on a duplicate key
        let w = writer();
        let mut tasks = Vec::new();
        for k in 0..200i64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.run(move |c| {
                    c.execute("INSERT INTO t (k, v) VALUES (?1, 'x')", [k])?;
                    if k == 7 {
                        c.execute("INSERT INTO t (k, v) VALUES (?1, 'dup')", [k])?;
                    }
                    Ok(k)
                })
                .await
            }));
        }
        // 2. every caller gets its own answer: 199 Ok, key 7 an error
        let mut failed = Vec::new();
        for t in tasks {
            if let Err(e) = t.await.expect("task") {
                failed.push(e.to_string());
            }
        }
        assert_eq!(failed.len(), 1, "{failed:?}");
        // 3. the failed operation's first insert was rolled back with it
        assert_eq!(count(&w).await, 199);
    }

    #[tokio::test]
    async fn a_panicking_operation_is_an_error_and_the_thread_lives_on() {
        // 1. an operation that writes, then panics
        let w = writer();
        let r: Result<(), StoreError> = w
            .run(|c| {
                c.execute("INSERT INTO t (k, v) VALUES (1, 'x')", [])?;
                panic!("boom");
            })
            .await;
        // 2. reported as an error naming the panic, its write undone
        assert!(r.expect_err("panic").to_string().contains("boom"));
        assert_eq!(count(&w).await, 0);
        // 3. later operations still run
        w.run(|c| Ok(c.execute("INSERT INTO t (k, v) VALUES (2, 'y')", [])?))
            .await
            .expect("insert");
        assert_eq!(count(&w).await, 1);
    }

    #[tokio::test]
    async fn nested_savepoints_inside_an_operation_work() {
        // 1. an operation using its own savepoint (as the store's multi-step
        //    writes do) runs inside the batch's transaction
        let w = writer();
        w.run(|c| {
            let sp = c.savepoint()?;
            sp.execute("INSERT INTO t (k, v) VALUES (1, 'a')", [])?;
            sp.execute("INSERT INTO t (k, v) VALUES (2, 'b')", [])?;
            sp.commit()?;
            Ok(())
        })
        .await
        .expect("savepoint op");
        // 2. both rows committed
        assert_eq!(count(&w).await, 2);
    }
}
