//! Early media: the relay's carrier direction runs from a 183/180 with SDP, and its audio goes
//! to the pre-answer detector (`amd::EarlyDetector`) until the answer takes over.

use super::Actor;
use crate::call::legs;
use crate::call::machine::Input;
use crate::media::Leg;

impl Actor {
    /// `Output::StartEarlyMedia`: point the relay at the early SDP and listen.
    pub(super) async fn start_early_media(&mut self) {
        let remote = self
            .carrier
            .negotiated
            .as_ref()
            .and_then(legs::remote_media);
        let (Some(m), Some(r)) = (&self.media, remote) else {
            return;
        };
        if let Err(e) = m.set_remote(Leg::Carrier, r) {
            tracing::error!(error = %e, "cannot start early media");
            return;
        }
        match m.subscribe_tap(Leg::Carrier, 100) {
            Ok(rx) => self.tap = Some(rx),
            Err(e) => tracing::error!(error = %e, "cannot tap the early media"),
        }
        if let Err(e) = m.start_taps() {
            tracing::error!(error = %e, "cannot start the early media tap");
        }
        self.early = Some(Box::new(crate::amd::EarlyDetector::new(
            self.bot.amd.clone(),
        )));
        // Announcements are told by their words: recognise early media when a model is there
        // (its text goes to the record's transcript, never to the bot).
        if self.machine.config().recognizer_available && self.stt.is_none() {
            match self.engine.stt_session(&self.bot.language, true) {
                Ok(mut s) => {
                    self.stt_results = s.results();
                    self.stt = Some(s);
                }
                Err(reason) => tracing::debug!(%reason, "early media is checked for tones only"),
            }
        }
        self.timeline("early-media", "listening to early media before the answer")
            .await;
    }

    /// One frame of early media; `true` when it was early media (nothing else listens then).
    pub(super) async fn early_frame(&mut self, samples: &[i16]) -> bool {
        let Some(det) = &mut self.early else {
            return false;
        };
        let verdict = det.push_frame(samples);
        if let Some(stt) = &mut self.stt {
            crate::stt::Recognizer::push_frame(stt, samples);
        }
        if let Some(v) = verdict {
            self.early_verdict(v).await;
        }
        true
    }

    /// Recognised text while early media plays: `true` when it was early media's.
    pub(super) async fn early_text(&mut self, text: &str) -> bool {
        let Some(det) = &mut self.early else {
            return false;
        };
        if let Some(v) = det.push_transcript(text) {
            self.early_verdict(v).await;
        }
        true
    }

    async fn early_verdict(&mut self, v: crate::amd::EarlyVerdict) {
        self.early = None;
        let (sit, heard) = match v {
            crate::amd::EarlyVerdict::Sit(s) => (true, s),
            crate::amd::EarlyVerdict::Intercept(t) => (false, t),
        };
        tracing::info!(sit, %heard, "intercept heard in early media");
        self.handle(Input::EarlyIntercept { sit, heard }).await;
    }

    /// `Output::BotHearsEarlyMedia`: the bot's leg (placed at early media) answered before the
    /// person; the relay sends it the carrier's audio and drops its own until `BridgeMedia`.
    pub(super) fn bot_hears_early_media(&self) {
        let remote = self
            .bot_leg
            .negotiated
            .as_ref()
            .and_then(legs::remote_media);
        let (Some(m), Some(mut r)) = (&self.media, remote) else {
            return;
        };
        // As if the bot had declared it only receives: the relay forwards nothing it sends.
        r.direction = if r.direction.receives() {
            crate::media::Direction::RecvOnly
        } else {
            crate::media::Direction::Inactive
        };
        if let Err(e) = m.set_remote(Leg::Bot, r) {
            tracing::error!(error = %e, "cannot send the early media to the bot");
        }
    }

    /// The answer takes over: the early tap and detector end (the answer's SDP, which may
    /// differ, is set by `start_media`, and the taps start again from the answer).
    pub(super) fn end_early_media(&mut self) {
        if self.early.take().is_some() {
            // Before the answer the only recognition session is early media's.
            self.tap = None;
            self.stt = None;
            self.stt_results = None;
        }
    }
}
