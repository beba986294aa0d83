//! SimBotApi and SimDialer driven by a real hyper HTTP/1.1 client on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use dialgate::sim::{BotApiOptions, DialerOptions, SimBotApi, SimDialer, sign, verify_signature};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

/// POST `body` to `addr` + `path` with extra headers; returns (status, JSON body).
async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (u16, Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    let mut req = Request::post(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = tokio::time::timeout(WAIT, send.send_request(req))
        .await
        .unwrap()
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    conn.abort();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn bot_api_conversation_lifecycle_with_auth_and_scripted_hangup() {
    // 1. A bot API requiring a token, hanging up on the first activity after `start` (delay 0).
    let api = SimBotApi::start(BotApiOptions {
        token: Some("tok".into()),
        hangup_after_start: Some(Duration::ZERO),
        on_start: vec![json!({"type": "message", "text": "Hi there"})],
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = api.local_addr();
    let auth = [("authorization", "Bearer tok".to_string())];
    assert!(api.events_url().ends_with("/bot"));

    // 2. Wrong or missing token → 401.
    let create = r#"{"conversation":"c1","bot":"demo","capabilities":["websocket"]}"#;
    assert_eq!(post(addr, "/bot", &[], create).await.0, 401);
    assert_eq!(
        post(
            addr,
            "/bot",
            &[("authorization", "Bearer nope".into())],
            create
        )
        .await
        .0,
        401
    );

    // 3. Create → relative URLs and expiresSeconds.
    let (st, v) = post(addr, "/bot", &auth, create).await;
    assert_eq!(st, 200);
    assert_eq!(v["activitiesURL"], "conversation/c1/activities");
    assert_eq!(v["refreshURL"], "conversation/c1/refresh");
    assert_eq!(v["disconnectURL"], "conversation/c1/disconnect");
    assert_eq!(v["expiresSeconds"], 120);

    // 4. The start event gets the scripted activities (no hangup yet).
    let start = r#"{"conversation":"c1","activities":[{"id":"1","timestamp":"t","type":"event","name":"start","parameters":{"callee":"+1555"}}]}"#;
    let (st, v) = post(addr, "/conversation/c1/activities", &auth, start).await;
    assert_eq!(st, 200);
    assert_eq!(
        v["activities"],
        json!([{"type": "message", "text": "Hi there"}])
    );

    // 5. The next activity (here under the appended-URL form) is answered with hangup, once.
    let msg = r#"{"conversation":"c1","activities":[{"id":"2","type":"message","text":"Hello?"}]}"#;
    let (_, v) = post(addr, "/bot/conversation/c1/activities", &auth, msg).await;
    assert_eq!(v["activities"][0]["type"], "event");
    assert_eq!(v["activities"][0]["name"], "hangup");
    let (_, v) = post(addr, "/conversation/c1/activities", &auth, msg).await;
    assert_eq!(v["activities"], json!([]));

    // 6. Refresh → 200; disconnect → 200 and recorded; the conversation is then unknown (404).
    assert_eq!(
        post(
            addr,
            "/conversation/c1/refresh",
            &auth,
            r#"{"conversation":"c1"}"#
        )
        .await
        .0,
        200
    );
    let bye = r#"{"conversation":"c1","reason":"Client Side","reasonCode":"client-disconnected"}"#;
    assert_eq!(
        post(addr, "/conversation/c1/disconnect", &auth, bye)
            .await
            .0,
        200
    );
    assert_eq!(
        post(addr, "/conversation/c1/activities", &auth, msg)
            .await
            .0,
        404
    );

    // 7. The record holds every request with its auth and body.
    let d = api
        .wait_for(WAIT, |r| r.path.ends_with("/disconnect"))
        .await
        .unwrap();
    assert_eq!(d.body["reasonCode"], "client-disconnected");
    assert_eq!(d.auth.as_deref(), Some("Bearer tok"));
    let reqs = api.requests();
    assert_eq!(reqs.len(), 9);
    assert_eq!(reqs.iter().filter(|r| r.status == 401).count(), 2);
    let names: Vec<_> = api
        .activities()
        .iter()
        .map(|a| a["name"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(names[0], "start");
    api.shutdown();
}

#[tokio::test]
async fn dialer_verifies_signatures_and_fails_first_n() {
    // 1. A dialer with a secret that answers 500 to the first request.
    let dialer = SimDialer::start(DialerOptions {
        secret: Some("s3cr3t".into()),
        fail_first: 1,
        ..Default::default()
    })
    .await
    .unwrap();
    let addr = dialer.local_addr();
    let body = r#"{"conversationId":"c1","status":"answered","timestamp":"2026-11-23T21:00:00Z"}"#;
    let good = sign("s3cr3t", 1_700_000_000, body.as_bytes());
    assert!(verify_signature("s3cr3t", &good, body.as_bytes()));

    // 2. First delivery → 500 (even though signed), the retry → 200.
    let h = [("x-dialgate-signature", good.clone())];
    assert_eq!(post(addr, "/notify", &h, body).await.0, 500);
    assert_eq!(post(addr, "/notify", &h, body).await.0, 200);

    // 3. Wrong secret, tampered body, missing header → 401.
    let bad = [(
        "x-dialgate-signature",
        sign("other", 1_700_000_000, body.as_bytes()),
    )];
    assert_eq!(post(addr, "/notify", &bad, body).await.0, 401);
    assert_eq!(
        post(addr, "/notify", &h, &body.replace("answered", "completed"))
            .await
            .0,
        401
    );
    assert_eq!(post(addr, "/notify", &[], body).await.0, 401);

    // 4. All five are recorded with their signature verdicts.
    dialer.wait_for(WAIT, |_| true).await.unwrap();
    let n = dialer.notifications();
    let verdicts: Vec<_> = n.iter().map(|x| (x.status, x.signature_valid)).collect();
    assert_eq!(
        verdicts,
        vec![
            (500, Some(true)),
            (200, Some(true)),
            (401, Some(false)),
            (401, Some(false)),
            (401, Some(false)),
        ]
    );
    assert_eq!(n[1].call_status(), Some("answered"));
    assert_eq!(n[1].signature.as_deref(), Some(good.as_str()));
    dialer.shutdown();
}

#[test]
fn signature_format_and_parsing() {
    // 1. The header is `t=<unix>,v1=<64 hex>`.
    let s = sign("k", 42, b"{}");
    let (t, v1) = s.split_once(',').unwrap();
    assert_eq!(t, "t=42");
    assert_eq!(v1.len(), 3 + 64);
    // 2. Malformed headers never verify.
    for h in ["", "t=42", "v1=00", "t=x,v1=00", &s.replace("t=42", "t=43")] {
        assert!(!verify_signature("k", h, b"{}"), "{h}");
    }
}
