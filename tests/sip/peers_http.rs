//! Self-tests of the HTTP test peers (tests/common/http_peers.rs): a real hyper client talks to
//! the Bot API bot and the notification sink over loopback.

use crate::common;
use std::time::Duration;

use bytes::Bytes;
use common::http_peers::{
    BotApiServer, BotConfig, BotReply, NotifySink, UrlStyle, activity, sign, verify_signature,
};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// POSTs JSON with optional extra headers; returns (status, JSON answer).
async fn post(c: &HttpClient, url: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = hyper::Request::post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = c.request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Resolves a URL from the bot's answer against the bot URL (as dialgate must).
fn resolve(bot_url: &str, base: &str, u: &str) -> String {
    if u.starts_with("http://") {
        u.to_string()
    } else if u.starts_with('/') {
        format!("{base}{u}")
    } else {
        let dir = &bot_url[..=bot_url.rfind('/').unwrap()];
        format!("{dir}{u}")
    }
}

#[tokio::test]
async fn bot_api_conversation_start_hangup_disconnect() {
    // 1. A bot that wants a token and hangs up in answer to `start`.
    let bot = BotApiServer::start(BotConfig {
        expected_token: Some("tok".into()),
        replies: vec![BotReply::on_event("start", vec![activity::hangup()])],
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client();
    let auth = [("authorization", "Bearer tok")];

    // 2. A wrong token is refused (and recorded).
    let (st, _) = post(
        &c,
        &bot.url(),
        &json!({"conversation": "c1"}),
        &[("authorization", "Bearer nope")],
    )
    .await;
    assert_eq!(st, 401);

    // 3. Opening the conversation returns relative URLs and expiresSeconds.
    let (st, urls) = post(
        &c,
        &bot.url(),
        &json!({"conversation": "c1", "bot": "b", "capabilities": []}),
        &auth,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(urls["activitiesURL"], "/conversation/c1/activities");
    assert_eq!(urls["expiresSeconds"], 60);
    let act_url = resolve(
        &bot.url(),
        bot.base(),
        urls["activitiesURL"].as_str().unwrap(),
    );

    // 4. `start` gets a hangup activity with an id and a timestamp.
    let start = json!({"conversation": "c1", "activities": [{"id": "a1", "timestamp": "t", "type": "event", "name": "start", "parameters": {"callee": "+1555"}}]});
    let (st, ans) = post(&c, &act_url, &start, &auth).await;
    assert_eq!(st, 200);
    let acts = ans["activities"].as_array().unwrap();
    assert_eq!(acts.len(), 1);
    assert_eq!(acts[0]["name"], "hangup");
    assert!(acts[0]["id"].is_string() && acts[0]["timestamp"].is_string());

    // 5. Other events get an empty list; refresh and disconnect are answered.
    let md = json!({"conversation": "c1", "activities": [{"id": "a2", "type": "event", "name": "machineDetection", "value": "human"}]});
    let (_, ans) = post(&c, &act_url, &md, &auth).await;
    assert_eq!(ans["activities"], json!([]));
    let refresh = resolve(&bot.url(), bot.base(), urls["refreshURL"].as_str().unwrap());
    assert_eq!(
        post(&c, &refresh, &json!({"conversation": "c1"}), &auth)
            .await
            .0,
        200
    );
    let disc = resolve(
        &bot.url(),
        bot.base(),
        urls["disconnectURL"].as_str().unwrap(),
    );
    assert_eq!(
        post(
            &c,
            &disc,
            &json!({"conversation": "c1", "reason": "x", "reasonCode": "client-disconnected"}),
            &auth
        )
        .await
        .0,
        200
    );

    // 6. Unknown conversations get 404.
    assert_eq!(
        post(
            &c,
            &format!("{}/conversation/zz/activities", bot.base()),
            &start,
            &auth
        )
        .await
        .0,
        404
    );

    // 7. Everything was recorded in order, with the Authorization header and JSON body.
    let reqs = bot.wait_for_count(7, WAIT).await.unwrap();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/bot",
            "/bot",
            "/conversation/c1/activities",
            "/conversation/c1/activities",
            "/conversation/c1/refresh",
            "/conversation/c1/disconnect",
            "/conversation/zz/activities"
        ]
    );
    assert_eq!(reqs[1].header("Authorization"), Some("Bearer tok"));
    assert_eq!(reqs[0].status, 401);
    assert_eq!(
        reqs[2].json["activities"][0]["parameters"]["callee"],
        "+1555"
    );
    assert_eq!(
        bot.activity_names()[..2],
        ["start".to_string(), "machineDetection".to_string()]
    );
    assert_eq!(bot.conversations(), ["c1"]);
    let (conv, d) = bot
        .wait_for_activity("machineDetection", WAIT)
        .await
        .unwrap();
    assert_eq!((conv.as_str(), d["value"].as_str()), ("c1", Some("human")));
    assert_eq!(
        bot.wait_for_path("/disconnect", WAIT).await.unwrap().json["reasonCode"],
        "client-disconnected"
    );
}

#[tokio::test]
async fn bot_api_held_reply_pushed_activities_and_url_styles() {
    // 1. Absolute URLs; `start` is answered with startRecognition only when the test releases it.
    let bot = BotApiServer::start(BotConfig {
        url_style: UrlStyle::Absolute,
        replies: vec![
            BotReply::on_event("start", vec![activity::start_recognition()])
                .held()
                .once(),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client();
    let (_, urls) = post(&c, &bot.url(), &json!({"conversation": "c2"}), &[]).await;
    let act_url = urls["activitiesURL"].as_str().unwrap().to_string();
    assert!(act_url.starts_with("http://127.0.0.1:"), "{act_url}");

    // 2. The start POST is held: it is recorded, but no answer comes until release.
    let start = json!({"conversation": "c2", "activities": [{"type": "event", "name": "start"}]});
    let held = {
        let (c, u, s) = (c.clone(), act_url.clone(), start.clone());
        tokio::spawn(async move { post(&c, &u, &s, &[]).await })
    };
    bot.wait_for_activity("start", WAIT).await.unwrap();
    assert!(!held.is_finished());
    bot.release_held();
    let (st, ans) = tokio::time::timeout(WAIT, held).await.unwrap().unwrap();
    assert_eq!(st, 200);
    assert_eq!(ans["activities"][0]["name"], "startRecognition");

    // 3. `once`: a second start gets nothing; pushed activities ride on the next response.
    bot.push_activities(vec![activity::stop_recognition(), activity::hangup()]);
    let msg = json!({"conversation": "c2", "activities": [{"type": "message", "text": "Hi", "parameters": {"confidence": 0.8}}]});
    let (_, ans) = post(&c, &act_url, &msg, &[]).await;
    let names: Vec<&str> = ans["activities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["stopRecognition", "hangup"]);
    assert_eq!(bot.activity_names(), ["start", "message"]);

    // 4. A relative-URL bot and a failing bot.
    let rel = BotApiServer::start(BotConfig {
        url_style: UrlStyle::Relative,
        ..Default::default()
    })
    .await
    .unwrap();
    let (_, urls) = post(&c, &rel.url(), &json!({"conversation": "c3"}), &[]).await;
    assert_eq!(urls["activitiesURL"], "conversation/c3/activities");
    let u = resolve(&rel.url(), rel.base(), "conversation/c3/activities");
    assert_eq!(
        post(
            &c,
            &u,
            &json!({"conversation": "c3", "activities": []}),
            &[]
        )
        .await
        .0,
        200
    );
    let failing = BotApiServer::start(BotConfig {
        create_status: 503,
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        post(&c, &failing.url(), &json!({"conversation": "c4"}), &[])
            .await
            .0,
        503
    );
}

#[tokio::test]
async fn notify_sink_records_fails_first_and_verifies_signatures() {
    // 1. A sink failing the first two attempts.
    let sink = NotifySink::start().await.unwrap();
    sink.fail_first(2);
    let c = client();
    let body = json!({"conversationId": "c1", "status": "answered"});
    let raw = body.to_string();
    let sig = sign("whsec", 1_700_000_000, raw.as_bytes());

    // 2. Three attempts of the same notification: 500, 500, 200.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            post(
                &c,
                &sink.url(),
                &body,
                &[("x-dialgate-signature", sig.as_str())],
            )
            .await
            .0,
        );
    }
    assert_eq!(statuses, [500, 500, 200]);

    // 3. All attempts are recorded with the signature header; only the last one was accepted.
    let reqs = sink.wait_for_count(3, WAIT).await.unwrap();
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert_eq!(sink.accepted().len(), 1);
    let got = sink.wait_for_status("answered", WAIT).await.unwrap();
    let header = got.header("X-Dialgate-Signature").unwrap();
    assert!(verify_signature(header, got.body.as_bytes(), "whsec"));

    // 4. The signature fails with another secret, another body, or a mangled header.
    assert!(!verify_signature(header, got.body.as_bytes(), "other"));
    assert!(!verify_signature(header, b"{}", "whsec"));
    assert!(!verify_signature("t=,v1=00", got.body.as_bytes(), "whsec"));
    assert!(!verify_signature(
        &header.replace("t=1", "t=2"),
        got.body.as_bytes(),
        "whsec"
    ));

    // 5. A known vector (HMAC-SHA256 of "1.x" with key "k", computed independently with openssl).
    assert_eq!(sign("k", 1, b"x"), format!("t=1,v1={}", KNOWN_HMAC));

    // 6. A bounded wait fails when nothing more comes.
    let err = sink
        .wait_for_count(4, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.count, 3);
}

/// `printf '1.x' | openssl dgst -sha256 -hmac k`
const KNOWN_HMAC: &str = "976cb87e4f568d1c0f03f32859e90af8597cf00b978ba37c229c97d3a15b8449";
