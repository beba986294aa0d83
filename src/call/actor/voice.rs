//! A text bot's voice: dialgate is the bot's media side. A player sends paced RTP to the relay's
//! bot-side port, speaking the bot's messages (speech synthesis) and playing its files; the
//! relay carries it to the person like any bot's audio (recording and taps included).

use super::{Actor, Input};
use crate::call::machine::{FailureKind, Prompt};
use crate::media::{AudioCodec, Direction, Leg, RemoteMedia};
use crate::tts::{Player, PlayerConfig, PlayerEvent};
use std::net::SocketAddr;

/// The largest audio file `playUrl` fetches.
const MAX_AUDIO_BYTES: usize = 8 << 20;

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
            dtmf_pt: None,
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

    /// Queues a prompt on the player.
    pub(super) async fn play(&mut self, prompt: Prompt) {
        if self.player.is_none() {
            return;
        }
        let queued = match &prompt {
            Prompt::Speak(text) => {
                let tts = self.engine.tts().await;
                let Some(player) = &self.player else { return };
                player.say(tts, text).map(|_| ()).map_err(|e| e.to_string())
            }
            Prompt::Url(url) => match self.fetch_audio(url).await {
                Ok(prompt) => match &self.player {
                    Some(p) => p.enqueue(prompt).map(|_| ()).map_err(|e| e.to_string()),
                    None => return,
                },
                Err(e) => Err(e),
            },
        };
        let (kind, what) = match &prompt {
            Prompt::Speak(text) => ("speak", format!("saying \"{text}\"")),
            Prompt::Url(url) => ("play", format!("playing {url}")),
        };
        match queued {
            Ok(()) => {
                tracing::info!("{what}");
                self.timeline(kind, &what).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed");
                self.timeline(kind, &format!("{what} failed: {e}")).await;
            }
        }
    }

    pub(super) async fn on_player(&mut self, ev: PlayerEvent) {
        match ev {
            PlayerEvent::QueueDrained => self.handle(Input::PlaybackDone).await,
            PlayerEvent::PromptFinished { error: Some(e), .. } => {
                tracing::warn!(error = %e, "a prompt failed while playing");
                self.timeline("speak", &format!("prompt failed: {e}")).await;
            }
            PlayerEvent::PromptStarted { .. } | PlayerEvent::PromptFinished { .. } => {}
        }
    }

    /// An audio file for `playUrl`: `http(s)://` (bounded size and time) or a file under the
    /// data directory's `prompts/` folder (`file:NAME` or a bare relative name).
    async fn fetch_audio(&self, url: &str) -> Result<crate::tts::Prompt, String> {
        if url.starts_with("http://") || url.starts_with("https://") {
            let bytes = crate::webhook::HttpClient::new(
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(3),
            )
            .get(url, MAX_AUDIO_BYTES)
            .await?;
            return crate::tts::Prompt::from_wav_bytes(&bytes).map_err(|e| e.to_string());
        }
        let name = url.strip_prefix("file:").unwrap_or(url);
        let rel = std::path::Path::new(name);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            return Err(format!(
                "`{url}`: files are read from the data directory's prompts/ folder only"
            ));
        }
        let path = self.engine.data_dir().join("prompts").join(rel);
        crate::tts::Prompt::from_wav(&path).map_err(|e| e.to_string())
    }
}
