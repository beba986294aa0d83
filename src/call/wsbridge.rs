//! A WebSocket bot's bridge: one task per call that owns the bot's session ([`WsBot`]) and,
//! once the person answered, hands it dialgate's own RTP endpoint on the relay's bot side (as
//! for a text bot): the session's task then sends the bot's audio to the relay every 20 ms
//! (mixed with dialgate's own prompts in AC mode) and the person's audio, which the relay
//! forwards to this endpoint like to any bot, to the socket — frames never pass through this
//! task. The actor talks to it through [`WsBridge`] and hears from it as [`BridgeEvent`]s; all
//! policy stays in the call machine. The session (and its socket) ends with the task on every
//! path: a hang-up command, the handle dropped, or the runtime shutting down.

use crate::config::Bot;
use crate::metrics::Metrics;
use crate::wsbot::{
    CallInfo, RtpSide, WebSocketBot, WsBot, WsBotEvent, WsBotOptions, WsBotStats, WsProtocol,
};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};

/// How often the session's counters are added to the metrics, once the call has media.
const METRICS_EVERY: Duration = Duration::from_secs(1);

/// Commands that may wait for the bridge. The actor sends without waiting (it must never wait
/// for its bot) and the bridge takes each at once unless it is handing the bot's last event to
/// the actor, so this only fills when the session is stuck; then activities are dropped and
/// counted (`queue_full{queue="bridge_commands"}`). The hang-up never queues here (`hang`).
const CMD_BOUND: usize = 256;

/// Events that may wait for the actor. The bridge waits for room (the actor takes them in its
/// loop and never waits for the bridge, so that wait always ends): a slow actor slows the
/// reading of the bot's socket instead of growing a queue, and nothing the bot said is lost.
const EVENT_BOUND: usize = 64;

/// The call's reason for ending the session.
type Hangup = Option<(String, String)>;

/// Whether a bot's `message` text is spoken by dialgate: AC Bot API WebSocket bots (the
/// activities come over the socket); media streams carry audio only.
pub fn speaks_text(bot: &Bot) -> bool {
    bot.websocket
        .as_ref()
        .is_some_and(|w| w.protocol == WsProtocol::AcBotApi)
}

/// What the bridge tells the call.
#[derive(Debug)]
pub enum BridgeEvent {
    /// The session is open (AC: `session.accepted`; media stream: `connected` and `start` sent).
    Opened,
    /// The session could not be opened (refused, `session.error`, time-out).
    Failed(String),
    /// Something the bot did.
    Bot(WsBotEvent),
}

/// Commands from the call.
#[derive(Debug)]
enum Cmd {
    Media {
        socket: UdpSocket,
        relay: SocketAddr,
        prompts_from: Option<SocketAddr>,
    },
    Activities(Vec<Value>),
    Dtmf(char),
    Clear,
}

impl Cmd {
    fn what(&self) -> &'static str {
        match self {
            Cmd::Media { .. } => "the WebSocket bot's media start",
            Cmd::Activities(_) => "activities for the WebSocket bot",
            Cmd::Dtmf(_) => "a key press for the WebSocket bot",
            Cmd::Clear => "a playback clear for the WebSocket bot",
        }
    }
}

/// The call's handle on its bridge. Dropping it ends the session (`session.end` / `stop`,
/// reason `dropped`) and closes the socket.
#[derive(Debug)]
pub struct WsBridge {
    tx: mpsc::Sender<Cmd>,
    /// The hang-up: one slot that cannot be full, so ending the session is never lost; the
    /// bridge takes what was queued before it first (see `run`).
    hang: watch::Sender<Hangup>,
    protocol: WsProtocol,
}

impl WsBridge {
    /// Spawns the bridge: it connects to the bot and opens the session for `call` at once.
    pub fn spawn(
        bot: WebSocketBot,
        call: CallInfo,
        opts: WsBotOptions,
        metrics: Arc<Metrics>,
    ) -> (WsBridge, mpsc::Receiver<BridgeEvent>) {
        let (tx, rx) = mpsc::channel(CMD_BOUND);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_BOUND);
        let (hang, hang_rx) = watch::channel(None);
        let protocol = bot.protocol;
        let ends = Ends {
            cmds: rx,
            hang: hang_rx,
        };
        tokio::spawn(run(bot, call, opts, metrics, ends, ev_tx));
        (WsBridge { tx, hang, protocol }, ev_rx)
    }

    fn send(&self, cmd: Cmd) {
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.tx.try_send(cmd) {
            crate::overflow::dropped(crate::overflow::Queue::BridgeCommands, cmd.what());
        }
    }

    /// The bot's protocol.
    pub fn protocol(&self) -> WsProtocol {
        self.protocol
    }

    /// Starts the audio: the bot's frames go as RTP from `socket` to `relay`; what arrives on
    /// `socket` from the relay goes to the bot; what arrives from `prompts_from` (dialgate's
    /// own player, AC mode) is mixed into the bot's audio.
    pub fn start_media(
        &self,
        socket: UdpSocket,
        relay: SocketAddr,
        prompts_from: Option<SocketAddr>,
    ) {
        self.send(Cmd::Media {
            socket,
            relay,
            prompts_from,
        });
    }

    /// Activities (events) to the bot; AC mode only (ignored by media streams).
    pub fn activities(&self, activities: Vec<Value>) {
        self.send(Cmd::Activities(activities));
    }

    /// A key the person pressed (AC: a `DTMF` event; media stream: `dtmf`).
    pub fn dtmf(&self, digit: char) {
        self.send(Cmd::Dtmf(digit));
    }

    /// Drops the bot's queued audio (barge-in).
    pub fn clear(&self) {
        self.send(Cmd::Clear);
    }

    /// Ends the session with the call's reason (`session.end` / `stop`) and closes the socket.
    pub fn hangup(&self, reason_code: &str, reason: &str) {
        self.hang
            .send_replace(Some((reason_code.to_owned(), reason.to_owned())));
    }
}

/// The metrics clock, once the call has media.
async fn tick_opt(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn metrics_clock() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(METRICS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// The bridge's ends of the call's handle: commands in order, and the hang-up.
struct Ends {
    cmds: mpsc::Receiver<Cmd>,
    hang: watch::Receiver<Hangup>,
}

impl Ends {
    /// The next command, or why there is none: `Err(Some(reason))` the call hung up (what it
    /// queued before has been taken: commands are read first), `Err(None)` the handle is gone.
    async fn next(&mut self) -> Result<Cmd, Hangup> {
        tokio::select! {
            biased;
            cmd = self.cmds.recv() => match cmd {
                Some(c) => Ok(c),
                None => Err(self.hang.borrow().clone()),
            },
            _ = self.hang.changed() => {
                // Commands sent before the hang-up are already queued: take them first.
                match self.cmds.try_recv() {
                    Ok(c) => {
                        self.hang.mark_changed();
                        Ok(c)
                    }
                    Err(_) => Err(self.hang.borrow().clone()),
                }
            }
        }
    }
}

async fn run(
    bot: WebSocketBot,
    call: CallInfo,
    opts: WsBotOptions,
    metrics: Arc<Metrics>,
    mut ends: Ends,
    events: mpsc::Sender<BridgeEvent>,
) {
    let protocol = bot.protocol;
    let connecting = WsBot::connect(&bot, call, opts);
    tokio::pin!(connecting);
    // The call may end while connecting: a hang-up (or the handle dropped) stops waiting;
    // anything else the call says meanwhile is kept (as many as the queue holds) and applied
    // once the session is open.
    let mut early = Vec::new();
    let mut ws = loop {
        tokio::select! {
            r = &mut connecting => match r {
                Ok(ws) => break ws,
                Err(e) => {
                    let _ = events.send(BridgeEvent::Failed(e.to_string())).await;
                    return;
                }
            },
            cmd = ends.next(), if early.len() < CMD_BOUND => match cmd {
                Ok(c) => early.push(c),
                Err(_) => return,
            },
        }
    };
    let _ = events.send(BridgeEvent::Opened).await;
    let mut reported = WsBotStats::default();
    let mut media = false;
    let mut tick = None;
    let mut session_over = false;
    for c in early {
        media |= apply(&ws, c).await;
    }
    if media {
        tick = Some(metrics_clock());
    }
    let hangup = loop {
        tokio::select! {
            cmd = ends.next() => match cmd {
                Ok(c) => {
                    if apply(&ws, c).await && tick.is_none() {
                        tick = Some(metrics_clock());
                    }
                }
                Err(hangup) => break hangup,
            },
            ev = ws.next_event(), if !session_over => match ev {
                // Waits for room: see EVENT_BOUND.
                Some(ev) => { let _ = events.send(BridgeEvent::Bot(ev)).await; }
                // The session task ended (it said `Disconnected` first); wait for the hang-up.
                None => session_over = true,
            },
            () = tick_opt(&mut tick) => {
                let now = ws.stats();
                metrics.wsbot.add(protocol, &reported, &now);
                reported = now;
            },
        }
    };
    let now = ws.stats();
    metrics.wsbot.add(protocol, &reported, &now);
    match hangup {
        Some((reason_code, reason)) => {
            if !ws.hangup(&reason_code, &reason).await {
                tracing::warn!("the WebSocket bot session did not end in time; aborted");
            }
        }
        // The handle was dropped without a hang-up (the actor ended abruptly): dropping the
        // session says goodbye with reason `dropped` and closes the socket.
        None => drop(ws),
    }
}

/// Carries out one command of the call; `true` when it
/// started the media.
async fn apply(ws: &WsBot, cmd: Cmd) -> bool {
    match cmd {
        Cmd::Media {
            socket,
            relay,
            prompts_from,
        } => {
            let _ = ws
                .start_media(RtpSide::new(socket, relay, prompts_from))
                .await;
            // AC mode: the person's audio flows once the bot says `userStream.started`.
            let _ = ws.start_user_stream().await;
            return true;
        }
        Cmd::Activities(a) => {
            let _ = ws.send_activities(a).await;
        }
        Cmd::Dtmf(d) => {
            let _ = ws.send_dtmf(d).await;
        }
        Cmd::Clear => ws.clear_playback(),
    }
    false
}
