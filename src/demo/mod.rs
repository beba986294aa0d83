//! `dialgate demo` (a gateway on loopback with a built-in simulated carrier and bot, one dialout
//! through the HTTPS API, a timeline) and `dialgate test-call` (the same against a running
//! instance, like Live Hub's "Test Outbound Call").

mod client;
mod test_call;
mod timeline;

pub use client::ApiClient;
pub use test_call::{TestCall, test_call};

use crate::app::{App, AppOptions};
use crate::sim::{SimEventKind, SimPeers, SimPeersOptions};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use timeline::Timeline;

const BOT_TOKEN: &str = "demo-bot-token";
const WEBHOOK_SECRET: &str = "demo-webhook-secret";
const CLIENT_SECRET: &str = "demo-client-secret";
/// What the simulated person says on answering: `conf/greeting.wav` is Allison's recording of
/// it (scripts/make-stt-greetings). With recognition on, the bot must get exactly these words.
const GREETING_TEXT: &str = "Hello.";

fn demo_yaml(dir: &Path, peers: &SimPeers, recognition: bool) -> String {
    format!(
        r#"# Written by `dialgate demo`: the embedded defaults, wired to the simulated peers.
server:
  sip:
    listen:
      - {{ transport: udp, address: "127.0.0.1:0" }}
  http:
    listen: "127.0.0.1:0"
    tls: {{ cert: {dir}/demo.crt, key: {dir}/demo.key }}
  rtp: {{ port_min: 23000, port_max: 23099, inactivity_timeout_sec: 20 }}
  data_dir: {dir}/data
  max_call_duration_sec: 120
  # the simulated dialer listens on loopback: let notifications reach it
  notify_allow: [127.0.0.0/8]
bots:
  - id: demo-bot
    name: Demo Bot
    sip_uri: "{bot}"
    events_url: "{events}"
    token: "{BOT_TOKEN}"
    outbound:
      enabled: true
      dialout_initiated_event: true
      machine_detection: detect
      start_recognition_on_connect: {recognition}
sip_connections:
  - id: demo-carrier
    name: Simulated carrier
    address: "{carrier}"
    p_asserted_identity: true
phone_numbers:
  - {{ number: "+15550100000", bot: demo-bot, sip_connection: demo-carrier }}
routing_rules:
  - {{ name: demo, type: call, origin_bot: demo-bot, route: {{ phone_number: "+15550100000" }} }}
api_clients:
  - client_id: demo-dialer
    secret_hash: "{hash}"
    groups: [call_control, call_data_manager]
    webhook_secret: "{WEBHOOK_SECRET}"
"#,
        dir = dir.display(),
        bot = peers.bot.uri(),
        events = peers.bot_api.events_url(),
        carrier = peers.callee.local_addr(),
        hash = crate::config::hash_secret(CLIENT_SECRET),
    )
}

fn check(ok: &mut bool, cond: bool, what: &str) {
    println!("  {} {what}", if cond { "ok  " } else { "FAIL" });
    *ok &= cond;
}

/// Runs the demo; returns whether the call went as expected.
pub async fn run_demo(conf_dir: &Path) -> Result<bool, String> {
    let dir = tempfile_dir()?;
    let peers = SimPeers::start(
        SimPeersOptions::demo(
            conf_dir,
            Some(BOT_TOKEN.into()),
            Some(WEBHOOK_SECRET.into()),
        )
        .map_err(|e| format!("simulated peers: {e}"))?,
    )
    .await
    .map_err(|e| format!("simulated peers: {e}"))?;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| format!("certificate: {e}"))?;
    std::fs::write(dir.join("demo.crt"), ck.cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("demo.key"), ck.signing_key.serialize_pem())
        .map_err(|e| e.to_string())?;
    // The model lives in the project's data directory (scripts/setup-model); the demo's own
    // data directory is temporary, so it borrows it.
    let models = std::path::absolute("data/models").map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
    let recognition = models.join("ggml-tiny.en.bin").exists();
    if recognition {
        let _ = std::os::unix::fs::symlink(&models, dir.join("data").join("models"));
    } else {
        println!(
            "(speech model not installed: run scripts/setup-model to see recognition in the demo)"
        );
    }
    let cfg_path = dir.join("dialgate.yaml");
    std::fs::write(&cfg_path, demo_yaml(&dir, &peers, recognition)).map_err(|e| e.to_string())?;
    let app = App::start(
        &cfg_path,
        AppOptions {
            watch_config: false,
            probe_bots: false,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    println!(
        "dialgate demo: gateway on {} (SIP {:?}), simulated carrier at {}, bot at {}\n",
        app.api_url(),
        app.engine.sip_addr(crate::sip::Transport::Udp),
        peers.callee.local_addr(),
        peers.bot.uri()
    );
    let result = drive(&app, &peers, ck.cert.pem().as_bytes(), recognition).await;
    app.shutdown().await;
    peers.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let d = std::env::temp_dir().join(format!("dialgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    Ok(d)
}

async fn drive(
    app: &App,
    peers: &SimPeers,
    cert_pem: &[u8],
    recognition: bool,
) -> Result<bool, String> {
    let mut tl = Timeline::start();
    let mut api = ApiClient::new(&app.api_url(), Some(cert_pem), "demo-dialer", CLIENT_SECRET)?;
    api.login("demo-dialer", CLIENT_SECRET).await?;
    tl.at(
        std::time::Instant::now(),
        "dialer",
        "POST /oauth/token → 200 (Bearer token)",
    );
    let body = json!({
        "bot": "demo-bot",
        "target": "tel:+15551230000",
        "callerDisplayName": "dialgate demo",
        "notifyUrl": peers.dialer.notify_url(),
        "metadata": {"campaign": "demo"},
    });
    let (status, v) = api.dialout(&body).await?;
    tl.at(
        std::time::Instant::now(),
        "dialer",
        format!("POST /api/v1/actions/dialout → {status} {v}"),
    );
    if status != 200 {
        tl.print();
        return Ok(false);
    }
    let id = v["conversationId"].as_str().unwrap_or_default().to_owned();
    let rec = api.wait_terminal(&id, Duration::from_secs(60)).await?;
    // Let the last deliveries (terminal notification, bot disconnect) land.
    let _ = peers
        .dialer
        .wait_for(Duration::from_secs(10), |n| {
            matches!(n.body["status"].as_str(), Some("completed" | "failed"))
        })
        .await;
    let _ = peers
        .bot_api
        .wait_for(Duration::from_secs(10), |r| r.path.ends_with("disconnect"))
        .await;
    let rec = api
        .request("GET", &format!("/api/v1/calls/{id}"), None, true)
        .await
        .map(|(_, v)| v)
        .unwrap_or(rec);

    for e in rec["timeline"].as_array().into_iter().flatten() {
        tl.at_rfc3339(
            e["at"].as_str().unwrap_or(""),
            "dialgate",
            format!(
                "{}: {}",
                e["event"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or("")
            ),
        );
    }
    let mut callee_rtp = (0, 0);
    for e in peers.callee.events() {
        let what = match &e.kind {
            SimEventKind::Invite { request_uri, .. } => format!("INVITE {request_uri} received"),
            SimEventKind::Sent { code } => format!("sent {code}"),
            SimEventKind::Ack => "ACK received".into(),
            SimEventKind::Bye { from_remote } => format!(
                "BYE {}",
                if *from_remote {
                    "received"
                } else {
                    "sent (the person hangs up)"
                }
            ),
            SimEventKind::Cancel => "CANCEL received".into(),
            SimEventKind::RtpStats { sent, received } => {
                callee_rtp = (*sent, *received);
                format!("RTP sent {sent}, received {received} packets")
            }
        };
        tl.at(e.at, "carrier", what);
    }
    let mut bot_rtp = (0, 0);
    for e in peers.bot.events() {
        let what = match &e.kind {
            SimEventKind::Invite { headers, .. } => {
                let conv = headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("X-Dialgate-Conversation-Id"))
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("-");
                format!("INVITE received (X-Dialgate-Conversation-Id {conv})")
            }
            SimEventKind::Sent { code } => format!("sent {code}"),
            SimEventKind::Ack => "ACK received".into(),
            SimEventKind::Bye { from_remote } => {
                format!("BYE {}", if *from_remote { "received" } else { "sent" })
            }
            SimEventKind::Cancel => "CANCEL received".into(),
            SimEventKind::RtpStats { sent, received } => {
                bot_rtp = (*sent, *received);
                format!("RTP sent {sent}, received {received} packets")
            }
        };
        tl.at(e.at, "bot SIP", what);
    }
    let mut bot_events = Vec::new();
    let mut heard = Vec::new();
    for r in peers.bot_api.requests() {
        let what = if let Some(acts) = r.body["activities"].as_array() {
            acts.iter()
                .map(|a| {
                    let name = a["name"]
                        .as_str()
                        .unwrap_or(a["type"].as_str().unwrap_or("?"));
                    bot_events.push(name.to_owned());
                    match a["type"].as_str() {
                        Some("message") => {
                            let text = a["text"].as_str().unwrap_or("");
                            heard.push(crate::stt::eval::normalize(text));
                            format!("message \"{text}\"")
                        }
                        _ => match a["value"].as_str() {
                            Some(v) => format!("event {name} = {v}"),
                            None => format!("event {name}"),
                        },
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        } else if r.path.ends_with("disconnect") {
            bot_events.push("disconnect".into());
            format!(
                "disconnect ({})",
                r.body["reasonCode"].as_str().unwrap_or("")
            )
        } else {
            format!("POST {}", r.path)
        };
        tl.at(r.at, "bot API", format!("{what} → {}", r.status));
    }
    let mut statuses = Vec::new();
    for n in peers.dialer.notifications() {
        let st = n.body["status"].as_str().unwrap_or("?").to_owned();
        tl.at(
            n.at,
            "dialer",
            format!(
                "notification {st} reasonCode={} sipCode={} (signature {})",
                n.body["reasonCode"].as_str().unwrap_or("-"),
                n.body["sipCode"],
                match n.signature_valid {
                    Some(true) => "valid",
                    Some(false) => "INVALID",
                    None => "unchecked",
                }
            ),
        );
        statuses.push((
            st,
            n.body["reasonCode"].as_str().unwrap_or("").to_owned(),
            n.signature_valid,
        ));
    }
    tl.print();
    println!(
        "\nCall {id}: {} ({}), machine detection: {}",
        rec["status"], rec["reasonCode"], rec["machineDetection"]["result"]
    );
    println!("\nChecks:");
    let mut ok = true;
    check(&mut ok, rec["status"] == "completed", "the call completed");
    check(
        &mut ok,
        rec["reasonCode"] == "client-disconnected",
        "the person hung up (client-disconnected)",
    );
    let st: Vec<&str> = statuses.iter().map(|(s, _, _)| s.as_str()).collect();
    check(
        &mut ok,
        st == ["answered", "completed"],
        "the dialer got `answered`, then exactly one terminal `completed`",
    );
    check(
        &mut ok,
        statuses.iter().all(|(_, _, v)| *v == Some(true)),
        "every notification was signed correctly",
    );
    check(
        &mut ok,
        bot_events.iter().any(|e| e == "dialoutInitiated"),
        "the bot got dialoutInitiated",
    );
    check(
        &mut ok,
        bot_events.iter().any(|e| e == "start"),
        "the bot got the start event",
    );
    check(
        &mut ok,
        bot_events.iter().any(|e| e == "machineDetection"),
        "the bot got the machine-detection result",
    );
    check(
        &mut ok,
        bot_events.iter().any(|e| e == "disconnect"),
        "the bot conversation was disconnected",
    );
    if recognition {
        let said = crate::stt::eval::normalize(GREETING_TEXT);
        check(
            &mut ok,
            heard.first() == Some(&said),
            &format!("the bot got the person's greeting as said ({GREETING_TEXT:?})"),
        );
    }
    check(
        &mut ok,
        bot_rtp.1 > 25,
        "the bot heard the person's audio through the relay",
    );
    check(
        &mut ok,
        callee_rtp.1 > 25,
        "the person heard the bot's audio through the relay",
    );
    Ok(ok)
}
