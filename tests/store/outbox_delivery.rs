//! Dialer notifications leave from the durable outbox: signed, retried with
//! backoff until a 2xx, every attempt recorded on the call record.

use crate::common;
use crate::outbox_sink::busy_carrier;
use common::api::{StartOpts, basic, start};
use common::binary::trunk_yaml;
use common::http_peers::NotifySink;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn failed_call_notification_is_retried_until_accepted() {
    // 1. A carrier that answers 486 Busy Here, and a dialer that fails its first two deliveries.
    let carrier = busy_carrier(Duration::from_millis(100)).await;
    let sink = NotifySink::start().await.unwrap();
    sink.fail_first(2);
    let body = format!(
        r#"bots:
  - {{ id: b, name: B, sip_uri: "sip:bot@127.0.0.1:9", outbound: {{ enabled: true }} }}
{trunk}api_clients:
  - client_id: d
    secret_hash: "{hash}"
    groups: [call_control, call_data_manager]
    webhook_secret: "whsec-outbox"
"#,
        trunk = trunk_yaml(&carrier.local_addr().to_string()),
        hash = dialgate::config::hash_secret("d-secret"),
    );
    let t = start(&body, StartOpts::default()).await;
    let auth = basic("d", "d-secret");
    // 2. The dialout is accepted.
    let a = t
        .http
        .dialout(
            &auth,
            &json!({"bot": "b", "target": "+15550009999", "notifyUrl": sink.url()}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.json["conversationId"].as_str().unwrap().to_owned();
    // 3. The terminal notification arrives on the third attempt: failed / busy / 486.
    let n = sink
        .wait_for_status("failed", Duration::from_secs(30))
        .await
        .expect("accepted failed notification");
    assert_eq!(n.json["conversationId"], id.as_str());
    assert_eq!(n.json["reasonCode"], "busy");
    assert_eq!(n.json["sipCode"], 486);
    let all = sink.requests();
    assert_eq!(all.len(), 3, "two failures then one success");
    assert!(
        all.iter().all(|r| r.json == all[0].json),
        "every attempt carries the same body"
    );
    // 4. Each attempt is signed with the client's webhook secret.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for r in &all {
        let sig = r
            .headers
            .iter()
            .find(|(k, _)| k == "x-dialgate-signature")
            .map(|(_, v)| v.clone())
            .unwrap();
        assert!(
            dialgate::webhook::sign::verify(b"whsec-outbox", &sig, r.body.as_bytes(), now, 300),
            "bad signature {sig}"
        );
    }
    // 5. The call record lists the delivery with its three attempts.
    let rec = t.http.get(&format!("/api/v1/calls/{id}"), &auth).await;
    assert_eq!(rec.json["status"], "failed");
    let d = rec.json["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["channel"] == "dialer")
        .unwrap()
        .clone();
    assert_eq!(d["state"], "delivered");
    let codes: Vec<i64> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["httpStatus"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(codes, vec![500, 500, 200]);
    // 6. No second terminal notification ever comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.requests().len(), 3);
    t.stop().await;
}
