//! The live-call gauges of `/metrics` tell the truth: a state counts the calls in it now, and
//! goes back to 0 when they leave it, whichever way they end (failure before answer, API
//! hang-up while ringing). Real SIPp carriers on loopback; SIP 16940-16943, RTP 28100-28199.

use crate::common;
use common::sippflows::*;
use serde_json::json;

fn trunk(port: u16) -> Trunk {
    Trunk {
        address: format!("127.0.0.1:{port}"),
        ..Default::default()
    }
}

/// `dialgate_calls{state=…}` values from `/metrics`, in order.
async fn call_gauges(f: &Flow) -> Vec<(String, i64)> {
    f.metric_by_label("dialgate_calls", "state").await
}

#[tokio::test]
async fn call_gauges_return_to_zero_on_every_path() {
    // 1. A carrier that rings until CANCEL, and dialgate with it as its trunk.
    let ringing = uas("flow_ring_until_cancel.xml", 16940, 60);
    let _botp = uas("flow_bot_answer.xml", 16941, 60);
    let f = start_flow(FlowSetup {
        rtp: (28100, 28199),
        bot_port: 16941,
        trunk: trunk(16940),
    })
    .await;
    // 2. A call rings: the gauge says one call is ringing.
    let id = f
        .dial("+15551239001", json!({"answerTimeoutSec": 60}))
        .await;
    f.record_until(&id, "ringing", |r| r["ringingAt"].is_string())
        .await;
    let gauges = call_gauges(&f).await;
    assert!(gauges.contains(&("ringing".to_owned(), 1)), "{gauges:?}");
    // 3. The dialer hangs up while it rings (CANCEL, 487): the call ends, and the ringing
    //    gauge reads 0 again instead of its last count.
    assert_eq!(f.hangup(&id).await.status, hyper::StatusCode::ACCEPTED);
    f.settled(&id).await;
    assert_eq!(finish(&ringing).await.0, 0);
    let gauges = call_gauges(&f).await;
    assert!(!gauges.is_empty());
    assert!(gauges.iter().all(|(_, n)| *n == 0), "{gauges:?}");
    // 4. A call that fails before answer (the carrier is busy): all gauges still 0 after it.
    let busy = uas("flow_carrier_486.xml", 16940, 60);
    let id = f.dial("+15551239002", json!({})).await;
    let rec = f.settled(&id).await;
    assert_eq!(rec["reasonCode"], "busy", "{rec:#}");
    assert_eq!(finish(&busy).await.0, 0);
    let gauges = call_gauges(&f).await;
    assert!(gauges.iter().all(|(_, n)| *n == 0), "{gauges:?}");
    f.stop().await;
}
