//! Cluster mode on PostgreSQL, end to end: a whole call (SIPp carrier and bot) with the store on
//! a throwaway PostgreSQL server (`tests/common/postgres.rs`), its record read through a second
//! dialgate sharing the database, and new dialouts answered 503 with `Retry-After` while
//! PostgreSQL is down, accepted again once it is back.
//! Ports: SIP 16700-16701, relay RTP 34600-34699.

use crate::common;
use common::api::StartOpts;
use common::sippflows::*;
use serde_json::json;
use std::time::Duration;

fn cluster_yaml(url: &str, instance: &str) -> String {
    format!("cluster:\n  instance_id: {instance}\n  postgres_url: \"{url}\"\n  lease_sec: 10\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_on_postgres_is_read_from_another_instance_and_survives_an_outage() {
    // 1. A PostgreSQL server of its own (not the binary's shared one: step 5 stops it, which
    //    the store tests running beside it in this binary must not see), and a database.
    let pg = common::postgres::PgCluster::start();
    let url = pg.database().await;
    // 2. Carrier: 180, 200, BYE after a pause. Bot: 200, expects BYE. dialgate on PostgreSQL.
    let carrier = uas("flow_carrier_answer_bye.xml", 16700, 40);
    let botp = uas("flow_bot_answer.xml", 16701, 40);
    let trunk = Trunk {
        address: "127.0.0.1:16700".into(),
        ..Default::default()
    };
    let f = start_flow_extra(
        FlowSetup {
            rtp: (34600, 34699),
            bot_port: 16701,
            trunk: trunk.clone(),
        },
        &cluster_yaml(&url, "dg-1"),
    )
    .await;
    assert_eq!(f.t.app().store.engine(), "postgres");
    // 3. The call runs to its one terminal notification, as on SQLite.
    let id = f.dial("+15551230001", json!({})).await;
    let term = one_terminal(&f.sink, &id).await;
    assert_eq!(term["status"], "completed");
    assert_eq!(finish(&carrier).await.0, 0, "carrier scenario");
    assert_eq!(finish(&botp).await.0, 0, "bot scenario");
    let rec = f.settled(&id).await;
    assert_eq!(rec["status"], "completed", "{rec:#}");
    assert_eq!(rec["reasonCode"], "client-disconnected");
    let d = dialer_deliveries(&rec);
    assert_eq!(d.len(), 2, "{rec:#}");
    assert!(d.iter().all(|d| d["state"] == "delivered"), "{rec:#}");
    // 4. A second instance on the same database answers for the call it did not place.
    let second = common::api::start(
        &format!(
            "{}{}",
            body(16701, &f.bot.url(), &trunk),
            cluster_yaml(&url, "dg-2")
        ),
        StartOpts::default(),
    )
    .await;
    let a = second
        .http
        .get(&format!("/api/v1/calls/{id}"), &f.auth)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["status"], "completed");
    assert_eq!(a.json["reasonCode"], "client-disconnected");
    // 5. PostgreSQL stops: a new dialout is refused with 503, a clear code and Retry-After.
    tokio::task::block_in_place(|| pg.stop_server());
    let req = json!({"bot": "flow-bot", "target": "+15551230002", "notifyUrl": f.sink.url()});
    let a = f.t.http.dialout(&f.auth, &req).await;
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(a.json["error"]["code"], "store_unavailable", "{}", a.text);
    assert!(a.headers.contains_key("retry-after"), "{:?}", a.headers);
    // 6. PostgreSQL is back: service resumes by itself (the pool reconnects), within a bound.
    tokio::task::block_in_place(|| pg.start_server());
    let mut status = 0;
    for _ in 0..50 {
        let a = second
            .http
            .get(&format!("/api/v1/calls/{id}"), &f.auth)
            .await;
        status = a.status.as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200, "the record is readable again");
    second.stop().await;
    f.stop().await;
}
