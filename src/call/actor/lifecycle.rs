//! Recognition switching and the end of the actor.

use super::Actor;
use crate::store::ExtraColumn;

impl Actor {
    /// A recognition session whose text feeds only machine detection (and the call record):
    /// `recognition_on` stays false, so nothing reaches the bot. No model: audio-only AMD.
    pub(super) fn start_stt_for_amd(&mut self) {
        match self.engine.stt_session(&self.bot.language, true) {
            Ok(mut s) => {
                self.stt_results = s.results();
                self.stt = Some(s);
                self.stt_for_amd_only = true;
            }
            Err(reason) => {
                tracing::debug!(%reason, "machine detection runs on audio only");
            }
        }
    }

    /// Ends an AMD-only recognition session once machine detection has decided.
    pub(super) fn stop_amd_only_stt(&mut self) {
        if self.stt_for_amd_only && !self.recognition_on {
            self.stt = None;
            self.stt_results = None;
            self.stt_for_amd_only = false;
        }
    }

    pub(super) async fn start_stt(&mut self) {
        let store = &self.engine.deps.store;
        if self.stt.is_some() {
            // Already running for machine detection: now it serves the bot too.
            self.stt_for_amd_only = false;
            if let Some(s) = &mut self.stt {
                crate::stt::Recognizer::set_active(s, true);
            }
            self.recognition_on = true;
            let _ = store
                .set_extra(&self.id, ExtraColumn::SttStatus, "active".into())
                .await;
            let _ = store
                .add_event(&self.id, "stt", "speech recognition started")
                .await;
            return;
        }
        match self.engine.stt_session(&self.bot.language, false) {
            Ok(mut s) => {
                self.stt_results = s.results();
                self.stt = Some(s);
                self.recognition_on = true;
                // Machine detection started just before (same answer) uses this session.
                if let Some(det) = &mut self.amd {
                    det.expect_transcripts();
                }
                let _ = store
                    .set_extra(&self.id, ExtraColumn::SttStatus, "active".into())
                    .await;
                let _ = store
                    .add_event(&self.id, "stt", "speech recognition started")
                    .await;
            }
            Err(reason) => {
                // Never invent text: the call goes on, the record says why.
                tracing::warn!(%reason, "speech recognition unavailable for this call");
                let _ = store
                    .set_extra(
                        &self.id,
                        ExtraColumn::SttStatus,
                        format!("unavailable: {reason}"),
                    )
                    .await;
                let _ = store
                    .add_event(
                        &self.id,
                        "stt",
                        &format!("speech recognition unavailable: {reason}"),
                    )
                    .await;
            }
        }
    }

    pub(super) async fn set_recognition(&mut self, on: bool) {
        tracing::info!(on, "recognition switched by the bot");
        if on && self.stt.is_none() {
            if self.media.is_some() {
                self.start_stt().await;
            }
            return;
        }
        if let Some(s) = &mut self.stt {
            crate::stt::Recognizer::set_active(s, on);
        }
        self.recognition_on = on;
        let _ = self
            .engine
            .deps
            .store
            .set_extra(
                &self.id,
                ExtraColumn::SttStatus,
                if on { "active" } else { "stopped" }.into(),
            )
            .await;
        let _ = self
            .engine
            .deps
            .store
            .add_event(
                &self.id,
                "stt",
                if on {
                    "recognition resumed by the bot"
                } else {
                    "recognition stopped by the bot"
                },
            )
            .await;
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
