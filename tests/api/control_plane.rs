//! The control plane over real HTTPS on loopback with a real SQLite store:
//! authentication, the ordered dialout checks, limits, robustness, records.

use crate::common;
use common::api::{StartOpts, basic, start};
use hyper::{Method, StatusCode};
use serde_json::json;
use std::time::Duration;

const SECRET: &str = common::env::CP_DIALER_SECRET;

/// Bots, a trunk, rules and clients; secrets come from the environment.
fn body() -> String {
    r#"bots:
  - id: sales-bot
    name: Sales Bot
    sip_uri: "sip:bot@127.0.0.1:5999"
    outbound: { enabled: true, max_cps: 1, max_concurrent: 3 }
  - id: quiet-bot
    name: Quiet Bot
    sip_uri: "sip:quiet@127.0.0.1:5999"
  - id: lonely-bot
    name: Lonely Bot
    sip_uri: "sip:lonely@127.0.0.1:5999"
    outbound: { enabled: true }
sip_connections:
  - id: carrier
    name: Carrier
    address: "127.0.0.1:5998"
routing_rules:
  - name: us-only
    type: call
    origin_bot: sales-bot
    destination_pattern: "^\\+1"
    route: { sip_connection: carrier }
api_clients:
  - client_id: dialer
    secret_env: CP_DIALER_SECRET
    groups: [call_control]
    webhook_secret_env: CP_WEBHOOK_SECRET
  - client_id: reader
    secret_env: CP_READER_SECRET
    groups: [call_data_manager]
    # reads the dialer's calls: an explicit right (calls belong to their client)
    all_calls: true
"#
    .to_owned()
}

fn dial(target: &str) -> serde_json::Value {
    json!({"bot": "sales-bot", "target": target})
}

#[tokio::test]
async fn authentication_matrix() {
    let t = start(
        &body(),
        StartOpts::with(|o| o.token_ttl = Duration::from_secs(1)),
    )
    .await;
    let h = &t.http;
    let status = "/api/v1/status";
    // 1. No credentials → 401 with the JSON error shape.
    let a = h.send(Method::GET, status, &[], None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json["error"]["code"], "unauthenticated");
    // 2. Wrong secret → 401.
    let a = h.get(status, &basic("dialer", "wrong")).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json["error"]["code"], "invalid_client");
    // 3. Basic with the right secret → 200, the status shows the config version.
    let a = h.get(status, &basic("dialer", SECRET)).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.json["config"]["version"], 1);
    // 4. OAuth client credentials → a Bearer token that works.
    let form = format!("grant_type=client_credentials&client_id=dialer&client_secret={SECRET}");
    let tok = h
        .send(
            Method::POST,
            "/oauth/token",
            &[],
            Some(("application/x-www-form-urlencoded", form.into_bytes())),
        )
        .await;
    assert_eq!(tok.status, StatusCode::OK, "{}", tok.text);
    assert_eq!(tok.json["token_type"], "Bearer");
    assert_eq!(tok.json["expires_in"], 1);
    let bearer = format!("Bearer {}", tok.json["access_token"].as_str().unwrap());
    assert_eq!(h.get(status, &bearer).await.status, StatusCode::OK);
    // 5. The token endpoint with Basic credentials works too; a bad grant is named.
    let a = h
        .send(
            Method::POST,
            "/oauth/token",
            &[("authorization", &basic("dialer", SECRET))],
            Some((
                "application/x-www-form-urlencoded",
                b"grant_type=password".to_vec(),
            )),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json["error"]["field"], "grant_type");
    // 6. A forged token → 401.
    let a = h.get(status, "Bearer Zm9yZ2VkLXRva2Vu").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json["error"]["code"], "invalid_token");
    // 7. Wrong group: the reader may not dial, the dialer may not read records.
    let a = h
        .dialout(&basic("reader", "reader-secret-456"), &dial("+15551230001"))
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert_eq!(a.json["error"]["code"], "forbidden");
    let a = h.get("/api/v1/calls", &basic("dialer", SECRET)).await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    // 8. The token expires (its lifetime here is 1 s).
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let a = h.get(status, &bearer).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json["error"]["code"], "invalid_token");
    t.stop().await;
}

#[tokio::test]
async fn repeated_failures_are_slowed_but_a_correct_secret_always_gets_in() {
    let t = start(&body(), StartOpts::default()).await;
    let delayed = || async {
        let m = t.http.send(Method::GET, "/metrics", &[], None).await;
        m.text
            .lines()
            .find_map(|l| l.strip_prefix("dialgate_auth_delayed_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    // 1. Five bad attempts cost nothing extra; the next ones are delayed (queued).
    for _ in 0..8 {
        assert_eq!(
            t.http
                .get("/api/v1/status", &basic("dialer", "bad"))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert!(delayed().await > 0, "the brake slowed the guesses");
    // 2. The right secret from the same address is not refused: it gets in.
    let a = t.http.get("/api/v1/status", &basic("dialer", SECRET)).await;
    assert_eq!(a.status, StatusCode::OK);
    // 3. Once verified, it is never braked again, whatever the guesses.
    for _ in 0..3 {
        t.http.get("/api/v1/status", &basic("dialer", "bad")).await;
    }
    let before = delayed().await;
    let a = t.http.get("/api/v1/status", &basic("dialer", SECRET)).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(delayed().await, before, "a known secret is not delayed");
    t.stop().await;
}

#[tokio::test]
async fn dialout_checks_in_order_with_fields_named() {
    let t = start(&body(), StartOpts::default()).await;
    let h = &t.http;
    let auth = basic("dialer", SECRET);
    let post = |ct: &'static str, body: Vec<u8>| {
        let auth = auth.clone();
        async move {
            h.send(
                Method::POST,
                "/api/v1/actions/dialout",
                &[("authorization", &auth)],
                Some((ct, body)),
            )
            .await
        }
    };
    // 1. Authentication comes before everything: a bad body without credentials is 401.
    let a = h
        .send(
            Method::POST,
            "/api/v1/actions/dialout",
            &[],
            Some(("application/json", b"{".to_vec())),
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // 2. Content type 415, body limit 413.
    let a = post("text/plain", b"{}".to_vec()).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(a.json["error"]["code"], "unsupported_media_type");
    let big = format!(
        "{{\"bot\":\"sales-bot\",\"target\":\"+15551234567\",\"metadata\":{{\"x\":\"{}\"}}}}",
        "a".repeat(70_000)
    );
    let a = post("application/json", big.into_bytes()).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(a.json["error"]["code"], "body_too_large");
    // 3. Invalid JSON and invalid fields → 400 naming the field.
    let a = post("application/json", b"{\"bot\":".to_vec()).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json["error"]["code"], "invalid_json");
    for (body, field) in [
        (json!({"target": "+15551234567"}), "bot"),
        (json!({"bot": "sales-bot"}), "target"),
        (json!({"bot": "sales-bot", "target": "555-1234"}), "target"),
        (
            json!({"bot": "sales-bot", "target": "+15551234567", "notifyUrl": "/relative"}),
            "notifyUrl",
        ),
        (
            json!({"bot": "sales-bot", "target": "+15551234567", "answerTimeoutSec": 900}),
            "answerTimeoutSec",
        ),
        (
            json!({"bot": "sales-bot", "target": "+15551234567", "machineDetection": "on"}),
            "machineDetection",
        ),
        (
            json!({"bot": "sales-bot", "target": "+15551234567", "headers": {"Route": "x"}}),
            "headers.Route",
        ),
    ] {
        let a = h.dialout(&auth, &body).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(a.json["error"]["field"], field, "{body}: {}", a.text);
    }
    // 4. Unknown bot 404; outbound disabled 403.
    // 5. No routing rule: a bot without rules → 422 (then a destination outside the pattern).
    for (bot, status, code) in [
        ("nobody", StatusCode::NOT_FOUND, "unknown_bot"),
        ("Quiet Bot", StatusCode::FORBIDDEN, "outbound_disabled"),
        ("lonely-bot", StatusCode::UNPROCESSABLE_ENTITY, "no_route"),
    ] {
        let body = json!({"bot": bot, "target": "+15551234567"});
        let a = h.dialout(&auth, &body).await;
        assert_eq!(a.status, status, "{body}");
        assert_eq!(a.json["error"]["code"], code, "{body}");
    }
    let a = h.dialout(&auth, &dial("+445551234567")).await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY);
    // 6. Accepted: a conversation ID, and the record exists at once.
    let a = h.dialout(&auth, &dial("tel:+15551234567")).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let id = a.json["conversationId"].as_str().unwrap().to_owned();
    let rec = h
        .get(
            &format!("/api/v1/calls/{id}"),
            &basic("reader", "reader-secret-456"),
        )
        .await;
    assert_eq!(rec.status, StatusCode::OK);
    assert_eq!(rec.json["target"], "tel:+15551234567");
    assert_eq!(rec.json["bot"], "sales-bot");
    // 7. The rate limit: a second call within the same second → 429 with Retry-After.
    let a = h.dialout(&auth, &dial("+15551234568")).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.headers.get("retry-after").unwrap(), "1");
    // 8. Metrics count accepted and rejected dialouts by reason.
    let m = h.send(Method::GET, "/metrics", &[], None).await;
    assert!(
        m.text.contains("dialgate_dialouts_accepted_total 1"),
        "{}",
        m.text
    );
    assert!(
        m.text
            .contains("dialgate_dialouts_rejected_total{reason=\"no_route\"} 2"),
        "{}",
        m.text
    );
    assert!(m.text.contains(
        "dialgate_http_requests_total{route=\"/api/v1/actions/dialout\",status=\"200\"} 1"
    ));
    t.stop().await;
}

#[tokio::test]
async fn burst_of_ten_to_one_cps_bot() {
    let t = start(&body(), StartOpts::default()).await;
    let auth = basic("dialer", SECRET);
    // 1. Ten dialouts at once: the bucket holds one second's worth (one call).
    let mut futs = Vec::new();
    for i in 0..10 {
        let h = t.http.clone();
        let auth = auth.clone();
        futs.push(tokio::spawn(async move {
            h.dialout(&auth, &dial(&format!("+1555100{i:04}"))).await
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for f in futs {
        let a = f.await.unwrap();
        match a.status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert!(a.headers.get("retry-after").is_some());
            }
            s => panic!("unexpected {s}: {}", a.text),
        }
    }
    assert_eq!((ok, limited), (1, 9));
    t.stop().await;
}

#[tokio::test]
async fn idempotency_key_returns_the_first_answer() {
    let t = start(&body(), StartOpts::default()).await;
    let auth = basic("dialer", SECRET);
    let body = dial("+15557654321").to_string().into_bytes();
    let send = |key: &'static str| {
        let (h, auth, body) = (t.http.clone(), auth.clone(), body.clone());
        async move {
            h.send(
                Method::POST,
                "/api/v1/actions/dialout",
                &[("authorization", &auth), ("idempotency-key", key)],
                Some(("application/json", body)),
            )
            .await
        }
    };
    // 1. First request accepted.
    let first = send("order-42").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    // 2. The retry (which would otherwise be rate-limited) gets the same ID.
    let again = send("order-42").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.json["conversationId"], first.json["conversationId"]);
    // 3. Only one call was recorded.
    let list = t
        .http
        .get(
            "/api/v1/calls?bot=sales-bot",
            &basic("reader", "reader-secret-456"),
        )
        .await;
    assert_eq!(
        list.json["calls"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
    // 4. A different key is a new request (and here hits the rate limit).
    assert_eq!(send("order-43").await.status, StatusCode::TOO_MANY_REQUESTS);
    t.stop().await;
}

#[tokio::test]
async fn robustness_routes_methods_and_http2() {
    let t = start(&body(), StartOpts::with(|o| o.http2 = true)).await;
    let h = &t.http;
    // 1. HTTP/2 over TLS (ALPN) works.
    let a = h.send(Method::GET, "/healthz", &[], None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.version, hyper::Version::HTTP_2);
    // 2. Unknown route 404, wrong method 405 with Allow, both in the JSON shape.
    let a = h.send(Method::GET, "/nope", &[], None).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json["error"]["code"], "not_found");
    let a = h
        .send(Method::GET, "/api/v1/actions/dialout", &[], None)
        .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.headers.get("allow").unwrap(), "POST");
    // 3. Call records: unknown → 404; DELETE of an unknown call → 404.
    let reader = basic("reader", "reader-secret-456");
    let a = h
        .get(
            "/api/v1/calls/00000000-0000-0000-0000-000000000000",
            &reader,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = h
        .send(
            Method::DELETE,
            "/api/v1/calls/00000000-0000-0000-0000-000000000000",
            &[("authorization", &basic("dialer", SECRET))],
            None,
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    // 4. Listing validates its parameters.
    let a = h.get("/api/v1/calls?status=bogus", &reader).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(a.json["error"]["field"], "status");
    t.stop().await;
}
