//! Whole dialouts over real SIP/RTP on loopback for the speech-recognition flows (issue "Speech
//! recognition tap"): dialgate in-process (HTTPS API, SQLite) between the simulated carrier
//! callee (`dialgate::sim::SimCallee`, playing a WAV) and the simulated bot media endpoint, with
//! the simulated Bot API server (which can answer the `start` event with activities such as
//! `stopRecognition`) and the simulated dialer (checks every notification's signature).
//!
//! The speech model is the project's `data/models/ggml-tiny.en.bin` (`scripts/setup-model`): each
//! flow's data directory is temporary and its `models` is a symlink to the repository's, as the
//! demo does. A flow that needs the model fails (never skips) when it is missing. Every wait is
//! bounded by [`WAIT`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dialgate::sim::{
    Answer, DialerOptions, Hangup, SimBot, SimCallee, SimCalleeOptions, SimDialer, SimEvent,
    SimEventKind,
};
use serde_json::{Value, json};

use super::api::{dialer_client_yaml, flow_server_yaml, flow_trunk_yaml, make_cert};

use super::simcall::{repo_file, samples, sip_trace};
// Re-exported so a flow test imports everything from its harness (unused in some binaries).
#[allow(unused_imports)]
pub use super::simside::assert_delivered;
use super::simside::{SimSide, sim_bot_api, wait_peer_ended};

/// The dialer's API client secret (through `STTFLOWS_DIALER_SECRET`).
pub const DIALER_SECRET: &str = "sttflows-dialer-secret";
/// The dialer's webhook secret: the sim dialer answers 401 to anything not signed with it.
pub const WEBHOOK_SECRET: &str = "sttflows-webhook-secret";
/// The Bearer token dialgate sends to the Bot API bot (the sim answers 401 without it).
pub const BOT_TOKEN: &str = "sttflows-bot-token";
/// The number dialled in every flow.
pub const TARGET: &str = "+15551230003";
/// The model file dialgate's engine looks for under `<data_dir>/models/`.
pub const MODEL_FILE: &str = "ggml-tiny.en.bin";
/// Bound of every wait of a flow (SIP, HTTP, records, recognition), generous for a loaded
/// 2-core machine where several flows run Whisper at once (one utterance's inference was seen
/// to take 10 s there).
pub const WAIT: Duration = Duration::from_secs(90);
/// The bot that answers `start` with [`SttSetup::on_start`].
pub const BOT: &str = "stt-bot";
/// The control bot of [`SttSetup::control_bot`]: same media endpoint, its own Bot API server
/// that answers nothing.
pub const CONTROL_BOT: &str = "ctl-bot";

/// `samples` with `lead` of silence before them (8 kHz).
pub fn with_lead_silence(samples: Vec<i16>, lead: Duration) -> Vec<i16> {
    let mut v = vec![0i16; lead.as_millis() as usize * 8];
    v.extend(samples);
    v
}

/// The repository's model directory (absolute); fails the test when the model is missing.
pub fn model_dir() -> PathBuf {
    let dir = repo_file("data/models");
    let model = dir.join(MODEL_FILE);
    assert!(
        model.is_file(),
        "speech model {} is missing: run scripts/setup-model",
        model.display()
    );
    dir
}

/// How one flow is set up.
pub struct SttSetup {
    /// dialgate's relay RTP range (distinct per concurrently running test, < 32768).
    pub rtp: (u16, u16),
    /// What the callee says after answering (8 kHz), then silence.
    pub play: Vec<i16>,
    /// When the callee hangs up.
    pub hangup: Hangup,
    /// `bots[].outbound.start_recognition_on_connect`.
    pub recognition: bool,
    /// `bots[].amd.transcript_hold_ms` (None: the default).
    pub amd_hold_ms: Option<u32>,
    /// Link the speech model into the data directory (false: a data directory without it).
    pub with_model: bool,
    /// Activities the bot answers the `start` event with.
    pub on_start: Vec<Value>,
    /// Also configure [`CONTROL_BOT`] (recognition on connect, its own Bot API server).
    pub control_bot: bool,
}

impl SttSetup {
    /// The callee answers after 300 ms, plays `wav` (then silence) and waits for BYE; the bot
    /// recognises from the start; the model is installed.
    pub fn new(rtp_min: u16, wav: &str) -> SttSetup {
        SttSetup {
            rtp: (rtp_min, rtp_min + 199),
            play: samples(wav),
            hangup: Hangup::WaitForBye,
            recognition: true,
            with_model: true,
            on_start: Vec::new(),
            control_bot: false,
            amd_hold_ms: None,
        }
    }
}

/// Everything of one running flow.
pub struct SttFlow {
    /// dialgate, the dialer and the Bot API servers (the second one, with
    /// [`SttSetup::control_bot`], is [`CONTROL_BOT`]'s).
    pub side: SimSide,
    pub callee: SimCallee,
    pub bot: SimBot,
    /// The binary's CPU slot ([`super::cpu`]), held while the call recognises.
    _cpu: Option<tokio::sync::MutexGuard<'static, ()>>,
}

impl SttFlow {
    /// Starts the peers, then dialgate on a YAML naming them. With the model it first waits
    /// for the binary's CPU slot ([`super::cpu`]) and holds it until it is dropped.
    pub async fn start(s: SttSetup) -> SttFlow {
        let cpu = super::cpu::exclusive_if(s.with_model).await;
        let models = s.with_model.then(model_dir);
        let callee = SimCallee::start(SimCalleeOptions {
            play: Arc::new(s.play),
            ..SimCalleeOptions::callee()
                .with_answer(Answer::After(Duration::from_millis(300)))
                .with_hangup(s.hangup)
        })
        .await
        .expect("simulated callee");
        let bot = SimBot::start(SimCalleeOptions::bot())
            .await
            .expect("simulated bot");
        let bot_api = sim_bot_api(BOT_TOKEN, s.on_start).await;
        let control_api = match s.control_bot {
            true => Some(sim_bot_api(BOT_TOKEN, Vec::new()).await),
            false => None,
        };
        let control_yaml = match &control_api {
            Some(api) => format!(
                r#"  - id: {CONTROL_BOT}
    name: Control Bot
    sip_uri: "{}"
    events_url: "{}"
    token: {BOT_TOKEN}
    outbound:
      enabled: true
      start_recognition_on_connect: true
      max_cps: 50
      max_concurrent: 5
"#,
                bot.uri(),
                api.events_url()
            ),
            None => String::new(),
        };
        let dialer = SimDialer::start(DialerOptions {
            secret: Some(WEBHOOK_SECRET.into()),
            ..Default::default()
        })
        .await
        .expect("simulated dialer");

        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        if let Some(models) = models {
            std::os::unix::fs::symlink(models, data.join("models")).unwrap();
        }
        let cert = make_cert(dir.path());
        let yaml = format!(
            r#"{server}bots:
  - id: {BOT}
    name: STT Bot
    sip_uri: "{bot_uri}"
    events_url: "{events_url}"
    token: {BOT_TOKEN}
    language: en-US
{amd_yaml}    outbound:
      enabled: true
      machine_detection: disabled
      start_recognition_on_connect: {recognition}
      max_cps: 50
      max_concurrent: 5
{control_yaml}{trunk}{client}"#,
            server = flow_server_yaml(&cert, s.rtp, 30, &data),
            trunk = flow_trunk_yaml(&callee.local_addr().to_string()),
            client = dialer_client_yaml("STTFLOWS_DIALER_SECRET", WEBHOOK_SECRET),
            bot_uri = bot.uri(),
            events_url = bot_api.events_url(),
            recognition = s.recognition,
            amd_yaml = s
                .amd_hold_ms
                .map(|h| format!("    amd: {{ transcript_hold_ms: {h} }}\n"))
                .unwrap_or_default(),
        );
        let app = (dir, yaml.as_str(), cert.der.as_slice());
        let side = SimSide::start(
            app,
            (bot_api, control_api),
            dialer,
            (DIALER_SECRET, BOT_TOKEN, WAIT),
        )
        .await;
        SttFlow {
            side,
            callee,
            bot,
            _cpu: cpu,
        }
    }

    /// `POST /api/v1/actions/dialout` from [`BOT`] to [`TARGET`] with `notifyUrl`; asserts 200
    /// and returns the conversation ID.
    pub async fn dial(&self) -> String {
        self.dial_from(BOT).await
    }

    /// The same from the bot `bot`.
    pub async fn dial_from(&self, bot: &str) -> String {
        self.dial_with(bot, json!({})).await
    }

    /// The same with `extra` fields merged into the request (e.g. `machineDetection`).
    pub async fn dial_with(&self, bot: &str, extra: Value) -> String {
        let body = json!({
            "bot": bot,
            "target": TARGET,
            "caller": "+15550007777",
            "notifyUrl": self.dialer.notify_url(),
        });
        self.app.http.dialout_id(&self.auth, body, extra).await
    }

    /// Stops dialgate (ends live calls) and the peers.
    pub async fn stop(self) {
        self.callee.hangup_all();
        self.side.stop().await;
        self.callee.shutdown();
        self.bot.shutdown();
    }
}

impl std::ops::Deref for SttFlow {
    type Target = SimSide;
    fn deref(&self) -> &SimSide {
        &self.side
    }
}

/// [`sip_trace`] of each call of a simulated peer (by Call-ID, in order of arrival).
pub fn sip_traces_by_call(events: &[SimEvent]) -> Vec<Vec<String>> {
    let mut ids: Vec<&str> = Vec::new();
    for e in events {
        if !ids.contains(&e.call_id.as_str()) {
            ids.push(&e.call_id);
        }
    }
    ids.iter()
        .map(|id| {
            let mine: Vec<SimEvent> = events
                .iter()
                .filter(|e| e.call_id == *id)
                .cloned()
                .collect();
            sip_trace(&mine)
        })
        .collect()
}

/// Waits (bounded) until `calls` calls of a simulated peer have ended (their `RtpStats`).
pub async fn wait_sim_calls_ended(peer: &SimCallee, who: &str, calls: usize) -> Vec<SimEvent> {
    let ended = |p: &SimCallee| {
        p.events()
            .iter()
            .filter(|e| matches!(e.kind, SimEventKind::RtpStats { .. }))
            .count()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while ended(peer) < calls {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the {who}'s {calls} calls never ended: {:?}",
            sip_traces_by_call(&peer.events())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    peer.events()
}

/// Waits (bounded) until a simulated peer's call has ended (its `RtpStats` event).
pub async fn wait_sim_ended(peer: &SimCallee, who: &str) -> Vec<SimEvent> {
    wait_peer_ended(peer, who, WAIT).await
}

/// Word errors of recognised `text` against `expected`, both normalised the way the STT
/// evaluation does (`dialgate::stt::eval::normalize`: lower case, no punctuation).
pub fn word_errors(expected: &str, text: &str) -> usize {
    use dialgate::stt::eval::{normalize, word_errors};
    word_errors(&normalize(expected), &normalize(text))
}
