//! Carrying out the machine's recording decisions on the call's media session.

use super::Actor;
use crate::core::activity::RecordingOp;

impl Actor {
    /// Starts, pauses, resumes or stops the stereo WAV recording. The machine only asks for
    /// what the recording's state allows; a failure is logged and the call goes on.
    pub(super) async fn recording(&mut self, op: RecordingOp) {
        let Some(m) = &self.media else { return };
        match op {
            RecordingOp::Start => {
                let path = format!("{}.wav", self.id);
                match m.start_recording(&path).await {
                    Ok(()) => {
                        let full = self.engine.recording_dir().join(&path);
                        let _ = self
                            .engine
                            .deps
                            .store
                            .set_extra(
                                &self.id,
                                crate::store::ExtraColumn::Recording,
                                full.display().to_string(),
                            )
                            .await;
                    }
                    Err(e) => tracing::error!(error = %e, "cannot start the recording"),
                }
            }
            RecordingOp::Pause | RecordingOp::Resume => {
                if !m.pause_recording(op == RecordingOp::Pause).await {
                    tracing::warn!(?op, "no recording to pause or resume");
                }
            }
            RecordingOp::Stop => match m.stop_recording().await {
                Ok(Some(r)) => tracing::info!(path = %r.path.display(), "recording closed"),
                Ok(None) => tracing::warn!("no recording to stop"),
                Err(e) => tracing::warn!(error = %e, "recording did not finish cleanly"),
            },
        }
    }
}
