//! A WebSocket bot's bridge: one task per call that owns the bot's session ([`WsBot`]) and,
//! once the person answered, dialgate's own RTP endpoint on the relay's bot side (as for a text
//! bot). Every 20 ms it sends the bot's next frame (from the session's jitter buffer, mixed
//! with dialgate's own prompts in AC mode) as PCMU RTP to the relay; the person's audio, which
//! the relay forwards to this endpoint like to any bot, goes to the socket. The actor talks to
//! it through [`WsBridge`] and hears from it as [`BridgeEvent`]s; all policy stays in the call
//! machine. The session (and its socket) ends with the task on every path: a hang-up command,
//! the handle dropped, or the runtime shutting down.

use crate::config::Bot;
use crate::media::g711::{self, G711Law};
use crate::media::rtp;
use crate::metrics::Metrics;
use crate::wsbot::{
    CallInfo, WebSocketBot, WsBot, WsBotEvent, WsBotOptions, WsBotStats, WsProtocol,
};
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// 20 ms at 8 kHz.
const FRAME: usize = 160;
/// dialgate's own prompts (AC mode) waiting to be mixed in: at most 1 s.
const MAX_PROMPT_FRAMES: usize = 50;
/// How often the session's counters are added to the metrics (in 20 ms ticks).
const METRICS_EVERY: u32 = 50;

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

/// The RTP side, once the person answered.
struct Rtp {
    socket: UdpSocket,
    relay: SocketAddr,
    prompts_from: Option<SocketAddr>,
    seq: u16,
    ts: u32,
    ssrc: u32,
    prompts: VecDeque<[i16; FRAME]>,
    partial: Vec<i16>,
}

impl Rtp {
    fn new(socket: UdpSocket, relay: SocketAddr, prompts_from: Option<SocketAddr>) -> Rtp {
        Rtp {
            socket,
            relay,
            prompts_from,
            seq: rand::random(),
            ts: rand::random(),
            ssrc: rand::random(),
            prompts: VecDeque::new(),
            partial: Vec::new(),
        }
    }

    /// Sends one frame: the bot's, with dialgate's own prompt mixed in.
    async fn send(&mut self, mut frame: [i16; FRAME]) {
        if let Some(p) = self.prompts.pop_front() {
            for (s, q) in frame.iter_mut().zip(p) {
                *s = s.saturating_add(q);
            }
        }
        let mut pkt = [0u8; rtp::RTP_HEADER + FRAME];
        pkt[0] = 0x80;
        rtp::set_pt(&mut pkt, 0);
        rtp::set_seq_ts_ssrc(&mut pkt, self.seq, self.ts, self.ssrc);
        for (b, s) in pkt[rtp::RTP_HEADER..].iter_mut().zip(frame) {
            *b = g711::linear_to_ulaw(s);
        }
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(FRAME as u32);
        if let Err(e) = self.socket.send_to(&pkt, self.relay).await {
            tracing::debug!(error = %e, "cannot send the bot's audio to the relay");
        }
    }

    /// One datagram: the person's audio (8 kHz PCM) to give the bot, or a prompt frame kept.
    fn receive(&mut self, buf: &[u8], from: SocketAddr) -> Option<Vec<i16>> {
        let view = rtp::parse_rtp(buf)?;
        let law = match view.pt {
            0 => G711Law::Pcmu,
            8 => G711Law::Pcma,
            _ => return None, // telephone-event and comfort noise: not audio
        };
        let pcm: Vec<i16> = buf[view.payload_start..view.payload_end]
            .iter()
            .map(|b| g711::decode(law, *b))
            .collect();
        if Some(from) != self.prompts_from {
            return Some(pcm);
        }
        self.partial.extend(pcm);
        while self.partial.len() >= FRAME {
            let mut f = [0i16; FRAME];
            f.copy_from_slice(&self.partial[..FRAME]);
            self.partial.drain(..FRAME);
            if self.prompts.len() < MAX_PROMPT_FRAMES {
                self.prompts.push_back(f);
            }
        }
        None
    }
}

async fn tick_opt(tick: &mut Option<tokio::time::Interval>) {
    match tick {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The 20 ms clock of the bot's audio, kept on real time: after a stall the missed frames are
/// sent at once. (Delaying instead would play slower than the bot sends, and every stall would
/// add its length to the delay for the rest of the call: measured 200 ms after a few seconds on
/// a loaded machine.)
fn pacing() -> tokio::time::Interval {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    tick
}

async fn recv_opt(rtp: &Option<Rtp>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match rtp {
        Some(r) => r.socket.recv_from(buf).await,
        None => std::future::pending().await,
    }
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
    let mut rtp: Option<Rtp> = None;
    let mut tick = None;
    let mut ticks = 0u32;
    let mut buf = [0u8; 2048];
    let mut session_over = false;
    for c in early {
        apply(&ws, &mut rtp, c).await;
    }
    if rtp.is_some() {
        tick = Some(pacing());
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
                    apply(&ws, &mut rtp, c).await;
                    if rtp.is_some() && tick.is_none() {
                        tick = Some(pacing());
                    }
                }
            },
            ev = ws.next_event(), if !session_over => match ev {
                Some(ev) => { let _ = events.send(BridgeEvent::Bot(ev)); }
                // The session task ended (it said `Disconnected` first); wait for the hang-up.
                None => session_over = true,
            },
            () = tick_opt(&mut tick) => {
                let frame = ws.next_frame();
                if let Some(r) = &mut rtp {
                    r.send(frame).await;
                }
                ticks += 1;
                if ticks.is_multiple_of(METRICS_EVERY) {
                    let now = ws.stats();
                    metrics.wsbot.add(protocol, &reported, &now);
                    reported = now;
                }
            },
            r = recv_opt(&rtp, &mut buf) => {
                if let (Ok((n, from)), Some(rtp)) = (r, &mut rtp)
                    && let Some(pcm) = rtp.receive(&buf[..n], from)
                {
                    ws.send_audio(&pcm);
                }
            },
        }
    }
    // The handle was dropped without a hang-up (the actor ended abruptly): dropping the
    // session says goodbye with reason `dropped` and closes the socket.
    let now = ws.stats();
    metrics.wsbot.add(protocol, &reported, &now);
}

/// Carries out one command of the call (a hang-up is handled by the loop).
async fn apply(ws: &WsBot, rtp: &mut Option<Rtp>, cmd: Cmd) {
    match cmd {
        Cmd::Media {
            socket,
            relay,
            prompts_from,
        } => {
            *rtp = Some(Rtp::new(socket, relay, prompts_from));
            // AC mode: the person's audio flows once the bot says `userStream.started`.
            let _ = ws.start_user_stream().await;
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
}
