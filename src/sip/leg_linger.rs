//! An answered INVITE's client transaction ends with its leg, not 32 s later.
//!
//! RFC 6026 §7.2 keeps a client INVITE transaction in the Accepted state until Timer M
//! (64×T1 = 32 s) after its 2xx, to absorb 2xx retransmissions. rsipstack 0.7.14 waits for Timer
//! M in a task that also holds the leg's whole dialog (its state channel, whose first block
//! holds 32 states, and its requests) and the transaction's own event channel: ~20 KiB per leg
//! that outlived its call by 32 s. At 200 calls/s of 3 s that was ten times the memory of the
//! live calls.
//!
//! Once the leg has ended (BYE sent or received, dialog removed) there is nothing left for the
//! transaction to do that it would not still do without it: on termination rsipstack moves its
//! ACK into the endpoint's finished-transaction cache (kept 64×T1 as before), which answers a
//! retransmitted 2xx with that same ACK. So the leg tells the transaction to terminate now.
//! rsipstack is pinned and not patched: this uses its public transaction table and event.

use rsipstack::sip::Response;
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::TransactionEvent;

use super::SipEndpoint;

/// The client transaction a 2xx to our INVITE belongs to (`None`: the response is malformed,
/// then the transaction simply runs its course).
pub(super) fn invite_key(answer: &Response) -> Option<TransactionKey> {
    TransactionKey::from_response(answer, TransactionRole::Client).ok()
}

/// Terminates the answered INVITE's transaction if it is still waiting for Timer M. Nothing
/// happens when it already ended (a call longer than 64×T1).
pub(super) fn end_accepted(ep: &SipEndpoint, key: Option<TransactionKey>) {
    let Some(key) = key else { return };
    if let Some(tu) = ep.core.endpoint.inner.transactions.get(&key) {
        // Delivered to the task draining the Accepted transaction, whose `receive` then
        // returns `None`: the task ends and drops the transaction and the dialog.
        let _ = tu.send(TransactionEvent::Terminate(key));
    }
}
