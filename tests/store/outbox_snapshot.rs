//! Calls keep what they were accepted with for life: after a hot reload removes the API client,
//! its call's notifications are still signed with its webhook secret; after a reload removes
//! the bot, its live call's Bot API disconnect still reaches the bot with its token.
//! In-process dialgate, simulated SIP carrier, RTP ports 27400-27599.

use crate::common::binary::{server_yaml, trunk_yaml};
use crate::outbox_sink;

use base64::Engine as _;
use bytes::Bytes;
use dialgate::app::{App, AppOptions};
use dialgate::call::CallControl;
use dialgate::sim::{Answer, SimCallee, SimCalleeOptions};
use dialgate::webhook::{HttpClient, OutboxOptions};
use outbox_sink::{Behaviour, Sink, busy_carrier};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// The YAML: server section, then the bot (unless `with_bot` is false) and the clients.
fn yaml(
    dir: &Path,
    carrier: &str,
    events_url: &str,
    with_bot: bool,
    d_key: Option<&str>,
) -> String {
    let mut y = format!(
        r#"{server}  notify_allow: [127.0.0.0/8]
{trunk}api_clients:
  - {{ client_id: reader, secret_env: SNAP_SECRET, groups: [call_control, call_data_manager] }}
"#,
        server = server_yaml(0, 0, Some((27400, 27599)), &dir.join("data")),
        trunk = trunk_yaml(carrier),
    );
    if let Some(key) = d_key {
        y.push_str(&format!(
            "  - {{ client_id: d, secret_env: SNAP_SECRET, groups: [call_control], webhook_secret: {key} }}\n"
        ));
    }
    y.push_str("bots:\n  - id: other\n    name: Other\n    sip_uri: \"sip:other@127.0.0.1:9\"\n");
    if with_bot {
        y.push_str(&format!(
            "  - id: b\n    name: B\n    sip_uri: \"sip:bot@127.0.0.1:9\"\n    events_url: \"{events_url}\"\n    token: tok-b\n    outbound: {{ enabled: true, dialout_initiated_event: true }}\n"
        ));
    }
    y
}

/// Writes the YAML (trunk at `carrier`, bot `b` with its Bot API at `events_url`, client `d`
/// signing with `whsec-d`) in a new directory and starts dialgate on it.
/// A carrier answering 486 after 100 ms (and its address), a dialer that refuses `failed`
/// notifications for now, a bot that accepts everything.
async fn busy_carrier_and_sinks() -> (SimCallee, String, Sink, Sink) {
    let carrier = busy_carrier(Duration::from_millis(100)).await;
    let sink = Sink::start(Behaviour::Fail500On("failed".into())).await;
    let bot = Sink::start(Behaviour::Accept).await;
    let carrier_addr = carrier.local_addr().to_string();
    (carrier, carrier_addr, sink, bot)
}

async fn start_on(carrier: &str, events_url: &str) -> (tempfile::TempDir, PathBuf, App) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dialgate.yaml");
    let text = yaml(dir.path(), carrier, events_url, true, Some("whsec-d"));
    std::fs::write(&path, text).unwrap();
    let app = start(&path).await;
    (dir, path, app)
}

async fn start(path: &Path) -> App {
    App::start(
        path,
        AppOptions {
            token_ttl: Duration::from_secs(900),
            outbox: OutboxOptions {
                base_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(200),
                max_attempts: 100,
                request_timeout: Duration::from_secs(5),
            },
            watch_config: true,
            probe_bots: false,
        },
    )
    .await
    .expect("dialgate starts")
}

/// Posts a dialout as client `client`; returns the conversation id.
async fn dial(app: &App, client: &str, notify: Option<&str>) -> String {
    let http = HttpClient::new(Duration::from_secs(10), Duration::from_secs(2));
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{client}:snap-secret"));
    let mut body = json!({"bot": "b", "target": "+15550001234"});
    if let Some(n) = notify {
        body["notifyUrl"] = json!(n);
    }
    let a = http
        .post_json(
            &format!("{}/api/v1/actions/dialout", app.api_url()),
            Bytes::from(body.to_string()),
            &[("authorization", format!("Basic {auth}"))],
        )
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let v: Value = serde_json::from_slice(&a.body).unwrap();
    v["conversationId"].as_str().unwrap().to_owned()
}

/// Rewrites the file and waits (bounded) until the reload is in force.
async fn reload(app: &App, path: &Path, text: String) {
    let before = app.config.current().version;
    std::fs::write(path, text).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while app.config.current().version == before {
        assert!(tokio::time::Instant::now() < deadline, "no reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_stay_signed_after_the_api_client_is_removed() {
    // 1. A carrier answering 486; a dialer that fails `failed` notifications for now.
    let (_carrier, carrier_addr, sink, bot) = busy_carrier_and_sinks().await;
    let (dir, path, app) = start_on(&carrier_addr, &bot.url()).await;
    // 2. Client `d` places a call; it fails busy and its notification is refused once.
    let id = dial(&app, "d", Some(&sink.url())).await;
    let first = sink.wait_for(1, WAIT).await;
    assert_eq!(first[0].body["status"], "failed");
    assert!(first[0].signed_with("whsec-d"));
    // 3. Client `d` is removed from the configuration (hot reload).
    reload(
        &app,
        &path,
        yaml(dir.path(), &carrier_addr, &bot.url(), true, None),
    )
    .await;
    assert!(app.config.current().config.api_client("d").is_none());
    // 4. The dialer accepts now: the delivered notification is still signed with d's secret.
    sink.set(Behaviour::Accept);
    let ok = sink.wait_for_accepted(1, WAIT).await;
    assert_eq!(ok[0].body["conversationId"], id.as_str());
    assert!(
        ok[0].signed_with("whsec-d"),
        "unsigned or wrong key: {:?}",
        ok[0].signature
    );
    // 5. Every attempt carried the same event id.
    let ids: Vec<_> = sink.requests().iter().map(|g| g.event_id.clone()).collect();
    assert!(ids.len() >= 2 && ids.iter().all(|e| !e.is_empty() && *e == ids[0]));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_call_still_disconnects_its_bot_after_the_bot_is_removed() {
    // 1. A carrier that rings and never answers; a Bot API expecting the token `tok-b`.
    let carrier = SimCallee::start(SimCalleeOptions::callee().with_answer(Answer::Never))
        .await
        .unwrap();
    let bot = Sink::start(Behaviour::Accept).await;
    let carrier_addr = carrier.local_addr().to_string();
    let (dir, path, app) = start_on(&carrier_addr, &bot.url()).await;
    // 2. A call to bot `b`: its Bot API conversation opens (dialoutInitiated), it rings.
    let id = dial(&app, "reader", None).await;
    bot.wait_for(2, WAIT).await;
    // 3. Bot `b` is removed from the configuration (hot reload) while the call rings.
    reload(
        &app,
        &path,
        yaml(
            dir.path(),
            &carrier_addr,
            &bot.url(),
            false,
            Some("whsec-d"),
        ),
    )
    .await;
    assert!(app.config.current().config.bot("b").is_none());
    // 4. The call is hung up: its bot still gets the disconnect, with the call's token.
    assert_eq!(
        app.engine.hangup(&id),
        dialgate::call::HangupOutcome::Requested
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let disconnect = loop {
        let got = bot.requests();
        if let Some(g) = got.iter().find(|g| g.path == format!("/c/{id}/disconnect")) {
            break g.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no disconnect: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(disconnect.authorization.as_deref(), Some("Bearer tok-b"));
    assert_eq!(disconnect.body["reasonCode"], "api-hangup");
    assert!(!disconnect.event_id.is_empty());
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_webhook_secret_signs_alongside_the_calls_own() {
    // 1. As above: a busy carrier, a dialer refusing `failed` for now.
    let (_carrier, carrier_addr, sink, bot) = busy_carrier_and_sinks().await;
    let events = bot.url();
    let (dir, path, app) = start_on(&carrier_addr, &bot.url()).await;
    // 2. Client `d` places a call; its notification is refused once.
    dial(&app, "d", Some(&sink.url())).await;
    sink.wait_for(1, WAIT).await;
    // 3. Its webhook secret is rotated (hot reload).
    let rotated = yaml(dir.path(), &carrier_addr, &events, true, Some("whsec-new"));
    reload(&app, &path, rotated).await;
    // 4. The delivered notification verifies with the call's key and with the new one.
    sink.set(Behaviour::Accept);
    let ok = sink.wait_for_accepted(1, WAIT).await;
    assert!(ok[0].signed_with("whsec-d"));
    assert!(ok[0].signed_with("whsec-new"));
    assert!(!ok[0].signed_with("whsec-other"));
    app.shutdown().await;
}
