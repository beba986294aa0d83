//! The API as an attacker or a careless dialer would use it, over real HTTPS
//! on loopback: calls belong to their client, notifyUrl cannot point inside,
//! targets cannot smuggle SIP, numbers need a country, slow clients are cut off.

use crate::common;
use common::api::{StartOpts, TestApp, basic, start};
use common::binary::trunk_yaml;
use dialgate::sim::{Answer, SimCallee, SimCalleeOptions};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::Duration;

/// Two dialers and an auditor with the `all_calls` right; the carrier rings forever.
fn body(carrier: &str) -> String {
    let hash = |s: &str| dialgate::config::hash_secret(s);
    format!(
        r#"bots:
  - {{ id: b, name: B, sip_uri: "sip:bot@127.0.0.1:9", outbound: {{ enabled: true, max_cps: 20 }} }}
  - {{ id: uk, name: UK, sip_uri: "sip:bot@127.0.0.1:9", default_country: 44, outbound: {{ enabled: true, max_cps: 20 }} }}
{trunk}api_clients:
  - {{ client_id: alice, secret_hash: "{a}", groups: [call_control, call_data_manager] }}
  - {{ client_id: bob, secret_hash: "{b}", groups: [call_control, call_data_manager] }}
  - {{ client_id: auditor, secret_hash: "{c}", groups: [call_control, call_data_manager], all_calls: true }}
"#,
        a = hash("alice-secret"),
        b = hash("bob-secret"),
        c = hash("auditor-secret"),
        trunk = trunk_yaml(carrier),
    )
}

async fn ringing_carrier() -> SimCallee {
    SimCallee::start(SimCalleeOptions::callee().with_answer(Answer::Never))
        .await
        .unwrap()
}

/// dialgate with [`body`] and `opts`, its trunk a [`ringing_carrier`] (kept while the test
/// holds it).
async fn gateway(opts: StartOpts) -> (SimCallee, TestApp) {
    let carrier = ringing_carrier().await;
    let t = start(&body(&carrier.local_addr().to_string()), opts).await;
    (carrier, t)
}

/// The dialout `dialout` by `auth` is refused: 400 naming `field`. Returns the answer.
async fn refused(t: &TestApp, auth: &str, dialout: Value, field: &str) -> common::api::Answer {
    let a = t.http.dialout(auth, &dialout).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{dialout}: {}", a.text);
    assert_eq!(a.json["error"]["field"], field, "{dialout}: {}", a.text);
    a
}

/// Nothing was placed: `auth` lists no calls. Stops dialgate.
async fn nothing_placed_then_stop(t: TestApp, auth: &str) {
    assert_eq!(calls_listed(&t, auth).await, 0);
    t.stop().await;
}

/// How many calls `GET /api/v1/calls` lists for `auth`.
async fn calls_listed(t: &TestApp, auth: &str) -> usize {
    let a = t.http.get("/api/v1/calls", auth).await;
    a.json["calls"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_else(|| panic!("no calls list: {}", a.text))
}

#[tokio::test]
async fn another_clients_call_is_not_found() {
    // 1. Alice places a call (the carrier rings).
    let (_carrier, t) = gateway(StartOpts::default()).await;
    let (alice, bob, auditor) = (
        basic("alice", "alice-secret"),
        basic("bob", "bob-secret"),
        basic("auditor", "auditor-secret"),
    );
    let a = t
        .http
        .dialout(&alice, &json!({"bot": "b", "target": "+15550001234"}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let id = a.json["conversationId"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/calls/{id}");
    // 2. Bob can neither read it, nor list it, nor hang it up: 404 as for an unknown call.
    let a = t.http.get(&path, &bob).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json["error"]["code"], "call_not_found");
    let a = t
        .http
        .send(Method::DELETE, &path, &[("authorization", &bob)], None)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(calls_listed(&t, &bob).await, 0);
    // 3. Alice and the auditor (all_calls) see it.
    assert_eq!(t.http.get(&path, &alice).await.status, StatusCode::OK);
    assert_eq!(t.http.get(&path, &auditor).await.status, StatusCode::OK);
    assert_eq!(calls_listed(&t, &auditor).await, 1);
    // 4. Alice hangs up her own call.
    let a = t
        .http
        .send(Method::DELETE, &path, &[("authorization", &alice)], None)
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    t.stop().await;
}

#[tokio::test]
async fn notify_urls_inside_the_network_are_refused() {
    // 1. dialgate without server.notify_allow
    let (_carrier, t) = gateway(StartOpts::with(|o| o.loopback_notify = false)).await;
    let alice = basic("alice", "alice-secret");
    // 2. loopback, the metadata address, private and unspecified destinations: 400 naming the field
    for url in [
        "http://127.0.0.1:8080/n",
        "http://localhost/n",
        "http://[::1]/n",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.1/n",
        "http://0.0.0.0:80/n",
    ] {
        let dialout = json!({"bot": "b", "target": "+15550001234", "notifyUrl": url});
        refused(&t, &alice, dialout, "notifyUrl").await;
    }
    // 3. nothing was placed
    nothing_placed_then_stop(t, &alice).await;
}

#[tokio::test]
async fn targets_and_headers_cannot_smuggle_sip() {
    let (_carrier, t) = gateway(StartOpts::default()).await;
    let alice = basic("alice", "alice-secret");
    // 1. URI headers and parameters in a SIP target: 400, nothing dialled
    for target in [
        "sip:alice@example.com?Route=%3Csip:evil.example%3E",
        "sip:alice@example.com;transport=tcp",
    ] {
        refused(&t, &alice, json!({"bot": "b", "target": target}), "target").await;
    }
    // 2. too many headers: 400 naming `headers`
    let headers: serde_json::Map<String, serde_json::Value> =
        (0..50).map(|i| (format!("X-H{i}"), json!("v"))).collect();
    let dialout = json!({"bot": "b", "target": "+15550001234", "headers": headers});
    refused(&t, &alice, dialout, "headers").await;
    nothing_placed_then_stop(t, &alice).await;
}

#[tokio::test]
async fn numbers_without_plus_need_a_default_country() {
    let (_carrier, t) = gateway(StartOpts::default()).await;
    let alice = basic("alice", "alice-secret");
    // 1. bot `b` has no default_country (nor has its trunk): a clear 400
    let a = refused(
        &t,
        &alice,
        json!({"bot": "b", "target": "15550100"}),
        "target",
    )
    .await;
    assert!(
        a.json["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("default_country"),
        "{}",
        a.text
    );
    // 2. bot `uk` dials in country 44: the national trunk prefix 0 goes, +44 comes
    let a = t
        .http
        .dialout(&alice, &json!({"bot": "uk", "target": "tel:02079460000"}))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let id = a.json["conversationId"].as_str().unwrap();
    let rec = t.http.get(&format!("/api/v1/calls/{id}"), &alice).await;
    assert_eq!(rec.json["target"], "tel:+442079460000", "{}", rec.text);
    assert_eq!(rec.json["request"]["targetAsSent"], "tel:02079460000");
    t.stop().await;
}

#[tokio::test]
async fn slow_header_connections_are_closed() {
    // 1. dialgate over plain HTTP (the same limits apply behind TLS)
    let (_carrier, t) = gateway(StartOpts::with(|o| o.tls = false)).await;
    let addr = t.app().api_addr;
    // 2. a client sends half a request line and then nothing
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // 3. the server closes it (header timeout, 10 s by default); the read is bounded
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::task::spawn_blocking(move || s.read(&mut buf).map(|n| (n, buf)))
        .await
        .unwrap();
    match n {
        // closed, perhaps after a 408 answer
        Ok((0, _)) => {}
        Ok((n, b)) => {
            let text = String::from_utf8_lossy(&b[..n]).to_string();
            assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        }
        Err(e) => assert!(
            e.kind() == std::io::ErrorKind::ConnectionReset,
            "the connection was not closed: {e}"
        ),
    }
    // 4. a normal request still works
    assert_eq!(t.http.probe("/healthz").await, Some(StatusCode::OK));
    t.stop().await;
}
