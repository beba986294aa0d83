//! Recognition sessions as the machine asks for them, and the end of the actor.

use super::{Actor, Input};
use crate::store::ExtraColumn;

impl Actor {
    /// Starts a recognition session (`to_bot`: its text is for the bot, else only for machine
    /// detection and the record). Failing is not fatal: the machine is told and goes on.
    pub(super) async fn start_recognition(&mut self, to_bot: bool) -> Option<Input> {
        match self.engine.stt_session(&self.bot.language, !to_bot) {
            Ok(mut s) => {
                self.stt_results = s.results();
                self.stt = Some(s);
                self.ensure_tap();
                if to_bot {
                    self.record_recognition("active", "speech recognition started")
                        .await;
                }
                None
            }
            Err(reason) => {
                if to_bot {
                    // Never invent text: the call goes on, the record says why.
                    tracing::warn!(%reason, "speech recognition unavailable for this call");
                    let status = format!("unavailable: {reason}");
                    let _ = self
                        .engine
                        .deps
                        .store
                        .set_extra(&self.id, ExtraColumn::SttStatus, status)
                        .await;
                } else {
                    tracing::debug!(%reason, "machine detection runs on audio only");
                }
                Some(Input::RecognitionFailed { reason })
            }
        }
    }

    /// The running session's text goes to the bot from now on, or no longer.
    pub(super) async fn recognition_to_bot(&mut self, on: bool) {
        if let Some(s) = &mut self.stt {
            crate::stt::Recognizer::set_active(s, on);
        }
        if on {
            self.record_recognition("active", "recognition started by the bot")
                .await;
        } else {
            self.record_recognition("stopped", "recognition stopped by the bot")
                .await;
        }
    }

    async fn record_recognition(&mut self, status: &str, note: &str) {
        self.recognition_active = status == "active";
        tracing::info!("{note}");
        let store = &self.engine.deps.store;
        let _ = store
            .set_extra(&self.id, ExtraColumn::SttStatus, status.into())
            .await;
        self.timeline("stt", note).await;
    }

    /// Releases everything the call holds; the concurrency permit goes with
    /// `self.call` when the actor is dropped.
    pub(super) async fn cleanup(&mut self) {
        if self.media.is_some() {
            self.stop_media().await;
        }
        self.engine.unregister(&self.id);
    }
}
