//! Which of a session's costlier sources woke its task, so that a wake-up polls only those.
//!
//! The connected loop wakes twice per 20 ms frame (the person's audio, the bot's message).
//! Polling the command channel and the socket on every wake-up cost more than the two
//! doorbells: the channel's receive reads its shared block, the socket's poll goes through
//! tungstenite and tokio-tungstenite's waker proxies into tokio's readiness. Each of the two
//! is polled with a waker of its own that sets its bit here before waking the task; a wake-up
//! polls a source only if its bit is set. A source that was ready is polled again next time
//! (it may hold more), one that said pending has its waker stored and rings when it has news.

use futures_util::task::AtomicWaker;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Wake, Waker};

/// The command channel.
pub(crate) const COMMANDS: u32 = 1;
/// The bot's socket.
pub(crate) const LINK: u32 = 2;
/// Every source.
pub(crate) const ALL: u32 = COMMANDS | LINK;

/// What the sources' wakers share: the task's waker and what rang.
#[derive(Default)]
struct Bell {
    task: AtomicWaker,
    rang: AtomicU32,
}

/// One source's waker: sets its bit, then wakes the task.
struct Source {
    bell: Arc<Bell>,
    bit: u32,
}

impl Wake for Source {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.bell.rang.fetch_or(self.bit, Ordering::AcqRel);
        self.bell.task.wake();
    }
}

/// A session's wake-up bits and its sources' wakers (made once, kept for the session).
pub(crate) struct Wakeups {
    bell: Arc<Bell>,
    commands: Waker,
    link: Waker,
}

impl Wakeups {
    /// Every source set: the first wake-up polls them all.
    pub fn new() -> Wakeups {
        let bell = Arc::new(Bell::default());
        bell.rang.store(ALL, Ordering::Release);
        let waker = |bit| {
            Waker::from(Arc::new(Source {
                bell: bell.clone(),
                bit,
            }))
        };
        Wakeups {
            commands: waker(COMMANDS),
            link: waker(LINK),
            bell,
        }
    }

    /// Stores the task's waker (woken by any source) and takes the sources that rang.
    pub fn take(&self, cx: &Context<'_>) -> u32 {
        self.bell.task.register(cx.waker());
        self.bell.rang.swap(0, Ordering::AcqRel)
    }

    /// Marks `bits` to be polled at the next poll (a source that was ready, or one that was
    /// not polled this time). It wakes nothing: the caller polls again after handling what
    /// was ready (or, for a socket not read while the backlog is full, when room wakes it).
    pub fn again(&self, bits: u32) {
        if bits != 0 {
            self.bell.rang.fetch_or(bits, Ordering::AcqRel);
        }
    }

    /// The waker to poll source `bit` with.
    pub fn waker(&self, bit: u32) -> &Waker {
        if bit == COMMANDS {
            &self.commands
        } else {
            &self.link
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Poll;

    #[test]
    fn a_source_rings_its_own_bit_and_the_task() {
        // 1. The first take has every source; the next has none.
        let w = Wakeups::new();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(std::future::poll_fn(|cx| {
            assert_eq!(w.take(cx), ALL);
            assert_eq!(w.take(cx), 0);
            Poll::Ready(())
        }));
        // 2. The socket's waker rings: only its bit is taken, and the task was woken.
        rt.block_on(async {
            let mut polls = 0;
            std::future::poll_fn(|cx| {
                polls += 1;
                match w.take(cx) {
                    0 if polls == 1 => {
                        w.waker(LINK).wake_by_ref();
                        Poll::Pending
                    }
                    bits => {
                        assert_eq!(bits, LINK);
                        Poll::Ready(())
                    }
                }
            })
            .await;
        });
        // 3. `again` keeps a bit for the next wake-up.
        w.again(COMMANDS);
        rt.block_on(std::future::poll_fn(|cx| {
            assert_eq!(w.take(cx), COMMANDS);
            Poll::Ready(())
        }));
    }
}
