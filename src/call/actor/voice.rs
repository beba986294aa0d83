//! A text bot's voice: dialgate is the bot's media side. A player sends paced RTP to the relay's
//! bot-side port, speaking the bot's messages (speech synthesis) and playing its files; the
//! relay carries it to the person like any bot's audio (recording and taps included). For a SIP
//! bot the same player, started on the first prompt, plays in place of the bot's own audio
//! (`playUrl`, `speak_messages`, `sendDtmf`): the relay takes its stream as the injection source.

use super::{Actor, Input};
use crate::call::machine::{FailureKind, Prompt};
use crate::media::{AudioCodec, Direction, Leg, RemoteMedia};
use crate::tts::{Player, PlayerConfig, PlayerEvent, PromptId};
use std::net::SocketAddr;

impl Actor {
    /// "Answers" a text bot's leg: starts the player on the relay's bot side.
    pub(super) async fn start_text_bot(&mut self) -> Option<Input> {
        let media = self.media.as_ref()?;
        let mut cfg = PlayerConfig::new(media.local_rtp_addr(Leg::Bot));
        cfg.bind = SocketAddr::new(self.engine.public_ip(), 0);
        cfg.conversation_id = Some(self.id.clone());
        let failed = |reason: String| Input::BotFailed {
            code: None,
            kind: FailureKind::Internal,
            reason,
        };
        let mut player = match Player::start(cfg).await {
            Ok(p) => p,
            Err(e) => return Some(failed(format!("the text bot's player cannot start: {e}"))),
        };
        let remote = RemoteMedia {
            rtp: player.local_addr(),
            rtcp: None,
            codec: AudioCodec::PCMU,
            // `sendDtmf` key presses come from the player too.
            dtmf_pt: Some(crate::media::inject::INJECT_DTMF_PT),
            direction: Direction::SendRecv,
        };
        if let Err(e) = media.set_remote(Leg::Bot, remote) {
            return Some(failed(format!("cannot connect the text bot's voice: {e}")));
        }
        self.player_events = player.take_events();
        self.player = Some(player);
        self.timeline("bot", "text bot: dialgate speaks its messages")
            .await;
        Some(Input::BotAnswered)
    }

    /// Plays a prompt: a text bot's player is its voice; for a SIP bot a player started on
    /// first use injects in place of the bot's audio (see `crate::media::inject`). A prompt
    /// that cannot be played comes back as the machine's next input.
    pub(super) async fn play(&mut self, prompt: Prompt) -> Option<Input> {
        let (kind, what) = match &prompt {
            Prompt::Speak(text) => ("speak", format!("saying \"{text}\"")),
            Prompt::Url(url) | Prompt::UrlAs { url, .. } => ("play", format!("playing {url}")),
            Prompt::Dtmf(digits) => ("dtmf", format!("sending the keys {digits} to the person")),
        };
        if let Prompt::Dtmf(_) = &prompt
            && let Err(e) = self.dtmf_possible()
        {
            let note = format!("sendDtmf refused, nothing sent: {e}");
            tracing::warn!("{note}");
            self.timeline(kind, &note).await;
            return None;
        }
        // Barge-in listens to the person while prompts play (the tap is made on first need).
        if self.machine.barge_in() {
            self.ensure_tap();
        }
        if let Err(e) = self.ensure_player().await {
            return self.prompt_failed(prompt, kind, &what, e).await;
        }
        match self.queue_prompt(&prompt).await? {
            Ok(id) => {
                self.drain.enqueued(id);
                tracing::info!("{what}");
                self.timeline(kind, &what).await;
                None
            }
            Err(e) => self.prompt_failed(prompt, kind, &what, e).await,
        }
    }

    /// Puts the prompt in the player's queue: its id, or why it cannot play; `None` without a
    /// player (nothing to report).
    async fn queue_prompt(&mut self, prompt: &Prompt) -> Option<Result<PromptId, String>> {
        let player = self.player.as_ref()?;
        Some(match prompt {
            Prompt::Speak(text) => {
                let tts = self.engine.tts().await;
                player.say(tts, text).map_err(|e| e.to_string())
            }
            Prompt::Dtmf(digits) => match crate::tts::Prompt::dtmf(digits) {
                Ok(p) => player.enqueue(p).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            Prompt::Url(url) | Prompt::UrlAs { url, .. } => {
                let format = match prompt {
                    Prompt::UrlAs { format, .. } => Some(format.clone()),
                    _ => None,
                };
                // Fetched off the call's loop (a slow server must not hold up BYEs and key
                // presses); the prompt keeps its place in the player's queue meanwhile.
                let (tx, rx) = tokio::sync::oneshot::channel();
                let (engine, u) = (self.engine.clone(), url.clone());
                tokio::spawn(async move {
                    let _ = tx.send(engine.audio.load(&u, format.as_deref()).await);
                });
                let queued = player
                    .enqueue(crate::tts::Prompt::later(rx))
                    .map_err(|e| e.to_string());
                if let Ok(id) = &queued {
                    self.drain.url(*id, url.clone());
                }
                queued
            }
        })
    }

    /// A prompt that cannot play: logged and on the timeline; a URL's failure is the machine's
    /// next input (the bot gets `playUrlFailed`).
    async fn prompt_failed(
        &mut self,
        prompt: Prompt,
        kind: &str,
        what: &str,
        e: String,
    ) -> Option<Input> {
        tracing::warn!(error = %e, "{what} failed");
        self.timeline(kind, &format!("{what} failed: {e}")).await;
        match prompt {
            Prompt::Url(url) | Prompt::UrlAs { url, .. } => {
                Some(Input::PromptFailed { url, reason: e })
            }
            _ => None,
        }
    }

    /// Key presses need the person's leg to have negotiated telephone-events.
    fn dtmf_possible(&self) -> Result<(), String> {
        match self.carrier.negotiated.as_ref() {
            Some(n) if n.telephone_event.is_some() => Ok(()),
            Some(_) => Err("the person's leg negotiated no telephone-event (RFC 4733)".into()),
            None => Err("the person's leg has no media yet".into()),
        }
    }

    /// The player for this call's prompts: a text bot's own (started at answer), else an
    /// injecting one, started now and announced to the relay as the injection source.
    async fn ensure_player(&mut self) -> Result<(), String> {
        if self.player.is_some() {
            return Ok(());
        }
        let media = self
            .media
            .as_ref()
            .ok_or_else(|| "the call has no media".to_owned())?;
        let mut cfg = PlayerConfig::new(media.local_rtp_addr(Leg::Bot));
        cfg.bind = SocketAddr::new(self.engine.public_ip(), 0);
        cfg.conversation_id = Some(self.id.clone());
        // Only while something plays: the bot's own audio flows in between.
        cfg.silence_between_prompts = false;
        let mut player = Player::start(cfg)
            .await
            .map_err(|e| format!("the prompt player cannot start: {e}"))?;
        media
            .set_inject_source(Some(player.local_addr()))
            .map_err(|e| format!("cannot inject prompts: {e}"))?;
        self.player_events = player.take_events();
        self.player = Some(player);
        Ok(())
    }

    pub(super) async fn on_player(&mut self, ev: PlayerEvent) {
        if let PlayerEvent::PromptFinished { id, error, .. } = &ev {
            self.drain.finished(*id);
            if let Some(url) = self.drain.take_url(*id)
                && let Some(reason) = error
            {
                tracing::warn!(error = %reason, %url, "playUrl failed");
                return self
                    .handle(Input::PromptFailed {
                        url,
                        reason: reason.clone(),
                    })
                    .await;
            }
        }
        match ev {
            PlayerEvent::QueueDrained if self.drain.drained() => {
                self.handle(Input::PlaybackDone).await
            }
            // The drain of an `abortPrompts` while newer prompts were already on their way:
            // the queue is not empty, the bot's playFinished comes when they end.
            PlayerEvent::QueueDrained => {}
            PlayerEvent::PromptFinished { error: Some(e), .. } => {
                tracing::warn!(error = %e, "a prompt failed while playing");
                self.timeline("speak", &format!("prompt failed: {e}")).await;
            }
            // Speech under way when a prompt starts is speech during the prompt (barge-in):
            // the detector starts a new utterance from here.
            PlayerEvent::PromptStarted { .. } => self.vad.reset(),
            PlayerEvent::PromptFinished { .. } => {}
        }
    }
}

/// Whether a drain reported by the player means that everything handed to it has finished.
/// An abort drains the player at once, but prompts enqueued right after it (abortPrompts then
/// playUrl in one answer) are still to come: that drain is stale. Prompt ids grow.
#[derive(Debug, Default)]
pub(super) struct DrainTracker {
    enqueued: Option<PromptId>,
    finished: Option<PromptId>,
    /// `playUrl` prompts in the player, by id (a failure is reported with its URL); bounded
    /// by the player's queue.
    urls: Vec<(PromptId, String)>,
}

impl DrainTracker {
    fn url(&mut self, id: PromptId, url: String) {
        self.urls.push((id, url));
    }
    fn take_url(&mut self, id: PromptId) -> Option<String> {
        let i = self.urls.iter().position(|(p, _)| *p == id)?;
        Some(self.urls.swap_remove(i).1)
    }
    fn enqueued(&mut self, id: PromptId) {
        self.enqueued = self.enqueued.max(Some(id));
    }
    fn finished(&mut self, id: PromptId) {
        self.finished = self.finished.max(Some(id));
    }
    fn drained(&self) -> bool {
        self.finished >= self.enqueued
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_counts_only_when_the_last_prompt_handed_out_has_finished() {
        let mut d = DrainTracker::default();
        // 1. Nothing handed out: any drain is real.
        assert!(d.drained());
        // 2. Prompts 1 and 2 handed out; 1 aborted with its drain, 2 enqueued after the abort.
        d.enqueued(PromptId(1));
        d.finished(PromptId(1));
        d.enqueued(PromptId(2));
        assert!(!d.drained(), "the abort's drain is stale");
        // 3. Prompt 2 ends: its drain is the real one.
        d.finished(PromptId(2));
        assert!(d.drained());
    }
}
