//! The store side of the SIP layer's leg journal: every change is queued without blocking the
//! SIP stack (the inspector runs inside rsipstack, synchronously) and written by one task in
//! batches, one transaction per batch, in order.

use crate::core::LegDialog;
use crate::sip::DialogJournal;
use crate::store::{LegJournalOp, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most changes written in one transaction.
const BATCH: usize = 256;

/// Queues journal changes for the writer task.
pub(crate) struct StoreJournal {
    tx: mpsc::UnboundedSender<LegJournalOp>,
}

impl StoreJournal {
    /// Starts the writer; it drains what is queued and stops when `stop` is cancelled and the
    /// queue is empty (or every sender is gone).
    pub(crate) fn start(store: Store, stop: CancellationToken) -> (StoreJournal, Writer) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(write(store, rx, stop));
        (StoreJournal { tx }, Writer(task))
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
        let _ = self.tx.send(LegJournalOp::Save(leg));
    }

    fn forget(&self, call_id: &str) {
        let _ = self.tx.send(LegJournalOp::Forget(call_id.to_owned()));
    }
}

async fn write(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<LegJournalOp>,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            op = rx.recv() => op,
            _ = stop.cancelled() => {
                // Stopping: what is queued still goes to disk.
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = store.apply_leg_journal(batch).await {
            tracing::error!(error = %e, "cannot record the legs' dialog state");
        }
    }
}
