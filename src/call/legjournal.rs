//! The store side of the SIP layer's leg journal: every change is queued without blocking the
//! SIP stack (the inspector runs inside rsipstack, synchronously) and written by one task in
//! batches, one transaction per batch.
//!
//! The queue is bounded by the legs, not by the traffic: it keeps one pending change per leg
//! (Call-ID), a newer one replacing the older, because each change is the leg's whole state
//! ("save" replaces, "forget" deletes) and only the last one matters to the store. So a store
//! that stalls while calls go on holds at most one entry per leg that changed meanwhile, and
//! nothing that matters is lost. A hard cap ([`MAX_PENDING`]) guards against a stall that
//! outlives that many legs: beyond it a new leg's change is dropped and counted
//! (`queue_full{queue="leg_journal"}`); that leg is then only missing from restart recovery.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex};

use crate::core::LegDialog;
use crate::sip::DialogJournal;
use crate::store::{LegJournalOp, Store};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Most changes written in one transaction.
const BATCH: usize = 256;

/// Most legs with a change waiting for the store: far above the legs of every call a process
/// carries (two or three per call), so only a store stalled for a long time reaches it.
pub(crate) const MAX_PENDING: usize = 65_536;

/// The changes waiting for the writer, one per leg.
#[derive(Default)]
struct Pending {
    ops: Mutex<HashMap<String, LegJournalOp>>,
    wake: Notify,
}

impl Pending {
    fn put(&self, call_id: &str, op: LegJournalOp) {
        {
            let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
            let len = ops.len();
            match ops.entry(call_id.to_owned()) {
                Entry::Occupied(mut e) => {
                    let op = match (e.get_mut(), op) {
                        // The store keeps a saved Contact when a later save has none (see
                        // `apply_leg_journal`): so does the merge of two unwritten saves.
                        (LegJournalOp::Save(old), LegJournalOp::Save(mut new)) => {
                            if new.local_contact.is_none() {
                                new.local_contact = old.local_contact.take();
                            }
                            LegJournalOp::Save(new)
                        }
                        (_, op) => op,
                    };
                    e.insert(op);
                }
                Entry::Vacant(e) => {
                    if len >= MAX_PENDING {
                        crate::overflow::dropped(
                            crate::overflow::Queue::LegJournal,
                            "a leg's dialog state",
                        );
                        return;
                    }
                    e.insert(op);
                }
            }
        }
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<LegJournalOp> {
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *ops).into_values().collect()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Queues journal changes for the writer task.
pub(crate) struct StoreJournal {
    pending: Arc<Pending>,
}

impl StoreJournal {
    /// Starts the writer; it writes what is queued and, once `stop` is cancelled, what is left,
    /// then stops.
    pub(crate) fn start(store: Store, stop: CancellationToken) -> (StoreJournal, Writer) {
        let pending = Arc::new(Pending::default());
        let task = tokio::spawn(write(store, pending.clone(), stop));
        (StoreJournal { pending }, Writer(task))
    }
}

/// The writer task; await [`Writer::finish`] so the last changes reach the disk.
pub(crate) struct Writer(tokio::task::JoinHandle<()>);

impl Writer {
    /// Waits (bounded) for the writer to flush and stop.
    pub(crate) async fn finish(self, within: std::time::Duration) {
        let _ = tokio::time::timeout(within, self.0).await;
    }
}

impl DialogJournal for StoreJournal {
    fn save(&self, leg: LegDialog) {
        let call_id = leg.call_id.clone();
        self.pending.put(&call_id, LegJournalOp::Save(leg));
    }

    fn forget(&self, call_id: &str) {
        self.pending
            .put(call_id, LegJournalOp::Forget(call_id.to_owned()));
    }
}

async fn write(store: Store, pending: Arc<Pending>, stop: CancellationToken) {
    loop {
        let stopping = tokio::select! {
            _ = pending.wake.notified() => false,
            // Stopping: what is queued still goes to disk.
            _ = stop.cancelled() => true,
        };
        let mut ops = pending.take().into_iter().peekable();
        while ops.peek().is_some() {
            let batch: Vec<LegJournalOp> = ops.by_ref().take(BATCH).collect();
            if let Err(e) = store.apply_leg_journal(batch).await {
                tracing::error!(error = %e, "cannot record the legs' dialog state");
            }
        }
        if stopping {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{LegDialogState, Transport};

    fn leg(call_id: &str, state: LegDialogState, contact: Option<&str>) -> LegDialog {
        LegDialog {
            call_id: call_id.into(),
            conversation_id: "conv".into(),
            state,
            local_tag: "lt".into(),
            remote_tag: None,
            cseq: 1,
            remote_target: "sip:callee@127.0.0.1".into(),
            route_set: Vec::new(),
            transport: Transport::Udp,
            destination: "127.0.0.1:5060".into(),
            local_contact: contact.map(str::to_owned),
            request: String::new(),
        }
    }

    #[test]
    fn one_change_per_leg_waits_and_the_last_one_wins() {
        let p = Pending::default();
        // 1. Many changes of one leg while the store is stalled: one entry, the last state,
        //    the earlier Contact kept (the store would keep it too).
        p.put(
            "a",
            LegJournalOp::Save(leg("a", LegDialogState::Calling, Some("sip:dg@h"))),
        );
        for _ in 0..1000 {
            p.put("a", LegJournalOp::Save(leg("a", LegDialogState::Up, None)));
        }
        assert_eq!(p.len(), 1);
        // 2. A forget replaces the save; another leg has its own entry.
        p.put(
            "b",
            LegJournalOp::Save(leg("b", LegDialogState::Calling, None)),
        );
        p.put("b", LegJournalOp::Forget("b".into()));
        let mut ops = p.take();
        ops.sort_by_key(|op| match op {
            LegJournalOp::Save(d) => d.call_id.clone(),
            LegJournalOp::Forget(id) => id.clone(),
        });
        match &ops[..] {
            [LegJournalOp::Save(a), LegJournalOp::Forget(b)] => {
                assert_eq!(a.state, LegDialogState::Up);
                assert_eq!(a.local_contact.as_deref(), Some("sip:dg@h"));
                assert_eq!(b, "b");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn beyond_the_cap_a_new_leg_is_dropped_and_counted_and_known_legs_still_change() {
        let p = Pending::default();
        for i in 0..MAX_PENDING {
            p.put(&i.to_string(), LegJournalOp::Forget(i.to_string()));
        }
        let before = crate::overflow::count(crate::overflow::Queue::LegJournal);
        // 1. A new leg over the cap: dropped, counted.
        p.put("new", LegJournalOp::Forget("new".into()));
        assert_eq!(p.len(), MAX_PENDING);
        assert!(crate::overflow::count(crate::overflow::Queue::LegJournal) > before);
        // 2. A leg already waiting still takes its newer state.
        p.put("0", LegJournalOp::Save(leg("0", LegDialogState::Up, None)));
        assert_eq!(p.len(), MAX_PENDING);
        assert!(
            p.take()
                .iter()
                .any(|op| matches!(op, LegJournalOp::Save(d) if d.call_id == "0"))
        );
    }
}
