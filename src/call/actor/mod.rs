//! One task per call: it feeds the call's sans-IO [`CallMachine`] with what
//! happens on the SIP legs, the relay, the detectors, the bot and the API,
//! and carries out the machine's actions. Policy lives in the machine; this
//! file only does I/O.

use super::AcceptedDialout;
use super::engine::Engine;
use super::legs::LegSide;
use super::machine::{CallMachine, CallState, HangupSource, Input, TerminalReport};
use crate::config::Bot;
use crate::media::{MediaEvent, MediaSession, PcmFrame};
use crate::sip::sdp::Negotiated;
use crate::sip::{LegEvents, LegHandle};
use crate::store::CallStatus as StoredStatus;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

mod actions;
mod early;
mod inputs;
mod lifecycle;
mod recording;
mod srtp;
mod tap;
mod transfer;
mod voice;
mod wsbot;

#[cfg(test)]
mod future_size;

/// Requests from outside the call (API, bot answers, outbox).
#[derive(Debug)]
pub enum ActorCmd {
    /// Hang up (API).
    Hangup(HangupSource),
    /// Activities the bot returned.
    BotActivities(Vec<Value>),
    /// The bot conversation was opened; `expiresSeconds` as the bot announced it.
    BotSessionOpened(Option<u64>),
    /// A Bot API request was refused or given up; the reason says what the bot answered.
    BotUnreachable(String),
}

/// Receives from an optional channel; pends forever when there is none.
async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Receives a leg's next event; pends forever when there is no leg.
async fn recv_leg(rx: &mut Option<LegEvents>) -> Option<crate::sip::LegEvent> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever when `None`.
async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// One live leg: its handle, its event stream and what its SDP negotiated.
#[derive(Default)]
pub(super) struct LegSlot {
    handle: Option<LegHandle>,
    events: Option<LegEvents>,
    negotiated: Option<Negotiated>,
    /// A terminal leg event (failure or BYE) was fed to the machine.
    ended: bool,
    /// A re-INVITE waiting for the machine's verdict: its offer and where the answer goes.
    pending_reinvite: Option<(String, tokio::sync::oneshot::Sender<Option<String>>)>,
    /// `o=` session id of our SDP on this leg (RFC 3264 §8: constant for the session) and the
    /// version of our last SDP (incremented with each new one).
    sdp_session: u64,
    sdp_version: u64,
}

impl LegSlot {
    /// A leg whose INVITE was just sent, offering SDP session `sdp_session` version 1.
    fn placed(handle: LegHandle, events: LegEvents, sdp_session: u64) -> LegSlot {
        LegSlot {
            handle: Some(handle),
            events: Some(events),
            sdp_session,
            sdp_version: 1,
            ..Default::default()
        }
    }
}

/// The per-call task.
pub struct Actor {
    id: String,
    engine: Arc<Engine>,
    call: AcceptedDialout,
    bot: Bot,
    machine: CallMachine,
    state: Arc<AtomicU8>,
    cmds: mpsc::Receiver<Box<ActorCmd>>,
    carrier: LegSlot,
    bot_leg: LegSlot,
    /// The agent's leg of a `bridge` transfer.
    agent: LegSlot,
    media: Option<MediaSession>,
    tap: Option<mpsc::Receiver<PcmFrame>>,
    /// Key presses on the carrier leg.
    dtmf: Option<mpsc::Receiver<char>>,
    /// A text bot's voice: dialgate's own media endpoint on the relay's bot side.
    player: Option<crate::tts::Player>,
    player_events: Option<mpsc::Receiver<crate::tts::PlayerEvent>>,
    media_events: Option<mpsc::Receiver<MediaEvent>>,
    /// Boxed, as `early` and `stt`: most calls never run them, and inline they would make
    /// every call's task ~1.4 KiB larger.
    amd: Option<Box<crate::amd::Detector>>,
    stt: Option<crate::stt::SttSession>,
    stt_results: Option<mpsc::Receiver<crate::stt::SttResult>>,
    bot_events: bool,
    answered_at_ms: Option<i64>,
    last_provisional: Option<u16>,
    terminal: Option<TerminalReport>,
    /// The Bot API disconnect, written together with the terminal state.
    pending_disconnect: Option<Value>,
    /// The caller ID used towards the carrier.
    caller: String,
    /// The trunk the call went to.
    trunk_address: String,
    /// The machine's state as last recorded (progress is written when it changes).
    recorded_state: CallState,
    /// The record says recognition is `active` (it says `ended` after the call).
    recognition_active: bool,
    /// The pre-answer detector while early media plays (see `early.rs`).
    early: Option<Box<crate::amd::EarlyDetector>>,
    /// Voice activity on the person's audio: when they start speaking the machine hears
    /// `SpeechStarted` (barge-in is its decision).
    vad: crate::stt::segmenter::Segmenter,
    /// Which player drains mean that every prompt handed out has finished.
    drain: voice::DrainTracker,
    /// A WebSocket bot's bridge (its session and media endpoint) and what it reports.
    ws: Option<crate::call::wsbridge::WsBridge>,
    ws_events: Option<mpsc::Receiver<crate::call::wsbridge::BridgeEvent>>,
    /// Our SDES offer to the carrier (`srtp` trunks), kept to read the answer's choice.
    carrier_sdes: Option<crate::sip::sdes::SdesOffer>,
    /// The SRTP keys the relay uses on the carrier leg (`None`: plain RTP), so a re-INVITE
    /// re-keys only when they change.
    carrier_srtp: Option<crate::media::srtp::SrtpKeys>,
}

/// Encodes a [`CallState`] for the registry's atomic cell.
pub fn state_code(s: CallState) -> u8 {
    match s {
        CallState::Initiating => 0,
        CallState::Dialing => 1,
        CallState::Ringing => 2,
        CallState::Answered => 3,
        CallState::Connected => 4,
        CallState::Ending => 5,
        CallState::Ended => 6,
    }
}

/// The metric label of a state code.
pub fn state_name(code: u8) -> &'static str {
    [
        "initiating",
        "dialing",
        "ringing",
        "answered",
        "connected",
        "ending",
        "ended",
    ]
    .get(code as usize)
    .copied()
    .unwrap_or("ended")
}

impl Actor {
    /// Prepares the actor of an accepted call.
    pub fn new(
        engine: Arc<Engine>,
        call: AcceptedDialout,
        machine: CallMachine,
        state: Arc<AtomicU8>,
        cmds: mpsc::Receiver<Box<ActorCmd>>,
    ) -> Result<Actor, String> {
        let bot = call
            .config
            .config
            .bot(&call.bot_id)
            .cloned()
            .ok_or_else(|| format!("bot `{}` vanished from the configuration", call.bot_id))?;
        // The caller ID and trunk the INVITE will use, known before it exists (for
        // `dialoutInitiated`, whose parameters are start's).
        let cfg = &call.config.config;
        let route = call.route.resolve(cfg).ok_or_else(|| {
            format!(
                "SIP connection `{}` vanished from the configuration",
                call.route.connection
            )
        })?;
        let caller = super::legs::caller_user(
            &call.request,
            &route,
            &bot,
            actions::default_caller(cfg, &bot),
        );
        let trunk_address = route.connection.address.to_string();
        Ok(Actor {
            id: call.conversation_id.clone(),
            bot_events: bot.events_url.is_some(),
            bot,
            engine,
            call,
            machine,
            state,
            cmds,
            carrier: LegSlot::default(),
            bot_leg: LegSlot::default(),
            agent: LegSlot::default(),
            media: None,
            tap: None,
            dtmf: None,
            player: None,
            player_events: None,
            media_events: None,
            amd: None,
            stt: None,
            stt_results: None,
            answered_at_ms: None,
            last_provisional: None,
            early: None,
            terminal: None,
            pending_disconnect: None,
            caller,
            trunk_address,
            recorded_state: CallState::Initiating,
            recognition_active: false,
            vad: crate::stt::segmenter::Segmenter::new(Default::default()),
            drain: voice::DrainTracker::default(),
            ws: None,
            ws_events: None,
            carrier_sdes: None,
            carrier_srtp: None,
        })
    }

    /// Runs the call to its end.
    pub fn run(self) -> impl std::future::Future<Output = ()> + Send {
        let span = tracing::info_span!("call", conversation_id = %self.id, bot = %self.bot.id);
        // The block owns the actor and the loop borrows it: an `async fn` taking `self` by
        // value keeps it twice (its argument and its binding), ~4.5 KiB more per call.
        let mut actor = self;
        async move { actor.run_loop().await }.instrument(span)
    }

    async fn run_loop(&mut self) {
        // Every handler below is boxed: the call's task future is as large as its largest
        // await for the call's whole life, and the handlers' futures (store writes, HTTP, SIP)
        // are large and short-lived; boxed, the call keeps only the wait below between events
        // (see `future_size.rs`).
        Box::pin(self.handle(Input::Start)).await;
        while self.machine.state() != CallState::Ended {
            let deadline = self.machine.poll_timeout();
            tokio::select! {
                ev = recv_leg(&mut self.carrier.events) => match ev {
                    Some(ev) => Box::pin(self.on_leg(LegSide::Carrier, ev)).await,
                    None => Box::pin(self.leg_gone(LegSide::Carrier)).await,
                },
                ev = recv_leg(&mut self.bot_leg.events) => match ev {
                    Some(ev) => Box::pin(self.on_leg(LegSide::Bot, ev)).await,
                    None => Box::pin(self.leg_gone(LegSide::Bot)).await,
                },
                ev = recv_leg(&mut self.agent.events) => match ev {
                    Some(ev) => Box::pin(self.on_agent_leg(ev)).await,
                    None => Box::pin(self.agent_gone()).await,
                },
                cmd = self.cmds.recv() => match cmd {
                    Some(c) => Box::pin(self.on_cmd(*c)).await,
                    // The engine dropped us: treat as an API hang-up.
                    None => Box::pin(self.handle(Input::Hangup { source: HangupSource::Api })).await,
                },
                f = recv_opt(&mut self.tap) => match f {
                    Some(f) => Box::pin(self.on_frame(f)).await,
                    None => self.tap = None,
                },
                p = recv_opt(&mut self.player_events) => match p {
                    Some(ev) => Box::pin(self.on_player(ev)).await,
                    None => self.player_events = None,
                },
                d = recv_opt(&mut self.dtmf) => match d {
                    Some(digit) => {
                        tracing::info!(%digit, "the person pressed a key");
                        Box::pin(self.handle(Input::Dtmf(digit))).await;
                    }
                    None => self.dtmf = None,
                },
                r = recv_opt(&mut self.stt_results) => match r {
                    Some(r) => Box::pin(self.on_stt(r)).await,
                    None => self.stt_results = None,
                },
                e = recv_opt(&mut self.media_events) => match e {
                    Some(MediaEvent::InactivityTimeout { leg }) => {
                        tracing::warn!(?leg, "no RTP within the inactivity timeout");
                        Box::pin(self.handle(Input::MediaTimeout)).await;
                    }
                    None => self.media_events = None,
                },
                w = recv_opt(&mut self.ws_events) => match w {
                    Some(ev) => Box::pin(self.on_ws(ev)).await,
                    None => self.ws_events = None,
                },
                _ = sleep_opt(deadline.map(Instant::from_std)) => {
                    self.machine.handle_timeout(std::time::Instant::now());
                    Box::pin(self.run_outputs()).await;
                }
            }
        }
        Box::pin(self.cleanup()).await;
    }

    /// Feeds one input and carries out what follows.
    pub(super) async fn handle(&mut self, input: Input) {
        self.machine.handle(std::time::Instant::now(), input);
        self.run_outputs().await;
    }

    /// Carries out the machine's outputs in order; an output that fails becomes the next input
    /// (its consequences are queued behind the outputs already decided).
    async fn run_outputs(&mut self) {
        // Bounded: every failure input moves a leg towards its end, so the chain is short.
        for _ in 0..10_000 {
            self.track_state().await;
            let Some(output) = self.machine.poll_output() else {
                return;
            };
            if let Some(failure) = self.execute(output).await {
                self.machine.handle(std::time::Instant::now(), failure);
            }
        }
        tracing::error!("the call machine kept producing outputs; stopping this round");
    }

    /// Publishes the machine's state and records progress when it changed.
    async fn track_state(&mut self) {
        let now = self.machine.state();
        if now == self.recorded_state {
            return;
        }
        self.recorded_state = now;
        self.state.store(state_code(now), Ordering::Release);
        self.record_progress(now).await;
    }

    async fn record_progress(&mut self, st: CallState) {
        let store = &self.engine.deps.store;
        let (status, note) = match st {
            CallState::Dialing => (StoredStatus::Dialing, "INVITE sent to the carrier"),
            CallState::Ringing => (StoredStatus::Ringing, "ringing"),
            CallState::Answered => (StoredStatus::Answered, "answered; inviting the bot"),
            CallState::Connected => (StoredStatus::Connected, "bot connected; legs bridged"),
            _ => return,
        };
        let code = match st {
            CallState::Ringing => self.last_provisional,
            CallState::Answered => Some(200),
            _ => None,
        };
        if let Err(e) = store.set_progress(&self.id, status, code).await {
            tracing::error!(error = %e, "cannot store call progress");
        }
        let _ = store.add_event(&self.id, status.as_str(), note).await;
        tracing::info!(state = status.as_str(), "{note}");
    }
}
