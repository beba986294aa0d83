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
/// What the demo's text bot answers to the person's first words (spoken by dialgate's voice).
/// Plain words: Whisper tiny hears brand names loosely, and the demo recognises the reply back
/// from the person's recording.
const BOT_REPLY: &str = "Hi there, we are calling from Acme about your order from last week.";

/// What the demo can show on this machine.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// The Whisper model is installed: the person's words reach the bot.
    recognition: bool,
    /// The voice is installed too: the bot is a text bot and dialgate speaks its reply.
    text_bot: bool,
}

fn demo_yaml(dir: &Path, peers: &SimPeers, mode: Mode) -> String {
    // A text bot has no SIP endpoint: dialgate is its media side and speaks its messages.
    let media = match mode.text_bot {
        true => String::new(),
        false => format!("    sip_uri: \"{}\"\n", peers.bot.uri()),
    };
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
{media}    events_url: "{events}"
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
        recognition = mode.recognition,
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
    // The models live in the project's data directory (scripts/setup-model); the demo's own
    // data directory is temporary, so it borrows them.
    let data = std::path::absolute("data").map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
    let mode = detect_mode(&data);
    for sub in ["models", "runtime"] {
        if data.join(sub).is_dir() {
            let _ = std::os::unix::fs::symlink(data.join(sub), dir.join("data").join(sub));
        }
    }
    let mut opts = SimPeersOptions::demo(
        conf_dir,
        Some(BOT_TOKEN.into()),
        Some(WEBHOOK_SECRET.into()),
    )
    .map_err(|e| format!("simulated peers: {e}"))?;
    if mode.text_bot {
        // The bot answers the person's first words with text; dialgate speaks it.
        opts.bot_api.on_message = vec![json!({"type": "message", "text": BOT_REPLY})];
        // The person listens to the whole reply, then hangs up ([`hang_up_after_reply`]): a
        // fixed time after the greeting (8 s, then 14 s) cut the reply short on a busy machine,
        // where recognising the greeting and synthesising the reply take longer.
        opts.callee.hangup = crate::sim::Hangup::WaitForBye;
    }
    let peers = SimPeers::start(opts)
        .await
        .map_err(|e| format!("simulated peers: {e}"))?;
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .map_err(|e| format!("certificate: {e}"))?;
    std::fs::write(dir.join("demo.crt"), ck.cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("demo.key"), ck.signing_key.serialize_pem())
        .map_err(|e| e.to_string())?;
    let cfg_path = dir.join("dialgate.yaml");
    std::fs::write(&cfg_path, demo_yaml(&dir, &peers, mode)).map_err(|e| e.to_string())?;
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
    let bot = match mode.text_bot {
        true => format!("text bot at {}", peers.bot_api.events_url()),
        false => format!("bot at {}", peers.bot.uri()),
    };
    println!(
        "dialgate demo: gateway on {} (SIP {:?}), simulated carrier at {}, {bot}\n",
        app.api_url(),
        app.engine.sip_addr(crate::sip::Transport::Udp),
        peers.callee.local_addr(),
    );
    let result = drive(&app, &peers, ck.cert.pem().as_bytes(), mode).await;
    app.shutdown().await;
    peers.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Recognition needs the Whisper model; a text bot also needs the voice (and its runtime).
/// What is missing is said, and the demo shows what it can without it.
fn detect_mode(data: &Path) -> Mode {
    let recognition = data.join("models").join("ggml-tiny.en.bin").exists();
    if !recognition {
        println!(
            "(speech model not installed: run scripts/setup-model to see recognition in the demo)"
        );
        return Mode {
            recognition,
            text_bot: false,
        };
    }
    let cfg = crate::tts::TtsConfig {
        data_dir: data.to_path_buf(),
        ..Default::default()
    };
    // Whether the files are there, not a load of the voice: the gateway loads it once at start.
    let text_bot = match cfg.missing_file() {
        None => true,
        Some(f) => {
            println!(
                "(no voice, so the demo bot is a SIP bot: {} is missing; run scripts/setup-model)",
                f.display()
            );
            false
        }
    };
    Mode {
        recognition,
        text_bot,
    }
}

/// Prints what each side said and heard; returns what the person heard (recognised back from
/// their recording with dialgate's own recogniser).
async fn conversation(peers: &SimPeers) -> Result<String, String> {
    let recorded = peers
        .callee
        .calls()
        .into_iter()
        .next()
        .map(|c| c.recorded)
        .unwrap_or_default();
    let person_heard = recognise_reply(recorded).await;
    println!("\nConversation:");
    println!("  person  said   {GREETING_TEXT:?} (conf/greeting.wav)");
    let got = peers
        .bot_api
        .activities()
        .into_iter()
        .find(|a| a["type"] == "message")
        .and_then(|a| a["text"].as_str().map(str::to_owned))
        .unwrap_or_default();
    println!("  bot     got    {got:?} (recognised by dialgate)");
    println!("  bot     said   {BOT_REPLY:?} (text, spoken by dialgate)");
    match &person_heard {
        Ok(text) => println!("  person  heard  {text:?} (their recording, recognised back)"),
        Err(e) => println!("  person  heard  ? ({e})"),
    }
    person_heard
}

/// The person's recording, recognised with dialgate's own recogniser.
async fn recognise_reply(recorded: Vec<i16>) -> Result<String, String> {
    if recorded.is_empty() {
        return Err("nothing recorded".into());
    }
    tokio::task::spawn_blocking(move || {
        let stt = crate::stt::SttEngine::new(crate::stt::SttEngineConfig {
            data_dir: std::path::PathBuf::from("data"),
            ..Default::default()
        });
        crate::tts::eval::recognise(&stt, &recorded).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let d = std::env::temp_dir().join(format!("dialgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    Ok(d)
}

/// What the peers saw of the call, gathered for the timeline and the checks.
#[derive(Default)]
struct Seen {
    /// RTP packets (sent, received) by the person's side and by the bot's.
    callee_rtp: (u64, u64),
    bot_rtp: (u64, u64),
    /// Bot API activities and events by name (and `disconnect`).
    bot_events: Vec<String>,
    /// Words of the `message` activities the bot got, normalised.
    heard: Vec<Vec<String>>,
    /// The dialer's notifications: status, reasonCode, signature valid.
    statuses: Vec<(String, String, Option<bool>)>,
}

async fn drive(app: &App, peers: &SimPeers, cert_pem: &[u8], mode: Mode) -> Result<bool, String> {
    let mut tl = Timeline::start();
    let Some((id, rec)) = place_call(app, peers, cert_pem, mode, &mut tl).await? else {
        tl.print();
        return Ok(false);
    };
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
    let mut seen = Seen::default();
    carrier_lines(&mut tl, peers, &mut seen);
    bot_sip_lines(&mut tl, peers, &mut seen);
    bot_api_lines(&mut tl, peers, &mut seen);
    dialer_lines(&mut tl, peers, &mut seen);
    tl.print();
    println!(
        "\nCall {id}: {} ({}), machine detection: {}",
        rec["status"], rec["reasonCode"], rec["machineDetection"]["result"]
    );
    // The text bot's reply, as the person's side recorded it.
    let person_heard = match mode.text_bot {
        true => Some(conversation(peers).await),
        false => None,
    };
    Ok(checks(&rec, &seen, mode, person_heard))
}

/// Logs in, places the demo dialout and waits for its end (and its last deliveries); the
/// call's id and record, or `None` when the dialout was refused.
async fn place_call(
    app: &App,
    peers: &SimPeers,
    cert_pem: &[u8],
    mode: Mode,
    tl: &mut Timeline,
) -> Result<Option<(String, serde_json::Value)>, String> {
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
        return Ok(None);
    }
    let id = v["conversationId"].as_str().unwrap_or_default().to_owned();
    const TERMINAL_BOUND: Duration = Duration::from_secs(60);
    let rec = if mode.text_bot {
        // The person hangs up once the reply was spoken; a call that ends before that (refused,
        // failed) is reported at once instead of after the whole reply bound.
        tokio::select! {
            r = api.wait_terminal(&id, REPLY_BOUND + TERMINAL_BOUND) => r?,
            () = hang_up_after_reply(peers) => api.wait_terminal(&id, TERMINAL_BOUND).await?,
        }
    } else {
        api.wait_terminal(&id, TERMINAL_BOUND).await?
    };
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
    Ok(Some((id, rec)))
}

/// How long the person waits for the text bot's spoken reply to end (recognising the greeting,
/// the bot's answer, synthesis and about 4 s of speech; seconds when the machine is idle).
const REPLY_BOUND: Duration = Duration::from_secs(60);

/// The person of a text bot's call hangs up once the bot's reply has been spoken: when dialgate
/// tells the bot `playFinished`, plus half a second for the last packets to reach the
/// recording (or at [`REPLY_BOUND`], which the checks then report). Waiting for the event, not
/// for a fixed time, keeps a slow machine from cutting the reply short.
async fn hang_up_after_reply(peers: &SimPeers) {
    let reply_spoken = |r: &crate::sim::RecordedRequest| {
        r.body["activities"]
            .as_array()
            .is_some_and(|acts| acts.iter().any(|a| a["name"] == "playFinished"))
    };
    if peers
        .bot_api
        .wait_for(REPLY_BOUND, reply_spoken)
        .await
        .is_some()
    {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    peers.callee.hangup_all();
}

/// The person's side (the simulated carrier and callee) on the timeline.
fn carrier_lines(tl: &mut Timeline, peers: &SimPeers, seen: &mut Seen) {
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
                seen.callee_rtp = (*sent, *received);
                format!("RTP sent {sent}, received {received} packets")
            }
        };
        tl.at(e.at, "carrier", what);
    }
}

/// The bot's SIP leg on the timeline.
fn bot_sip_lines(tl: &mut Timeline, peers: &SimPeers, seen: &mut Seen) {
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
                seen.bot_rtp = (*sent, *received);
                format!("RTP sent {sent}, received {received} packets")
            }
        };
        tl.at(e.at, "bot SIP", what);
    }
}

/// What the bot got over the Bot API, on the timeline.
fn bot_api_lines(tl: &mut Timeline, peers: &SimPeers, seen: &mut Seen) {
    for r in peers.bot_api.requests() {
        let what = if let Some(acts) = r.body["activities"].as_array() {
            acts.iter()
                .map(|a| {
                    let name = a["name"]
                        .as_str()
                        .unwrap_or(a["type"].as_str().unwrap_or("?"));
                    seen.bot_events.push(name.to_owned());
                    match a["type"].as_str() {
                        Some("message") => {
                            let text = a["text"].as_str().unwrap_or("");
                            seen.heard.push(crate::stt::eval::normalize(text));
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
            seen.bot_events.push("disconnect".into());
            format!(
                "disconnect ({})",
                r.body["reasonCode"].as_str().unwrap_or("")
            )
        } else {
            format!("POST {}", r.path)
        };
        tl.at(r.at, "bot API", format!("{what} → {}", r.status));
    }
}

/// The dialer's notifications on the timeline.
fn dialer_lines(tl: &mut Timeline, peers: &SimPeers, seen: &mut Seen) {
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
        seen.statuses.push((
            st,
            n.body["reasonCode"].as_str().unwrap_or("").to_owned(),
            n.signature_valid,
        ));
    }
}

/// Prints the checks of the call; whether all passed.
fn checks(
    rec: &serde_json::Value,
    seen: &Seen,
    mode: Mode,
    person_heard: Option<Result<String, String>>,
) -> bool {
    println!("\nChecks:");
    let mut ok = true;
    check(&mut ok, rec["status"] == "completed", "the call completed");
    check(
        &mut ok,
        rec["reasonCode"] == "client-disconnected",
        "the person hung up (client-disconnected)",
    );
    let st: Vec<&str> = seen.statuses.iter().map(|(s, _, _)| s.as_str()).collect();
    check(
        &mut ok,
        st == ["answered", "completed"],
        "the dialer got `answered`, then exactly one terminal `completed`",
    );
    check(
        &mut ok,
        seen.statuses.iter().all(|(_, _, v)| *v == Some(true)),
        "every notification was signed correctly",
    );
    for (event, what) in [
        ("dialoutInitiated", "the bot got dialoutInitiated"),
        ("start", "the bot got the start event"),
        (
            "machineDetection",
            "the bot got the machine-detection result",
        ),
        ("disconnect", "the bot conversation was disconnected"),
    ] {
        check(&mut ok, seen.bot_events.iter().any(|e| e == event), what);
    }
    if mode.recognition {
        let said = crate::stt::eval::normalize(GREETING_TEXT);
        check(
            &mut ok,
            seen.heard.first() == Some(&said),
            &format!("the bot got the person's greeting as said ({GREETING_TEXT:?})"),
        );
    }
    if let Some(person_heard) = person_heard {
        let want = crate::tts::eval::spoken_words(BOT_REPLY);
        let got = person_heard
            .as_ref()
            .map(|t| t.as_str())
            .map(crate::tts::eval::spoken_words)
            .unwrap_or_default();
        let errors = crate::stt::eval::word_errors(&want, &got);
        // Whisper tiny may blur a word of a synthetic voice on a busy machine ("Acme" →
        // "acne"); the reply must still be plainly heard.
        check(
            &mut ok,
            !got.is_empty() && errors * 100 <= want.len() * 40,
            &format!(
                "the person heard the bot's reply ({} of {} words wrong)",
                errors.min(want.len()),
                want.len()
            ),
        );
    } else {
        check(
            &mut ok,
            seen.bot_rtp.1 > 25,
            "the bot heard the person's audio through the relay",
        );
    }
    check(
        &mut ok,
        seen.callee_rtp.1 > 25,
        "the person heard the bot's audio through the relay",
    );
    ok
}
