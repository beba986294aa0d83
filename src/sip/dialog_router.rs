//! One dialog state channel for every leg, routed by Call-ID.
//!
//! rsipstack reports a dialog's states on a tokio unbounded channel of `DialogState` that the
//! caller makes. Such a channel allocates its first block at once: 32 slots of a ~300-byte
//! `DialogState` (it holds a whole `Request` or `Response`), ~10 KiB per leg for the call's
//! whole life, to carry the handful of states a leg ever sees. So every leg's INVITE gets
//! the same sender; one task takes each state off the shared channel and hands it, boxed, to
//! the leg whose Call-ID it carries, over that leg's own channel of boxes (32 × 8 bytes).
//!
//! Order is kept: rsipstack sends a dialog's states in the order they happen, the shared
//! channel is FIFO and the router forwards one state at a time. [`LegStates::flush`] lets a
//! leg read everything rsipstack sent before some point (its final response), as the old
//! per-leg channel's `try_recv` did: a marker sent after that point comes out after them.
//!
//! A leg's route is removed when its [`LegStates`] is dropped (the leg's task ended); a state
//! for a Call-ID with no route (a leg that ended) is dropped, as a send on a per-leg channel
//! whose receiver was gone was before.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, DialogStateSender};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The local tag of [`LegStates::flush`]'s marker: never a real tag (rsipstack's are
/// alphanumeric), so no dialog's state is mistaken for it.
const FLUSH_TAG: &str = "<flush>";

/// Call-ID → (registration number, the leg's channel).
type Routes = Arc<Mutex<HashMap<String, (u64, mpsc::UnboundedSender<Box<DialogState>>)>>>;

/// The shared dialog state sender and the table of legs it routes to. Cheap to clone.
#[derive(Clone)]
pub struct DialogRouter {
    sender: DialogStateSender,
    routes: Routes,
    registrations: Arc<AtomicU64>,
}

impl DialogRouter {
    /// Starts the routing task; it ends with `cancel` (the endpoint's shutdown).
    pub fn start(cancel: CancellationToken) -> DialogRouter {
        let (sender, states) = mpsc::unbounded_channel();
        let routes = Routes::default();
        tokio::spawn(route(states, routes.clone(), cancel));
        DialogRouter {
            sender,
            routes,
            registrations: Arc::default(),
        }
    }

    /// Routes the states of dialogs with this Call-ID to the returned receiver until it is
    /// dropped. A Call-ID is one leg's (a UUID per leg); registering it again replaces the
    /// earlier route.
    pub fn register(&self, call_id: &str) -> LegStates {
        let (tx, rx) = mpsc::unbounded_channel();
        let number = self.registrations.fetch_add(1, Ordering::Relaxed);
        lock(&self.routes).insert(call_id.to_owned(), (number, tx));
        LegStates {
            call_id: call_id.to_owned(),
            number,
            sender: self.sender.clone(),
            routes: self.routes.clone(),
            states: rx,
        }
    }

    /// Legs routed to now (`sip_dialog_routes` in `dialgate_table_entries`).
    pub(crate) fn len(&self) -> usize {
        lock(&self.routes).len()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The routing task: each state to its leg, in the order rsipstack sent them.
async fn route(mut states: DialogStateReceiver, routes: Routes, cancel: CancellationToken) {
    loop {
        let st = tokio::select! {
            _ = cancel.cancelled() => break,
            st = states.recv() => match st {
                Some(st) => st,
                None => break,
            },
        };
        let tx = lock(&routes)
            .get(&st.id().call_id)
            .map(|(_, tx)| tx.clone());
        match tx {
            // A leg that is ending may have just dropped its receiver: nothing to do.
            Some(tx) => {
                let _ = tx.send(Box::new(st));
            }
            None => debug!(state = %st, "dialog state for a leg that ended; dropped"),
        }
    }
    // The legs' receivers end (`recv` gives `None`) instead of waiting forever.
    lock(&routes).clear();
}

/// One leg's dialog states, and its route while it lives.
pub struct LegStates {
    call_id: String,
    number: u64,
    sender: DialogStateSender,
    routes: Routes,
    states: mpsc::UnboundedReceiver<Box<DialogState>>,
}

impl LegStates {
    /// The sender to give rsipstack with this leg's INVITE.
    pub fn sender(&self) -> DialogStateSender {
        self.sender.clone()
    }

    /// The next state of this leg's dialogs (`None` once the router stopped).
    pub async fn recv(&mut self) -> Option<DialogState> {
        loop {
            let st = *self.states.recv().await?;
            if !is_marker(&st) {
                return Some(st);
            }
        }
    }

    /// Every state rsipstack sent for this leg before this call, in order (the marker sent now
    /// comes out of the shared channel after all of them). Bounded: waits only for the router
    /// to pass the marker on; empty if the router stopped.
    pub async fn flush(&mut self) -> Vec<DialogState> {
        let marker = DialogState::Calling(DialogId {
            call_id: self.call_id.clone(),
            local_tag: FLUSH_TAG.to_owned(),
            remote_tag: String::new(),
        });
        let mut out = Vec::new();
        if self.sender.send(marker).is_err() {
            return out;
        }
        while let Some(st) = self.states.recv().await {
            if is_marker(&st) {
                break;
            }
            out.push(*st);
        }
        out
    }
}

fn is_marker(st: &DialogState) -> bool {
    matches!(st, DialogState::Calling(id) if id.local_tag == FLUSH_TAG)
}

impl Drop for LegStates {
    fn drop(&mut self) {
        let mut routes = lock(&self.routes);
        // Only our own route: a later registration of the same Call-ID keeps its own.
        if routes
            .get(&self.call_id)
            .is_some_and(|(number, _)| *number == self.number)
        {
            routes.remove(&self.call_id);
        }
    }
}

#[cfg(test)]
#[path = "dialog_router_tests.rs"]
mod tests;
