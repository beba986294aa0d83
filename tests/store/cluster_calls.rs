//! Cluster mode on Redis with whole dialgate instances (in-process `App`s, each with its own
//! SIP/RTP, HTTPS API, simulated callee, bot and dialer) sharing one real redis-server: a
//! burst spread over three instances keeps one bot's limits in total; a `DELETE` sent to an
//! instance that does not own the call hangs it up on its owner; losing Redis refuses new
//! dialouts with 503 while the call in progress goes on, and service resumes by itself.

use crate::common;
use common::mediaflows::{Carrier, MediaFlow, MediaSetup};
use common::redis::RedisServer;
use common::simcall::{assert_at_most_up, assert_rate, record_ms as ms};
use dialgate::sim::Hangup;
use hyper::StatusCode;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// `lease_sec` of every instance.
const LEASE_SEC: u32 = 3;

/// An instance `id` in the cluster on `redis`: its own peers, a 60-port RTP range from
/// `rtp`, the bot's `outbound` lines, the person hanging up `hold` after the greeting (or
/// waiting for BYE), and optionally a data directory shared with another instance.
async fn instance(
    redis: &RedisServer,
    id: &str,
    rtp: u16,
    outbound: &[&str],
    hold: Option<Duration>,
    data_dir: Option<&Path>,
) -> MediaFlow {
    let mut s = MediaSetup::sim(rtp, "conf/greeting.wav");
    s.rtp = (rtp, rtp + 59);
    if let Carrier::Sim(c) = &mut s.carrier {
        c.hangup = match hold {
            Some(d) => Hangup::AfterAudio(d),
            None => Hangup::WaitForBye,
        };
    }
    s.outbound = outbound.iter().map(|l| l.to_string()).collect();
    s.extra_yaml = format!(
        "cluster:\n  instance_id: {id}\n  redis_url: \"{}\"\n  lease_sec: {LEASE_SEC}\n",
        redis.url()
    );
    s.data_dir = data_dir.map(Path::to_path_buf);
    MediaFlow::start(s).await
}

/// POSTs a dialout to `flow` and returns the raw answer.
async fn post(flow: &MediaFlow) -> common::api::Answer {
    let body = json!({
        "bot": "media-bot",
        "target": common::mediaflows::TARGET,
        "notifyUrl": flow.dialer.notify_url(),
    });
    flow.app.http.dialout(&flow.auth, &body).await
}

/// Milliseconds of an RFC 3339 time on a record.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_over_three_instances_keeps_one_bots_limits_in_total() {
    // 1. Redis and three instances of one configuration: the bot allows 2 calls/s and 3 at
    //    once; each person answers, hears the greeting and hangs up 1.5 s after it.
    let redis = RedisServer::start();
    let limits = ["max_cps: 2", "max_concurrent: 3"];
    let hold = Some(Duration::from_millis(1500));
    let nodes = [
        instance(&redis, "a", 22400, &limits, hold, None).await,
        instance(&redis, "b", 22460, &limits, hold, None).await,
        instance(&redis, "c", 22520, &limits, hold, None).await,
    ];

    // 2. 24 dialouts spread round-robin over the three, 100 ms apart: far over both limits.
    let mut accepted: Vec<(usize, String)> = Vec::new();
    let mut refusals = Vec::new();
    for i in 0..24 {
        let n = i % 3;
        let a = post(&nodes[n]).await;
        match a.status {
            StatusCode::OK => accepted.push((n, a.json["conversationId"].as_str().unwrap().into())),
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(a.headers.contains_key("retry-after"), "{:?}", a.headers);
                refusals.push(a.json["error"]["message"].as_str().unwrap_or("").to_owned());
            }
            s => panic!("unexpected {s}: {}", a.text),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted.len() >= 3, "{} accepted", accepted.len());
    assert!(
        refusals.iter().any(|m| m.contains("max_concurrent"))
            || refusals.iter().any(|m| m.contains("max_cps")),
        "{refusals:?}"
    );
    // Admissions happened on more than one instance (the limits are shared, not split).
    let mut on: Vec<usize> = accepted.iter().map(|(n, _)| *n).collect();
    on.dedup();
    assert!(on.len() > 1, "all on one instance: {accepted:?}");

    // 3. Every accepted call completes; its record comes from the instance that placed it.
    let mut records = Vec::new();
    for (n, id) in &accepted {
        nodes[*n].wait_terminal(id).await;
        records.push(nodes[*n].wait_settled(id).await);
    }

    // 4. Never more than 3 calls up at once over the three instances (a record's
    //    dialing..ended span lies within the time its permit was held).
    assert_at_most_up(&records, 3);

    // 5. The rate: any k accepted calls (stamped when stored, right after admission) span at
    //    least the time the bucket needs to refill k - 2 tokens (burst = one second's worth),
    //    with one token of slack for the stamping.
    let created: Vec<i64> = records.iter().map(|r| ms(r, "createdAt")).collect();
    assert_rate(&created, |span_s| 2.0 + 2.0 * span_s + 1.0, "2/s");
    for n in nodes {
        n.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_sent_to_another_instance_hangs_the_call_up_on_its_owner() {
    // 1. Redis and two instances sharing their records (one data directory, as they would
    //    share PostgreSQL); the person stays on until hung up.
    let redis = RedisServer::start();
    let shared = tempfile::tempdir().unwrap();
    let limits = ["max_cps: 50", "max_concurrent: 5"];
    let owner = instance(&redis, "owner", 22580, &limits, None, Some(shared.path())).await;
    let other = instance(&redis, "other", 22640, &limits, None, Some(shared.path())).await;

    // 2. A call placed by the owner is answered.
    let id = owner.dial(json!({})).await;
    owner
        .wait_record(&id, "answered", |r| r["answeredAt"].is_string())
        .await;

    // 3. DELETE arrives at the other instance: answered as a local hang-up (202) once the
    //    owner confirmed, and the call ends completed/api-hangup with one terminal.
    let del = other.hangup(&id).await;
    assert_eq!(del.status, StatusCode::ACCEPTED, "{}", del.text);
    assert_eq!(del.json["status"], "hangup-requested", "{}", del.text);
    let end = owner.wait_terminal(&id).await;
    assert_eq!(
        (end["status"].as_str(), end["reasonCode"].as_str()),
        (Some("completed"), Some("api-hangup")),
        "{end:#}"
    );
    owner.wait_settled(&id).await;
    let terminals = owner
        .statuses(&id)
        .iter()
        .filter(|s| *s == "completed" || *s == "failed")
        .count();
    assert_eq!(terminals, 1, "{:?}", owner.statuses(&id));

    // 4. A second DELETE, at either instance, finds the call ended (409).
    assert_eq!(other.hangup(&id).await.status, StatusCode::CONFLICT);
    assert_eq!(owner.hangup(&id).await.status, StatusCode::CONFLICT);

    // 5. An owner that is gone: a second call's owner stops renewing and its key names an
    //    instance nobody runs; DELETE at the other instance is 503 owner_unreachable with
    //    Retry-After, and nothing is hung up.
    let id2 = owner.dial(json!({})).await;
    owner
        .wait_record(&id2, "answered", |r| r["answeredAt"].is_string())
        .await;
    owner
        .app
        .app()
        .cluster
        .as_ref()
        .expect("cluster mode")
        .stop_renewal();
    let key = format!("dialgate:call:{id2}");
    redis
        .command(&["SET", &key, "ghost", "PX", "60000"])
        .expect("SET");
    let gone = other.hangup(&id2).await;
    assert_eq!(
        gone.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        gone.text
    );
    assert_eq!(
        gone.json["error"]["code"], "owner_unreachable",
        "{}",
        gone.text
    );
    assert!(gone.text.contains("ghost"), "{}", gone.text);
    assert!(
        gone.headers.contains_key("retry-after"),
        "{:?}",
        gone.headers
    );
    assert!(owner.record(&id2).await["endedAt"].is_null());
    // The owner itself still hangs its call up.
    assert_eq!(owner.hangup(&id2).await.status, StatusCode::ACCEPTED);
    owner.wait_terminal(&id2).await;
    owner.stop().await;
    other.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn losing_redis_refuses_new_dialouts_while_live_calls_go_on() {
    // 1. Redis and one instance; a call is up (the person waits for BYE).
    let mut redis = RedisServer::start();
    let f = instance(
        &redis,
        "solo",
        22700,
        &["max_cps: 50", "max_concurrent: 5"],
        None,
        None,
    )
    .await;
    let live = f.dial(json!({})).await;
    f.wait_record(&live, "answered", |r| r["answeredAt"].is_string())
        .await;

    // 2. Redis stops: a new dialout gets 503 cluster_unavailable with Retry-After.
    redis.stop();
    let a = post(&f).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
    assert_eq!(a.json["error"]["code"], "cluster_unavailable", "{}", a.text);
    assert!(a.headers.contains_key("retry-after"), "{:?}", a.headers);

    // 3. The call in progress is unaffected: still up, no terminal notification.
    let r = f.record(&live).await;
    assert!(r["endedAt"].is_null(), "{r:#}");
    assert!(
        f.statuses(&live)
            .iter()
            .all(|s| s != "completed" && s != "failed")
    );

    // 4. Redis is back (empty): new dialouts are accepted again without any help.
    redis.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let second = loop {
        let a = post(&f).await;
        if a.status == StatusCode::OK {
            break a.json["conversationId"].as_str().unwrap().to_owned();
        }
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{}", a.text);
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery: {}",
            a.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // 5. The first call was up all along: hung up now, it completes api-hangup, as does the
    //    second.
    for id in [&live, &second] {
        f.wait_record(id, "answered", |r| r["answeredAt"].is_string())
            .await;
        assert_eq!(f.hangup(id).await.status, StatusCode::ACCEPTED);
        let end = f.wait_terminal(id).await;
        assert_eq!(
            (end["status"].as_str(), end["reasonCode"].as_str()),
            (Some("completed"), Some("api-hangup")),
            "{end:#}"
        );
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_round_trips_per_dialout_are_counted() {
    // 1. Redis and one instance; short calls, limits far above the load.
    let redis = RedisServer::start();
    let f = instance(
        &redis,
        "bench",
        22760,
        &["max_cps: 100", "max_concurrent: 20"],
        Some(Duration::from_millis(0)),
        None,
    )
    .await;
    let before = redis.command_calls();

    // 2. N dialouts, each completed with its notifications settled.
    const N: usize = 10;
    let mut ids = Vec::new();
    for _ in 0..N {
        ids.push(f.dial(json!({})).await);
    }
    for id in &ids {
        f.wait_terminal(id).await;
        f.wait_settled(id).await;
    }
    // The last release is sent in the background when the call's task ends: wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while redis.command_calls().get("zrem").copied().unwrap_or(0)
        < before.get("zrem").copied().unwrap_or(0) + N as u64
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "permits not released"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 3. Commands Redis served meanwhile (renewals included), per dialout.
    let after = redis.command_calls();
    let mut per: Vec<(String, u64)> = after
        .iter()
        .filter(|(k, _)| k.as_str() != "info")
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, d)| *d > 0)
        .collect();
    per.sort();
    let total: u64 = per.iter().map(|(_, d)| d).sum();
    // What dialgate sends; everything else in the stats ran inside its scripts.
    let sent_kinds = ["evalsha", "eval", "script|load", "set", "zrem", "publish"];
    let sent: u64 = per
        .iter()
        .filter(|(k, _)| sent_kinds.contains(&k.as_str()))
        .map(|(_, d)| d)
        .sum();
    println!(
        "BENCH redis per dialout: {:.1} commands sent by dialgate (renewals included; a renewal's SETs are one pipelined round trip), {:.1} executed by Redis including inside scripts; over {N} dialouts: {}",
        sent as f64 / N as f64,
        total as f64 / N as f64,
        per.iter()
            .map(|(k, d)| format!("{k} {d}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // Each dialout: one admission script, one owner SET, one owner release, one permit ZREM.
    assert!(
        sent >= 4 * N as u64,
        "fewer commands than the four per dialout: {per:?}"
    );
    f.stop().await;
}
