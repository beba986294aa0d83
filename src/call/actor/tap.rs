//! The tap on the callee's audio, made only when something reads it.
//!
//! A tap is a bounded channel of 20-ms PCM frames; its first block holds 32 frames (~11 KiB) for
//! the rest of the call, and the relay decodes every packet for it. Most calls (a SIP bot,
//! no machine detection, no recognition, no barge-in) never read it, so it is made when the
//! first reader starts: machine detection, a recognition session, or a prompt that the person
//! may cut by speaking (barge-in, which listens through the voice activity detector).

use super::Actor;
use crate::media::Leg;

impl Actor {
    /// Whether anything reads the callee's audio now (see the module doc).
    pub(super) fn tap_wanted(&self) -> bool {
        self.amd.is_some() || self.stt.is_some() || self.machine.barge_in()
    }

    /// Subscribes the tap if the call has media and no tap yet. Frames flow at once when the
    /// taps were started (`start_media`), else from `start_taps`.
    pub(super) fn ensure_tap(&mut self) {
        if self.tap.is_some() {
            return;
        }
        let Some(m) = &self.media else { return };
        match m.subscribe_tap(Leg::Carrier, 100) {
            Ok(rx) => self.tap = Some(rx),
            Err(e) => tracing::error!(error = %e, "cannot tap the callee's audio"),
        }
    }
}
