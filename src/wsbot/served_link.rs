//! The session's task's end of a socket the relay thread serves (`served.rs`): what the relay
//! tells the task — the outputs of the bot's messages, a dropped socket, a socket handed back.

use super::protocol::Output;
use super::wire::WireReader;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// From the relay's side to the session's task.
#[derive(Debug)]
pub(crate) enum FromRelay {
    /// Outputs of a bot message the task carries out (events).
    Outputs(Vec<Output>),
    /// The socket failed (the reason): the task resumes or gives up.
    Dropped(String),
    /// The call's media ended before the session did: the socket comes back to the task (with
    /// the bytes read past the last message and those owed to the bot), which says goodbye.
    Returned(Box<Returned>),
}

/// A socket handed back by the relay.
#[derive(Debug)]
pub(crate) struct Returned {
    pub sock: std::net::TcpStream,
    pub reader: WireReader,
    pub owed: Vec<u8>,
}

/// What the task keeps to talk with its served leg.
#[derive(Debug)]
pub(crate) struct ServedLink {
    rx: mpsc::UnboundedReceiver<FromRelay>,
    outstanding: Arc<AtomicUsize>,
}

impl ServedLink {
    /// The relay's end (the sender, and the count of messages sent and not yet taken, which
    /// the task's end takes down) and the task's.
    pub(super) fn channel() -> (
        mpsc::UnboundedSender<FromRelay>,
        Arc<AtomicUsize>,
        ServedLink,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let outstanding = Arc::new(AtomicUsize::new(0));
        (tx, outstanding.clone(), ServedLink { rx, outstanding })
    }

    /// A link to no leg (a placeholder while the socket changes hands): polled, it reports
    /// the socket dropped.
    pub fn detached() -> ServedLink {
        Self::channel().2
    }

    /// The next word from the relay. A leg gone without a word (the relay dropped it after a
    /// panic in it, or the relay thread stopped) counts as a dropped socket: the task resumes.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<FromRelay> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(msg)) => {
                if let FromRelay::Outputs(_) = msg {
                    self.outstanding.fetch_sub(1, Relaxed);
                }
                Poll::Ready(msg)
            }
            Poll::Ready(None) => Poll::Ready(FromRelay::Dropped(
                "the media relay stopped serving the bot's socket".into(),
            )),
            Poll::Pending => Poll::Pending,
        }
    }
}
