//! Queued dialouts (`bots[].outbound.on_limit`): over its limits a bot's dialouts are accepted,
//! stored, and dialled in order at its pace; a full queue answers 429; a dialout that waits
//! too long ends `failed/queue-timeout`; `DELETE` cancels a queued one; the queue survives a
//! restart. Real SIP/RTP against dialgate's simulated callee and bot, the real HTTPS API.

use crate::common;
use common::mediaflows::{Carrier, MediaFlow, MediaSetup, assert_delivered};
use common::simcall::{assert_at_most_up, record_ms as ms};
use dialgate::sim::Hangup;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// A flow whose bot has these `outbound` limits and queue settings; the person answers,
/// says its greeting and hangs up `hold` after it (or waits for BYE with `None`).
async fn queue_flow(rtp: u16, outbound: &[&str], hold: Option<Duration>) -> MediaFlow {
    let mut s = MediaSetup::sim(rtp, "conf/greeting.wav");
    if let Carrier::Sim(c) = &mut s.carrier {
        c.hangup = match hold {
            Some(d) => Hangup::AfterAudio(d),
            None => Hangup::WaitForBye,
        };
    }
    s.outbound = outbound.iter().map(|l| l.to_string()).collect();
    MediaFlow::start(s).await
}

/// POSTs a dialout and returns the raw answer.
async fn post(flow: &MediaFlow, extra: Value) -> common::api::Answer {
    let mut body = json!({
        "bot": "media-bot",
        "target": common::mediaflows::TARGET,
        "notifyUrl": flow.dialer.notify_url(),
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    flow.app.http.dialout(&flow.auth, &body).await
}

/// Exactly one terminal notification reached the dialer for `id`.
fn assert_one_terminal(flow: &MediaFlow, id: &str) {
    let statuses = flow.statuses(id);
    let terminals = statuses
        .iter()
        .filter(|s| *s == "completed" || *s == "failed")
        .count();
    assert_eq!(terminals, 1, "{id}: {statuses:?}");
}

#[tokio::test]
async fn a_burst_is_accepted_and_dialled_in_order_at_the_bots_pace() {
    // 1. A bot with 1 call/s and 3 concurrent calls that queues what is over its limits;
    //    each call lasts a few seconds.
    let flow = queue_flow(
        56000,
        &["max_cps: 1", "max_concurrent: 3", "on_limit: queue"],
        Some(Duration::from_millis(1500)),
    )
    .await;

    // 2. Ten dialouts back to back: every one is accepted; all but the first are queued.
    let mut ids = Vec::new();
    let mut queued = 0;
    for _ in 0..10 {
        let a = post(&flow, json!({})).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        queued += usize::from(a.json["queued"] == true);
        ids.push(a.json["conversationId"].as_str().unwrap().to_owned());
    }
    assert!(queued >= 8, "{queued} of 10 queued");

    // 3. Every call completes with exactly one terminal notification.
    let mut records = Vec::new();
    for id in &ids {
        flow.wait_terminal(id).await;
        let r = flow.wait_settled(id).await;
        assert_eq!(r["status"], "completed", "{r:#}");
        assert_delivered(&r, 2);
        assert_one_terminal(&flow, id);
        records.push(r);
    }

    // 4. Dialled in the order posted, at most one per second (the bucket refills at 1/s; a
    //    little slack for the moment each INVITE is stamped).
    let dialled: Vec<i64> = records.iter().map(|r| ms(r, "dialingAt")).collect();
    for w in dialled.windows(2) {
        assert!(w[1] > w[0], "dialled out of order: {dialled:?}");
        assert!(w[1] - w[0] >= 900, "faster than 1 call/s: {dialled:?}");
    }

    // 5. Never more than 3 calls up at once.
    assert_at_most_up(&records, 3);

    // 6. A queued call's record shows when it was queued, dialled, and how long it waited.
    let q = records
        .iter()
        .find(|r| r["queuedAt"].is_string())
        .expect("a queued record");
    assert!(q["dialledAt"].is_string() && q["queueWaitMs"].as_i64().unwrap() >= 0);
    assert!(ms(q, "dialledAt") >= ms(q, "queuedAt"));

    // 7. /metrics: the queue is empty again and every wait was observed.
    let m = flow.app.http.send(Method::GET, "/metrics", &[], None).await;
    assert!(
        m.text.contains("dialgate_queue_depth{bot=\"media-bot\"} 0"),
        "{}",
        m.text
    );
    assert!(
        m.text.contains(&format!(
            "dialgate_queue_wait_seconds_count{{bot=\"media-bot\"}} {queued}"
        )),
        "{}",
        m.text
    );
    flow.stop().await;
}

#[tokio::test]
async fn a_full_queue_refuses_and_queued_calls_time_out_or_are_cancelled() {
    // 1. One call at a time; at most 2 waiting, for at most 2 s. The person stays on.
    let flow = queue_flow(
        56200,
        &[
            "max_cps: 50",
            "max_concurrent: 1",
            "on_limit: on_request",
            "max_queue: 2",
            "max_queue_wait_sec: 2",
        ],
        None,
    )
    .await;
    // 2. The first call is dialled; the next two ask to queue and are queued.
    let first = flow.dial(json!({})).await;
    flow.wait_record(&first, "ringing or later", |r| r["dialingAt"].is_string())
        .await;
    let b = post(&flow, json!({"queue": true})).await;
    let c = post(&flow, json!({"queue": true})).await;
    assert_eq!(
        (b.json["queued"].clone(), c.json["queued"].clone()),
        (json!(true), json!(true))
    );
    let (b, c) = (
        b.json["conversationId"].as_str().unwrap().to_owned(),
        c.json["conversationId"].as_str().unwrap().to_owned(),
    );
    // 3. A fourth is refused: the queue is full (429 with Retry-After); one that does not ask
    //    to queue is refused by the bot's limit as before.
    let d = post(&flow, json!({"queue": true})).await;
    assert_eq!(d.status, StatusCode::TOO_MANY_REQUESTS, "{}", d.text);
    assert!(d.headers.contains_key("retry-after"), "{:?}", d.headers);
    let e = post(&flow, json!({})).await;
    assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS, "{}", e.text);
    // 4. DELETE of a queued call: it ends failed/api-hangup, never dialled.
    let del = flow.hangup(&c).await;
    assert_eq!(del.status, StatusCode::ACCEPTED, "{}", del.text);
    let done = flow.wait_terminal(&c).await;
    assert_eq!(
        (done["status"].as_str(), done["reasonCode"].as_str()),
        (Some("failed"), Some("api-hangup"))
    );
    // 5. The other waits past 2 s: failed/queue-timeout, one terminal notification.
    let done = flow.wait_terminal(&b).await;
    assert_eq!(
        (done["status"].as_str(), done["reasonCode"].as_str()),
        (Some("failed"), Some("queue-timeout"))
    );
    for id in [&b, &c] {
        let r = flow.wait_settled(id).await;
        assert!(
            r["dialingAt"].is_null() && r["dialledAt"].is_null(),
            "{r:#}"
        );
        assert_eq!(flow.statuses(id), ["failed"], "{id}");
    }
    // 6. `queue` must be true or false.
    let bad = post(&flow, json!({"queue": "yes"})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
    assert!(bad.text.contains("queue"), "{}", bad.text);
    flow.hangup(&first).await;
    flow.wait_terminal(&first).await;
    flow.stop().await;
}

#[tokio::test]
async fn the_queue_survives_a_restart_in_order() {
    // 1. One call at a time, everything over it queued; the person stays on.
    let mut flow = queue_flow(
        56400,
        &["max_cps: 50", "max_concurrent: 1", "on_limit: queue"],
        None,
    )
    .await;
    let first = flow.dial(json!({})).await;
    flow.wait_record(&first, "answered", |r| r["answeredAt"].is_string())
        .await;
    let second = flow.dial(json!({})).await;
    let third = flow.dial(json!({})).await;
    // 2. dialgate restarts: the call that was up ends; the two queued ones wait on.
    flow.side.restart().await;
    let r = flow.wait_terminal(&first).await;
    assert_eq!(r["status"], "completed", "{r:#}");
    // 3. After the restart they are dialled in their order: the second, then (once the
    //    second is hung up) the third.
    let r2 = flow
        .wait_record(&second, "dialled after the restart", |r| {
            r["dialingAt"].is_string()
        })
        .await;
    let r3 = flow.record(&third).await;
    assert!(
        r3["dialingAt"].is_null(),
        "the third jumped the queue: {r3:#}"
    );
    flow.hangup(&second).await;
    let r3 = flow
        .wait_record(&third, "dialled after the second", |r| {
            r["dialingAt"].is_string()
        })
        .await;
    assert!(ms(&r3, "dialledAt") >= ms(&r2, "dialledAt"));
    flow.hangup(&third).await;
    // 4. Each ends with exactly one terminal notification.
    for id in [&first, &second, &third] {
        flow.wait_terminal(id).await;
        flow.wait_settled(id).await;
        assert_one_terminal(&flow, id);
    }
    flow.stop().await;
}
