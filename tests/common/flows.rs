//! A whole dialout over real SIP/RTP on loopback: dialgate in-process (HTTPS API, SQLite), a
//! PJSIP carrier callee, an optional PJSIP bot media endpoint, a Bot API bot and the dialer's
//! notification sink, all wired into one YAML. Helpers wait (bounded) for the terminal
//! notification and the finished call record, and check the notifications' signatures.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use super::api::{Answer, TestApp, basic, dialer_client_yaml, make_cert};
use super::http_peers::{BotApiServer, BotConfig, RecordedRequest, verify_signature};
use super::peers::{PjsuaOpts, PjsuaPeer, free_udp_port};

/// The dialer's API client secret (through `FLOWS_DIALER_SECRET`).
pub const DIALER_SECRET: &str = "flows-dialer-secret";
/// The dialer's webhook secret: every notification is signed with it.
pub const WEBHOOK_SECRET: &str = "flows-webhook-secret";
/// The Bearer token dialgate sends to the Bot API bot.
pub const BOT_TOKEN: &str = "flows-bot-token";
/// The number dialled in every flow.
pub const TARGET: &str = "+15551230001";
/// The agent's number in transfer flows: a routing rule sends it to the agent peer's trunk.
pub const AGENT: &str = "+15551230002";
/// Bound for every wait of a flow (SIP, HTTP, records), generous for a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// How one flow is set up.
pub struct FlowSetup {
    /// dialgate's relay RTP range (distinct per concurrently running test, < 32768).
    pub rtp: (u16, u16),
    /// The carrier's callee.
    pub callee: PjsuaOpts,
    /// The bot's media endpoint; `None` with `bot_uri` pointing nowhere (or when never reached).
    pub bot: Option<PjsuaOpts>,
    /// The bot's `sip_uri` instead of the bot peer's (e.g. a port where nothing listens).
    pub bot_uri: Option<String>,
    /// Behaviour of the Bot API bot (`expected_token` is set to [`BOT_TOKEN`]).
    pub bot_api: BotConfig,
    /// `server.bot_answer_timeout_sec`.
    pub bot_answer_timeout_sec: u32,
    /// `bots[].outbound.dialout_initiated_event`.
    pub dialout_initiated_event: bool,
    /// The token dialgate sends to the Bot API (the bot expects [`BOT_TOKEN`]).
    pub bot_token: String,
    /// A text bot: no `sip_uri` (dialgate speaks its messages); `bot` is ignored.
    pub text_bot: bool,
    /// Link the repository's speech models into the data directory (machine detection then
    /// runs with transcripts, as in a deployment with the model installed).
    pub with_model: bool,
    /// `bots[].amd.transcript_hold_ms` (None: the default).
    pub amd_hold_ms: Option<u32>,
    /// A human agent (transfer target): reached through its own SIP connection, chosen by a
    /// routing rule for [`AGENT`].
    pub agent: Option<PjsuaOpts>,
    /// `bots[].outbound.transfer` (`refer` / `bridge`); `None` leaves the default.
    pub transfer: Option<&'static str>,
    /// Extra `bots[].outbound` keys, one `key: value` per entry (e.g. `barge_in: true`).
    pub outbound_extra: Vec<String>,
    /// Link the voice (speech synthesis) into the data directory for a SIP bot too
    /// (`speak_messages`); a text bot always has it.
    pub with_voice: bool,
    /// A WebSocket bot (`bots[].websocket`) instead of a SIP or text bot: `bot` and the Bot
    /// API server are then not used by dialgate (no `sip_uri`, no `events_url`).
    pub websocket: Option<WsBotSetup>,
    /// More keys of the carrier's `sip_connections[]` entry, one `key: value` per entry
    /// (e.g. `transport: tls`, `srtp: required`).
    pub trunk_extra: Vec<String>,
    /// Give dialgate a TLS listener too (with the flow's certificate), for TLS trunks.
    pub sip_tls: bool,
    /// The carrier trunk's `address` instead of the callee's `127.0.0.1:<port>` (e.g. a domain
    /// a test's DNS server locates).
    pub trunk_address: Option<String>,
    /// More lines under `server:`, each `key: value` (e.g. `dns: { servers: [...] }`).
    pub server_extra: Vec<String>,
}

/// `bots[].websocket` of a flow; the bot expects the token [`BOT_TOKEN`].
#[derive(Debug, Clone)]
pub struct WsBotSetup {
    /// `ws://…` of the test's bot server.
    pub url: String,
    /// `ac-bot-api` or `media-stream`.
    pub protocol: &'static str,
    /// `media_format` (None: the default).
    pub media_format: Option<&'static str>,
    /// `chunk_ms` (None: the default, 20 ms).
    pub chunk_ms: Option<u32>,
}

/// A self-signed certificate for `names`, written as `<stem>.crt` / `<stem>.key` in `dir`;
/// returns their paths (certificate, key).
pub fn cert_files(dir: &std::path::Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(names).unwrap();
    let (c, k) = (
        dir.join(format!("{stem}.crt")),
        dir.join(format!("{stem}.key")),
    );
    std::fs::write(&c, ck.cert.pem()).unwrap();
    std::fs::write(&k, ck.signing_key.serialize_pem()).unwrap();
    (c, k)
}

impl FlowSetup {
    /// The callee as a carrier on a TLS listener with `cert` ([`cert_files`]) and SRTP `srtp`
    /// (`off`, `optional`, `mandatory`), reached over TLS: dialgate gets a TLS listener and
    /// the trunk `transport: tls`. Tests append further callee arguments and trunk keys.
    pub fn tls_carrier(&mut self, cert: &(PathBuf, PathBuf), srtp: &str) {
        self.callee.extra_args = vec![
            "--tls-cert".into(),
            cert.0.display().to_string(),
            "--tls-key".into(),
            cert.1.display().to_string(),
            "--srtp".into(),
            srtp.into(),
        ];
        self.sip_tls = true;
        self.trunk_extra = vec!["transport: tls".into()];
    }

    /// Audio both ways: the callee loops `callee_plays`, the bot loops `bot_plays` and hangs
    /// up 10 s after the answer; both record what they hear in `heard.wav`.
    pub fn talk_both_ways(&mut self, callee_plays: &std::path::Path, bot_plays: &std::path::Path) {
        self.callee.play = Some(callee_plays.to_path_buf());
        self.callee.play_loop = true;
        self.callee.record = Some("heard.wav".into());
        let bot = self.bot.as_mut().expect("flow has a bot peer");
        bot.play = Some(bot_plays.to_path_buf());
        bot.play_loop = true;
        bot.bye_after_ms = Some(10_000);
        bot.record = Some("heard.wav".into());
    }

    /// A callee answering `answer` (see `PjsuaOpts::answer`) and a bot answering 200.
    pub fn new(rtp_min: u16, callee_rtp: u16, answer: &str) -> Self {
        FlowSetup {
            rtp: (rtp_min, rtp_min + 199),
            callee: PjsuaOpts {
                user: "callee".into(),
                rtp_port: callee_rtp,
                ..PjsuaOpts::uas(answer)
            },
            bot: Some(PjsuaOpts {
                user: "bot".into(),
                rtp_port: callee_rtp + 50,
                ..PjsuaOpts::uas("200")
            }),
            bot_uri: None,
            bot_api: BotConfig::default(),
            bot_answer_timeout_sec: 10,
            dialout_initiated_event: false,
            bot_token: BOT_TOKEN.into(),
            text_bot: false,
            with_model: false,
            amd_hold_ms: None,
            agent: None,
            transfer: None,
            outbound_extra: Vec::new(),
            with_voice: false,
            websocket: None,
            trunk_extra: Vec::new(),
            sip_tls: false,
            trunk_address: None,
            server_extra: Vec::new(),
        }
    }
}

/// Everything of one running flow.
pub struct Flow {
    pub app: TestApp,
    pub callee: PjsuaPeer,
    pub bot: Option<PjsuaPeer>,
    /// The transfer target, if the flow has one.
    pub agent: Option<PjsuaPeer>,
    pub bot_api: BotApiServer,
    pub sink: super::http_peers::NotifySink,
    /// `Basic dialer:secret` (groups call_control and call_data_manager).
    pub auth: String,
    /// The binary's CPU slot ([`super::cpu`]), held while the call recognises or speaks.
    _cpu: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl Flow {
    /// Starts the peers, then dialgate on a YAML naming them. A flow whose call recognises or
    /// speaks ([`FlowSetup::with_model`], a text bot, a voice, an AC WebSocket bot) first waits
    /// for the binary's CPU slot ([`super::cpu`]) and holds it until it is dropped.
    pub async fn start(mut s: FlowSetup) -> Flow {
        let speaks = s.text_bot
            || s.with_voice
            || s.websocket
                .as_ref()
                .is_some_and(|w| w.protocol == "ac-bot-api");
        let cpu = super::cpu::exclusive_if(s.with_model || speaks).await;
        // A test may choose the callee's port (to name it in DNS records).
        if s.callee.port == 0 {
            // A TLS carrier listens on TCP only: a port free for UDP may be taken on TCP (a
            // concurrent test's connection), and the dial then meets "connection refused".
            s.callee.port = if s.sip_tls {
                super::binary::free_tcp_port()
            } else {
                free_udp_port()
            };
        }
        let callee = PjsuaPeer::spawn(s.callee).await.expect("callee peer ready");
        let bot = match s.bot.filter(|_| !s.text_bot && s.websocket.is_none()) {
            Some(mut o) => {
                o.port = free_udp_port();
                Some(PjsuaPeer::spawn(o).await.expect("bot peer ready"))
            }
            None => None,
        };
        let agent = match s.agent {
            Some(mut o) => {
                // A test may choose the agent's port (to name it in a transfer target).
                if o.port == 0 {
                    o.port = free_udp_port();
                }
                Some(PjsuaPeer::spawn(o).await.expect("agent peer ready"))
            }
            None => None,
        };
        s.bot_api.expected_token = Some(BOT_TOKEN.into());
        let bot_api = BotApiServer::start(s.bot_api).await.unwrap();
        let sink = super::http_peers::NotifySink::start().await.unwrap();
        let bot_uri = s
            .bot_uri
            .or_else(|| bot.as_ref().map(|b| b.uri("bot")))
            .unwrap_or_else(|| format!("sip:bot@127.0.0.1:{}", free_udp_port()));

        let dir = tempfile::tempdir().unwrap();
        let cert = make_cert(dir.path());
        // The repository's speech models (machine detection with transcripts) and, for a text
        // bot, its voice's runtime, linked into the data directory: scripts/setup-model fills them.
        // An AC Bot API WebSocket bot's text is spoken with the same voice.
        let links: &[&str] = match (s.with_model, speaks) {
            (_, true) => &["models", "runtime"],
            (true, false) => &["models"],
            (false, false) => &[],
        };
        if !links.is_empty() {
            let repo_data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
            let data = dir.path().join("data");
            std::fs::create_dir_all(&data).unwrap();
            for sub in links {
                std::os::unix::fs::symlink(repo_data.join(sub), data.join(sub)).unwrap();
            }
        }
        let yaml = format!(
            r#"server:
  sip:
    listen:
      - {{ transport: udp, address: "127.0.0.1:0" }}
{sip_tls}  http:
    listen: "127.0.0.1:0"
    tls: {{ cert: {cert}, key: {key} }}
  rtp:
    port_min: {rtp_min}
    port_max: {rtp_max}
    inactivity_timeout_sec: 30
  data_dir: {data}
  notify_allow: [127.0.0.0/8]
  bot_answer_timeout_sec: {bot_timeout}
{server_extra}bots:
  - id: flow-bot
    name: Flow Bot
{sip_uri_line}{events_line}{amd_yaml}    outbound:
      enabled: true
      dialout_initiated_event: {initiated}
      max_cps: 50
      max_concurrent: 5
{transfer_line}{outbound_extra}sip_connections:
  - id: carrier
    name: Carrier
    address: "{trunk_address}"
{trunk_extra}{agent_yaml}routing_rules:
{agent_rule}  - name: everything
    origin_bot: "*"
    route: {{ sip_connection: carrier }}
{client}"#,
            client = dialer_client_yaml("FLOWS_DIALER_SECRET", WEBHOOK_SECRET),
            cert = cert.cert.display(),
            key = cert.key.display(),
            rtp_min = s.rtp.0,
            rtp_max = s.rtp.1,
            data = dir.path().join("data").display(),
            bot_timeout = s.bot_answer_timeout_sec,
            initiated = s.dialout_initiated_event,
            sip_uri_line = match (&s.websocket, s.text_bot) {
                (Some(w), _) => format!(
                    "    websocket:\n      url: \"{}\"\n      protocol: {}\n      token: {BOT_TOKEN}\n{}",
                    w.url,
                    w.protocol,
                    w.media_format
                        .map(|f| format!("      media_format: {f}\n"))
                        .unwrap_or_default()
                        + &w.chunk_ms
                            .map(|ms| format!("      chunk_ms: {ms}\n"))
                            .unwrap_or_default()
                ),
                (None, true) => String::new(),
                (None, false) => format!("    sip_uri: \"{bot_uri}\"\n"),
            },
            events_line = if s.websocket.is_some() {
                String::new()
            } else {
                format!(
                    "    events_url: \"{}\"\n    token: {}\n",
                    bot_api.url(),
                    s.bot_token
                )
            },
            trunk_address = s
                .trunk_address
                .clone()
                .unwrap_or_else(|| format!("127.0.0.1:{}", callee.sip_port)),
            server_extra = super::api::yaml_lines(&s.server_extra, "  "),
            trunk_extra = super::api::yaml_lines(&s.trunk_extra, "    "),
            sip_tls = if s.sip_tls {
                format!(
                    "      - {{ transport: tls, address: \"127.0.0.1:0\" }}\n    tls: {{ cert: {}, key: {} }}\n",
                    cert.cert.display(),
                    cert.key.display()
                )
            } else {
                String::new()
            },
            transfer_line = s
                .transfer
                .map(|t| format!("      transfer: {t}\n"))
                .unwrap_or_default(),
            agent_yaml = agent
                .as_ref()
                .map(|a| format!(
                    "  - id: agents\n    name: Agents\n    address: \"127.0.0.1:{}\"\n",
                    a.sip_port
                ))
                .unwrap_or_default(),
            agent_rule = if agent.is_some() {
                format!(
                    "  - name: to-agents\n    origin_bot: \"*\"\n    destination_pattern: \"^\\\\{AGENT}$\"\n    route: {{ sip_connection: agents }}\n    priority: 1\n"
                )
            } else {
                String::new()
            },
            outbound_extra = super::api::yaml_lines(&s.outbound_extra, "      "),
            amd_yaml = s
                .amd_hold_ms
                .map(|h| format!("    amd: {{ transcript_hold_ms: {h} }}\n"))
                .unwrap_or_default(),
        );
        Flow {
            app: super::api::start_app(dir, &yaml, &cert.der).await,
            callee,
            bot,
            agent,
            bot_api,
            sink,
            auth: basic("dialer", DIALER_SECRET),
            _cpu: cpu,
        }
    }

    /// The agent peer (panics when the flow has none).
    pub fn agent(&self) -> &PjsuaPeer {
        self.agent.as_ref().expect("flow has an agent peer")
    }

    /// The bot peer (panics when the flow has none).
    pub fn bot(&self) -> &PjsuaPeer {
        self.bot.as_ref().expect("flow has a bot peer")
    }

    /// `POST /api/v1/actions/dialout` for [`TARGET`] with `notifyUrl` and `metadata`, plus the
    /// fields of `extra`; asserts 200 and returns the conversation ID.
    pub async fn dial(&self, extra: Value) -> String {
        let body = json!({
            "bot": "flow-bot",
            "target": TARGET,
            "caller": "+15550009999",
            "notifyUrl": self.sink.url(),
            "metadata": {"campaign": "flows", "n": 7},
        });
        self.app.http.dialout_id(&self.auth, body, extra).await
    }

    /// `DELETE /api/v1/calls/{id}`.
    pub async fn hangup(&self, id: &str) -> Answer {
        self.app.hangup(&self.auth, id).await
    }

    /// `GET /api/v1/calls/{id}` (asserts 200).
    pub async fn record(&self, id: &str) -> Value {
        self.app.record(&self.auth, id).await
    }

    /// Waits until the call record's status is `status` (e.g. `ringing`).
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = self.record(id).await;
            if r["status"] == status {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "call {id} not {status} within {WAIT:?}: {r:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the accepted terminal notification (`failed` or `completed`) of `id`.
    pub async fn wait_terminal(&self, id: &str) -> Value {
        let id = id.to_owned();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(n) = self.notifications(&id).into_iter().find(is_terminal) {
                return n;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no terminal notification for {id} within {WAIT:?}; got: {:?}; record: {}",
                self.notifications(&id),
                self.record(&id).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the call record is terminal and every queued delivery (notifications and
    /// bot requests) has finished, then returns the record.
    pub async fn wait_record_settled(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = self.record(id).await;
            let terminal = matches!(r["status"].as_str(), Some("completed" | "failed"));
            let settled = r["deliveries"]
                .as_array()
                .is_some_and(|d| d.iter().all(|d| d["state"] != "pending"));
            if terminal && settled {
                if std::env::var_os("FLOWS_DEBUG").is_some() {
                    eprintln!("call record {id}: {r:#}");
                }
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "call record of {id} not settled within {WAIT:?}: {r:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The accepted notifications of `id`, in arrival order, each checked: POST, valid
    /// signature with the webhook secret, and the body's `conversationId`.
    pub fn notifications(&self, id: &str) -> Vec<Value> {
        self.sink
            .accepted()
            .into_iter()
            .filter(|r| r.json["conversationId"] == id)
            .map(|r| {
                check_signed(&r);
                r.json
            })
            .collect()
    }

    /// Asserts that the dialer got exactly `statuses` (in order) for `id`, the last one the only
    /// terminal one, and returns the terminal notification.
    pub fn assert_notifications(&self, id: &str, statuses: &[&str]) -> Value {
        let notes = self.notifications(id);
        let got: Vec<&str> = notes
            .iter()
            .map(|n| n["status"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(got, statuses, "notifications of {id}: {notes:#?}");
        assert_eq!(
            notes.iter().filter(|n| is_terminal(n)).count(),
            1,
            "exactly one terminal notification: {notes:#?}"
        );
        notes.last().cloned().unwrap()
    }

    /// The Bot API requests of conversation `id`: its activity labels in order.
    pub fn bot_activity_names(&self, id: &str) -> Vec<String> {
        self.bot_api
            .activities()
            .into_iter()
            .filter(|(c, _)| c == id)
            .map(|(_, a)| match a["type"].as_str() {
                Some("event") | None => a["name"].as_str().unwrap_or("").to_owned(),
                Some(t) => t.to_owned(),
            })
            .collect()
    }

    /// The activity named `name` sent to the bot for `id`.
    pub fn bot_activity(&self, id: &str, name: &str) -> Option<Value> {
        self.bot_api
            .activities()
            .into_iter()
            .find(|(c, a)| c == id && a["name"] == name)
            .map(|(_, a)| a)
    }

    /// Waits for the bot's `disconnect` request of `id` and returns its body; checks the token.
    pub async fn wait_bot_disconnect(&self, id: &str) -> Value {
        let suffix = format!("/conversation/{id}/disconnect");
        let r = self
            .bot_api
            .wait_for_path(&suffix, WAIT)
            .await
            .expect("bot disconnect request");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {BOT_TOKEN}").as_str())
        );
        r.json
    }

    /// Stops dialgate.
    pub async fn stop(self) {
        self.app.stop().await;
    }
}

/// `failed` or `completed`.
pub fn is_terminal(n: &Value) -> bool {
    matches!(n["status"].as_str(), Some("failed" | "completed"))
}

/// Asserts a notification request is a signed JSON POST.
pub fn check_signed(r: &RecordedRequest) {
    assert_eq!(r.method, "POST");
    let sig = r
        .header("x-dialgate-signature")
        .expect("X-Dialgate-Signature header");
    assert!(
        verify_signature(sig, r.body.as_bytes(), WEBHOOK_SECRET),
        "signature {sig} does not verify for {}",
        r.body
    );
}

/// The `event` names of a call record's timeline, in order.
pub fn timeline(record: &Value) -> Vec<String> {
    record["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|e| e["event"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that `record`'s deliveries hold exactly `statuses.len()` dialer notifications, all
/// delivered (first attempt answered 2xx).
pub fn assert_deliveries(record: &Value, notifications: usize) {
    let d = record["deliveries"].as_array().expect("deliveries");
    let status: Vec<&Value> = d.iter().filter(|d| d["kind"] == "status").collect();
    assert_eq!(status.len(), notifications, "status deliveries: {d:#?}");
    for n in &status {
        assert_eq!(n["state"], "delivered", "{n:#}");
        let attempts = n["attempts"].as_array().expect("attempts");
        assert!(!attempts.is_empty(), "{n:#}");
        assert_eq!(attempts.last().unwrap()["httpStatus"], 200, "{n:#}");
    }
}

/// The (`code`, `by`) of every `disconnected` event of a PJSIP peer.
pub fn disconnects(peer: &PjsuaPeer) -> Vec<(Option<u64>, String)> {
    peer.events_named("disconnected")
        .iter()
        .map(|e| (e.code(), e.str("by").unwrap_or("").to_owned()))
        .collect()
}

/// Waits (bounded) until a peer's recording is a complete WAV (the recorder writes its header
/// when it is destroyed, just around the `disconnected` event) and returns its samples.
pub async fn wait_wav(path: &std::path::Path) -> Vec<i16> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if let Ok((rate, samples)) = super::audio::read_wav(path) {
            // Complete when the header accounts for (nearly) the whole file.
            if rate == 8000 && !samples.is_empty() && samples.len() as u64 * 2 + 4096 >= len {
                return samples;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "recording {} not complete within {WAIT:?}",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How faithfully `recorded` holds `reference`: the reference is trimmed of silence at both
/// ends and cut into excerpts of `excerpt_secs`; the answer is the best `clip_similarity` of any
/// excerpt at 0.5 s steps through the recording. On a starved machine a jitter buffer may slip
/// more than the similarity tracks somewhere in a long recording; any clean excerpt proves the
/// path (and another clip still scores low).
pub async fn best_copy_similarity(
    reference: &std::path::Path,
    recorded: &[i16],
    excerpt_secs: f64,
) -> f64 {
    let (rate, r) = super::audio::read_wav(reference).unwrap();
    assert_eq!(rate, 8000);
    let loud = |s: &i16| s.unsigned_abs() > 300;
    let first = r.iter().position(loud).unwrap_or(0);
    let last = r.iter().rposition(loud).map_or(r.len(), |i| i + 1);
    let speech = r[first..last.max(first)].to_vec();
    let len = (excerpt_secs * 8000.0) as usize;
    let recorded = recorded.to_vec();
    tokio::task::spawn_blocking(move || {
        const STEP: usize = 4000;
        let mut best = 0.0f64;
        // Whole excerpts only, except a reference shorter than one excerpt.
        let excerpts: Vec<&[i16]> = if speech.len() <= len {
            vec![&speech[..]]
        } else {
            speech.chunks_exact(len).collect()
        };
        for ex in excerpts {
            let seg = ex.len() + 2 * STEP;
            let mut start = 0;
            while start + ex.len() <= recorded.len() {
                let end = (start + seg).min(recorded.len());
                if let Some(a) = super::audio::clip_similarity(ex, &recorded[start..end], STEP) {
                    best = best.max(a.corr);
                }
                start += STEP;
            }
        }
        best
    })
    .await
    .unwrap()
}

/// The port of the first `m=audio` line of an SDP body.
pub fn sdp_audio_port(sdp: &str) -> Option<u16> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("m=audio "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
}

/// Asserts that an INVITE's SDP offers media from dialgate's relay: 127.0.0.1, a port in `rtp`.
pub fn assert_relay_offer(sdp: Option<&str>, rtp: (u16, u16)) {
    let sdp = sdp.unwrap_or("");
    assert!(sdp.contains("c=IN IP4 127.0.0.1"), "{sdp}");
    let port = sdp_audio_port(sdp).unwrap_or(0);
    assert!(
        (rtp.0..=rtp.1).contains(&port),
        "relay port {port} outside {rtp:?}: {sdp}"
    );
}

/// Asserts that the person plainly heard `text` in `heard` (8 kHz PCM), recognised back by
/// Whisper with the repository's model: at most 40 % word errors and `key` among the words.
/// Idle, every word comes back; on a starved machine PJSIP's jitter buffer slips and a word or
/// two blur ("calling" → "collin").
pub async fn assert_heard(heard: Vec<i16>, text: &str, key: &str) {
    let recognised = tokio::task::spawn_blocking(move || {
        let stt = dialgate::stt::SttEngine::new(dialgate::stt::SttEngineConfig {
            data_dir: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data"),
            ..Default::default()
        });
        dialgate::tts::eval::recognise(&stt, &heard)
    })
    .await
    .unwrap()
    .expect("recognised");
    let (want, got) = (
        dialgate::tts::eval::spoken_words(text),
        dialgate::tts::eval::spoken_words(&recognised),
    );
    let errors = dialgate::stt::eval::word_errors(&want, &got);
    assert!(
        errors * 100 <= want.len() * 40 && got.iter().any(|w| w == key),
        "said {want:?}, heard {got:?}"
    );
}

/// What the peers of a [`FlowSetup::talk_both_ways`] flow heard, from their recordings.
pub struct HeardBothWays {
    /// The bot's recording (complete: written after the bot's BYE).
    pub bot_rec: std::path::PathBuf,
    /// The callee's recording.
    pub callee_rec: std::path::PathBuf,
    /// How much the bot's recording matches the callee's clip (best 2.5 s excerpt).
    pub bot_hello: f64,
    /// How much the bot's recording matches its own clip.
    pub bot_machine: f64,
    /// How much the callee's recording matches the bot's clip.
    pub callee_machine: f64,
    /// How much the callee's recording matches its own clip.
    pub callee_hello: f64,
}

impl HeardBothWays {
    /// Asserts that each side heard the other's clip (similarity > 0.8) and matched it better
    /// than its own; `what` prefixes the printed figures, `media` (the record's) goes in the
    /// failure message.
    pub fn assert_crossed(&self, what: &str, media: &Value) {
        let Self {
            bot_hello,
            bot_machine,
            callee_machine,
            callee_hello,
            ..
        } = self;
        eprintln!(
            "{what}: bot heard hello {bot_hello:.3} (machine {bot_machine:.3}); carrier heard \
             machine {callee_machine:.3} (hello {callee_hello:.3})"
        );
        assert!(
            *bot_hello > 0.8 && *callee_machine > 0.8,
            "{what}: audio check failed: bot heard hello {bot_hello:.3}, carrier heard machine \
             {callee_machine:.3}; media: {media}"
        );
        assert!(bot_machine < bot_hello && callee_hello < callee_machine);
    }
}

/// Waits for both recordings of a [`FlowSetup::talk_both_ways`] flow (`callee_plays` and
/// `bot_plays` being what the peers played) and compares each with both clips.
pub async fn heard_both_ways(
    flow: &Flow,
    callee_plays: &std::path::Path,
    bot_plays: &std::path::Path,
) -> HeardBothWays {
    let bot_rec = flow.bot().wait_recording(1, WAIT).await.unwrap();
    let callee_rec = flow.callee.wait_recording(1, WAIT).await.unwrap();
    let bot_heard = wait_wav(&bot_rec).await;
    let callee_heard = wait_wav(&callee_rec).await;
    let (bot_hello, bot_machine, callee_machine, callee_hello) = tokio::join!(
        best_copy_similarity(callee_plays, &bot_heard, 2.5),
        best_copy_similarity(bot_plays, &bot_heard, 2.5),
        best_copy_similarity(bot_plays, &callee_heard, 2.5),
        best_copy_similarity(callee_plays, &callee_heard, 2.5),
    );
    HeardBothWays {
        bot_rec,
        callee_rec,
        bot_hello,
        bot_machine,
        callee_machine,
        callee_hello,
    }
}

/// Waits until `peer` logged an event satisfying `pred` (bounded by [`WAIT`]); panics with the
/// peer's log otherwise.
pub async fn saw(
    peer: &PjsuaPeer,
    what: &str,
    pred: impl Fn(&super::peers::PeerEvent) -> bool,
) -> super::peers::PeerEvent {
    peer.wait_for(what, pred, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Waits (bounded) for `peer`'s first recording to be complete; returns what it heard.
pub async fn heard_by(peer: &PjsuaPeer) -> Vec<i16> {
    let rec = peer
        .wait_recording(1, WAIT)
        .await
        .expect("the peer's recording");
    wait_wav(&rec).await
}

/// How much `heard` holds `this` and `other` ([`best_copy_similarity`], excerpts of
/// `excerpt_secs`), compared at once.
pub async fn similarities(
    heard: &[i16],
    this: &std::path::Path,
    other: &std::path::Path,
    excerpt_secs: f64,
) -> (f64, f64) {
    tokio::join!(
        best_copy_similarity(this, heard, excerpt_secs),
        best_copy_similarity(other, heard, excerpt_secs),
    )
}

/// The two clips most call-flow tests play: the person's "hello.wav" and the bot's
/// "machine.wav".
pub fn hello_and_machine() -> (PathBuf, PathBuf) {
    (
        super::peers::fixture_audio("hello.wav"),
        super::peers::fixture_audio("machine.wav"),
    )
}

/// How much each of two recordings holds the clip expected in it (`(heard, clip)` each,
/// [`best_copy_similarity`] with excerpts of `excerpt_secs`), compared at once.
pub async fn each_heard(
    (a_heard, a_clip): (&[i16], &std::path::Path),
    (b_heard, b_clip): (&[i16], &std::path::Path),
    excerpt_secs: f64,
) -> (f64, f64) {
    tokio::join!(
        best_copy_similarity(a_clip, a_heard, excerpt_secs),
        best_copy_similarity(b_clip, b_heard, excerpt_secs),
    )
}
