//! A doorbell: one task waits, any thread rings, a ring before the wait is not lost.
//!
//! Why not `tokio::sync::Notify`: a WebSocket bot session waits for the person's audio and for
//! due marks on every wake-up (twice per 20 ms frame), and each `notified()` future registers
//! in, then on drop leaves, Notify's waiter list under its mutex — four lock round trips per
//! wake-up for two events that ring once per frame at most. A doorbell has exactly one waiter
//! (the session's task), so it needs only an `AtomicWaker` and a flag: polling it stores the
//! task's waker (a compare when it is the same one as last time) and reads the flag; ringing
//! sets the flag and wakes the stored waker, if any. Nothing is registered or deregistered per
//! poll.

use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

/// One waiter's wake-up flag (see the module doc).
#[derive(Debug, Default)]
pub struct Doorbell {
    waker: AtomicWaker,
    rung: AtomicBool,
}

impl Doorbell {
    /// A doorbell not rung.
    pub fn new() -> Doorbell {
        Doorbell::default()
    }

    /// Rings: the waiter's next poll is ready (and a waiting task is woken). Rings before that
    /// poll count as one.
    pub fn ring(&self) {
        self.rung.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Ready (and the ring consumed) if the bell rang since the last ready poll; otherwise
    /// the task of `cx` is woken by the next ring.
    pub fn poll_rung(&self, cx: &mut Context<'_>) -> Poll<()> {
        // Fast path: a ring already waits, no waker to store.
        if self.rung.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        // Store the waker first, then look again: a ring between the two is seen here, one
        // after it wakes the stored waker.
        self.waker.register(cx.waker());
        if self.rung.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Waits for a ring (at once if one came since the last).
    pub async fn rung(&self) {
        std::future::poll_fn(|cx| self.poll_rung(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_ring_before_the_wait_is_not_lost_and_rings_count_once() {
        // 1. Two rings before anyone waits.
        let bell = Doorbell::new();
        bell.ring();
        bell.ring();
        runtime().block_on(async {
            // 2. The first wait returns at once, the second does not (the rings were one).
            bell.rung().await;
            let again = tokio::time::timeout(Duration::from_millis(20), bell.rung());
            assert!(again.await.is_err());
        });
    }

    #[test]
    fn a_ring_from_another_thread_wakes_the_waiting_task() {
        // 1. A task waits; 2. another thread rings after a while; 3. the wait ends.
        let bell = Arc::new(Doorbell::new());
        let ringer = {
            let bell = bell.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(30));
                bell.ring();
            })
        };
        runtime().block_on(async {
            let waited = tokio::time::timeout(Duration::from_secs(10), bell.rung()).await;
            assert!(waited.is_ok(), "the ring did not wake the task");
        });
        ringer.join().expect("ringer thread");
    }
}
