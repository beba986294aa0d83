//! Prometheus metrics (text exposition at `GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Mutex;

#[path = "metrics_heap.rs"]
mod heap;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BotLabels {
    pub bot: String,
}

fn queue_wait_histogram() -> Histogram {
    // 0.1 s .. ~27 min.
    Histogram::new(exponential_buckets(0.1, 2.0, 15))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

/// Every metric dialgate exports.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Call states whose gauge was ever set: a state with no live call any more reads 0, not
    /// its last count.
    call_states_seen: Mutex<std::collections::BTreeSet<String>>,
    pub http_requests: Family<RouteLabels, Counter>,
    pub dialouts_accepted: Counter,
    pub dialouts_rejected: Family<ReasonLabels, Counter>,
    pub calls: Family<StateLabels, Gauge>,
    pub calls_ended: Family<ReasonLabels, Counter>,
    pub config_reloads: Family<ResultLabels, Counter>,
    pub notifications: Family<ResultLabels, Counter>,
    pub rtp_packets_forwarded: Counter,
    pub rtp_bytes_forwarded: Counter,
    pub rtp_dropped: Family<ReasonLabels, Counter>,
    pub media_streams: Gauge,
    pub tap_drops: Counter,
    /// Outbox items claimed for delivery (one per attempt).
    pub outbox_claimed: Counter,
    /// Items read as due but already taken or finished by another worker when claimed: a
    /// duplicate delivery that did not happen.
    pub outbox_duplicates_suppressed: Counter,
    /// Attempts whose claim ran out before they were recorded (the item may be sent again,
    /// with the same event id).
    pub outbox_leases_lost: Counter,
    /// `answered` notifications given up because the call's terminal one replaced them.
    pub outbox_superseded: Counter,
    /// Call records deleted by retention.
    pub calls_pruned: Counter,
    pub auth_delayed: Counter,
    pub log_suppressed: Counter,
    /// Dialouts waiting in each bot's queue (`outbound.on_limit`).
    pub queue_depth: Family<BotLabels, Gauge>,
    /// How long queued dialouts waited before they were dialled, per bot.
    pub queue_wait: Family<BotLabels, Histogram, fn() -> Histogram>,
    /// WebSocket bots, per bot kind.
    pub wsbot: crate::wsbot::WsBotMetrics,
    /// SIP legs a previous process left ringing or up, ended (CANCEL/BYE answered) at start-up.
    pub legs_cleaned_at_recovery: Counter,
    /// Cluster liveness and takeover.
    pub cluster: crate::cluster::ClusterMetrics,
    /// Items a full bounded queue left out, by queue (see `crate::overflow`).
    pub queue_full: Family<QueueLabels, Counter>,
    /// Entries in each per-call table (see `CallControl::tables`): a leak check.
    pub table_entries: Family<TableLabels, Gauge>,
    /// Tasks alive in the async runtime (each call has a few; a count that grows with the calls
    /// that ended is a task that never ends).
    pub tokio_tasks: Gauge,
    /// Heap bytes in use as the allocator counts them (read at each scrape; 0 where unknown).
    pub heap_bytes: Gauge,
}

/// The `table` label of `table_entries`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabels {
    pub table: String,
}

/// The `queue` label of `queue_full`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub queue: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("dialgate");
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            call_states_seen: Mutex::new(Default::default()),
            http_requests: Family::default(),
            dialouts_accepted: Counter::default(),
            dialouts_rejected: Family::default(),
            calls: Family::default(),
            calls_ended: Family::default(),
            config_reloads: Family::default(),
            notifications: Family::default(),
            rtp_packets_forwarded: Counter::default(),
            rtp_bytes_forwarded: Counter::default(),
            rtp_dropped: Family::default(),
            media_streams: Gauge::default(),
            tap_drops: Counter::default(),
            outbox_claimed: Counter::default(),
            outbox_duplicates_suppressed: Counter::default(),
            outbox_leases_lost: Counter::default(),
            outbox_superseded: Counter::default(),
            calls_pruned: Counter::default(),
            auth_delayed: Counter::default(),
            log_suppressed: Counter::default(),
            queue_depth: Family::default(),
            queue_wait: Family::new_with_constructor(queue_wait_histogram as fn() -> Histogram),
            wsbot: crate::wsbot::WsBotMetrics::default(),
            legs_cleaned_at_recovery: Counter::default(),
            cluster: Default::default(),
            queue_full: Family::default(),
            table_entries: Family::default(),
            tokio_tasks: Gauge::default(),
            heap_bytes: Gauge::default(),
        };
        r.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        r.register(
            "dialouts_accepted",
            "Dialout requests accepted",
            m.dialouts_accepted.clone(),
        );
        r.register(
            "dialouts_rejected",
            "Dialout requests rejected, by reason",
            m.dialouts_rejected.clone(),
        );
        r.register("calls", "Live calls by state", m.calls.clone());
        r.register(
            "calls_ended",
            "Calls ended, by reasonCode",
            m.calls_ended.clone(),
        );
        r.register(
            "config_reloads",
            "Configuration reloads by result",
            m.config_reloads.clone(),
        );
        r.register(
            "notifications",
            "Outbox deliveries by result",
            m.notifications.clone(),
        );
        r.register(
            "rtp_packets_forwarded",
            "RTP/RTCP packets forwarded",
            m.rtp_packets_forwarded.clone(),
        );
        r.register(
            "rtp_bytes_forwarded",
            "RTP/RTCP bytes forwarded",
            m.rtp_bytes_forwarded.clone(),
        );
        r.register(
            "rtp_dropped",
            "RTP/RTCP packets dropped, by cause",
            m.rtp_dropped.clone(),
        );
        r.register(
            "media_streams",
            "Active media sessions",
            m.media_streams.clone(),
        );
        r.register(
            "tap_drops",
            "Audio frames dropped by slow tap consumers",
            m.tap_drops.clone(),
        );
        r.register(
            "outbox_claimed",
            "Outbox items claimed for a delivery attempt",
            m.outbox_claimed.clone(),
        );
        r.register(
            "outbox_duplicates_suppressed",
            "Outbox items read as due but already claimed or finished by another worker (not sent again)",
            m.outbox_duplicates_suppressed.clone(),
        );
        r.register(
            "outbox_leases_lost",
            "Delivery attempts whose claim ran out before they were recorded",
            m.outbox_leases_lost.clone(),
        );
        r.register(
            "outbox_superseded",
            "Answered notifications superseded by the call's terminal notification",
            m.outbox_superseded.clone(),
        );
        r.register(
            "calls_pruned",
            "Call records deleted by retention",
            m.calls_pruned.clone(),
        );
        r.register(
            "auth_delayed",
            "Authentication attempts slowed by the failure brake",
            m.auth_delayed.clone(),
        );
        r.register(
            "log_suppressed",
            "Log lines about malformed input left out by the per-source rate limit",
            m.log_suppressed.clone(),
        );
        m.wsbot.register(&mut r);
        m.cluster.register(&mut r);
        r.register(
            "legs_cleaned_at_recovery",
            "SIP legs this instance's previous process left ringing or up, ended with CANCEL or BYE at start-up (a dead cluster instance's legs count in cluster_legs_taken_over)",
            m.legs_cleaned_at_recovery.clone(),
        );
        r.register(
            "queue_depth",
            "Dialouts waiting in a bot's queue",
            m.queue_depth.clone(),
        );
        r.register(
            "queue_wait_seconds",
            "Time queued dialouts waited before they were dialled",
            m.queue_wait.clone(),
        );
        r.register(
            "queue_full",
            "Items a full bounded queue left out (or SIP connections refused at the cap), by queue",
            m.queue_full.clone(),
        );
        r.register(
            "table_entries",
            "Entries in each per-call table (live calls, SIP dialogs, transactions, timers, legs); back to 0 when no call is up and the SIP timers ran out",
            m.table_entries.clone(),
        );
        r.register(
            "tokio_tasks",
            "Tasks alive in the async runtime",
            m.tokio_tasks.clone(),
        );
        r.register(
            "heap_bytes",
            "Heap bytes in use (allocated and not freed), as the allocator counts them",
            m.heap_bytes.clone(),
        );
        *m.registry.lock().unwrap_or_else(|p| p.into_inner()) = r;
        m
    }

    /// Counts one HTTP answer.
    pub fn http(&self, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// Sets the live-call gauges from a count per state; every state seen before and absent
    /// now goes back to 0 (the registry of live calls is the truth: every path that ends a
    /// call — normal end, failure before answer, panic, a stop — removes it there).
    pub fn set_live_calls(&self, counts: &[(&str, i64)]) {
        let mut seen = self
            .call_states_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for s in seen.iter() {
            if !counts.iter().any(|(st, _)| st == s) {
                self.calls
                    .get_or_create(&StateLabels { state: s.clone() })
                    .set(0);
            }
        }
        for (st, n) in counts {
            seen.insert((*st).to_owned());
            self.calls
                .get_or_create(&StateLabels {
                    state: (*st).to_owned(),
                })
                .set(*n);
        }
    }

    /// Counts one rejected dialout.
    pub fn rejected(&self, reason: &str) {
        self.dialouts_rejected
            .get_or_create(&ReasonLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Sets the depth of `bot`'s dialout queue.
    pub fn set_queue_depth(&self, bot: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&BotLabels {
                bot: bot.to_owned(),
            })
            .set(depth as i64);
    }

    /// Records how long a queued dialout of `bot` waited.
    pub fn observe_queue_wait(&self, bot: &str, secs: f64) {
        self.queue_wait
            .get_or_create(&BotLabels {
                bot: bot.to_owned(),
            })
            .observe(secs);
    }

    /// Counts one configuration reload.
    pub fn reload(&self, ok: bool) {
        self.config_reloads
            .get_or_create(&ResultLabels {
                result: if ok { "ok" } else { "failed" }.to_owned(),
            })
            .inc();
    }

    /// Brings the relay's process-wide counters into the registry (they are
    /// kept as plain atomics on the forwarding path, never a registry lookup).
    pub fn sync_media(&self, m: &crate::media::MetricsSnapshot) {
        fn catch_up(c: &Counter, to: u64) {
            c.inc_by(to.saturating_sub(c.get()));
        }
        catch_up(&self.rtp_packets_forwarded, m.rtp_packets_forwarded);
        catch_up(&self.rtp_bytes_forwarded, m.rtp_bytes_forwarded);
        catch_up(&self.tap_drops, m.tap_drops);
        for (reason, n) in [
            ("any", m.packets_dropped),
            ("port_exhausted", m.port_exhausted),
            ("foreign_source", m.foreign_source),
            ("wrong_ssrc", m.wrong_ssrc),
        ] {
            catch_up(
                &self.rtp_dropped.get_or_create(&ReasonLabels {
                    reason: reason.into(),
                }),
                n,
            );
        }
        self.media_streams.set(m.sessions_active as i64);
    }

    /// Sets the per-call table sizes and the runtime's live task count (read at each scrape).
    pub fn set_tables(&self, tables: &[(&str, i64)]) {
        for (table, n) in tables {
            self.table_entries
                .get_or_create(&TableLabels {
                    table: (*table).to_owned(),
                })
                .set(*n);
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            self.tokio_tasks.set(rt.metrics().num_alive_tasks() as i64);
        }
        if let Some(n) = heap::in_use_bytes() {
            self.heap_bytes.set(n as i64);
        }
    }

    /// Brings the bounded queues' drop counters (`crate::overflow`) into the registry.
    pub fn sync_queues(&self) {
        for (q, n) in crate::overflow::counts() {
            let c = self.queue_full.get_or_create(&QueueLabels {
                queue: q.as_str().to_owned(),
            });
            c.inc_by(n.saturating_sub(c.get()));
        }
    }

    /// Renders the text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &r).is_err() {
            out.push_str("# encoding error\n");
        }
        out
    }
}
