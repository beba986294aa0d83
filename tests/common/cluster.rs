//! Cluster tests' kit: what every cluster test starts with (a PostgreSQL database of its own on
//! the shared server, a Redis server, the dialer's notification sink) and the instances, each
//! a real dialgate process with its own configuration beside the others'.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::api::Http;
use super::binary::{Dialgate, free_tcp_port};
use super::http_peers::NotifySink;
use super::peers::Sipp;
use super::postgres::PgCluster;
use super::redis::RedisServer;
use super::sippflows::uas_calls;

/// `cluster.lease_sec` of every instance: short, so the tests wait little, yet two missed
/// renewals (2 s) before a busy instance could be mistaken for dead.
pub const LEASE_SEC: u64 = 4;

/// PostgreSQL (the server, kept while the test holds it, and the URL of a fresh database),
/// Redis and a notification sink that accepts everything.
pub async fn backing() -> (Arc<PgCluster>, String, RedisServer, NotifySink) {
    let pg = super::postgres::shared();
    let url = pg.database().await;
    let redis = RedisServer::start();
    let sink = NotifySink::start().await.unwrap();
    (pg, url, redis, sink)
}

/// One instance's files and API.
pub struct Instance {
    pub id: &'static str,
    pub config: PathBuf,
    pub log: PathBuf,
    pub http: Http,
}

/// Instance `id`'s configuration in `dir`: `shared` (bots, trunk, API clients: the same for
/// every instance) and the cluster's engines at `pg` and `redis`; its own are the SIP and HTTP
/// ports, the RTP range `rtp` (its room for calls: 4 pairs hold one call), data directory and
/// `instance_id`.
pub fn instance(
    dir: &Path,
    id: &'static str,
    rtp: (u16, u16),
    shared: &str,
    (pg, redis): (&str, &str),
) -> Instance {
    let (sip, http) = (super::peers::free_udp_port(), free_tcp_port());
    let config = dir.join(format!("{id}.yaml"));
    std::fs::write(
        &config,
        format!(
            "server:\n  sip:\n    listen: [ {{ transport: udp, address: \"127.0.0.1:{sip}\" }} ]\n  http: {{ listen: \"127.0.0.1:{http}\", plain_http: true }}\n  rtp: {{ port_min: {}, port_max: {}, inactivity_timeout_sec: 120 }}\n  data_dir: {}\n  bot_answer_timeout_sec: 30\n  notify_allow: [127.0.0.0/8]\n{shared}cluster:\n  instance_id: {id}\n  postgres_url: \"{pg}\"\n  redis_url: \"{redis}\"\n  lease_sec: {LEASE_SEC}\n",
            rtp.0,
            rtp.1,
            dir.join(format!("data-{id}")).display()
        ),
    )
    .unwrap();
    Instance {
        id,
        config,
        log: dir.join(format!("{id}.log")),
        http: Http::new(&format!("http://127.0.0.1:{http}"), None, false),
    }
}

impl Instance {
    /// Runs the binary for this instance and waits (bounded) until it answers /healthz.
    pub async fn run(&self) -> Dialgate {
        Dialgate::spawn_healthy(&self.config, &self.log, &self.http).await
    }
}

/// The SIPp peers every instance shares: a carrier playing `carrier` on `port` and a bot
/// answering on `port + 1`, each for `calls` calls (bounded by 120 s).
pub fn sipp_peers(carrier: &str, port: u16, calls: u32) -> (Sipp, Sipp) {
    (
        uas_calls(carrier, port, calls, 120),
        uas_calls("flow_bot_answer.xml", port + 1, calls, 120),
    )
}

/// A client on the test's database at `url` (its connection driven by a task of its own).
pub async fn db(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(conn);
    client
}
