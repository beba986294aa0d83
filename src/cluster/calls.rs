//! The call engine as the API sees it in cluster mode: every call it starts is recorded as
//! owned by this instance for exactly as long as the call holds its permit.

use super::leases::Leases;
use super::owners::LocalHangup;
use crate::call::limiter::Decision;
use crate::call::queue::DialQueue;
use crate::call::{AcceptedDialout, CallControl, HangupOutcome};
use std::sync::Arc;

/// Wraps the engine: `start` records the owner, the rest is the engine's.
pub struct ClusterCalls {
    inner: Arc<dyn CallControl>,
    leases: Arc<Leases>,
}

/// The owner record's guard, held with the call's permit: dropped when the call ends.
struct OwnerLease {
    leases: Arc<Leases>,
    id: String,
}

impl Drop for OwnerLease {
    fn drop(&mut self) {
        self.leases.disown_call(&self.id);
    }
}

impl ClusterCalls {
    /// `inner` (the engine) with owner records kept by `leases`.
    pub fn new(inner: Arc<dyn CallControl>, leases: Arc<Leases>) -> ClusterCalls {
        ClusterCalls { inner, leases }
    }
}

impl CallControl for ClusterCalls {
    fn start(&self, mut call: AcceptedDialout) {
        self.leases.own_call(&call.conversation_id);
        call.permit.hold(OwnerLease {
            leases: self.leases.clone(),
            id: call.conversation_id.clone(),
        });
        self.inner.start(call);
    }

    fn hangup(&self, conversation_id: &str) -> HangupOutcome {
        self.inner.hangup(conversation_id)
    }

    fn live_by_state(&self) -> Vec<(&'static str, i64)> {
        self.inner.live_by_state()
    }

    fn tables(&self) -> Vec<(&'static str, i64)> {
        self.inner.tables()
    }
}

/// What a routed hang-up does on the owner: what `DELETE` does locally (a queued call leaves
/// the queue, a live call is told to end).
pub struct LocalCalls {
    pub queue: Arc<DialQueue>,
    pub calls: Arc<dyn CallControl>,
}

impl LocalHangup for LocalCalls {
    fn hangup_here<'a>(&'a self, conversation_id: &'a str) -> Decision<'a, bool> {
        Box::pin(async move {
            self.queue.cancel(conversation_id).await
                || self.calls.hangup(conversation_id) == HangupOutcome::Requested
        })
    }
}
