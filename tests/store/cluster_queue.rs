//! The dialout queue shared by a cluster: two dialgate processes (the real binary) on one
//! PostgreSQL and one Redis, a SIPp carrier and a SIPp bot shared by both. A burst posted to
//! one instance that has room for one call only is dialled by the other as the bot's shared
//! limits allow — in queue order, never twice, each call with one terminal notification; a
//! queued dialout is cancelled by a `DELETE` sent to the instance that did not accept it, and
//! one that waits too long ends once although both instances watch the queue.
//! Ports: SIP 16750-16753 (peers), relay RTP 34900-34999.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::api::{Http, basic};
use common::binary::{Dialgate, log_of};
use common::cluster::{Instance, db, instance, sipp_peers};
use common::http_peers::NotifySink;
use common::simcall::{assert_at_most_up, assert_rate, record_ms};
use common::sippflows::*;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

/// What every instance of a test shares: the peers' ports, the bot's `outbound` settings
/// and the cluster's engines.
struct Shared<'a> {
    carrier: u16,
    bot: u16,
    outbound: &'a str,
    pg: &'a str,
    redis: &'a str,
}

impl<'a> Shared<'a> {
    /// The SIPp carrier on `carrier`, the bot on `carrier + 1`.
    fn new(carrier: u16, outbound: &'a str, pg: &'a str, redis: &'a str) -> Self {
        Shared {
            carrier,
            bot: carrier + 1,
            outbound,
            pg,
            redis,
        }
    }
}

/// Instance `id` of [`instance`] with the shared part of this file: the bot (no Bot API: the
/// flow is about the queue, the SIP legs and the dialer's notifications) with `s.outbound`,
/// the trunk to `s.carrier`.
fn queue_instance(dir: &Path, id: &'static str, rtp: (u16, u16), s: &Shared) -> Instance {
    let trunk = Trunk {
        address: format!("127.0.0.1:{}", s.carrier),
        ..Default::default()
    };
    let default_outbound = "outbound: { enabled: true, max_cps: 50, max_concurrent: 5 }";
    let shared = body_without_bot_api(s.bot, &trunk);
    assert!(shared.contains(default_outbound), "{shared}");
    let shared = shared.replace(default_outbound, &format!("outbound: {}", s.outbound));
    instance(dir, id, rtp, &shared, (s.pg, s.redis))
}

/// Instances A and B ([`queue_instance`]) with the relay RTP ranges `rtp_a` and `rtp_b`, both
/// running.
async fn two_instances(
    dir: &Path,
    s: &Shared<'_>,
    rtp_a: (u16, u16),
    rtp_b: (u16, u16),
) -> (Instance, Instance, Dialgate, Dialgate) {
    let (a, b) = (
        queue_instance(dir, "a", rtp_a, s),
        queue_instance(dir, "b", rtp_b, s),
    );
    let (da, db) = (a.run().await, b.run().await);
    (a, b, da, db)
}

/// Both instances' logs, for a failing assertion.
fn logs(a: &Instance, b: &Instance) -> String {
    format!(
        "--- {} ---\n{}\n--- {} ---\n{}",
        a.id,
        log_of(&a.log),
        b.id,
        log_of(&b.log)
    )
}

/// The instance that dialled each call (the owner a claim writes), by conversation id.
async fn dialled_by(c: &tokio_postgres::Client, id: &str) -> String {
    c.query_one("SELECT owner FROM calls WHERE conversation_id=$1", &[&id])
        .await
        .unwrap()
        .get(0)
}

/// POSTs a dialout to `http`; returns (conversation id, queued).
async fn post(http: &Http, auth: &str, target: &str, sink: &NotifySink) -> (String, bool) {
    let req = json!({"bot": "flow-bot", "target": target, "notifyUrl": sink.url()});
    let a = http.dialout(auth, &req).await;
    assert_eq!(a.status, StatusCode::OK, "dialout accepted: {}", a.text);
    (
        a.json["conversationId"].as_str().unwrap().to_owned(),
        a.json["queued"] == true,
    )
}

/// `DELETE /api/v1/calls/{id}` at `http`.
async fn delete(http: &Http, auth: &str, id: &str) -> common::api::Answer {
    http.send(
        Method::DELETE,
        &format!("/api/v1/calls/{id}"),
        &[("authorization", auth)],
        None,
    )
    .await
}

// Multi-threaded: the dialer's sink answers while the test waits on processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_queued_on_a_full_instance_is_dialled_by_the_other_in_order() {
    // 1. PostgreSQL and Redis; a bot allowing 1 call/s and 3 at once that queues over its
    //    limits; a SIPp carrier that answers each call and hangs up 3 s later, a SIPp bot that
    //    answers. Instance A has room for one call at a time (4 RTP pairs), B for plenty.
    const N: u32 = 6;
    let (_pg, url, redis, sink) = common::cluster::backing().await;
    let (carrier, botp) = sipp_peers("flow_carrier_answer_bye.xml", 16750, N);
    let dir = tempfile::tempdir().unwrap();
    let redis_url = redis.url();
    let outbound = "{ enabled: true, max_cps: 1, max_concurrent: 3, on_limit: queue }";
    let shared = Shared::new(16750, outbound, &url, &redis_url);
    let (a, b, _da, _db) = two_instances(dir.path(), &shared, (34900, 34907), (34910, 34959)).await;
    let auth = basic("dialer", SECRET);

    // 2. The burst, all to A, back to back: every dialout accepted; the first dialled at once,
    //    the others queued (the bot's token is spent, then A has no room either; on a slow
    //    machine one may find a token again and be dialled at once).
    let mut ids = Vec::new();
    let mut queued = Vec::new();
    for i in 0..N {
        let (id, q) = post(&a.http, &auth, &format!("+1555123910{i}"), &sink).await;
        ids.push(id);
        queued.push(q);
    }
    assert!(!queued[0], "the first dialout is dialled at once");
    assert!(
        queued.iter().filter(|q| **q).count() >= N as usize - 2,
        "{queued:?}"
    );

    // 3. Every call ends completed with exactly one terminal notification; its record reads
    //    the same from either instance.
    for id in &ids {
        let term = one_terminal_within(&sink, id, Duration::from_secs(90)).await;
        assert_eq!(term["status"], "completed", "{term:#}\n{}", logs(&a, &b));
    }
    let mut records = Vec::new();
    for id in &ids {
        let ra = record_until(&a.http, &auth, id, "settled", settled).await;
        let rb = record(&b.http, &auth, id).await;
        assert_eq!(ra["status"], rb["status"]);
        assert_eq!(ra["dialledAt"], rb["dialledAt"]);
        let statuses: Vec<String> = notes(&sink, id).into_iter().map(|n| n.0).collect();
        assert_eq!(statuses, ["answered", "completed"], "{id}");
        records.push(ra);
    }

    // 4. B dialled some of the dialouts A accepted (A had room for one call at a time).
    let client = db(&url).await;
    let mut by = Vec::new();
    for id in &ids {
        by.push(dialled_by(&client, id).await);
    }
    assert_eq!(by[0], "a", "the first was dialled by A at once");
    assert!(by.iter().any(|o| o == "b"), "B dialled none: {by:?}");

    // 5. Queue order: the queued dialouts left the queue in the order they were posted, each
    //    with queuedAt <= dialledAt and its wait recorded.
    let mut last = 0;
    let in_queue: Vec<&Value> = records
        .iter()
        .zip(&queued)
        .filter(|(_, q)| **q)
        .map(|(r, _)| r)
        .collect();
    for r in &in_queue {
        let (q, d) = (record_ms(r, "queuedAt"), record_ms(r, "dialledAt"));
        assert!(q <= d, "{r:#}");
        assert!(d >= last, "dialled out of order: {records:#?}");
        assert_eq!(r["queueWaitMs"].as_i64(), Some(d - q), "{r:#}");
        last = d;
    }

    // 6. Never dialled twice: the carrier and the bot each saw exactly N INVITEs and their
    //    scenarios completed.
    let peers = [("carrier", &carrier), ("bot", &botp)];
    each_saw_n_times(&peers, "<INVITE", N as usize, &logs(&a, &b)).await;

    // 7. The bot's limits held across both instances: at most 3 calls up at once, and any k
    //    calls started at least k - 2 s apart (1 call/s, a burst of one, one of slack).
    assert_at_most_up(&records, 3);
    let starts: Vec<i64> = records.iter().map(|r| record_ms(r, "dialingAt")).collect();
    assert_rate(&starts, |span_s| 2.0 + span_s, "1/s");
    let waits: Vec<i64> = in_queue
        .iter()
        .filter_map(|r| r["queueWaitMs"].as_i64())
        .collect();
    println!(
        "BENCH cluster queue: {N} dialouts posted to A, dialled by {by:?}, queue waits {waits:?} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_dialout_is_cancelled_or_times_out_once_from_any_instance() {
    // 1. PostgreSQL and Redis; a bot allowing one call at a time that queues for at most 6 s;
    //    a SIPp carrier and bot that answer one call and wait for the BYE. Two instances.
    let (_pg, url, redis, sink) = common::cluster::backing().await;
    let (carrier, botp) = sipp_peers("flow_carrier_answer_wait_bye.xml", 16752, 1);
    let dir = tempfile::tempdir().unwrap();
    let redis_url = redis.url();
    let outbound =
        "{ enabled: true, max_cps: 1, max_concurrent: 1, on_limit: queue, max_queue_wait_sec: 6 }";
    let shared = Shared::new(16752, outbound, &url, &redis_url);
    let (a, b, _da, _db) = two_instances(dir.path(), &shared, (34960, 34979), (34980, 34999)).await;
    let auth = basic("dialer", SECRET);

    // 2. A call placed through A and answered holds the bot's only permit; two more posted to
    //    A wait in the queue.
    let (live, queued) = post(&a.http, &auth, "+15551239201", &sink).await;
    assert!(!queued);
    record_until(&b.http, &auth, &live, "answered", |r| {
        r["answeredAt"].is_string()
    })
    .await;
    let (cancelled, q1) = post(&a.http, &auth, "+15551239202", &sink).await;
    let (expiring, q2) = post(&a.http, &auth, "+15551239203", &sink).await;
    assert!(q1 && q2, "both queued");

    // 3. B shows the queued call as A stored it: queued, queuedAt set, not dialled.
    let r = record(&b.http, &auth, &expiring).await;
    assert_eq!(r["status"], "queued", "{r:#}");
    assert!(
        r["queuedAt"].is_string() && r["dialledAt"].is_null(),
        "{r:#}"
    );

    // 4. DELETE of a queued call sent to B, which did not accept it: 202, and the call ends
    //    failed/api-hangup with one terminal notification, never dialled; again: 409.
    let del = delete(&b.http, &auth, &cancelled).await;
    assert_eq!(del.status, StatusCode::ACCEPTED, "{}", del.text);
    let term = one_terminal(&sink, &cancelled).await;
    assert_eq!(
        (term["status"].as_str(), term["reasonCode"].as_str()),
        (Some("failed"), Some("api-hangup")),
        "{term:#}"
    );
    assert_eq!(
        delete(&a.http, &auth, &cancelled).await.status,
        StatusCode::CONFLICT
    );
    let r = record_until(&a.http, &auth, &cancelled, "settled", settled).await;
    assert!(r["dialledAt"].is_null(), "{r:#}");

    // 5. The other waits past max_queue_wait_sec while the live call holds the permit: both
    //    instances watch the queue, it ends once, failed/queue-timeout, never dialled.
    let term = one_terminal_within(&sink, &expiring, Duration::from_secs(30)).await;
    assert_eq!(
        (term["status"].as_str(), term["reasonCode"].as_str()),
        (Some("failed"), Some("queue-timeout")),
        "{term:#}\n{}",
        logs(&a, &b)
    );
    let r = record_until(&b.http, &auth, &expiring, "settled", settled).await;
    assert!(r["dialledAt"].is_null(), "{r:#}");
    assert_eq!(dialer_deliveries(&r).len(), 1, "{r:#}");

    // 6. The live call, hung up through B, ends on A (its owner): completed/api-hangup.
    let del = delete(&b.http, &auth, &live).await;
    assert_eq!(del.status, StatusCode::ACCEPTED, "{}", del.text);
    let term = one_terminal(&sink, &live).await;
    assert_eq!(
        (term["status"].as_str(), term["reasonCode"].as_str()),
        (Some("completed"), Some("api-hangup"))
    );

    // 7. Only the live call reached the peers (one INVITE each); every call's notifications
    //    are exactly what it went through.
    let peers = [("carrier", &carrier), ("bot", &botp)];
    each_saw_n_times(&peers, "<INVITE", 1, &logs(&a, &b)).await;
    for (id, want) in [
        (&live, vec!["answered", "completed"]),
        (&cancelled, vec!["failed"]),
        (&expiring, vec!["failed"]),
    ] {
        let got: Vec<String> = notes(&sink, id).into_iter().map(|n| n.0).collect();
        assert_eq!(got, want, "{id}");
    }
}
