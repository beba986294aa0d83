//! Durable state: the store's engines (SQLite, PostgreSQL) and its durability across SIGKILL,
//! the outbox (delivery, exactly once, crash, snapshot) and cluster mode on Redis and PostgreSQL.
//!
//! One test binary for the area. Fixed ports are distinct per module: relay RTP
//! `store_durability` 22000-22099, `cluster_calls` 22400-22819, `outbox_snapshot` 27400-27599,
//! `outbox_crash` 27600-27999, `cluster_postgres` 34600-34699 (SIP 16700-16701), `cluster_takeover`
//! 34700-34899 (SIP 16740-16741), `cluster_queue` 34900-34999 (SIP 16750-16753); Redis and PostgreSQL servers take free ports. `cluster_demo`
//! runs `scripts/cluster-demo`, whose three instances take relay RTP 30000-35999 and free SIP
//! ports: a relay skips a port another holds, so the overlap with the two above costs nothing.

mod cluster_calls;
mod cluster_demo;
mod cluster_limits;
mod cluster_postgres;
mod cluster_queue;
mod cluster_redis_tls;
mod cluster_takeover;
#[path = "../common/mod.rs"]
mod common;
mod outbox_crash;
mod outbox_delivery;
mod outbox_exactly_once;
mod outbox_sink;
mod outbox_snapshot;
mod store_durability;
mod store_engines;
