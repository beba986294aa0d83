//! Whole dialouts over real SIP/RTP on loopback for the media and machine-detection flows:
//! dialgate in-process (HTTPS API, SQLite) between a carrier callee and the bot's media
//! endpoint, with the Bot API bot and the dialer's notification sink. The peers are the
//! project's simulated ones (`dialgate::sim`: a callee that plays a WAV, a bot media endpoint,
//! a Bot API server, a dialer checking signatures) or, where a flow needs SIP the sim cannot
//! send (re-INVITE, a silent callee), a SIPp UAS. Every wait is bounded by [`WAIT`].

use std::sync::Arc;
use std::time::Duration;

use dialgate::sim::{DialerOptions, SimBot, SimCallee, SimCalleeOptions, SimDialer, SimEvent};
use serde_json::{Value, json};

use super::api::{dialer_client_yaml, flow_server_yaml, flow_trunk_yaml, make_cert};
use super::peers::{Sipp, free_udp_port};

// Re-exported so a flow test imports everything from its harness (unused in some binaries).
use super::simcall::samples;
#[allow(unused_imports)]
pub use super::simside::assert_delivered;
use super::simside::{SimSide, sim_bot_api, wait_peer_ended};

/// The dialer's API client secret (through `MEDIAFLOWS_DIALER_SECRET`).
pub const DIALER_SECRET: &str = "mediaflows-dialer-secret";
/// The dialer's webhook secret: the sim dialer answers 401 to anything not signed with it.
pub const WEBHOOK_SECRET: &str = "mediaflows-webhook-secret";
/// The Bearer token dialgate sends to the Bot API bot (the sim answers 401 without it).
pub const BOT_TOKEN: &str = "mediaflows-bot-token";
/// The number dialled in every flow.
pub const TARGET: &str = "+15551230002";
/// Bound of every wait of a flow (SIP, HTTP, records), generous for a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// Silence the simulated peers send after their 200 OK before their recording starts: like a
/// person who picks up and then speaks. The sims start RTP with the 200, before dialgate has
/// even processed it; on a loaded machine the relay only learns the remote address a few
/// hundred milliseconds later, and what arrived before is (rightly) not relayed.
pub const LEAD: Duration = Duration::from_millis(600);

/// The carrier's side of a flow.
pub enum Carrier {
    /// The simulated callee (180, 200, plays its WAV, then silence).
    Sim(SimCalleeOptions),
    /// SIPp as the UAS: the scenario's XML text, and extra arguments (e.g. `-rtp_echo`).
    /// Its media port is `media_port` (`-mp`).
    Sipp {
        xml: String,
        media_port: u16,
        args: Vec<String>,
    },
}

/// How one flow is set up.
pub struct MediaSetup {
    /// dialgate's relay RTP range (distinct per concurrently running test, < 32768).
    pub rtp: (u16, u16),
    /// `server.rtp.inactivity_timeout_sec`.
    pub inactivity_sec: u32,
    /// `bots[].outbound.machine_detection` (the request may override it).
    pub machine_detection: &'static str,
    /// `bots[].recording`.
    pub recording: bool,
    /// The carrier callee.
    pub carrier: Carrier,
    /// The bot's media endpoint.
    pub bot: SimCalleeOptions,
    /// `bots[].outbound` keys besides `enabled` and `machine_detection`, as YAML lines
    /// (default: `max_cps: 50`, `max_concurrent: 5`).
    pub outbound: Vec<String>,
    /// Activities the Bot API answers the `start` event with.
    pub bot_on_start: Vec<Value>,
    /// `bots[].outbound.send_metadata_info`.
    pub send_metadata_info: bool,
    /// Top-level YAML appended to the configuration (e.g. a `cluster:` section).
    pub extra_yaml: String,
    /// `server.data_dir` shared with another instance (default: the flow's own).
    pub data_dir: Option<std::path::PathBuf>,
}

impl MediaSetup {
    /// A simulated callee that answers, waits [`LEAD`] and plays `wav` (then silence) and waits
    /// for BYE; a simulated bot that answers at once and plays `conf/bot-prompt.wav` after
    /// [`LEAD`], then waits for BYE. Detection off, no recording, inactivity 30 s.
    pub fn sim(rtp_min: u16, wav: &str) -> MediaSetup {
        let mut callee = SimCalleeOptions::callee()
            .with_answer(dialgate::sim::Answer::After(Duration::from_millis(300)))
            .with_hangup(dialgate::sim::Hangup::WaitForBye);
        callee.play = with_lead_silence(samples(wav), LEAD);
        let mut bot = SimCalleeOptions::bot();
        bot.play = with_lead_silence(samples("conf/bot-prompt.wav"), LEAD);
        MediaSetup {
            rtp: (rtp_min, rtp_min + 199),
            inactivity_sec: 30,
            machine_detection: "disabled",
            recording: false,
            carrier: Carrier::Sim(callee),
            bot,
            outbound: vec!["max_cps: 50".into(), "max_concurrent: 5".into()],
            bot_on_start: Vec::new(),
            send_metadata_info: false,
            extra_yaml: String::new(),
            data_dir: None,
        }
    }
}

/// Everything of one running flow.
pub struct MediaFlow {
    /// dialgate, the dialer and the Bot API (records, notifications, bot activities).
    pub side: SimSide,
    /// The simulated callee (with [`Carrier::Sim`]).
    pub callee: Option<SimCallee>,
    /// The SIPp UAS (with [`Carrier::Sipp`]).
    pub sipp: Option<Sipp>,
    pub bot: SimBot,
    /// Holds the SIPp scenario file.
    _scratch: tempfile::TempDir,
}

impl MediaFlow {
    /// Starts the peers, then dialgate on a YAML naming them.
    pub async fn start(s: MediaSetup) -> MediaFlow {
        let scratch = tempfile::tempdir().unwrap();
        let (callee, sipp, carrier_addr) = match s.carrier {
            Carrier::Sim(o) => {
                let c = SimCallee::start(o).await.expect("simulated callee");
                let a = c.local_addr().to_string();
                (Some(c), None, a)
            }
            Carrier::Sipp {
                xml,
                media_port,
                args,
            } => {
                let sf = scratch.path().join("uas.xml");
                std::fs::write(&sf, xml).unwrap();
                let port = free_udp_port();
                let mut all: Vec<String> = vec![
                    "-p".into(),
                    port.to_string(),
                    "-mp".into(),
                    media_port.to_string(),
                    "-m".into(),
                    "1".into(),
                    "-timeout".into(),
                    "60s".into(),
                    "-timeout_error".into(),
                ];
                all.extend(args);
                let refs: Vec<&str> = all.iter().map(String::as_str).collect();
                let p = Sipp::spawn(&sf, &refs).expect("sipp (sip-tester) installed");
                wait_udp_bound(port).await;
                (None, Some(p), format!("127.0.0.1:{port}"))
            }
        };
        let bot = SimBot::start(s.bot).await.expect("simulated bot");
        let bot_api = sim_bot_api(BOT_TOKEN, s.bot_on_start).await;
        let dialer = SimDialer::start(DialerOptions {
            bind: ([127, 0, 0, 1], 0).into(),
            secret: Some(WEBHOOK_SECRET.into()),
            fail_first: 0,
        })
        .await
        .expect("simulated dialer");

        let dir = tempfile::tempdir().unwrap();
        let cert = make_cert(dir.path());
        let data = s
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let yaml = format!(
            r#"{server}bots:
  - id: media-bot
    name: Media Bot
    sip_uri: "{bot_uri}"
    events_url: "{events_url}"
    token: {BOT_TOKEN}
    recording: {recording}
    outbound:
      enabled: true
      machine_detection: {amd}
{outbound}      send_metadata_info: {send_metadata_info}
{trunk}{client}{extra_yaml}"#,
            server = flow_server_yaml(&cert, s.rtp, s.inactivity_sec, &data),
            trunk = flow_trunk_yaml(&carrier_addr.to_string()),
            client = dialer_client_yaml("MEDIAFLOWS_DIALER_SECRET", WEBHOOK_SECRET),
            bot_uri = bot.uri(),
            events_url = bot_api.events_url(),
            recording = s.recording,
            amd = s.machine_detection,
            outbound = super::api::yaml_lines(&s.outbound, "      "),
            send_metadata_info = s.send_metadata_info,
            extra_yaml = s.extra_yaml,
        );
        let app = (dir, yaml.as_str(), cert.der.as_slice());
        let side = SimSide::start(
            app,
            (bot_api, None),
            dialer,
            (DIALER_SECRET, BOT_TOKEN, WAIT),
        )
        .await;
        MediaFlow {
            side,
            callee,
            sipp,
            bot,
            _scratch: scratch,
        }
    }

    /// The simulated callee (panics with a SIPp carrier).
    pub fn callee(&self) -> &SimCallee {
        self.callee.as_ref().expect("flow has a simulated callee")
    }

    /// The SIPp UAS (panics with a simulated carrier).
    pub fn sipp(&self) -> &Sipp {
        self.sipp.as_ref().expect("flow has a SIPp carrier")
    }

    /// `POST /api/v1/actions/dialout` for [`TARGET`] with `notifyUrl`, plus the fields of
    /// `extra`; asserts 200 and returns the conversation ID.
    pub async fn dial(&self, extra: Value) -> String {
        let body = json!({
            "bot": "media-bot",
            "target": TARGET,
            "caller": "+15550008888",
            "notifyUrl": self.dialer.notify_url(),
        });
        self.app.http.dialout_id(&self.auth, body, extra).await
    }

    /// Asserts the dialer was told `answered`, then `completed` (both delivered), then stops.
    pub async fn stop_answered_then_completed(self, id: &str, rec: &Value) {
        self.side.assert_answered_then_completed(id, rec);
        self.stop().await;
    }

    /// Stops dialgate (ends live calls) and the peers.
    pub async fn stop(self) {
        if let Some(c) = &self.callee {
            c.hangup_all();
        }
        self.side.stop().await;
        if let Some(s) = &self.sipp {
            let _ = s.stop().await;
        }
    }
}

impl std::ops::Deref for MediaFlow {
    type Target = SimSide;
    fn deref(&self) -> &SimSide {
        &self.side
    }
}

/// Whether the timeline has an entry of kind `event`.
pub fn has_event(record: &Value, event: &str) -> bool {
    record["timeline"]
        .as_array()
        .is_some_and(|t| t.iter().any(|e| e["event"] == event))
}

/// Milliseconds between two RFC 3339 times of a record.
pub fn ms_between(record: &Value, from: &str, to: &str) -> i64 {
    let t = |k: &str| {
        let s = record[k]
            .as_str()
            .unwrap_or_else(|| panic!("record has no {k}"));
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|e| panic!("{k} `{s}`: {e}"))
    };
    (t(to) - t(from)).whole_milliseconds() as i64
}

/// Waits (bounded) until a simulated peer's call has ended (its `RtpStats` event).
pub async fn wait_sim_ended(peer: &SimCallee, who: &str) -> Vec<SimEvent> {
    wait_peer_ended(peer, who, WAIT).await
}

/// Waits (bounded) until someone holds UDP `port` on 127.0.0.1.
pub async fn wait_udp_bound(port: u16) {
    for _ in 0..500 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("nothing bound udp port {port}");
}

/// Polls `f` (bounded by [`WAIT`]) until it returns true.
pub async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A WAV's samples with `lead` of silence before them (8 kHz).
pub fn with_lead_silence(samples: Vec<i16>, lead: Duration) -> Arc<Vec<i16>> {
    let n = (lead.as_millis() as usize) * 8;
    let mut v = vec![0i16; n];
    v.extend(samples);
    Arc::new(v)
}
