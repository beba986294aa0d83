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
use tokio::sync::mpsc;

/// How often the session's counters are added to the metrics, once the call has media.
const METRICS_EVERY: Duration = Duration::from_secs(1);

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
    Hangup {
        reason_code: String,
        reason: String,
    },
}

/// The call's handle on its bridge. Dropping it ends the session (`session.end` / `stop`,
/// reason `dropped`) and closes the socket.
#[derive(Debug)]
pub struct WsBridge {
    tx: mpsc::UnboundedSender<Cmd>,
    protocol: WsProtocol,
}

impl WsBridge {
    /// Spawns the bridge: it connects to the bot and opens the session for `call` at once.
    pub fn spawn(
        bot: WebSocketBot,
        call: CallInfo,
        opts: WsBotOptions,
        metrics: Arc<Metrics>,
    ) -> (WsBridge, mpsc::UnboundedReceiver<BridgeEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let protocol = bot.protocol;
        tokio::spawn(run(bot, call, opts, metrics, rx, ev_tx));
        (WsBridge { tx, protocol }, ev_rx)
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
        let _ = self.tx.send(Cmd::Media {
            socket,
            relay,
            prompts_from,
        });
    }

    /// Activities (events) to the bot; AC mode only (ignored by media streams).
    pub fn activities(&self, activities: Vec<Value>) {
        let _ = self.tx.send(Cmd::Activities(activities));
    }

    /// A key the person pressed (AC: a `DTMF` event; media stream: `dtmf`).
    pub fn dtmf(&self, digit: char) {
        let _ = self.tx.send(Cmd::Dtmf(digit));
    }

    /// Drops the bot's queued audio (barge-in).
    pub fn clear(&self) {
        let _ = self.tx.send(Cmd::Clear);
    }

    /// Ends the session with the call's reason (`session.end` / `stop`) and closes the socket.
    pub fn hangup(&self, reason_code: &str, reason: &str) {
        let _ = self.tx.send(Cmd::Hangup {
            reason_code: reason_code.to_owned(),
            reason: reason.to_owned(),
        });
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

async fn run(
    bot: WebSocketBot,
    call: CallInfo,
    opts: WsBotOptions,
    metrics: Arc<Metrics>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<BridgeEvent>,
) {
    let protocol = bot.protocol;
    let connecting = WsBot::connect(&bot, call, opts);
    tokio::pin!(connecting);
    // The call may end while connecting: a hang-up (or the handle dropped) stops waiting;
    // anything else the call says meanwhile is kept and applied once the session is open.
    let mut early = Vec::new();
    let mut ws = loop {
        tokio::select! {
            r = &mut connecting => match r {
                Ok(ws) => break ws,
                Err(e) => {
                    let _ = events.send(BridgeEvent::Failed(e.to_string()));
                    return;
                }
            },
            cmd = cmds.recv() => match cmd {
                None | Some(Cmd::Hangup { .. }) => return,
                Some(c) => early.push(c),
            },
        }
    };
    let _ = events.send(BridgeEvent::Opened);
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
    loop {
        tokio::select! {
            cmd = cmds.recv() => match cmd {
                None => break,
                Some(Cmd::Hangup { reason_code, reason }) => {
                    let now = ws.stats();
                    metrics.wsbot.add(protocol, &reported, &now);
                    if !ws.hangup(&reason_code, &reason).await {
                        tracing::warn!("the WebSocket bot session did not end in time; aborted");
                    }
                    return;
                }
                Some(c) => {
                    if apply(&ws, c).await && tick.is_none() {
                        tick = Some(metrics_clock());
                    }
                }
            },
            ev = ws.next_event(), if !session_over => match ev {
                Some(ev) => { let _ = events.send(BridgeEvent::Bot(ev)); }
                // The session task ended (it said `Disconnected` first); wait for the hang-up.
                None => session_over = true,
            },
            () = tick_opt(&mut tick) => {
                let now = ws.stats();
                metrics.wsbot.add(protocol, &reported, &now);
                reported = now;
            },
        }
    }
    // The handle was dropped without a hang-up (the actor ended abruptly): dropping the
    // session says goodbye with reason `dropped` and closes the socket.
    let now = ws.stats();
    metrics.wsbot.add(protocol, &reported, &now);
}

/// Carries out one command of the call (a hang-up is handled by the loop); `true` when it
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
        Cmd::Hangup { .. } => {}
    }
    false
}
