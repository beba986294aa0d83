//! A WebSocket bot's I/O for the call: opening its session (the bot conversation), its media
//! endpoint on the relay's bot side (the bridge, like a text bot's player), events both ways.
//! What each thing means for the call is the machine's decision.

use super::{Actor, ActorCmd, Input};
use crate::call::machine::{BotEvent, FailureKind};
use crate::call::wsbridge::{BridgeEvent, WsBridge, speaks_text};
use crate::tts::{Player, PlayerConfig};
use crate::wsbot::{CallInfo, Prompts, WsBotEvent, WsBotOptions};
use serde_json::Value;
use std::net::SocketAddr;

impl Actor {
    /// Opens the bot's WebSocket session (the answer comes back as a [`BridgeEvent`]).
    /// `false` when the bot is not a WebSocket bot.
    pub(super) fn open_ws_session(&mut self) -> bool {
        let Some(bot) = self.bot.websocket.clone() else {
            return false;
        };
        let req = &self.call.request;
        let call = CallInfo {
            conversation_id: self.id.clone(),
            caller: self.caller.clone(),
            callee: req.target.display(),
            metadata: req
                .metadata
                .clone()
                .map(Value::Object)
                .unwrap_or_else(|| Value::Object(Default::default())),
        };
        let opts = WsBotOptions {
            handshake_timeout: std::time::Duration::from_secs(
                self.call.config.config.server.bot_answer_timeout_sec.max(1) as u64,
            ),
            chunk_ms: bot.chunk_ms,
            ..WsBotOptions::default()
        };
        tracing::info!(url = %bot.url, protocol = ?bot.protocol, "opening the WebSocket bot session");
        let (bridge, events) = WsBridge::spawn(bot, call, opts, self.engine.deps.metrics.clone());
        self.ws = Some(bridge);
        self.ws_events = Some(events);
        true
    }

    /// "Answers" a WebSocket bot's leg: the relay's bot side is served in process by the
    /// session (the bot's audio to the person, the person's to the bot). In AC mode dialgate's
    /// player speaks the bot's `message` text into the same stream.
    pub(super) async fn start_ws_media(&mut self) -> Option<Input> {
        let media = self.media.as_ref()?;
        let port = match media.attach_direct() {
            Ok(p) => p,
            Err(e) => {
                return Some(Input::BotFailed {
                    code: None,
                    kind: FailureKind::Internal,
                    reason: format!("cannot connect the WebSocket bot's audio: {e}"),
                });
            }
        };
        let prompts = if speaks_text(&self.bot) {
            self.start_ws_prompts().await
        } else {
            None
        };
        let ws = self.ws.as_ref()?;
        ws.start_media(port, prompts);
        self.timeline("bot", "WebSocket bot: audio bridged").await;
        Some(Input::BotAnswered)
    }

    /// dialgate's player for an AC-mode bot's text, speaking to a socket of the session's that
    /// mixes it into the bot's audio (the relay's bot side has one peer). `None` (logged) when
    /// it cannot start: the call goes on without spoken text.
    async fn start_ws_prompts(&mut self) -> Option<Prompts> {
        let ip = self.engine.public_ip();
        let socket = match tokio::net::UdpSocket::bind(SocketAddr::new(ip, 0)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the WebSocket bot's text cannot be spoken");
                return None;
            }
        };
        let local = socket.local_addr().ok()?;
        let mut cfg = PlayerConfig::new(local);
        cfg.bind = SocketAddr::new(ip, 0);
        cfg.conversation_id = Some(self.id.clone());
        cfg.silence_between_prompts = false;
        match Player::start(cfg).await {
            Ok(mut p) => {
                let prompts = Prompts::new(socket, p.local_addr());
                self.player_events = p.take_events();
                self.player = Some(p);
                Some(prompts)
            }
            Err(e) => {
                tracing::warn!(error = %e, "the WebSocket bot's text cannot be spoken");
                None
            }
        }
    }

    /// A bot event or activity for a WebSocket bot; `false` when the bot is not one.
    pub(super) fn ws_bot_event(&self, ev: &BotEvent, activity: &Value) -> bool {
        let Some(ws) = &self.ws else { return false };
        match ev {
            BotEvent::Dtmf { digit } => ws.dtmf(*digit),
            _ => ws.activities(vec![activity.clone()]),
        }
        true
    }

    /// Ends the WebSocket session with the call's reason (`session.end` / `stop`).
    pub(super) fn ws_hangup(&mut self, reason_code: &str, reason: &str) {
        if let Some(ws) = self.ws.take() {
            ws.hangup(reason_code, reason);
        }
    }

    /// What the bridge reports.
    pub(super) async fn on_ws(&mut self, ev: BridgeEvent) {
        match ev {
            BridgeEvent::Opened => {
                self.timeline("bot", "WebSocket bot session open").await;
                self.handle(Input::BotSessionOpened { expires: None }).await
            }
            BridgeEvent::Failed(reason) => {
                tracing::warn!(%reason, "the WebSocket bot cannot be reached");
                self.handle(Input::BotUnreachable { reason }).await
            }
            BridgeEvent::Bot(WsBotEvent::Activities(acts)) => {
                self.on_cmd(ActorCmd::BotActivities(acts)).await
            }
            BridgeEvent::Bot(WsBotEvent::SpeechStarted) => {
                // The bot heard the person start speaking: the barge-in hook.
                self.timeline(
                    "speech-started",
                    "the bot heard the person speak (userStream.speech.started)",
                )
                .await
            }
            BridgeEvent::Bot(WsBotEvent::Reconnecting { attempt, reason }) => {
                let note = format!("WebSocket dropped ({reason}); resume attempt {attempt}");
                self.timeline("bot", &note).await
            }
            BridgeEvent::Bot(WsBotEvent::Resumed) => {
                self.timeline("bot", "WebSocket bot session resumed").await
            }
            BridgeEvent::Bot(WsBotEvent::Disconnected { reason }) => {
                self.timeline("bot", &format!("WebSocket bot gone: {reason}"))
                    .await;
                self.handle(Input::BotSocketLost { reason }).await
            }
            BridgeEvent::Bot(other) => tracing::debug!(event = ?other, "WebSocket bot event"),
        }
    }
}
