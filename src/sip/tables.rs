//! Sizes of the SIP layer's per-call tables, rsipstack's and ours, for `/metrics`.
//!
//! Each one goes back to 0 once no call is up and the protocol timers of the last calls have run
//! out (a finished transaction is kept up to 64×T1 to absorb retransmissions), so a table that
//! only grows with the calls that have *finished* is a leak that shows without a heap profiler.

use super::endpoint::SipEndpoint;

/// Entries in each per-call table of the SIP layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SipTables {
    /// Dialogs rsipstack tracks (early and confirmed).
    pub dialogs: usize,
    /// Transactions running (each has its task and its event channel).
    pub transactions: usize,
    /// Finished transactions kept to answer retransmissions (removed by their cleanup timer).
    pub finished_transactions: usize,
    /// Server INVITE transactions waiting for the ACK of their 2xx.
    pub waiting_ack: usize,
    /// Timers rsipstack has armed (retransmissions, timeouts, cleanups).
    pub timers: usize,
    /// Our legs placed and not yet ended (their dialog state is journaled meanwhile).
    pub legs: usize,
    /// Legs the shared dialog state channel routes to (one per leg task alive).
    pub dialog_routes: usize,
}

impl SipTables {
    /// `(table, entries)` pairs, named as in the `table` label of `dialgate_table_entries`.
    pub fn pairs(&self) -> [(&'static str, usize); 7] {
        [
            ("sip_dialogs", self.dialogs),
            ("sip_transactions", self.transactions),
            ("sip_finished_transactions", self.finished_transactions),
            ("sip_waiting_ack", self.waiting_ack),
            ("sip_timers", self.timers),
            ("sip_legs", self.legs),
            ("sip_dialog_routes", self.dialog_routes),
        ]
    }
}

impl SipEndpoint {
    /// How many entries each per-call table holds now.
    pub fn tables(&self) -> SipTables {
        let inner = &self.core.endpoint.inner;
        let stats = inner.get_stats();
        SipTables {
            dialogs: self.core.dialogs.len(),
            transactions: stats.running_transactions,
            finished_transactions: stats.finished_transactions,
            waiting_ack: stats.waiting_ack,
            timers: inner.timers.len(),
            legs: self.core.hook.legs_len(),
            dialog_routes: self.core.router.len(),
        }
    }
}
