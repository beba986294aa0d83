//! Liveness of cluster instances and the takeover of a dead one's work, on the shared store
//! (PostgreSQL; the SQLite store serves one instance, which has nobody to take over from).
//!
//! Each instance renews a lease on its row ([`Store::heartbeat`]); a survivor that finds an
//! instance whose lease ran out with calls or SIP legs still on it ([`Store::dead_instances`])
//! moves them to itself in one transaction ([`Store::take_over`]): of two survivors trying at
//! once, exactly one gets them.

use super::{CallRecord, Store, StoreError};
use crate::core::LegDialog;

/// What renewing this instance's lease found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease is renewed; nobody took anything over.
    Alive,
    /// The lease had run out and instance `by` took this instance's calls over (it was stalled
    /// or cut off from the database). The lease is renewed now.
    TakenOver { by: String },
}

/// An instance whose lease ran out while calls or legs are still on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadInstance {
    pub instance_id: String,
    /// How long ago its lease ran out (database clock).
    pub expired_ms: i64,
}

/// What a survivor took over from a dead instance; each is now owned by the survivor.
#[derive(Debug, Clone, Default)]
pub struct TakenOver {
    /// The dead instance.
    pub from: String,
    /// How long its lease had run out when it was taken over.
    pub expired_ms: i64,
    /// Calls it had started (or accepted to start) and not ended, oldest first.
    pub calls: Vec<CallRecord>,
    /// Queued dialouts it had not dialled yet, in queue order.
    pub waiting: Vec<CallRecord>,
    /// Its SIP legs still ringing or up, from the leg journal.
    pub legs: Vec<LegDialog>,
}

impl TakenOver {
    /// Whether there was anything to take.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty() && self.waiting.is_empty() && self.legs.is_empty()
    }
}

impl Store {
    /// Renews this instance's lease for `lease_ms` on the database's clock, and says whether
    /// another instance took its calls over meanwhile. SQLite: always [`Heartbeat::Alive`].
    pub async fn heartbeat(&self, lease_ms: i64) -> Result<Heartbeat, StoreError> {
        match self.pg() {
            Some(pg) => pg.heartbeat(lease_ms).await,
            None => Ok(Heartbeat::Alive),
        }
    }

    /// Other instances whose lease ran out with calls or legs still on them, longest dead
    /// first. SQLite: none.
    pub async fn dead_instances(&self) -> Result<Vec<DeadInstance>, StoreError> {
        match self.pg() {
            Some(pg) => pg.dead_instances().await,
            None => Ok(Vec::new()),
        }
    }

    /// Takes `dead`'s unfinished calls, queued dialouts and leg dialogs over, in one
    /// transaction: `None` when `dead` renewed its lease after all, when this instance's own
    /// lease has run out, or on SQLite. A second survivor racing this one waits for it and gets
    /// an empty [`TakenOver`].
    pub async fn take_over(&self, dead: &str) -> Result<Option<TakenOver>, StoreError> {
        match self.pg() {
            Some(pg) => pg.take_over(dead).await,
            None => Ok(None),
        }
    }

    /// Which of `ids` are no longer owned by this instance (another took them over while this
    /// one was cut off). SQLite: none.
    pub async fn not_owned(&self, ids: Vec<String>) -> Result<Vec<String>, StoreError> {
        match self.pg() {
            Some(pg) if !ids.is_empty() => pg.not_owned(ids).await,
            _ => Ok(Vec::new()),
        }
    }
}
