//! The machine's handling of a WebSocket bot (`bots[].websocket`): its session is the bot
//! conversation. It is opened before the person is called (AC mode: `session.accepted`;
//! media stream: the socket is up), so a bot that refuses (`session.error`) or cannot be reached
//! fails the call without calling anybody, exactly like an unreachable Bot API bot
//! (`BotSessionOpened` / `BotUnreachable` and the `BotOpen` timer are shared with it). A socket
//! lost for good ends the call `bot-disconnected`.

use std::time::Instant;

use super::core::{CallMachine, Leg, Phase};
use super::reason::ReasonCode;
use super::report::cause;
use super::types::{BotEvent, Output, TimerKind};

impl CallMachine {
    /// At start: open the bot's WebSocket session; the person is called once it is accepted.
    pub(super) fn open_ws_bot(&mut self, now: Instant) {
        if !self.bot_conversation_open {
            self.bot_conversation_open = true;
            self.emit(Output::OpenBotConversation);
        }
        if self.cfg.dialout_initiated_event {
            // Sent over the socket once the session is accepted (the shell queues it).
            self.emit(Output::BotEvent(BotEvent::DialoutInitiated));
        }
        self.timers
            .set(TimerKind::BotOpen, now + self.cfg.bot_open_timeout);
        self.phase = Phase::Opening;
    }

    /// The bot's socket is gone for good (no resume, or the bot stopped its media stream).
    pub(super) fn on_bot_socket_lost(&mut self, now: Instant, reason: String) {
        if !self.is_live() {
            return self.ignore("bot socket lost after the end");
        }
        if self.bot == Leg::Up || self.bot == Leg::Inviting {
            // Nothing to send BYE or CANCEL to: the socket is the leg, and it is gone.
            self.bot = Leg::Gone;
        }
        let text = format!("the bot's WebSocket is gone: {reason}");
        self.begin_end(now, cause(ReasonCode::BotDisconnected, text, None, None));
    }
}
