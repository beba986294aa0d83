//! The outbox delivers every item exactly once, and one bad destination cannot hold up the
//! others: several workers racing on one store over real HTTP, a notify URL that hangs, an
//! `answered` notification superseded by the terminal one, retention.
//! No SIP here: items are written through the store as the call engine writes them.

use crate::common::binary::server_yaml;
use crate::outbox_sink;

use dialgate::config::ConfigStore;
use dialgate::metrics::Metrics;
use dialgate::store::{CallEnd, CallSnapshot, CallStatus, NewCall, Store};
use dialgate::webhook::{Outbox, OutboxOptions};
use outbox_sink::{Behaviour, Sink, until_settled};
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const WHSEC: &str = "whsec-exactly-once";
const WAIT: Duration = Duration::from_secs(60);

/// A configuration file with the given `server.outbox` caps (nothing else is used here).
fn config(dir: &Path, max_concurrent: u32, per_destination: u32) -> Arc<ConfigStore> {
    let path = dir.join("dialgate.yaml");
    let server = server_yaml(0, 0, None, &dir.join("data"));
    std::fs::write(
        &path,
        format!(
            "{server}  notify_allow: [127.0.0.0/8]\n  outbox: {{ max_concurrent: {max_concurrent}, max_per_destination: {per_destination}, connect_timeout_ms: 2000 }}\n"
        ),
    )
    .unwrap();
    Arc::new(ConfigStore::open(&path).expect("config loads"))
}

/// A temporary directory (kept while the caller holds it) with [`config`]'s file and the
/// path of the store's data directory in it.
fn config_and_data(
    max_concurrent: u32,
    per_destination: u32,
) -> (tempfile::TempDir, Arc<ConfigStore>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), max_concurrent, per_destination);
    let data = dir.path().join("data");
    (dir, cfg, data)
}

fn opts(request_timeout: Duration) -> OutboxOptions {
    OutboxOptions {
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        max_attempts: 5,
        request_timeout,
    }
}

/// Writes an accepted call, as the API does, with its snapshot.
async fn add_call(store: &Store, id: &str) {
    store
        .insert_call(
            NewCall {
                conversation_id: id.to_owned(),
                client_id: "d".into(),
                bot_id: "b".into(),
                target: "+15550000000".into(),
                request: json!({"bot": "b", "target": "+15550000000"}),
                config_version: 1,
                snapshot: CallSnapshot {
                    webhook_secret: Some(WHSEC.into()),
                    bot_name: "B".into(),
                    ..Default::default()
                },
            },
            None,
        )
        .await
        .unwrap();
}

/// The end of call `id` as the person hangs up (`reason`), its `completed` notification (seq 1)
/// to `url`.
fn person_hung_up(id: &str, reason: &str, url: &str) -> CallEnd {
    CallEnd {
        conversation_id: id.into(),
        status: CallStatus::Completed,
        reason_code: "client-disconnected".into(),
        reason: reason.into(),
        sip_code: Some(200),
        notification: Some((url.into(), note(id, "completed", 1))),
        bot_disconnect: None,
    }
}

/// The body of one status notification.
fn note(id: &str, status: &str, seq: usize) -> serde_json::Value {
    json!({"conversationId": id, "status": status, "seq": seq})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_workers_send_every_item_exactly_once() {
    // 1. One store file, four outboxes on their own connections (as four workers, or four
    //    processes, would be), all delivering to one real HTTP sink that records event ids.
    let (_dir, cfg, data) = config_and_data(64, 64);
    let sink = Sink::start(Behaviour::Accept).await;
    let metrics: Vec<Arc<Metrics>> = (0..4).map(|_| Arc::new(Metrics::new())).collect();
    let outboxes: Vec<Arc<Outbox>> = metrics
        .iter()
        .map(|m| {
            Outbox::new(
                Store::open(&data).unwrap(),
                cfg.clone(),
                m.clone(),
                opts(Duration::from_secs(10)),
            )
        })
        .collect();
    // 2. 60 calls with 4 notifications each, queued before the workers start, so every
    //    worker reads the same due items at once.
    let store = Store::open(&data).unwrap();
    let ids: Vec<String> = (0..60).map(|i| format!("race-{i:03}")).collect();
    for id in &ids {
        add_call(&store, id).await;
        for (seq, st) in ["answered", "x1", "x2", "completed"].iter().enumerate() {
            outboxes[0]
                .notify_dialer(id, &sink.url(), note(id, st, seq))
                .await
                .unwrap();
        }
    }
    let shutdown = CancellationToken::new();
    let started = std::time::Instant::now();
    let tasks: Vec<_> = outboxes.iter().map(|o| o.spawn(shutdown.clone())).collect();
    // 3. Everything is delivered.
    until_settled(&store, &ids, WAIT).await;
    eprintln!(
        "240 items delivered in {:?} (informational)",
        started.elapsed()
    );
    shutdown.cancel();
    for t in tasks {
        let _ = t.await;
    }
    // 4. Every item reached the sink exactly once: 240 requests, 240 distinct event ids.
    let got = sink.requests();
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *per_event.entry(r.event_id.clone()).or_default() += 1;
    }
    let twice: Vec<_> = per_event.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "items delivered more than once: {twice:?}"
    );
    assert_eq!(got.len(), 240);
    assert_eq!(per_event.len(), 240);
    // 5. Each call's notifications arrived in order, each signed with the call's secret.
    for id in &ids {
        let seqs: Vec<u64> = got
            .iter()
            .filter(|r| r.body["conversationId"] == id.as_str())
            .map(|r| r.body["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, vec![0, 1, 2, 3], "order of {id}");
    }
    assert!(got.iter().all(|r| r.signed_with(WHSEC)));
    // 6. Every item was claimed once in all; the race shows as suppressed duplicates, never
    //    as a second request. Each item is recorded delivered with one attempt.
    let claimed: u64 = metrics.iter().map(|m| m.outbox_claimed.get()).sum();
    assert_eq!(claimed, 240);
    let suppressed: u64 = metrics
        .iter()
        .map(|m| m.outbox_duplicates_suppressed.get())
        .sum();
    eprintln!("240 items, 4 workers: {suppressed} duplicate sends suppressed by the claim");
    for id in &ids {
        for (item, attempts) in store.deliveries(id).await.unwrap() {
            assert_eq!(item.state, "delivered");
            assert_eq!(attempts.len(), 1, "{item:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_notify_url_does_not_hold_up_other_calls() {
    // 1. 100 calls whose notify URL accepts connections and never answers, then one call
    //    with a healthy sink. Caps: 16 in flight, 4 per destination.
    let (_dir, cfg, data) = config_and_data(16, 4);
    let hung = Sink::start(Behaviour::Hang).await;
    let healthy = Sink::start(Behaviour::Accept).await;
    let store = Store::open(&data).unwrap();
    let metrics = Arc::new(Metrics::new());
    let outbox = Outbox::new(
        store.clone(),
        cfg,
        metrics.clone(),
        opts(Duration::from_secs(120)),
    );
    let mut hung_ids = Vec::new();
    for i in 0..100 {
        let id = format!("hung-{i:03}");
        add_call(&store, &id).await;
        outbox
            .notify_dialer(&id, &hung.url(), note(&id, "answered", 0))
            .await
            .unwrap();
        hung_ids.push(id);
    }
    add_call(&store, "healthy").await;
    outbox
        .notify_dialer("healthy", &healthy.url(), note("healthy", "answered", 0))
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let task = outbox.spawn(shutdown.clone());
    // 2. The healthy call's notification is delivered…
    let started = std::time::Instant::now();
    healthy.wait_for(1, WAIT).await;
    eprintln!(
        "healthy notification after {:?} (informational)",
        started.elapsed()
    );
    let (item, _) = store.deliveries("healthy").await.unwrap().remove(0);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut state = item.state;
    while state != "delivered" && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        state = store.deliveries("healthy").await.unwrap()[0]
            .0
            .state
            .clone();
    }
    assert_eq!(state, "delivered");
    // 3. …while every hung notification is still pending with no attempt finished, and the
    //    hanging destination holds no more than its 4 connections.
    for id in &hung_ids {
        let d = store.deliveries(id).await.unwrap();
        assert_eq!(d[0].0.state, "pending", "{id}");
        assert!(d[0].1.is_empty(), "{id} has a finished attempt");
    }
    assert!(
        hung.connections() <= 4,
        "{} connections",
        hung.connections()
    );
    assert!(hung.connections() >= 1);
    assert_eq!(metrics.outbox_claimed.get(), hung.connections() as u64 + 1);
    // 4. Shutdown gives back the claims of the deliveries still hanging (bounded wait), so
    //    a restarted process takes them at once instead of after their lease.
    shutdown.cancel();
    let _ = task.await;
    let conn = rusqlite::Connection::open(data.join("dialgate.sqlite")).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count("SELECT COUNT(*) FROM outbox WHERE claim_token IS NOT NULL"),
        0
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM outbox WHERE state='pending'"),
        100
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_notification_supersedes_a_failing_answered_one() {
    // 1. A dialer that answers 500 to `answered` and 200 to anything else.
    let (_dir, cfg, data) = config_and_data(8, 8);
    let sink = Sink::start(Behaviour::Fail500On("answered".into())).await;
    let store = Store::open(&data).unwrap();
    let metrics = Arc::new(Metrics::new());
    // A long budget: without superseding, `completed` would wait for all of it.
    let mut o = opts(Duration::from_secs(10));
    o.max_attempts = 1000;
    o.base_backoff = Duration::from_millis(100);
    o.max_backoff = Duration::from_millis(100);
    let outbox = Outbox::new(store.clone(), cfg, metrics.clone(), o);
    let shutdown = CancellationToken::new();
    let task = outbox.spawn(shutdown.clone());
    // 2. The call is answered: `answered` is queued and fails twice.
    add_call(&store, "sup").await;
    store
        .insert_call(
            NewCall {
                conversation_id: "fresh".into(),
                client_id: "d".into(),
                bot_id: "b".into(),
                target: "+1".into(),
                request: json!({}),
                config_version: 1,
                snapshot: CallSnapshot::default(),
            },
            None,
        )
        .await
        .unwrap();
    outbox
        .notify_dialer("sup", &sink.url(), note("sup", "answered", 0))
        .await
        .unwrap();
    sink.wait_for(2, WAIT).await;
    // 3. The call ends: state, terminal notification in one transaction.
    let done = outbox
        .finish_call(person_hung_up("sup", "the person hung up", &sink.url()))
        .await
        .unwrap();
    assert!(done.newly_terminal && done.queued);
    // 4. `completed` is delivered at once (it is the next request that is accepted), and
    //    `answered` is recorded as superseded, not retried any more.
    let accepted = sink.wait_for_accepted(1, WAIT).await;
    assert_eq!(accepted[0].body["status"], "completed");
    until_settled(&store, &["sup".to_owned()], WAIT).await;
    let d = store.deliveries("sup").await.unwrap();
    assert_eq!(d[0].0.state, "superseded");
    assert_eq!(
        d[0].0.last_error.as_deref(),
        Some(dialgate::store::SUPERSEDED)
    );
    assert_eq!(d[1].0.state, "delivered");
    assert_eq!(d[1].1.len(), 1, "the terminal's own first attempt");
    assert_eq!(metrics.outbox_superseded.get(), 1);
    let answered_tries = d[0].1.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.deliveries("sup").await.unwrap()[0].1.len(),
        answered_tries
    );
    // 5. A second end of the same call writes nothing.
    let again = outbox
        .finish_call(CallEnd {
            conversation_id: "sup".into(),
            status: CallStatus::Failed,
            reason_code: "error".into(),
            reason: "late".into(),
            sip_code: None,
            notification: Some((sink.url(), note("sup", "failed", 2))),
            bot_disconnect: None,
        })
        .await
        .unwrap();
    assert!(!again.newly_terminal && !again.queued);
    assert_eq!(store.deliveries("sup").await.unwrap().len(), 2);
    // 6. An `answered` never tried yet is not superseded: a healthy dialer still sees it first.
    let healthy = Sink::start(Behaviour::Accept).await;
    outbox
        .notify_dialer("fresh", &healthy.url(), note("fresh", "answered", 0))
        .await
        .unwrap();
    let fin = store
        .finish_call(person_hung_up("fresh", "bye", &healthy.url()))
        .await
        .unwrap();
    assert_eq!(fin.superseded, 0);
    let got = healthy.wait_for_accepted(2, WAIT).await;
    let order: Vec<_> = got.iter().map(|r| r.body["status"].clone()).collect();
    assert_eq!(order, vec![json!("answered"), json!("completed")]);
    shutdown.cancel();
    let _ = task.await;
}

#[tokio::test]
async fn retention_prunes_old_finished_calls_and_keeps_the_rest() {
    // 1. Three calls: one finished long ago and delivered, one finished long ago with a
    //    notification still pending, one still live.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = Store::open(&data).unwrap();
    for id in ["old", "old-pending", "live"] {
        add_call(&store, id).await;
    }
    for id in ["old", "old-pending"] {
        store
            .finish_call(CallEnd {
                conversation_id: id.into(),
                status: CallStatus::Failed,
                reason_code: "busy".into(),
                reason: "486".into(),
                sip_code: Some(486),
                notification: Some(("http://127.0.0.1:9/n".into(), note(id, "failed", 0))),
                bot_disconnect: None,
            })
            .await
            .unwrap();
    }
    // 2. Back-date them 40 days, and mark the first one's notification delivered.
    {
        let conn = rusqlite::Connection::open(data.join("dialgate.sqlite")).unwrap();
        let old = dialgate::store::now_ms() - 40 * 86_400_000;
        for sql in [
            "UPDATE calls SET created_at=?1, ended_at=?1 WHERE conversation_id LIKE 'old%'",
            "UPDATE outbox SET created_at=?1 WHERE conversation_id LIKE 'old%'",
            "UPDATE call_events SET at=?1 WHERE conversation_id LIKE 'old%'",
        ] {
            conn.execute(sql, [old]).unwrap();
        }
        conn.execute(
            "UPDATE outbox SET state='delivered' WHERE conversation_id='old'",
            [],
        )
        .unwrap();
    }
    // 3. Prune with a 30-day retention through the outbox's pruner.
    let cfg = config(dir.path(), 8, 8);
    let outbox = Outbox::new(
        store.clone(),
        cfg,
        Arc::new(Metrics::new()),
        opts(Duration::from_secs(5)),
    );
    let pruned = outbox.prune_older_than(30).await;
    assert_eq!(pruned.calls, 1);
    // 4. The old delivered call is gone with its timeline and deliveries; the one with a
    //    pending notification and the live one stay.
    assert!(store.get_call("old").await.unwrap().is_none());
    assert!(store.events("old").await.unwrap().is_empty());
    assert!(store.deliveries("old").await.unwrap().is_empty());
    assert!(store.get_call("old-pending").await.unwrap().is_some());
    assert_eq!(store.deliveries("old-pending").await.unwrap().len(), 1);
    assert!(store.get_call("live").await.unwrap().is_some());
    // 5. A second round finds nothing more.
    assert_eq!(outbox.prune_older_than(30).await.calls, 0);
}
