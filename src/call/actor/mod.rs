//! One task per call: it feeds the call's sans-IO [`CallMachine`] with what
//! happens on the SIP legs, the relay, the detectors, the bot and the API,
//! and carries out the machine's actions. Policy lives in the machine; this
//! file only does I/O.

use super::AcceptedDialout;
use super::engine::Engine;
use super::legs::LegSide;
use super::machine::{
    AmdMode, CallMachine, CallState, Event, HangupSource, TerminalReport, TimerId, TimerKind,
};
use crate::config::Bot;
use crate::media::{MediaEvent, MediaSession, PcmFrame};
use crate::sip::sdp::Negotiated;
use crate::sip::{LegEvent, LegHandle};
use crate::store::CallStatus as StoredStatus;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

mod actions;
mod inputs;
mod lifecycle;

/// Requests from outside the call (API, bot answers, outbox).
#[derive(Debug)]
pub enum ActorCmd {
    /// Hang up (API or bot activity).
    Hangup(HangupSource),
    /// Activities the bot returned.
    BotActivities(Vec<Value>),
    /// The bot conversation was opened; refresh before it expires.
    BotSessionOpened(Option<u64>),
}

/// Receives from an optional channel; pends forever when there is none.
async fn recv_opt<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
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
struct LegSlot {
    handle: Option<LegHandle>,
    events: Option<mpsc::Receiver<LegEvent>>,
    negotiated: Option<Negotiated>,
    answered: bool,
    /// A terminal leg event (failure or BYE) was fed to the machine.
    ended: bool,
}

/// The per-call task.
pub struct Actor {
    id: String,
    engine: Arc<Engine>,
    call: AcceptedDialout,
    bot: Bot,
    machine: CallMachine,
    state: Arc<AtomicU8>,
    cmds: mpsc::UnboundedReceiver<ActorCmd>,
    carrier: LegSlot,
    bot_leg: LegSlot,
    media: Option<MediaSession>,
    tap: Option<mpsc::Receiver<PcmFrame>>,
    media_events: Option<mpsc::Receiver<MediaEvent>>,
    amd: Option<crate::amd::Detector>,
    stt: Option<crate::stt::SttSession>,
    stt_results: Option<mpsc::Receiver<crate::stt::SttResult>>,
    /// The recognition session exists only to feed machine detection.
    stt_for_amd_only: bool,
    timers: HashMap<TimerKind, (TimerId, Instant)>,
    refresh: Option<(Duration, Instant)>,
    bot_events: bool,
    amd_mode: AmdMode,
    answered_at_ms: Option<i64>,
    last_provisional: Option<u16>,
    terminal: Option<TerminalReport>,
    /// The Bot API disconnect, written together with the terminal state.
    pending_disconnect: Option<Value>,
    /// The caller ID used towards the carrier.
    caller: String,
    /// The trunk the call went to.
    trunk_address: String,
    reinvites: u32,
    /// Recognised text goes to the bot (startRecognition / stopRecognition).
    recognition_on: bool,
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
        amd_mode: AmdMode,
        state: Arc<AtomicU8>,
        cmds: mpsc::UnboundedReceiver<ActorCmd>,
    ) -> Result<Actor, String> {
        let bot = call
            .config
            .config
            .bot(&call.bot_id)
            .cloned()
            .ok_or_else(|| format!("bot `{}` vanished from the configuration", call.bot_id))?;
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
            media: None,
            tap: None,
            media_events: None,
            amd: None,
            stt: None,
            stt_results: None,
            stt_for_amd_only: false,
            timers: HashMap::new(),
            refresh: None,
            amd_mode,
            answered_at_ms: None,
            last_provisional: None,
            terminal: None,
            pending_disconnect: None,
            caller: String::new(),
            trunk_address: String::new(),
            reinvites: 0,
            recognition_on: false,
        })
    }

    /// Runs the call to its end.
    pub async fn run(mut self) {
        let span = tracing::info_span!("call", conversation_id = %self.id, bot = %self.bot.id);
        async move {
            self.feed(Event::Start).await;
            while self.machine.state() != CallState::Ended {
                let next_timer = self.timers.values().map(|(_, at)| *at).min();
                let next_refresh = self.refresh.map(|(_, at)| at);
                tokio::select! {
                    ev = recv_opt(&mut self.carrier.events) => match ev {
                        Some(ev) => self.on_leg(LegSide::Carrier, ev).await,
                        None => self.leg_gone(LegSide::Carrier).await,
                    },
                    ev = recv_opt(&mut self.bot_leg.events) => match ev {
                        Some(ev) => self.on_leg(LegSide::Bot, ev).await,
                        None => self.leg_gone(LegSide::Bot).await,
                    },
                    cmd = self.cmds.recv() => match cmd {
                        Some(c) => self.on_cmd(c).await,
                        // The engine dropped us: treat as an API hang-up.
                        None => self.feed(Event::Hangup { source: HangupSource::Api }).await,
                    },
                    f = recv_opt(&mut self.tap) => match f {
                        Some(f) => self.on_frame(f).await,
                        None => self.tap = None,
                    },
                    r = recv_opt(&mut self.stt_results) => match r {
                        Some(r) => self.on_stt(r).await,
                        None => self.stt_results = None,
                    },
                    e = recv_opt(&mut self.media_events) => match e {
                        Some(MediaEvent::InactivityTimeout { leg }) => {
                            tracing::warn!(?leg, "no RTP within the inactivity timeout");
                            self.feed(Event::MediaTimeout).await;
                        }
                        None => self.media_events = None,
                    },
                    _ = sleep_opt(next_timer) => self.fire_timers().await,
                    _ = sleep_opt(next_refresh) => {
                        if let Some((every, _)) = self.refresh {
                            self.refresh = Some((every, Instant::now() + every));
                            if let Err(e) = self.engine.deps.outbox.bot_refresh(&self.id).await {
                                tracing::error!(error = %e, "cannot queue the bot refresh");
                            }
                        }
                    }
                }
            }
            self.cleanup().await;
        }
        .instrument(span)
        .await
    }

    async fn fire_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<TimerId> = self
            .timers
            .values()
            .filter(|(_, at)| *at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.timers.remove(&id.kind);
            self.feed(Event::Timer(id)).await;
        }
    }

    /// Feeds one event and executes the resulting actions.
    pub(super) async fn feed(&mut self, ev: Event) {
        let before = self.machine.state();
        let actions = self.machine.on_event(std::time::Instant::now(), ev);
        let after = self.machine.state();
        self.state.store(state_code(after), Ordering::Release);
        if before != after {
            self.record_progress(after).await;
        }
        for a in actions {
            self.execute(a).await;
        }
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
