//! dialgate's WebSocket bot I/O threads (opt-in, `WsBotOptions::io_threads`): each runs a
//! single-threaded tokio runtime that owns the sockets of the sessions placed on it
//! (round-robin), as each media relay thread owns its sessions' sockets.
//!
//! Why: a session's task wakes twice per 20 ms (the person's datagram, the bot's frame) and does
//! a little work each time. On the application's multi-threaded runtime each such wake-up of an
//! idle worker also woke a sibling worker to look for work (a futex wake and wait that found
//! nothing) and moved the task between workers; on a thread of its own the wake-up is the
//! thread's `epoll_wait` returning, then the task runs, then `epoll_wait` again. The call's
//! actor and bridge stay on the application's runtime: what crosses between them (commands,
//! events) is rare, not per frame.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use tokio::runtime::{Builder, Handle};

/// Threads at most (one per core beyond that only adds wake-ups).
const MAX_THREADS: usize = 4;

/// The running I/O threads.
struct Pool {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

static POOL: OnceLock<Option<Pool>> = OnceLock::new();

/// The runtime a new session's sockets go on: the next I/O thread's. `None` when the threads
/// could not be started (the session then runs on the caller's runtime, as before).
pub(crate) fn next() -> Option<Handle> {
    let pool = POOL.get_or_init(start).as_ref()?;
    let i = pool.next.fetch_add(1, Relaxed) % pool.handles.len();
    pool.handles.get(i).cloned()
}

/// Starts one thread per core (at most [`MAX_THREADS`]), named `wsbot-io-N`; each blocks on
/// its runtime for the life of the process.
fn start() -> Option<Pool> {
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, MAX_THREADS);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let rt = match Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot build a WebSocket bot I/O runtime");
                break;
            }
        };
        let handle = rt.handle().clone();
        let spawned = std::thread::Builder::new()
            .name(format!("wsbot-io-{i}"))
            .spawn(move || rt.block_on(std::future::pending::<()>()));
        match spawned {
            Ok(_) => handles.push(handle),
            Err(e) => {
                tracing::error!(error = %e, "cannot start a WebSocket bot I/O thread");
                break;
            }
        }
    }
    if handles.is_empty() {
        return None;
    }
    Some(Pool {
        handles,
        next: AtomicUsize::new(0),
    })
}

/// A spawned task that is aborted when this handle is dropped (a caller that stops waiting for
/// the session's opening takes the half-open socket down with it, as before the I/O threads).
pub(crate) struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
