//! A dialout acknowledged and then the process killed (SIGKILL, no clean
//! shutdown) is still there after a restart, and ends with a terminal state.

use crate::common;
use common::api::{Http, basic};
use common::binary::{Dialgate, free_tcp_port, server_yaml, trunk_yaml};
use serde_json::json;
use std::time::Duration;

fn spawn(config: &std::path::Path) -> Dialgate {
    Dialgate::spawn(config, None, &[("DUR_SECRET", "s3cret")])
}

async fn wait_healthy(h: &Http) {
    for _ in 0..200 {
        if h.probe("/healthz").await == Some(hyper::StatusCode::OK) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dialgate did not become healthy");
}

#[tokio::test]
async fn acknowledged_dialout_survives_sigkill() {
    let port = free_tcp_port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dialgate.yaml");
    std::fs::write(
        &cfg,
        format!(
            r#"{server}  notify_allow: [127.0.0.0/8]
{trunk}bots:
  - {{ id: b, name: B, sip_uri: "sip:bot@127.0.0.1:5999", outbound: {{ enabled: true }} }}
api_clients:
  - {{ client_id: d, secret_env: DUR_SECRET, groups: [call_control, call_data_manager] }}
"#,
            server = server_yaml(0, port, Some((22000, 22099)), &dir.path().join("data")),
            trunk = trunk_yaml("127.0.0.1:9"),
        ),
    )
    .unwrap();
    let h = Http::new(&format!("http://127.0.0.1:{port}"), None, false);
    let auth = basic("d", "s3cret");
    // 1. Start dialgate and get a dialout acknowledged.
    let p = spawn(&cfg);
    wait_healthy(&h).await;
    let a = h
        .dialout(
            &auth,
            &json!({"bot": "b", "target": "+15550000001", "notifyUrl": "http://127.0.0.1:9/n"}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.json["conversationId"].as_str().unwrap().to_owned();
    // 2. Kill it without any chance to clean up.
    drop(p);
    // 3. Restart on the same data directory: the call is there.
    let _p = spawn(&cfg);
    wait_healthy(&h).await;
    let rec = h.get(&format!("/api/v1/calls/{id}"), &auth).await;
    assert_eq!(rec.status, 200, "{}", rec.text);
    assert_eq!(rec.json["conversationId"], id.as_str());
    // 4. It ends in exactly one terminal state, with its notification queued.
    let mut terminal = None;
    for _ in 0..100 {
        let rec = h.get(&format!("/api/v1/calls/{id}"), &auth).await;
        let st = rec.json["status"].as_str().unwrap_or("").to_owned();
        if st == "failed" || st == "completed" {
            terminal = Some(rec);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rec = terminal.expect("the call reached a terminal state");
    let dialer_notes: Vec<_> = rec.json["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["channel"] == "dialer" && d["kind"] == "status")
        .collect();
    assert!(!dialer_notes.is_empty(), "{}", rec.text);
}
