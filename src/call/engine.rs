//! The call engine: the SIP endpoint, the media relay, the recogniser, and a
//! registry of live calls, each driven by its own [`Actor`].

use super::actor::{Actor, ActorCmd, state_code, state_name};
use super::machine::{AmdMode, CallMachine, CallState, HangupSource, MachineConfig};
use super::{AcceptedDialout, CallControl, HangupOutcome};
use crate::config::ConfigStore;
use crate::media::{MediaConfig, MediaEngine};
use crate::metrics::Metrics;
use crate::sip::{SipEndpoint, SipSettings, Transport};
use crate::store::Store;
use crate::webhook::{BotReplySink, Outbox};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Commands one call may have waiting (API hang-ups, bot answers, session events).
const ACTOR_QUEUE: usize = 256;

/// How long a stop waits for live calls to end (CANCEL answered, BYE answered) before it ends
/// the rest in the store; their legs stay in the journal and are ended at the next start.
const SHUTDOWN_DRAIN: Duration = Duration::from_secs(5);

/// What the engine needs from the rest of the service.
pub struct EngineDeps {
    pub config: Arc<ConfigStore>,
    pub store: Store,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

struct LiveCall {
    /// Boxed commands: the channel's 32-slot block, kept for the call's life, is then 32
    /// pointers rather than 32 commands.
    tx: mpsc::Sender<Box<ActorCmd>>,
    state: Arc<AtomicU8>,
    /// Stops the call's task when a stop had to end the call without it.
    abort: tokio::task::AbortHandle,
}

/// The call engine.
pub struct Engine {
    pub(crate) deps: EngineDeps,
    pub(crate) sip: SipEndpoint,
    pub(crate) media: MediaEngine,
    stt: crate::stt::SttEngine,
    /// Speech synthesis for text bots, loaded when the first one needs it (or at start when the
    /// configuration has text bots): most deployments never pay its memory.
    tts: tokio::sync::OnceCell<crate::tts::TtsEngine>,
    /// `playUrl` audio: one guarded HTTP client and a small cache for every call.
    pub(crate) audio: super::audio_fetch::AudioFetcher,
    data_dir: PathBuf,
    public_ip: IpAddr,
    recording_dir: PathBuf,
    registry: Mutex<HashMap<String, LiveCall>>,
    me: Weak<Engine>,
    /// Writes the legs' dialog state; stopped (flushed) last at shutdown.
    journal: Mutex<Option<super::legjournal::Writer>>,
    journal_stop: CancellationToken,
}

/// The SIP endpoint on the configured listeners, with its connection limit.
async fn start_sip(
    server: &crate::config::Server,
    public_ip: IpAddr,
) -> Result<SipEndpoint, String> {
    let limits = crate::sip::StreamLimits {
        max_connections: server.sip.max_connections as usize,
    };
    SipEndpoint::start_limited(
        SipSettings {
            listen: server
                .sip
                .listen
                .iter()
                .map(|l| (l.transport, l.address))
                .collect(),
            tls: server
                .sip
                .tls
                .as_ref()
                .map(|t| (t.cert.display().to_string(), t.key.display().to_string())),
            public_address: public_ip,
            public_address_v6: server.sip.public_address_v6,
            user_agent: server.sip.user_agent.clone(),
            // Trunks reached over TLS are verified against the system's CA bundle.
            tls_ca: Some("/etc/ssl/certs/ca-certificates.crt".to_owned())
                .filter(|p| std::path::Path::new(p).exists()),
            t1: None,
        },
        limits,
    )
    .await
    .map_err(|e| format!("SIP endpoint: {e}"))
}

/// The speech recogniser; loading the model reads ~75 MB, so it is kept off the async threads.
/// An unavailable recogniser is not an error: calls work, and the log says no text reaches bots.
async fn start_recogniser(server: &crate::config::Server) -> Result<crate::stt::SttEngine, String> {
    let stt_cfg = server.stt.engine_config(&server.data_dir);
    let stt = tokio::task::spawn_blocking(move || crate::stt::SttEngine::new(stt_cfg))
        .await
        .map_err(|e| format!("speech engine: {e}"))?;
    match stt.status() {
        crate::stt::SttStatus::Ready { .. } => tracing::info!("speech recognition ready"),
        crate::stt::SttStatus::Unavailable { reason } => {
            tracing::warn!(%reason, "speech recognition UNAVAILABLE: calls work, but no text reaches bots")
        }
    }
    Ok(stt)
}

impl Engine {
    /// Starts the SIP endpoint, the relay and the recogniser.
    pub async fn start(deps: EngineDeps) -> Result<Arc<Engine>, String> {
        let snap = deps.config.current();
        let server = &snap.config.server;
        let public_ip: IpAddr = server.sip.public_address.parse().map_err(|_| {
            format!(
                "server.sip.public_address `{}` is not an IP address",
                server.sip.public_address
            )
        })?;
        let sip = start_sip(server, public_ip).await?;
        // Trunks given by domain name are located through these servers (and this one cache).
        sip.set_dns(crate::sip::dns::TrunkResolver::new(&server.dns));
        let recording_dir = server.data_dir.join("recordings");
        let media = MediaEngine::new(MediaConfig {
            bind_ip: public_ip,
            port_min: server.rtp.port_min,
            port_max: server.rtp.port_max,
            inactivity_timeout: (server.rtp.inactivity_timeout_sec > 0)
                .then(|| Duration::from_secs(server.rtp.inactivity_timeout_sec as u64)),
            recording_dir: recording_dir.clone(),
            latching: latch_mode(server.rtp.latching),
            ..MediaConfig::default()
        })
        .map_err(|e| format!("media relay: {e}"))?;
        let stt = start_recogniser(server).await?;
        for (t, a) in server.sip.listen.iter().map(|l| (l.transport, l.address)) {
            let bound = sip.local_addr(t).unwrap_or(a);
            tracing::info!(transport = ?t, %bound, "SIP listening");
        }
        let data_dir = server.data_dir.clone();
        let audio = super::audio_fetch::AudioFetcher::new(data_dir.clone(), {
            let config = deps.config.clone();
            Arc::new(move || config.current().config.server.notify_allow.clone())
        });
        let journal_stop = CancellationToken::new();
        let (journal, writer) =
            super::legjournal::StoreJournal::start(deps.store.clone(), journal_stop.clone());
        sip.set_journal(Arc::new(journal));
        Ok(Arc::new_cyclic(|me| Engine {
            deps,
            sip,
            media,
            stt,
            tts: tokio::sync::OnceCell::new(),
            audio,
            data_dir,
            public_ip,
            recording_dir,
            registry: Mutex::new(HashMap::new()),
            me: me.clone(),
            journal: Mutex::new(Some(writer)),
            journal_stop,
        }))
    }

    /// The data directory (models, recordings, prompts).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Loads speech synthesis now if the configuration has bots whose text dialgate speaks:
    /// text bots and AC Bot API WebSocket bots (else on first use). Loading the voice takes
    /// seconds on a busy machine: done at the first `message`, it kept that call's first
    /// sentence silent for as long.
    pub async fn preload_tts(&self) {
        let snap = self.deps.config.current();
        let speaks =
            |b: &crate::config::Bot| b.is_text_bot() || crate::call::wsbridge::speaks_text(b);
        if snap.config.bots.iter().any(speaks) {
            let _ = self.tts().await;
        }
    }

    /// The speech-synthesis engine (loaded on first use, off the async workers). A missing
    /// voice or runtime gives an engine that says so (`TtsStatus::Unavailable`).
    pub(crate) async fn tts(&self) -> &crate::tts::TtsEngine {
        self.tts
            .get_or_init(|| async {
                let cfg = crate::tts::TtsConfig {
                    data_dir: self.data_dir.clone(),
                    ..Default::default()
                };
                let load = cfg.clone();
                let engine =
                    match tokio::task::spawn_blocking(move || crate::tts::TtsEngine::new(load))
                        .await
                    {
                        Ok(engine) => engine,
                        Err(e) => crate::tts::TtsEngine::unavailable(
                            cfg,
                            crate::tts::TtsError::Unavailable(format!(
                                "loading the voice failed: {e}"
                            )),
                        ),
                    };
                if let crate::tts::TtsStatus::Unavailable { reason } = engine.status() {
                    tracing::warn!(%reason, "speech synthesis UNAVAILABLE: text bots cannot speak");
                }
                engine
            })
            .await
    }

    /// The address put in SDP and Contact.
    pub fn public_ip(&self) -> IpAddr {
        self.public_ip
    }

    /// dialgate's address for a peer at `peer` (`None`: a name, or dialgate's own sockets):
    /// the IPv6 one for an IPv6 peer when dialgate has one (see `sip::family`).
    pub fn public_ip_for(&self, peer: Option<IpAddr>) -> IpAddr {
        self.sip.public_ip_for(peer)
    }

    /// Where recordings are written.
    pub fn recording_dir(&self) -> &std::path::Path {
        &self.recording_dir
    }

    /// The SIP address the endpoint listens on for a transport (tests, demo).
    pub fn sip_addr(&self, t: Transport) -> Option<std::net::SocketAddr> {
        self.sip.local_addr(t)
    }

    /// A recognition session for the bot (`for_amd`: for machine detection only).
    pub(crate) fn stt_session(
        &self,
        language: &str,
        for_amd: bool,
    ) -> Result<crate::stt::SttSession, String> {
        // Whisper wants the bare language code (`en` from `en-US`).
        let lang = language
            .split(['-', '_'])
            .next()
            .unwrap_or("en")
            .to_ascii_lowercase();
        let cfg = if for_amd {
            crate::stt::SttSessionConfig::for_machine_detection(&lang)
        } else {
            crate::stt::SttSessionConfig {
                language: lang,
                ..Default::default()
            }
        };
        self.stt.session(cfg).map_err(|e| e.to_string())
    }

    pub(crate) fn unregister(&self, id: &str) {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub(crate) fn count_ended(&self, reason_code: &str) {
        self.deps
            .metrics
            .calls_ended
            .get_or_create(&crate::metrics::ReasonLabels {
                reason: reason_code.to_owned(),
            })
            .inc();
    }

    /// Hands a command to a live call without waiting. A call whose queue is full (a bot
    /// flooding it with answers) loses that command, which is logged.
    fn send(&self, id: &str, cmd: ActorCmd) -> bool {
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let Some(c) = reg.get(id) else { return false };
        match c.tx.try_send(Box::new(cmd)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(cmd)) => {
                tracing::warn!(conversation_id = %id, ?cmd, "the call's command queue is full; command dropped");
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Ends, with a terminal notification, every call the previous process
    /// left unfinished (its SIP dialogs died with that process), and completes every call
    /// that is terminal but lacks its terminal notification. Each in one transaction.
    pub async fn recover(&self) {
        self.end_left_legs().await;
        let store = &self.deps.store;
        let (unfinished, orphans) = match (
            store.unfinished_calls().await,
            store.terminal_without_note().await,
        ) {
            (Ok(u), Ok(o)) => (u, o),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot read the calls to recover");
                return;
            }
        };
        let reason = |answered: bool| match answered {
            true => "dialgate restarted during the call".to_owned(),
            false => "dialgate restarted before the call was answered".to_owned(),
        };
        self.end_unfinished_calls(
            unfinished.iter().chain(&orphans),
            reason,
            "call ended by restart recovery",
        )
        .await;
    }

    /// Extra fields for `GET /api/v1/status`.
    pub fn status_json(&self) -> Value {
        let stt = match self.stt.status() {
            crate::stt::SttStatus::Ready { model, load_ms } => {
                json!({"available": true, "model": model, "loadMs": load_ms})
            }
            crate::stt::SttStatus::Unavailable { reason } => {
                json!({"available": false, "reason": reason})
            }
        };
        let synthesis = match self.tts.get() {
            Some(engine) => engine.status_json(),
            None => {
                let cfg = crate::tts::TtsConfig {
                    data_dir: self.data_dir.clone(),
                    ..Default::default()
                };
                // Only whether the files are there: loading the voice (what `dialgate check`
                // does) on every status request would cost a model load each time.
                match cfg.missing_file() {
                    None => json!({"available": true, "loaded": false}),
                    Some(f) => json!({
                        "available": false,
                        "reason": format!("{} is missing: run scripts/setup-model", f.display()),
                    }),
                }
            }
        };
        json!({
            "recognition": stt,
            "synthesis": synthesis,
            "sip": {
                "udp": self.sip.local_addr(Transport::Udp).map(|a| a.to_string()),
                "tcp": self.sip.local_addr(Transport::Tcp).map(|a| a.to_string()),
                "tls": self.sip.local_addr(Transport::Tls).map(|a| a.to_string()),
            },
            "rtpPortsFree": self.media.port_pool().free(),
        })
    }

    /// Hangs up every live call and waits (bounded by [`SHUTDOWN_DRAIN`]) for them to end;
    /// a call still live then (a peer that does not answer our CANCEL or BYE) is ended in the
    /// store with its one terminal notification, and its legs stay in the journal so the next
    /// start ends them. Says how many calls, how many were cut short, and how long it took.
    pub async fn shutdown(&self) {
        let started = std::time::Instant::now();
        let ids: Vec<String> = self.live_ids();
        if !ids.is_empty() {
            tracing::info!(
                calls = ids.len(),
                drain_ms = SHUTDOWN_DRAIN.as_millis() as u64,
                "stopping: ending every live call"
            );
        }
        for id in &ids {
            self.send(id, ActorCmd::Hangup(HangupSource::Shutdown));
        }
        while started.elapsed() < SHUTDOWN_DRAIN && !self.live_ids().is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.live_ids();
        for id in &left {
            let entry = self
                .registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
            match self.deps.store.get_call(id).await {
                Ok(Some(rec)) => {
                    let reason = "dialgate stopped before the call ended";
                    if super::supervise::end_unfinished(&self.deps.outbox, &rec, reason).await {
                        self.count_ended("error");
                    }
                }
                Ok(None) => tracing::error!(conversation_id = %id, "no record of the call"),
                Err(e) => {
                    tracing::error!(conversation_id = %id, error = %e, "cannot read the call")
                }
            }
            // Then the call's task is stopped: the call has ended here, once, and nothing of
            // it runs on while the process exits.
            if let Some(c) = entry {
                c.abort.abort();
            }
        }
        if !ids.is_empty() {
            tracing::info!(
                calls = ids.len(),
                ended = ids.len() - left.len(),
                cut_short = left.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "drain finished (calls cut short are ended in the store; their legs are ended at the next start)"
            );
        }
        self.sip.shutdown();
        self.journal_stop.cancel();
        let writer = self
            .journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(w) = writer {
            w.finish(Duration::from_secs(5)).await;
        }
    }

    /// The conversation ids of the calls live in this process.
    pub(crate) fn live_ids(&self) -> Vec<String> {
        self.registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    /// Ends the SIP legs the previous process left ringing (CANCEL) or up (BYE), from the
    /// dialog state it journaled; each is forgotten once its CANCEL or BYE is answered or
    /// timed out. Runs in the background: start-up does not wait for peers.
    async fn end_left_legs(&self) {
        let legs = match self.deps.store.leg_dialogs().await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the legs left by the previous process");
                return;
            }
        };
        if legs.is_empty() {
            return;
        }
        tracing::warn!(
            legs = legs.len(),
            "restart recovery: ending the SIP legs the previous process left"
        );
        self.end_legs(legs, LeftBy::PreviousProcess);
    }

    /// Ends `legs` (left ringing or up by `left_by`) with CANCEL or BYE from their journaled
    /// dialog state, in the background; each is forgotten once its CANCEL or BYE is answered or
    /// timed out.
    pub(crate) fn end_legs(&self, legs: Vec<crate::core::LegDialog>, left_by: LeftBy<'_>) {
        let (sip, store, metrics) = (
            self.sip.clone(),
            self.deps.store.clone(),
            self.deps.metrics.clone(),
        );
        // A dead instance's legs were counted once already, when taken over.
        let counted = matches!(left_by, LeftBy::PreviousProcess);
        let left_by = left_by.to_string();
        let mut ends = tokio::task::JoinSet::new();
        for leg in legs {
            let (sip, store, metrics) = (sip.clone(), store.clone(), metrics.clone());
            let left_by = left_by.clone();
            ends.spawn(async move {
                    let what = match leg.state {
                        crate::core::LegDialogState::Calling => "CANCEL",
                        crate::core::LegDialogState::Up => "BYE",
                    };
                    match sip.end_left_leg(&leg).await {
                        Ok(code) => {
                            if counted {
                                metrics.legs_cleaned_at_recovery.inc();
                            }
                            tracing::warn!(conversation_id = %leg.conversation_id, call_id = %leg.call_id, code, "{what} sent to a leg left by {left_by}");
                        }
                        Err(e) => {
                            tracing::warn!(conversation_id = %leg.conversation_id, call_id = %leg.call_id, error = %e, "{what} to a leg left by {left_by} got no answer")
                        }
                    }
                    let forget = vec![crate::store::LegJournalOp::Forget(leg.call_id.clone())];
                    if let Err(e) = store.apply_leg_journal(forget).await {
                        tracing::error!(error = %e, "cannot forget a recovered leg");
                    }
            });
        }
        // Detached: each end is bounded by the CANCEL/BYE transaction's own wait.
        tokio::spawn(async move { while ends.join_next().await.is_some() {} });
    }

    fn machine_config(&self, call: &AcceptedDialout) -> MachineConfig {
        let snap = &call.config;
        let cfg = &snap.config;
        let bot = cfg.bot(&call.bot_id);
        let outbound = bot.map(|b| b.outbound.clone()).unwrap_or_default();
        let amd = AmdMode::resolve(call.request.machine_detection, outbound.machine_detection);
        let answer = call
            .request
            .answer_timeout_sec
            .unwrap_or(outbound.answer_timeout_sec);
        MachineConfig {
            dialout_initiated_event: outbound.dialout_initiated_event,
            machine_detection: amd,
            start_recognition_on_connect: outbound.start_recognition_on_connect,
            answer_timeout: Duration::from_secs(answer as u64),
            bot_answer_timeout: Duration::from_secs(cfg.server.bot_answer_timeout_sec as u64),
            max_duration: (cfg.server.max_call_duration_sec > 0)
                .then(|| Duration::from_secs(cfg.server.max_call_duration_sec as u64)),
            // A WebSocket bot's session is its Bot API (events and activities over the socket).
            bot_api: bot.is_some_and(|b| b.events_url.is_some() || b.websocket.is_some()),
            bot_open_timeout: Duration::from_secs(cfg.server.bot_answer_timeout_sec as u64),
            recognizer_available: matches!(self.stt.status(), crate::stt::SttStatus::Ready { .. }),
            // An AC Bot API WebSocket bot's `message` text is spoken like a text bot's.
            text_bot: bot.is_some_and(|b| b.is_text_bot() || super::wsbridge::speaks_text(b)),
            transfer: outbound.transfer,
            recording: bot.is_some_and(|b| b.recording),
            send_metadata_info: outbound.send_metadata_info,
            speak_messages: outbound.speak_messages,
            barge_in: outbound.barge_in,
            ws_bot: bot.is_some_and(|b| b.websocket.is_some()),
            // Only a SIP bot's leg is placed early: the machine decides (`early_bot`).
            early_media_to_bot: outbound.early_media_to_bot,
            ..MachineConfig::default()
        }
    }
}

impl CallControl for Engine {
    fn start(&self, call: AcceptedDialout) {
        let Some(me) = self.me.upgrade() else { return };
        let id = call.conversation_id.clone();
        let mc = self.machine_config(&call);
        let (tx, rx) = mpsc::channel(ACTOR_QUEUE);
        let state = Arc::new(AtomicU8::new(state_code(CallState::Initiating)));
        match Actor::new(me.clone(), call, CallMachine::new(mc), state.clone(), rx) {
            Ok(actor) => {
                // Spawned under the registry's lock: an actor that ends at once unregisters
                // only after its entry is in.
                let mut reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
                let task = tokio::spawn(actor.run());
                let abort = task.abort_handle();
                reg.insert(id.clone(), LiveCall { tx, state, abort });
                drop(reg);
                tokio::spawn(super::supervise::supervise(me, id, task));
            }
            Err(e) => tracing::error!(conversation_id = %id, error = %e, "cannot start the call"),
        }
    }

    fn hangup(&self, conversation_id: &str) -> HangupOutcome {
        if self.send(conversation_id, ActorCmd::Hangup(HangupSource::Api)) {
            HangupOutcome::Requested
        } else {
            HangupOutcome::NotLive
        }
    }

    fn live_by_state(&self) -> Vec<(&'static str, i64)> {
        let reg = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut counts: HashMap<&'static str, i64> = HashMap::new();
        for c in reg.values() {
            *counts
                .entry(state_name(c.state.load(Ordering::Acquire)))
                .or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort();
        v
    }

    fn tables(&self) -> Vec<(&'static str, i64)> {
        let calls = self
            .registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len();
        let mut v = vec![("calls", calls as i64)];
        v.extend(
            self.sip
                .tables()
                .pairs()
                .into_iter()
                .map(|(t, n)| (t, n as i64)),
        );
        v
    }
}

impl BotReplySink for Engine {
    fn bot_activities(&self, conversation_id: &str, activities: Vec<Value>) {
        if !self.send(conversation_id, ActorCmd::BotActivities(activities)) {
            tracing::debug!(%conversation_id, "bot activities for a call that has ended");
        }
    }

    fn bot_session_opened(&self, conversation_id: &str, expires_seconds: Option<u64>) {
        self.send(conversation_id, ActorCmd::BotSessionOpened(expires_seconds));
    }

    fn bot_unreachable(&self, conversation_id: &str, error: &str) {
        tracing::warn!(%conversation_id, %error, "the bot's events URL is unreachable");
        self.send(conversation_id, ActorCmd::BotUnreachable(error.to_owned()));
    }
}

/// The relay's latching policy for a configured one.
pub(crate) fn latch_mode(l: crate::config::RtpLatching) -> crate::media::LatchMode {
    use crate::config::RtpLatching as C;
    use crate::media::LatchMode as M;
    match l {
        C::Strict => M::Strict,
        C::Learn => M::Learn,
        C::Off => M::Off,
    }
}

/// Who left SIP legs for this process to end.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LeftBy<'a> {
    /// This instance's previous process: each leg whose CANCEL or BYE is answered counts in
    /// `legs_cleaned_at_recovery`.
    PreviousProcess,
    /// A dead cluster instance (its id): its legs count once, in `cluster_legs_taken_over`,
    /// when they are moved here.
    DeadInstance(&'a str),
}

impl std::fmt::Display for LeftBy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LeftBy::PreviousProcess => f.write_str("the previous process"),
            LeftBy::DeadInstance(id) => write!(f, "dead instance `{id}`"),
        }
    }
}
