//! What dialgate plays to the person on the bot's behalf, decided here: `message` (spoken for
//! text bots, and for SIP bots that opted in with `outbound.speak_messages`), `playUrl` and
//! `sendDtmf` (every bot kind), `abortPrompts`, a prompt that could not be played, and barge-in
//! (the person speaking cuts the prompts when `barge_in` is on).
//!
//! For a SIP bot the shell plays in place of the bot's own RTP (the relay holds the bot back
//! while dialgate's stream flows, see `crate::media::inject`); for a text bot dialgate is the
//! bot's voice anyway. Either way the machine only says what to play and when to cut it.

use super::core::CallMachine;
use super::types::{BotEvent, Output, Prompt};
use crate::core::activity::Activity;
use crate::media::inject::dtmf_plan;

/// Prompt state beyond [`CallMachine::playing`] (which means: a spoken or played prompt has
/// gone to the player and its `playFinished` is owed).
#[derive(Debug)]
pub(super) struct PromptState {
    /// Something (prompt or key presses) went to the player and its queue has not drained.
    pub(super) in_player: bool,
    /// The prompts were cut (`abortPrompts`, barge-in): the owed `playFinished` says
    /// `interrupted`.
    pub(super) cut: bool,
    /// The person speaking cuts the prompts.
    pub(super) barge_in: bool,
}

impl PromptState {
    pub(super) fn new(barge_in: bool) -> Self {
        PromptState {
            in_player: false,
            cut: false,
            barge_in,
        }
    }
}

impl CallMachine {
    /// Turns barge-in on or off for the rest of the call (the `config` activity's `bargeIn`).
    pub fn set_barge_in(&mut self, on: bool) {
        self.prompts.barge_in = on;
    }

    /// Whether the person speaking cuts dialgate's prompts now.
    pub fn barge_in(&self) -> bool {
        self.prompts.barge_in
    }

    /// `message`, `playUrl`, `sendDtmf`, `abortPrompts`.
    pub(super) fn prompt_activity(&mut self, a: Activity) {
        match a {
            Activity::Message { text } if self.cfg.text_bot || self.cfg.speak_messages => {
                self.prompt(Prompt::Speak(text))
            }
            Activity::Message { .. } => self.note_once(
                "message",
                "message activities are spoken for text bots (bots without sip_uri) and for \
                 SIP bots with outbound.speak_messages; this bot speaks for itself: ignored"
                    .to_owned(),
            ),
            Activity::PlayUrl { url, media_format } => self.prompt(match media_format {
                Some(format) if !format.trim().is_empty() => Prompt::UrlAs { url, format },
                _ => Prompt::Url(url),
            }),
            Activity::SendDtmf { digits } => match dtmf_plan(&digits) {
                Ok(_) => self.prompt(Prompt::Dtmf(digits)),
                // Every refusal is noted (not once per call): the bot may retry with a fix.
                Err(e) => self.emit(Output::Timeline {
                    kind: "dtmf",
                    note: format!("sendDtmf \"{digits}\" refused, nothing sent: {e}"),
                }),
            },
            Activity::AbortPrompts => self.cut_prompts(),
            other => {
                let name = other.name();
                self.note_once(&name, format!("activity `{name}` not handled here"));
            }
        }
    }

    /// Drops the prompts not yet handed out and cuts what the player holds.
    fn cut_prompts(&mut self) {
        self.pending_prompts.clear();
        if self.prompts.in_player {
            self.prompts.cut |= self.playing;
            self.emit(Output::AbortPrompts);
        }
    }

    /// The player's queue drained: the bot hears `playFinished` (with `interrupted` when the
    /// prompts were cut) if a prompt was among what it played.
    pub(super) fn on_playback_done(&mut self) {
        self.prompts.in_player = false;
        if self.playing && self.is_answered_phase() {
            self.playing = false;
            let ev = if std::mem::take(&mut self.prompts.cut) {
                BotEvent::PlayInterrupted
            } else {
                BotEvent::PlayFinished
            };
            self.push_bot_event(ev);
        } else {
            self.prompts.cut = false;
            self.ignore("playback end without a prompt");
        }
    }

    /// A `playUrl` could not be played: the bot is told, the call goes on.
    pub(super) fn on_prompt_failed(&mut self, url: String, reason: String) {
        if !self.is_answered_phase() {
            return self.ignore("prompt failure outside an answered call");
        }
        self.emit(Output::Timeline {
            kind: "play",
            note: format!("playUrl {url} failed: {reason}"),
        });
        self.push_bot_event(BotEvent::PlayUrlFailed { url, reason });
    }

    /// The person started speaking: with barge-in on, a prompt that plays is cut.
    pub(super) fn on_speech_started(&mut self) {
        if self.prompts.barge_in && self.playing && self.is_answered_phase() {
            self.emit(Output::Timeline {
                kind: "play",
                note: "barge-in: the person spoke; prompts cut".to_owned(),
            });
            self.cut_prompts();
        }
    }
}
