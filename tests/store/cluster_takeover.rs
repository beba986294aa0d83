//! Cluster takeover: two dialgate processes (the real binary) share PostgreSQL and Redis; one is
//! killed with SIGKILL while its calls are up, and the survivor notices it within the lease,
//! sends BYE to its SIP legs from the stored dialog state (the SIPp carrier and bot see it),
//! and writes each of its calls' one terminal notification, delivered once and signed. The
//! claim itself is raced by two survivors on the store: exactly one takes the calls.
//! Ports: SIP 16740-16741 (peers), relay RTP 34700-34899.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::api::basic;
use common::binary::log_of;
use common::cluster::{Instance, LEASE_SEC, db, instance, sipp_peers};
use common::http_peers::verify_signature;
use common::sippflows::*;
use dialgate::core::{LegDialog, LegDialogState, Transport};
use dialgate::store::{CallSnapshot, Heartbeat, LegJournalOp, NewCall, Store};
use serde_json::json;

/// Instance `id` of [`instance`] with the shared part of this file: the bot (no Bot API: the
/// flow is about the SIP legs and the dialer's notifications) and the trunk to the SIPp peers.
fn takeover_instance(
    dir: &Path,
    id: &'static str,
    rtp: (u16, u16),
    pg: &str,
    redis: &str,
) -> Instance {
    let trunk = Trunk {
        address: "127.0.0.1:16740".into(),
        ..Default::default()
    };
    instance(
        dir,
        id,
        rtp,
        &body_without_bot_api(16741, &trunk),
        (pg, redis),
    )
}

/// The stored leg dialogs as (owner, state), sorted.
async fn legs(c: &tokio_postgres::Client) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = c
        .query("SELECT owner, state FROM leg_dialogs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    v.sort();
    v
}

/// Waits (bounded by `within`) until the stored leg dialogs are `want`.
async fn until_legs(
    c: &tokio_postgres::Client,
    want: &[(&str, &str)],
    within: Duration,
    log: &Path,
) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(o, s)| (o.to_string(), s.to_string()))
        .collect();
    let deadline = Instant::now() + within;
    loop {
        let got = legs(c).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stored legs {got:?}, want {want:?}\n{}",
            log_of(log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// Multi-threaded: the dialer's sink answers while the test waits on processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instances_calls_are_ended_by_the_survivor() {
    // 1. PostgreSQL and Redis for the cluster; a dialer that accepts everything; a SIPp
    //    carrier and a SIPp bot that answer three calls each and wait for a BYE.
    let (_pg, url, redis, sink) = common::cluster::backing().await;
    let (carrier, botp) = sipp_peers("flow_carrier_answer_wait_bye.xml", 16740, 3);
    let dir = tempfile::tempdir().unwrap();
    let a = takeover_instance(dir.path(), "a", (34700, 34799), &url, &redis.url());
    let b = takeover_instance(dir.path(), "b", (34800, 34899), &url, &redis.url());
    let da = a.run().await;
    let _db = b.run().await;
    let auth = basic("dialer", SECRET);

    // 2. Two calls placed through A, one through B; all three are up on both legs, and the
    //    dialer has accepted each one's `answered` (nothing of A's is in flight at the kill).
    let on_a = [
        dial(&a.http, &auth, "+15551239001", &sink.url(), json!({})).await,
        dial(&a.http, &auth, "+15551239002", &sink.url(), json!({})).await,
    ];
    let on_b = dial(&b.http, &auth, "+15551239003", &sink.url(), json!({})).await;
    for id in on_a.iter().chain([&on_b]) {
        record_until(&b.http, &auth, id, "bot connected", |r| {
            r["botConnectedAt"].is_string()
        })
        .await;
    }
    let client = db(&url).await;
    until_legs(
        &client,
        &[
            ("a", "up"),
            ("a", "up"),
            ("a", "up"),
            ("a", "up"),
            ("b", "up"),
            ("b", "up"),
        ],
        WAIT,
        &a.log,
    )
    .await;
    let deadline = Instant::now() + WAIT;
    while notes(&sink, &on_b).is_empty() || on_a.iter().any(|id| notes(&sink, id).is_empty()) {
        assert!(Instant::now() < deadline, "answered not accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 3. SIGKILL A with its two calls up.
    da.kill9();
    let killed = Instant::now();

    // 4. B takes A's calls over: each ends completed/error, the reason naming the dead
    //    instance, with exactly one terminal notification.
    for id in &on_a {
        let term = one_terminal_within(&sink, id, Duration::from_secs(60)).await;
        assert_eq!(term["status"], "completed", "{term:#}\n{}", log_of(&b.log));
        assert_eq!(term["reasonCode"], "error");
        let reason = term["reason"].as_str().unwrap_or("");
        assert!(reason.contains("instance `a` died"), "{reason}");
    }
    let takeover_ms = killed.elapsed().as_millis();

    // 5. B's own call is untouched: still up until it is hung up through the API.
    let r = record(&b.http, &auth, &on_b).await;
    assert!(r["endedAt"].is_null(), "{r:#}");
    let del = b
        .http
        .send(
            hyper::Method::DELETE,
            &format!("/api/v1/calls/{on_b}"),
            &[("authorization", &auth)],
            None,
        )
        .await;
    assert_eq!(del.status, 202, "{}", del.text);
    let term = one_terminal(&sink, &on_b).await;
    assert_eq!(
        (term["status"].as_str(), term["reasonCode"].as_str()),
        (Some("completed"), Some("api-hangup"))
    );

    // 6. Both SIPp peers got a BYE on every leg (A's from B, built from the stored dialog
    //    state) and answered it: their scenarios complete.
    let peers = [("carrier", &carrier), ("bot", &botp)];
    each_saw_n_times(&peers, "<BYE", 3, &log_of(&b.log)).await;

    // 7. A's legs are B's in the journal now (B ends them and then forgets them).
    let now = legs(&client).await;
    assert!(now.iter().all(|(owner, _)| owner == "b"), "{now:?}");

    // 8. What the dialer saw: per call one `answered` and one terminal notification, each
    //    accepted at its first attempt, each signed with the client's webhook secret.
    for id in on_a.iter().chain([&on_b]) {
        let statuses: Vec<String> = notes(&sink, id).into_iter().map(|n| n.0).collect();
        assert_eq!(statuses, ["answered", "completed"], "{id}");
        let rec = record_until(&b.http, &auth, id, "settled", settled).await;
        let d = dialer_deliveries(&rec);
        assert_eq!(d.len(), 2, "{rec:#}");
        assert!(
            d.iter().all(|d| d["state"] == "delivered"
                && d["attempts"].as_array().is_some_and(|a| a.len() == 1)),
            "{rec:#}"
        );
    }
    let requests = sink.requests();
    assert_eq!(requests.len(), 6, "one request per notification");
    for r in &requests {
        let sig = r.header("X-Dialgate-Signature").expect("signed");
        assert!(
            verify_signature(sig, r.body.as_bytes(), "flow-whsec"),
            "{r:?}"
        );
    }

    // 9. B's metrics and log say what happened.
    assert_eq!(b.http.counter("cluster_takeovers").await, 1.0);
    assert_eq!(b.http.counter("cluster_calls_taken_over").await, 2.0);
    assert_eq!(b.http.counter("cluster_legs_taken_over").await, 4.0);
    let log = log_of(&b.log);
    assert!(
        log.contains("cluster takeover: instance `a` stopped renewing its lease"),
        "{log}"
    );
    println!(
        "BENCH takeover: SIGKILL to both terminal notifications accepted in {takeover_ms} ms (lease_sec {LEASE_SEC})"
    );

    // 10. The journal empties: each leg is forgotten once its BYE transaction ends. SIPp sends
    //     its 200 to the address the dialog's INVITE came from (the dead instance), not to the
    //     BYE's Via as RFC 3261 §18.2.2 says, so here B's BYE transactions end by their timeout
    //     (40 s) rather than by the 200: the bound covers it.
    until_legs(&client, &[], Duration::from_secs(75), &b.log).await;
}

/// A call as the API would store it (nothing but what the takeover reads).
fn new_call(id: &str) -> NewCall {
    NewCall {
        conversation_id: id.into(),
        client_id: "dialer".into(),
        bot_id: "bot".into(),
        target: "+15551230000".into(),
        request: json!({"bot": "bot", "target": "+15551230000"}),
        config_version: 1,
        snapshot: CallSnapshot::default(),
    }
}

/// A leg dialog that was up.
fn leg(call_id: &str, conversation_id: &str) -> LegDialog {
    LegDialog {
        call_id: call_id.into(),
        conversation_id: conversation_id.into(),
        state: LegDialogState::Up,
        local_tag: "l".into(),
        remote_tag: Some("r".into()),
        cseq: 1,
        remote_target: "sip:127.0.0.1:9".into(),
        route_set: vec![],
        transport: Transport::Udp,
        destination: "127.0.0.1:9".into(),
        local_contact: None,
        request: "ACK sip:127.0.0.1:9 SIP/2.0\r\n\r\n".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_survivors_race_for_a_dead_instance_and_one_wins() {
    // 1. Three instances on one database: `dead` with a short lease, two live calls, one
    //    queued dialout and two legs up; the survivors with long leases.
    let pg = common::postgres::shared();
    let url = pg.database().await;
    let dead = Store::open_postgres(&url, "dead").await.unwrap();
    let s1 = Store::open_postgres(&url, "s1").await.unwrap();
    let s2 = Store::open_postgres(&url, "s2").await.unwrap();
    assert_eq!(dead.heartbeat(300).await.unwrap(), Heartbeat::Alive);
    for s in [&s1, &s2] {
        assert_eq!(s.heartbeat(60_000).await.unwrap(), Heartbeat::Alive);
    }
    dead.insert_call(new_call("c1"), None).await.unwrap();
    dead.insert_call(new_call("c2"), None).await.unwrap();
    dead.insert_queued_call(new_call("q1"), None).await.unwrap();
    dead.apply_leg_journal(vec![
        LegJournalOp::Save(leg("leg-1", "c1")),
        LegJournalOp::Save(leg("leg-2", "c1")),
    ])
    .await
    .unwrap();
    // A live survivor is never taken over.
    assert!(s1.take_over("s2").await.unwrap().is_none());

    // 2. `dead` stops renewing: once its lease ran out, both survivors see it (bounded wait).
    let deadline = Instant::now() + WAIT;
    loop {
        let (d1, d2) = (
            s1.dead_instances().await.unwrap(),
            s2.dead_instances().await.unwrap(),
        );
        if d1.iter().any(|d| d.instance_id == "dead") && d2.iter().any(|d| d.instance_id == "dead")
        {
            break;
        }
        assert!(Instant::now() < deadline, "dead never seen: {d1:?} {d2:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // 3. Both claim at once: exactly one gets the two calls, the queued dialout and the legs;
    //    the other gets nothing.
    let (r1, r2) = tokio::join!(s1.take_over("dead"), s2.take_over("dead"));
    let (r1, r2) = (
        r1.unwrap().unwrap_or_default(),
        r2.unwrap().unwrap_or_default(),
    );
    assert!(
        r1.is_empty() != r2.is_empty(),
        "one winner: {r1:?} / {r2:?}"
    );
    let (won, winner, loser) = if r1.is_empty() {
        (r2, &s2, &s1)
    } else {
        (r1, &s1, &s2)
    };
    let mut calls: Vec<&str> = won
        .calls
        .iter()
        .map(|c| c.conversation_id.as_str())
        .collect();
    calls.sort();
    assert_eq!(calls, ["c1", "c2"]);
    assert_eq!(won.waiting.len(), 1);
    assert_eq!(won.waiting[0].conversation_id, "q1");
    assert_eq!(won.legs.len(), 2);
    assert_eq!(won.from, "dead");

    // 4. The rows are the winner's now: its restart would find them; the loser's would not;
    //    nothing is left to take.
    assert_eq!(winner.unfinished_calls().await.unwrap().len(), 2);
    // The queued dialout waits on, in the shared queue any instance claims from.
    assert_eq!(winner.waiting_count("bot").await.unwrap(), 1);
    assert_eq!(winner.leg_dialogs().await.unwrap().len(), 2);
    assert!(loser.unfinished_calls().await.unwrap().is_empty());
    assert!(s1.dead_instances().await.unwrap().is_empty());

    // 5. If `dead` was only stalled, its next renewal tells it who took its calls over, and
    //    which of its calls are no longer its own.
    let winner_id = if std::ptr::eq(winner, &s1) {
        "s1"
    } else {
        "s2"
    };
    assert_eq!(
        dead.heartbeat(300).await.unwrap(),
        Heartbeat::TakenOver {
            by: winner_id.into()
        }
    );
    let mut gone = dead
        .not_owned(vec!["c1".into(), "c2".into(), "q1".into()])
        .await
        .unwrap();
    gone.sort();
    assert_eq!(gone, ["c1", "c2", "q1"]);
    assert_eq!(dead.heartbeat(300).await.unwrap(), Heartbeat::Alive);
}
