//! A WebSocket bot's bridge: one task per call that owns the bot's session ([`WsBot`]) and,
//! once the person answered, hands it the relay's bot leg served in process
//! ([`DirectPort`]): the session's task then hands the bot's audio to the relay every 20 ms
//! (mixed with dialgate's own prompts in AC mode) and the person's audio, which the relay
//! queues for it, to the socket — frames never pass through this task. The actor talks to it through [`WsBridge`] and hears from it as [`BridgeEvent`]s; all
//! policy stays in the call machine. The session (and its socket) ends with the task on every
//! path: a hang-up command, the handle dropped, or the runtime shutting down.

use crate::config::Bot;
use crate::media::DirectPort;
use crate::metrics::Metrics;
use crate::wsbot::{
    CallInfo, MediaSide, Prompts, WebSocketBot, WsBot, WsBotEvent, WsBotOptions, WsBotStats,
    WsProtocol,
};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

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

/// Commands that may wait for the bridge. The actor never waits for its bot (`try_send`); the
/// bridge takes each at once unless it is handing an activity to a session whose own queue is
/// full, so this fills only when the session is stuck: then the command (an activity, a key
/// press, a clear) is dropped and counted (`dialgate_queue_full_total{queue="bridge_commands"}`).
/// The media start and the hang-up have their own one-shot slots and never queue here.
const CMD_BOUND: usize = 256;

/// Events waiting for the actor. The bridge never waits for room while anything else could
/// happen: an event that does not fit is held (one) and the bridge stops taking the session's
/// events until the actor made room, so the session's own bounded queue absorbs the rest, and
/// when that is full too the session stops reading the bot's socket — nothing the bot said is
/// lost, and the bot's audio keeps its 20 ms pace meanwhile (the session's task never waits for
/// its event queue: `wsbot/task.rs`).
const EVENT_BOUND: usize = 64;

/// The call's reason for ending the session.
type Hangup = Option<(String, String)>;

/// Commands from the call that may queue.
#[derive(Debug)]
enum Cmd {
    Activities(Vec<Value>),
    Dtmf(char),
    Clear,
}

impl Cmd {
    fn what(&self) -> &'static str {
        match self {
            Cmd::Activities(_) => "activities for the WebSocket bot",
            Cmd::Dtmf(_) => "a key press for the WebSocket bot",
            Cmd::Clear => "a playback clear for the WebSocket bot",
        }
    }
}

/// The call's media side for the bridge (sent once, at answer).
#[derive(Debug)]
struct Media {
    port: DirectPort,
    prompts: Option<Prompts>,
}

/// The call's handle on its bridge. Dropping it ends the session (`session.end` / `stop`,
/// reason `dropped`) and closes the socket.
#[derive(Debug)]
pub struct WsBridge {
    tx: mpsc::Sender<Cmd>,
    /// The media start: a slot of its own, so a full command queue cannot leave a call mute.
    media: std::sync::Mutex<Option<oneshot::Sender<Media>>>,
    /// The hang-up: one slot that cannot be full, so ending the session is never lost; the
    /// bridge takes what was queued before it first (see [`Ends::next`]).
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
        let (tx, cmds) = mpsc::channel(CMD_BOUND);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_BOUND);
        let (media_tx, media) = oneshot::channel();
        let (hang, hang_rx) = watch::channel(None);
        let protocol = bot.protocol;
        let ends = Ends {
            cmds,
            media: Some(media),
            hang: hang_rx,
        };
        tokio::spawn(run(bot, call, opts, metrics, ends, ev_tx));
        let bridge = WsBridge {
            tx,
            media: std::sync::Mutex::new(Some(media_tx)),
            hang,
            protocol,
        };
        (bridge, ev_rx)
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

    /// Starts the audio: the bot's frames go to the relay through `port` (the bot leg served
    /// in process: [`crate::media::MediaSession::attach_direct`]), the person's audio the relay
    /// queues there goes to the bot; `prompts` (dialgate's own player, AC mode) are mixed into
    /// the bot's audio. Only the first call counts.
    pub fn start_media(&self, port: DirectPort, prompts: Option<Prompts>) {
        let slot = self.media.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(slot) = slot {
            let _ = slot.send(Media { port, prompts });
        }
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

/// What the bridge takes from the call next.
enum Next {
    Cmd(Cmd),
    Media(Media),
    /// The call hung up (`Some`, after what it queued before) or dropped its handle (`None`).
    End(Hangup),
}

/// The bridge's ends of the call's handle: commands in order, the media start, the hang-up.
struct Ends {
    cmds: mpsc::Receiver<Cmd>,
    media: Option<oneshot::Receiver<Media>>,
    hang: watch::Receiver<Hangup>,
}

impl Ends {
    /// The next thing the call said. Queued commands and the media start come before the
    /// hang-up (the call sent them first).
    async fn next(&mut self) -> Next {
        tokio::select! {
            biased;
            m = media_opt(&mut self.media) => match m {
                Some(m) => Next::Media(m),
                // The handle is gone (or sent none): only the hang-up matters now.
                None => self.next_cmd(),
            },
            cmd = self.cmds.recv() => match cmd {
                Some(c) => Next::Cmd(c),
                None => Next::End(self.hang.borrow().clone()),
            },
            _ = self.hang.changed() => self.next_cmd(),
        }
    }

    /// A command already queued, else the end.
    fn next_cmd(&mut self) -> Next {
        match self.cmds.try_recv() {
            Ok(c) => {
                // Still the hang-up to take after it.
                self.hang.mark_changed();
                Next::Cmd(c)
            }
            Err(_) => Next::End(self.hang.borrow().clone()),
        }
    }
}

/// The media start, once (never again after it came or its sender went).
async fn media_opt(slot: &mut Option<oneshot::Receiver<Media>>) -> Option<Media> {
    let Some(rx) = slot else {
        return std::future::pending().await;
    };
    let m = rx.await.ok();
    *slot = None;
    m
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
    let Some((ws, early)) = open(&bot, call, opts, &mut ends, &events).await else {
        return;
    };
    let _ = events.try_send(BridgeEvent::Opened);
    let mut relay = Relaying::new(ws, protocol, metrics);
    for next in early {
        relay.apply(next).await;
    }
    let hangup = relay.serve(&mut ends, &events).await;
    relay.report();
    match hangup {
        Some((reason_code, reason)) => {
            if !relay.ws.hangup(&reason_code, &reason).await {
                tracing::warn!("the WebSocket bot session did not end in time; aborted");
            }
        }
        // The handle was dropped without a hang-up (the actor ended abruptly): dropping the
        // session says goodbye with reason `dropped` and closes the socket.
        None => drop(relay),
    }
}

/// Opens the session; `None` when it failed (reported) or the call ended meanwhile. The call
/// may end while connecting: a hang-up (or the handle dropped) stops waiting; anything else the
/// call says meanwhile is kept (as many as the queue holds) and returned to be applied once the
/// session is open.
async fn open(
    bot: &WebSocketBot,
    call: CallInfo,
    opts: WsBotOptions,
    ends: &mut Ends,
    events: &mpsc::Sender<BridgeEvent>,
) -> Option<(WsBot, Vec<Next>)> {
    let connecting = WsBot::connect(bot, call, opts);
    tokio::pin!(connecting);
    let mut early = Vec::new();
    loop {
        tokio::select! {
            r = &mut connecting => match r {
                Ok(ws) => return Some((ws, early)),
                Err(e) => {
                    // The first event: the queue has room.
                    let _ = events.try_send(BridgeEvent::Failed(e.to_string()));
                    return None;
                }
            },
            next = ends.next(), if early.len() < CMD_BOUND => match next {
                Next::End(_) => return None,
                other => early.push(other),
            },
        }
    }
}

/// The open session as the bridge serves it: the call's commands in, the session's events
/// out, its counters into the metrics every second once the call has media.
struct Relaying {
    ws: WsBot,
    protocol: WsProtocol,
    metrics: Arc<Metrics>,
    reported: WsBotStats,
    tick: Option<tokio::time::Interval>,
}

impl Relaying {
    fn new(ws: WsBot, protocol: WsProtocol, metrics: Arc<Metrics>) -> Relaying {
        Relaying {
            ws,
            protocol,
            metrics,
            reported: WsBotStats::default(),
            tick: None,
        }
    }

    /// Carries out one thing the call said; the metrics clock starts with the media.
    async fn apply(&mut self, next: Next) {
        if apply(&self.ws, next).await && self.tick.is_none() {
            self.tick = Some(metrics_clock());
        }
    }

    /// Adds the session's counters since the last report to the metrics.
    fn report(&mut self) {
        let now = self.ws.stats();
        self.metrics.wsbot.add(self.protocol, &self.reported, &now);
        self.reported = now;
    }

    /// Serves the session until the call hangs up (`Some`) or drops its handle (`None`).
    async fn serve(&mut self, ends: &mut Ends, events: &mpsc::Sender<BridgeEvent>) -> Hangup {
        let mut session_over = false;
        // A session event the actor's queue had no room for (see EVENT_BOUND).
        let mut held: Option<BridgeEvent> = None;
        loop {
            tokio::select! {
                next = ends.next() => match next {
                    Next::End(hangup) => return hangup,
                    other => self.apply(other).await,
                },
                permit = events.reserve(), if held.is_some() => match (permit, held.take()) {
                    (Ok(permit), Some(ev)) => permit.send(ev),
                    // The actor is gone: it will not hang up; end as if the handle were dropped.
                    _ => return None,
                },
                ev = self.ws.next_event(), if !session_over && held.is_none() => match ev {
                    Some(ev) => {
                        if let Err(mpsc::error::TrySendError::Full(ev)) = events.try_send(BridgeEvent::Bot(ev)) {
                            held = Some(ev);
                        }
                    }
                    // The session task ended (it said `Disconnected` first); wait for the hang-up.
                    None => session_over = true,
                },
                () = tick_opt(&mut self.tick) => self.report(),
            }
        }
    }
}

/// Carries out one thing the call said (not the end: the loop handles it); `true` when it
/// started the media.
async fn apply(ws: &WsBot, next: Next) -> bool {
    match next {
        Next::Media(Media { port, prompts }) => {
            let _ = ws.start_media(MediaSide::new(port, prompts)).await;
            // AC mode: the person's audio flows once the bot says `userStream.started`.
            let _ = ws.start_user_stream().await;
            return true;
        }
        Next::Cmd(Cmd::Activities(a)) => {
            let _ = ws.send_activities(a).await;
        }
        Next::Cmd(Cmd::Dtmf(d)) => {
            let _ = ws.send_dtmf(d).await;
        }
        Next::Cmd(Cmd::Clear) => ws.clear_playback(),
        Next::End(_) => {}
    }
    false
}
