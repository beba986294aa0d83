//! Metrics of cluster liveness and takeover (`dialgate_cluster_*`).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// What `/metrics` says about takeovers.
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// Dead instances whose work this instance took over.
    pub takeovers: Counter,
    /// Calls taken over from dead instances (live calls ended, and queued dialouts adopted).
    pub calls_taken_over: Counter,
    /// SIP legs of dead instances taken over to be ended (CANCEL or BYE).
    pub legs_taken_over: Counter,
    /// Times this instance found, on renewing its lease, that another had taken its calls
    /// over (it was stalled or cut off from the database for longer than its lease).
    pub declared_dead: Counter,
}

impl ClusterMetrics {
    /// Registers every counter in `r`.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "cluster_takeovers",
            "Dead cluster instances whose calls this instance took over",
            self.takeovers.clone(),
        );
        r.register(
            "cluster_calls_taken_over",
            "Calls taken over from dead cluster instances (live calls ended, queued dialouts adopted)",
            self.calls_taken_over.clone(),
        );
        r.register(
            "cluster_legs_taken_over",
            "SIP legs of dead cluster instances taken over by this instance to be ended (CANCEL or BYE)",
            self.legs_taken_over.clone(),
        );
        r.register(
            "cluster_declared_dead",
            "Times another instance took this instance's calls over while its lease had run out",
            self.declared_dead.clone(),
        );
    }
}
