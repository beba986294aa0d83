//! Hot reload seen from the API: a valid edit takes effect, an invalid one is
//! rejected with its position while the running configuration keeps serving,
//! and a reload during a burst of requests loses none.

use crate::common;
use common::api::{StartOpts, basic, start};
use hyper::StatusCode;
use serde_json::json;

const BODY: &str = r#"bots:
  - id: hot-bot
    name: Hot Bot
    sip_uri: "sip:bot@127.0.0.1:5999"
    outbound: { enabled: true, max_cps: 1000, max_concurrent: 1000 }
sip_connections:
  - { id: trunk, name: Trunk, address: "127.0.0.1:9" }
routing_rules:
  - { name: all, type: call, origin_bot: "*", route: { sip_connection: trunk } }
api_clients:
  - client_id: ops
    secret_hash: "HASH"
    groups: [call_control, call_data_manager]
"#;

fn body() -> String {
    BODY.replace("HASH", &dialgate::config::hash_secret("ops-secret"))
}

/// Rewrites the file the way editors do: write a temporary file, rename it over.
fn rewrite(path: &std::path::Path, edit: impl Fn(&str) -> String) {
    let text = std::fs::read_to_string(path).unwrap();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, edit(&text)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn wait_status(
    t: &common::api::TestApp,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    t.until_status(&basic("ops", "ops-secret"), pred).await
}

#[tokio::test]
async fn valid_edit_applies_and_invalid_edit_keeps_the_running_config() {
    let t = start(&body(), StartOpts::default()).await;
    let auth = basic("ops", "ops-secret");
    let dial = json!({"bot": "hot-bot", "target": "+15550001111"});
    // 1. Version 1 serves; the bot may dial out.
    let s = wait_status(&t, |s| s["config"]["version"] == 1).await;
    assert!(s["config"]["lastReloadError"].is_null());
    assert_eq!(t.http.dialout(&auth, &dial).await.status, StatusCode::OK);
    // 2. A valid edit disables outbound calling: version 2, dialouts refused with 403.
    rewrite(&t.config_path, |s| {
        s.replace("outbound: { enabled: true,", "outbound: { enabled: false,")
    });
    wait_status(&t, |s| s["config"]["version"] == 2).await;
    let a = t.http.dialout(&auth, &dial).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.json["error"]["code"], "outbound_disabled");
    // 3. An invalid edit (a misspelt field) is rejected with file:line:column and the closest name.
    rewrite(&t.config_path, |s| {
        s.replace("    sip_uri:", "    sip_url:")
    });
    let s = wait_status(&t, |s| !s["config"]["lastReloadError"].is_null()).await;
    let msg = s["config"]["lastReloadError"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(msg.contains("dialgate.yaml:"), "{msg}");
    assert!(msg.contains("sip_url") && msg.contains("sip_uri"), "{msg}");
    let line_col = msg.split("dialgate.yaml:").nth(1).unwrap();
    let mut parts = line_col.split(':');
    assert!(
        parts.next().unwrap().parse::<u32>().is_ok()
            && parts.next().unwrap().parse::<u32>().is_ok(),
        "{msg}"
    );
    // 4. The old configuration (version 2) keeps serving.
    assert_eq!(s["config"]["version"], 2);
    assert_eq!(
        t.http.dialout(&auth, &dial).await.status,
        StatusCode::FORBIDDEN
    );
    // 5. Fixing the file clears the error and applies the fix.
    rewrite(&t.config_path, |s| {
        s.replace("    sip_url:", "    sip_uri:")
            .replace("enabled: false,", "enabled: true,")
    });
    let s = wait_status(&t, |s| s["config"]["version"] == 3).await;
    assert!(s["config"]["lastReloadError"].is_null());
    assert_eq!(t.http.dialout(&auth, &dial).await.status, StatusCode::OK);
    // 6. Reloads are counted in the metrics.
    let m = t.http.send(hyper::Method::GET, "/metrics", &[], None).await;
    assert!(
        m.text
            .contains("dialgate_config_reloads_total{result=\"ok\"} 2"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("dialgate_config_reloads_total{result=\"failed\"} 1"),
        "{}",
        m.text
    );
    t.stop().await;
}

#[tokio::test]
async fn reload_during_a_burst_loses_no_request() {
    let _cpu = common::cpu::exclusive().await;
    let t = start(&body(), StartOpts::default()).await;
    let auth = basic("ops", "ops-secret");
    // 1. One authenticated request first: the secret's argon2 verification (deliberately slow,
    //    two at a time) is then cached, so the burst measures reloads against requests and not
    //    60 verifications queued behind each other (on a loaded machine that queue alone
    //    outlasted the client's 20 s bound).
    wait_status(&t, |s| s["config"]["version"] == 1).await;
    // 2. 60 dialouts in flight while the file is rewritten three times.
    let mut tasks = Vec::new();
    for i in 0..60 {
        let h = t.http.clone();
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            h.dialout(
                &auth,
                &json!({"bot": "hot-bot", "target": format!("+1555200{i:04}")}),
            )
            .await
        }));
        if i % 20 == 10 {
            rewrite(&t.config_path, |s| {
                s.replace("max_cps: 1000", "max_cps: 999")
                    .replace("max_cps: 999,", "max_cps: 1000,")
            });
        }
    }
    // 3. Every request got an answer, and every one was accepted.
    let mut ids = Vec::new();
    for task in tasks {
        let a = task.await.unwrap();
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        ids.push(a.json["conversationId"].as_str().unwrap().to_owned());
    }
    // 4. Every accepted call is in the store.
    let list = t.http.get("/api/v1/calls?limit=500", &auth).await;
    let stored: Vec<&str> = list.json["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["conversationId"].as_str().unwrap())
        .collect();
    for id in &ids {
        assert!(
            stored.contains(&id.as_str()),
            "call {id} missing from the store"
        );
    }
    t.stop().await;
}
