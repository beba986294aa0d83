//! Store throughput, SQLite against PostgreSQL on this machine (`scripts/bench-store`): the
//! writes of one dialout's life (accept with an idempotency key, two progress steps, a timeline
//! line, the end with its notification) and a record read, by W concurrent writers. Prints ops/s
//! side by side. Ignored in normal runs: it measures, it does not check.

use crate::common::postgres;

use dialgate::store::{CallEnd, CallSnapshot, CallStatus, NewCall, Store};
use serde_json::json;
use std::time::Instant;

fn env_usize(name: &str, default: usize) -> usize {
    crate::measure::env_or(name, default)
}

/// Store operations in one dialout's life, as the engine and API issue them.
const OPS_PER_CALL: usize = 6;

async fn one_call(s: &Store, id: String) {
    let call = NewCall {
        conversation_id: id.clone(),
        client_id: "bench".into(),
        bot_id: "bot".into(),
        target: "+15550001".into(),
        request: json!({"bot": "bot", "target": "+15550001"}),
        config_version: 1,
        snapshot: CallSnapshot::default(),
    };
    s.insert_call(call, Some(format!("key-{id}")))
        .await
        .expect("insert");
    s.set_progress(&id, CallStatus::Dialing, None)
        .await
        .expect("dialing");
    s.set_progress(&id, CallStatus::Answered, Some(200))
        .await
        .expect("answered");
    s.add_event(&id, "note", "bench").await.expect("event");
    s.finish_call(CallEnd {
        conversation_id: id.clone(),
        status: CallStatus::Completed,
        reason_code: "normal".into(),
        reason: "bench".into(),
        sip_code: Some(200),
        notification: Some((
            "http://127.0.0.1:9/n".into(),
            json!({"status": "completed"}),
        )),
        bot_disconnect: None,
    })
    .await
    .expect("finish");
    s.get_call(&id).await.expect("read").expect("stored");
}

/// Ops/s of `calls` dialouts spread over `writers` concurrent tasks.
async fn run(store: &Store, calls: usize, writers: usize, tag: &str) -> f64 {
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let s = store.clone();
        let tag = tag.to_string();
        tasks.push(tokio::spawn(async move {
            for i in (w..calls).step_by(writers) {
                one_call(&s, format!("{tag}-{i}")).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    (calls * OPS_PER_CALL) as f64 / t0.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: scripts/bench-store"]
async fn store_bench() {
    let calls = env_usize("STORE_BENCH_CALLS", 300);
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Store::open(dir.path()).expect("sqlite");
    let cluster = postgres::PgCluster::start();
    let pg = Store::open_postgres(&cluster.database().await, "bench")
        .await
        .expect("postgres");
    println!("store ops/s ({calls} dialouts x {OPS_PER_CALL} ops; durable commits on both)");
    println!(
        "{:>8} {:>12} {:>12} {:>8}",
        "writers", "sqlite", "postgres", "pg/sqlite"
    );
    for writers in [1, 8, 32] {
        let a = run(&sqlite, calls, writers, &format!("w{writers}")).await;
        let b = run(&pg, calls, writers, &format!("w{writers}")).await;
        println!("{writers:>8} {a:>12.0} {b:>12.0} {:>8.2}", b / a);
    }
}
