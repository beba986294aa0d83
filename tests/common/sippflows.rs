//! Harness for whole-call flows over real SIP on loopback: an in-process dialgate with its own
//! RTP range, a SIPp carrier and a SIPp bot playing `tests/sipp/flow_*.xml`, a dialer's
//! notification sink and a Bot API bot; plus readers for SIPp's message trace, the dialer's
//! notifications and the call record. Every wait is bounded.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::api::{Answer, Http, TestApp, basic, make_cert};
use super::http_peers::{BotApiServer, BotConfig, NotifySink, RecordedRequest};
use super::peers::Sipp;

/// The dialer's client secret (environment variable `FLOW_DIALER_SECRET`).
pub const SECRET: &str = "flow-dialer-secret";
/// Generous bound for one flow step on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// `tests/sipp/<name>`.
pub fn scenario(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
}

/// A SIPp UAS playing `tests/sipp/<name>` on 127.0.0.1:`port` for one call; it gives up
/// (non-zero exit) after `timeout_s` seconds.
pub fn uas(name: &str, port: u16, timeout_s: u32) -> Sipp {
    uas_with(name, port, timeout_s, &[])
}

/// [`uas`] with more SIPp arguments (e.g. `-nr`).
pub fn uas_with(name: &str, port: u16, timeout_s: u32, extra: &[&str]) -> Sipp {
    uas_file(&scenario(name), port, timeout_s, extra)
}

/// [`uas`] for `calls` calls in a row (or at once): SIPp ends after the last one.
pub fn uas_calls(name: &str, port: u16, calls: u32, timeout_s: u32) -> Sipp {
    sipp_uas(&scenario(name), port, calls, timeout_s, &[])
}

/// [`uas_with`] for a scenario file anywhere (e.g. one written with a test's own audio file).
pub fn uas_file(xml: &std::path::Path, port: u16, timeout_s: u32, extra: &[&str]) -> Sipp {
    sipp_uas(xml, port, 1, timeout_s, extra)
}

/// SIPp playing `xml` on 127.0.0.1:`port` for `calls` calls, giving up after `timeout_s`.
fn sipp_uas(xml: &std::path::Path, port: u16, calls: u32, timeout_s: u32, extra: &[&str]) -> Sipp {
    let port = port.to_string();
    let calls = calls.to_string();
    let timeout = format!("{timeout_s}s");
    let mut args = vec![
        "-p",
        &port,
        "-m",
        &calls,
        "-timeout",
        &timeout,
        "-timeout_error",
    ];
    args.extend_from_slice(extra);
    Sipp::spawn(xml, &args).expect("sipp starts (apt-get install sip-tester)")
}

/// Waits (bounded) for SIPp to end by itself; returns (exit code, message trace).
pub async fn finish(s: &Sipp) -> (i32, String) {
    let out = s.wait(Duration::from_secs(60)).await.expect("sipp ended");
    let code = out.status.code().unwrap_or(-1);
    if code != 0 {
        eprintln!(
            "sipp exit {code}\nerrors:\n{}\nmessages:\n{}",
            out.errors, out.messages
        );
    }
    (code, out.messages)
}

/// The messages of a SIPp trace as (label, full text): `"<INVITE"` (received request),
/// `">180"` (sent response), `">BYE"`, `"<200"`…, in order.
pub fn sip_messages(trace: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut cur: Option<(String, String)> = None;
    for l in trace.lines() {
        if l.starts_with("-----------------------------------------------") {
            out.extend(cur.take());
            continue;
        }
        let dir = if l.contains("message received") {
            Some("<")
        } else if l.contains("message sent") {
            Some(">")
        } else {
            None
        };
        match (&mut cur, dir) {
            (_, Some(d)) => cur = Some((d.to_owned(), String::new())),
            (Some((label, text)), None) => {
                if label.len() == 1 && !l.trim().is_empty() {
                    let word = l
                        .strip_prefix("SIP/2.0 ")
                        .unwrap_or(l)
                        .split_whitespace()
                        .next()
                        .unwrap_or("?");
                    label.push_str(word);
                }
                text.push_str(l);
                text.push('\n');
            }
            (None, None) => {}
        }
    }
    out.extend(cur);
    out
}

/// The labels of [`sip_messages`], every message as it was traced.
pub fn sip_sequence(trace: &str) -> Vec<String> {
    sip_messages(trace).into_iter().map(|m| m.0).collect()
}

/// [`sip_sequence`] without retransmissions (a message identical to the one before it).
pub fn sip_flow(trace: &str) -> Vec<String> {
    let mut v = sip_messages(trace);
    v.dedup_by(|a, b| a.0 == b.0 && a.1.trim() == b.1.trim());
    v.into_iter().map(|m| m.0).collect()
}

/// The dialer's trunk as the YAML of one `sip_connections` entry's extra fields.
#[derive(Default, Clone)]
pub struct Trunk {
    /// `127.0.0.1:<port>` of the primary.
    pub address: String,
    pub backup_address: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `default_country` of the trunk.
    pub default_country: Option<u16>,
    /// More `key: value` lines of the trunk (e.g. `require_100rel: true`), verbatim.
    pub extra: Vec<String>,
}

/// What a flow test runs against.
pub struct FlowSetup {
    /// Relay RTP range (distinct per test).
    pub rtp: (u16, u16),
    /// The SIPp bot's SIP port.
    pub bot_port: u16,
    pub trunk: Trunk,
}

/// A dialgate in-process with a notification sink and a Bot API bot.
pub struct Flow {
    pub t: TestApp,
    pub sink: NotifySink,
    pub bot: BotApiServer,
    pub auth: String,
    /// The binary's CPU slot ([`super::cpu`]), held while the flow has speech models.
    _cpu: Option<tokio::sync::MutexGuard<'static, ()>>,
}

/// [`body`] without a Bot API: the bot has no `events_url` (flows about the SIP legs and the
/// dialer's notifications only).
pub fn body_without_bot_api(bot_port: u16, trunk: &Trunk) -> String {
    let unused = "http://127.0.0.1:9/bot";
    body(bot_port, unused, trunk).replace(&format!("    events_url: \"{unused}\"\n"), "")
}

/// The configuration body (everything but `server:`).
pub fn body(bot_port: u16, events_url: &str, trunk: &Trunk) -> String {
    let mut conn = format!(
        "  - id: carrier\n    name: Carrier\n    address: \"{}\"\n",
        trunk.address
    );
    if let Some(b) = &trunk.backup_address {
        conn += &format!("    backup_address: \"{b}\"\n");
    }
    if let Some(u) = &trunk.username {
        conn += &format!("    username: \"{u}\"\n");
    }
    if let Some(p) = &trunk.password {
        conn += &format!("    password: \"{p}\"\n");
    }
    if let Some(c) = trunk.default_country {
        conn += &format!("    default_country: {c}\n");
    }
    for line in &trunk.extra {
        conn += &format!("    {line}\n");
    }
    format!(
        r#"bots:
  - id: flow-bot
    name: Flow Bot
    sip_uri: "sip:bot@127.0.0.1:{bot_port}"
    events_url: "{events_url}"
    outbound: {{ enabled: true, max_cps: 50, max_concurrent: 5 }}
sip_connections:
{conn}routing_rules:
  - {{ name: all, type: call, origin_bot: "*", route: {{ sip_connection: carrier }} }}
api_clients:
  - client_id: dialer
    secret_env: FLOW_DIALER_SECRET
    groups: [call_control, call_data_manager]
    webhook_secret_env: FLOW_WEBHOOK_SECRET
"#
    )
}

fn init_tracing() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "dialgate=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Starts dialgate (HTTPS, fresh data dir, the given RTP range, generous bot answer timeout),
/// a notification sink and a bot.
pub async fn start_flow(setup: FlowSetup) -> Flow {
    start_flow_models(setup, None, "", "").await
}

/// [`start_flow`] with more lines under `server:` (each indented two spaces, newline-ended),
/// e.g. `"  dns: { servers: [\"127.0.0.1:5353\"] }\n"`.
pub async fn start_flow_with_server(setup: FlowSetup, server_extra: &str) -> Flow {
    start_flow_models(setup, None, server_extra, "").await
}

/// [`start_flow`] with `extra` YAML appended to the configuration (e.g. a `cluster` section).
pub async fn start_flow_extra(setup: FlowSetup, extra: &str) -> Flow {
    start_flow_models(setup, None, "", extra).await
}

/// [`start_flow`] with the speech model directory `models` linked into the data directory (so
/// calls can recognise speech); fails when the model is missing.
pub async fn start_flow_with_model(setup: FlowSetup) -> Flow {
    let models = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/models");
    assert!(
        models.join("ggml-tiny.en.bin").is_file(),
        "speech model missing: run scripts/setup-model"
    );
    start_flow_models(setup, Some(models), "", "").await
}

/// How [`start_flow_custom`] departs from [`start_flow`]'s configuration.
pub struct FlowStart<'a> {
    /// Speech models linked into the data directory.
    pub models: Option<PathBuf>,
    /// SIP UDP listen addresses as written in the YAML.
    pub listen: &'a [&'a str],
    /// The bot's `sip_uri` instead of the SIPp bot at `setup.bot_port`.
    pub bot_uri: Option<&'a str>,
    /// More lines under `server:` (indented two spaces, newline-ended).
    pub server_extra: &'a str,
    /// YAML appended to the configuration.
    pub extra: &'a str,
    /// More `key: value` lines of the bot's entry (e.g. `session_expires_sec: 90`), verbatim.
    pub bot_extra: &'a [&'a str],
}

impl Default for FlowStart<'_> {
    fn default() -> Self {
        FlowStart {
            models: None,
            listen: &["127.0.0.1:0"],
            bot_uri: None,
            server_extra: "",
            extra: "",
            bot_extra: &[],
        }
    }
}

async fn start_flow_models(
    setup: FlowSetup,
    models: Option<PathBuf>,
    server_extra: &str,
    extra: &str,
) -> Flow {
    start_flow_custom(
        setup,
        FlowStart {
            models,
            server_extra,
            extra,
            ..Default::default()
        },
    )
    .await
}

/// [`start_flow`] with the departures in `how` (listeners, bot URI, extra YAML, models). With
/// models (the call recognises) it first waits for the binary's CPU slot ([`super::cpu`]).
pub async fn start_flow_custom(setup: FlowSetup, how: FlowStart<'_>) -> Flow {
    let FlowStart {
        models,
        listen,
        bot_uri,
        server_extra,
        extra,
        bot_extra,
    } = how;
    let cpu = super::cpu::exclusive_if(models.is_some()).await;
    init_tracing();
    let sink = NotifySink::start().await.unwrap();
    let bot = BotApiServer::start(BotConfig::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    if let Some(m) = models {
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::symlink(m, data.join("models")).unwrap();
    }
    let cert = make_cert(dir.path());
    let listeners: String = listen
        .iter()
        .map(|a| format!("      - {{ transport: udp, address: \"{a}\" }}\n"))
        .collect();
    let mut body = body(setup.bot_port, &bot.url(), &setup.trunk);
    if let Some(uri) = bot_uri {
        let default = format!("\"sip:bot@127.0.0.1:{}\"", setup.bot_port);
        assert!(body.contains(&default), "{body}");
        body = body.replace(&default, &format!("\"{uri}\""));
    }
    for line in bot_extra {
        let anchor = "    outbound: { enabled: true";
        assert!(body.contains(anchor), "{body}");
        body = body.replacen(anchor, &format!("    {line}\n{anchor}"), 1);
    }
    let yaml = format!(
        "server:\n  sip:\n    listen:\n{listeners}  http:\n    listen: \"127.0.0.1:0\"\n    tls: {{ cert: {}, key: {} }}\n  rtp:\n    port_min: {}\n    port_max: {}\n  data_dir: {}\n  bot_answer_timeout_sec: 30\n  notify_allow: [127.0.0.0/8]\n{}{}{extra}",
        cert.cert.display(),
        cert.key.display(),
        setup.rtp.0,
        setup.rtp.1,
        dir.path().join("data").display(),
        server_extra,
        body
    );
    Flow {
        t: super::api::start_app(dir, &yaml, &cert.der).await,
        sink,
        bot,
        auth: basic("dialer", SECRET),
        _cpu: cpu,
    }
}

impl Flow {
    /// POSTs a dialout to `target` with the sink as `notifyUrl` (plus `extra` fields);
    /// returns the conversation id.
    pub async fn dial(&self, target: &str, extra: Value) -> String {
        dial(&self.t.http, &self.auth, target, &self.sink.url(), extra).await
    }

    /// `GET /api/v1/calls/{id}`.
    pub async fn record(&self, id: &str) -> Value {
        record(&self.t.http, &self.auth, id).await
    }

    /// Polls the record until `pred` holds (bounded by `WAIT`).
    pub async fn record_until(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        record_until(&self.t.http, &self.auth, id, what, pred).await
    }

    /// The record once the call is terminal and no dialer delivery is pending.
    pub async fn settled(&self, id: &str) -> Value {
        self.record_until(id, "terminal and delivered", settled)
            .await
    }

    /// `DELETE /api/v1/calls/{id}`.
    pub async fn hangup(&self, id: &str) -> Answer {
        self.t.hangup(&self.auth, id).await
    }

    pub async fn stop(self) {
        self.t.stop().await;
    }

    /// The values of the `/metrics` series `name` by their one label `label`, in order
    /// (e.g. `metric_by_label("dialgate_calls", "state")`).
    pub async fn metric_by_label(&self, name: &str, label: &str) -> Vec<(String, i64)> {
        let m = self
            .t
            .http
            .send(hyper::Method::GET, "/metrics", &[], None)
            .await;
        let prefix = format!("{name}{{{label}=\"");
        m.text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .filter_map(|rest| {
                let (key, value) = rest.split_once("\"} ")?;
                Some((key.to_owned(), value.trim().parse().ok()?))
            })
            .collect()
    }
}

/// POSTs a dialout; returns the conversation id.
pub async fn dial(http: &Http, auth: &str, target: &str, notify: &str, extra: Value) -> String {
    let mut req = json!({"bot": "flow-bot", "target": target, "notifyUrl": notify});
    if let (Value::Object(m), Value::Object(e)) = (&mut req, extra) {
        m.extend(e);
    }
    let a = http.dialout(auth, &req).await;
    assert_eq!(a.status, 200, "dialout accepted: {}", a.text);
    a.json["conversationId"].as_str().unwrap().to_owned()
}

/// `GET /api/v1/calls/{id}` (200 expected).
pub async fn record(http: &Http, auth: &str, id: &str) -> Value {
    let a = http.get(&format!("/api/v1/calls/{id}"), auth).await;
    assert_eq!(a.status, 200, "call record: {}", a.text);
    a.json
}

/// Polls the record until `pred` holds (bounded by `WAIT`).
pub async fn record_until(
    http: &Http,
    auth: &str,
    id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = record(http, auth, id).await;
        if pred(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "call record never became {what}: {r:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The call is terminal and none of its dialer deliveries is still pending.
pub fn settled(r: &Value) -> bool {
    matches!(r["status"].as_str(), Some("failed" | "completed"))
        && dialer_deliveries(r).iter().all(|d| d["state"] != "pending")
}

/// The record's dialer status deliveries, in order.
pub fn dialer_deliveries(r: &Value) -> Vec<Value> {
    r["deliveries"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|d| d["channel"] == "dialer")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// The record's timeline event names, in order.
pub fn timeline(r: &Value) -> Vec<String> {
    r["timeline"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["event"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Accepted (2xx) notifications of `id` as (status, reasonCode, sipCode).
pub fn notes(sink: &NotifySink, id: &str) -> Vec<(String, Option<String>, Option<i64>)> {
    sink.accepted()
        .iter()
        .filter(|r| r.json["conversationId"] == id)
        .map(note)
        .collect()
}

fn note(r: &RecordedRequest) -> (String, Option<String>, Option<i64>) {
    (
        r.json["status"].as_str().unwrap_or("").to_owned(),
        r.json["reasonCode"].as_str().map(str::to_owned),
        r.json["sipCode"].as_i64(),
    )
}

/// Waits for the accepted terminal notification of `id` and checks it is the only terminal
/// one; returns it.
pub async fn one_terminal(sink: &NotifySink, id: &str) -> Value {
    one_terminal_within(sink, id, WAIT).await
}

/// [`one_terminal`] with its own bound.
pub async fn one_terminal_within(sink: &NotifySink, id: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    let first = loop {
        let found = sink.accepted().into_iter().find(|r| {
            r.json["conversationId"] == id
                && matches!(r.json["status"].as_str(), Some("failed" | "completed"))
        });
        if let Some(f) = found {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no terminal notification for {id}: {:?}",
            notes(sink, id)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let terminals = sink
        .requests()
        .into_iter()
        .filter(|r| {
            r.json["conversationId"] == id
                && matches!(r.json["status"].as_str(), Some("failed" | "completed"))
                && (200..300).contains(&r.status)
        })
        .count();
    assert_eq!(terminals, 1, "exactly one terminal notification");
    first.json
}

/// Writes `pcm` (8 kHz) as raw µ-law, the stream SIPp's `rtp_stream` plays, to `dir/name`.
pub fn write_ulaw(dir: &std::path::Path, name: &str, pcm: &[i16]) -> PathBuf {
    let path = dir.join(name);
    let ulaw: Vec<u8> = pcm
        .iter()
        .map(|&x| dialgate::sim::g711::linear_to_ulaw(x))
        .collect();
    std::fs::write(&path, ulaw).unwrap();
    path
}

/// The SIPp scenario `name` with its `AUDIO_FILE` placeholder naming `audio`, written to
/// `dir/out`.
pub fn scenario_with_audio(
    dir: &std::path::Path,
    name: &str,
    audio: &std::path::Path,
    out: &str,
) -> PathBuf {
    let xml = std::fs::read_to_string(scenario(name))
        .unwrap()
        .replace("AUDIO_FILE", &audio.display().to_string());
    let path = dir.join(out);
    std::fs::write(&path, xml).unwrap();
    path
}

/// Asserts the record ended `failed` with `reason_code`, its one dialer notification delivered.
pub fn assert_failed_and_notified(rec: &Value, reason_code: &str) {
    assert_eq!(rec["status"], "failed", "{rec:#}");
    assert_eq!(rec["reasonCode"], reason_code, "{rec:#}");
    let d = dialer_deliveries(rec);
    assert_eq!(d.len(), 1, "{rec:#}");
    assert_eq!(d[0]["state"], "delivered", "{rec:#}");
}

/// Waits for the SIPp peer `s` to end; asserts that its scenario passed (`who` names it in the
/// message) and that the messages it saw are exactly `want` (`<` received, `>` sent, as
/// [`sip_flow`] lists them); returns its message log.
pub async fn saw_exactly<S: AsRef<str>>(s: &Sipp, who: &str, want: &[S]) -> String {
    let log = passed(s, who).await;
    let want: Vec<&str> = want.iter().map(AsRef::as_ref).collect();
    assert_eq!(sip_flow(&log), want, "{log}");
    log
}

/// Waits for each SIPp peer of `peers` (`who`, peer) to end; asserts that its scenario passed
/// (`context`, e.g. dialgate's log, in the message) and that it saw `label` (as [`sip_flow`]
/// names messages, e.g. `"<INVITE"`) exactly `n` times.
pub async fn each_saw_n_times(peers: &[(&str, &Sipp)], label: &str, n: usize, context: &str) {
    for (who, peer) in peers {
        let (code, trace) = finish(peer).await;
        assert_eq!(code, 0, "{who} scenario\n{context}");
        let flow = sip_flow(&trace);
        let seen = flow.iter().filter(|m| *m == label).count();
        assert_eq!(seen, n, "{who}: {flow:?}");
    }
}

/// Waits for the SIPp peer `s` to end; asserts that its scenario passed (`who` names it in the
/// message); returns its message log.
pub async fn passed(s: &Sipp, who: &str) -> String {
    let (code, log) = finish(s).await;
    assert_eq!(code, 0, "{who}");
    log
}
