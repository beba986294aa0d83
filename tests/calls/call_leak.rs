//! Nothing is kept per finished call: after answered calls end, every per-call table that
//! `/metrics` reports (`dialgate_table_entries`: live calls, rsipstack's dialogs, transactions
//! and timers, our legs) goes back to 0 — and the answered INVITEs' client transactions end with
//! their legs instead of lingering until Timer M (64×T1 = 32 s) with the whole dialog.
//! Real SIPp carrier and bot on loopback; SIP 16960-16961, RTP 28300-28399.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::peers::Sipp;
use common::sippflows::*;
use serde_json::json;

/// Calls placed at once.
const CALLS: usize = 4;

/// `dialgate_table_entries{table=…}` values from `/metrics`.
async fn tables(f: &Flow) -> BTreeMap<String, i64> {
    f.metric_by_label("dialgate_table_entries", "table")
        .await
        .into_iter()
        .collect()
}

/// Reads the tables until `done` holds for them, at most `within`; returns whether it held and
/// the last reading.
async fn tables_until(
    f: &Flow,
    within: Duration,
    done: impl Fn(&BTreeMap<String, i64>) -> bool,
) -> (bool, BTreeMap<String, i64>) {
    let deadline = Instant::now() + within;
    loop {
        let t = tables(f).await;
        if done(&t) {
            return (true, t);
        }
        if Instant::now() > deadline {
            return (false, t);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A SIPp UAS for `CALLS` calls on `port`.
fn peer(xml: &str, port: u16) -> Sipp {
    let (port, calls) = (port.to_string(), CALLS.to_string());
    let args = [
        "-p",
        &port,
        "-m",
        &calls,
        "-timeout",
        "90s",
        "-timeout_error",
    ];
    Sipp::spawn(&scenario(xml), &args).expect("sipp starts (apt-get install sip-tester)")
}

#[tokio::test]
async fn answered_calls_leave_no_sip_state_behind() {
    // 1. A SIPp carrier that answers and hangs up after its hold, a SIPp bot that answers.
    let carrier = peer("flow_carrier_answer_bye.xml", 16960);
    let bot = peer("flow_bot_answer.xml", 16961);
    let f = start_flow(FlowSetup {
        rtp: (28300, 28399),
        bot_port: 16961,
        trunk: Trunk {
            address: "127.0.0.1:16960".into(),
            ..Default::default()
        },
    })
    .await;
    // 2. Before any call every table is there, and empty.
    let idle = tables(&f).await;
    assert!(idle.contains_key("sip_transactions"), "{idle:?}");
    assert!(idle.values().all(|n| *n == 0), "{idle:?}");
    // 3. CALLS calls at once: each answered, bridged to the bot, hung up by the carrier.
    let mut ids = Vec::new();
    for i in 0..CALLS {
        ids.push(f.dial(&format!("+155512391{i:02}"), json!({})).await);
    }
    for id in &ids {
        let rec = f.settled(id).await;
        assert_eq!(rec["status"], "completed", "{rec:#}");
    }
    assert_eq!(finish(&carrier).await.0, 0, "carrier scenario");
    assert_eq!(finish(&bot).await.0, 0, "bot scenario");
    // 4. The calls, their legs and dialogs are gone, and so are the answered INVITEs' client
    //    transactions: they end with their legs (the bound is well under Timer M's 32 s, which
    //    is how long they and their dialogs stayed before).
    //    Each leg's route on the shared dialog state channel goes with its task.
    let live = [
        "calls",
        "sip_dialogs",
        "sip_legs",
        "sip_transactions",
        "sip_dialog_routes",
    ];
    let (ok, t) = tables_until(&f, Duration::from_secs(10), |t| {
        live.iter().all(|k| t.get(*k) == Some(&0))
    })
    .await;
    assert!(ok, "per-call state left after the calls ended: {t:?}");
    // 5. What rsipstack keeps to answer retransmissions (finished transactions, their cleanup
    //    timers) goes after 64×T1: then every table is back to 0.
    let (ok, t) = tables_until(&f, Duration::from_secs(90), |t| t.values().all(|n| *n == 0)).await;
    assert!(ok, "tables not back to 0: {t:?}");
    f.stop().await;
}
