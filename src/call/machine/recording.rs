//! The call's stereo recording as the machine sees it, and what the recording activities
//! (`startCallRecording`, `stopCallRecording`, `pauseCallRecording`, `resumeCallRecording`) do.
//!
//! One recording per call: `stopCallRecording` closes the file and is final (a later
//! `startCallRecording` is refused and noted), so a call never has two files to account for.
//! A paused stretch is silence in the file: it keeps the call's length and its times.

use super::core::CallMachine;
use super::types::Output;
use crate::core::activity::RecordingOp;

/// Where the call's recording is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecState {
    /// Not recording, and nothing asked for.
    Off,
    /// To start with the media (the bot config records from the answer, or the bot asked
    /// before the answer).
    Requested,
    /// Recording.
    On,
    /// Recording, paused: silence is written.
    Paused,
    /// Stopped: the file is closed; no other recording in this call.
    Stopped,
}

impl RecState {
    /// At the start of the call: `Requested` when the bot's config records every call.
    pub(super) fn initial(record_from_answer: bool) -> RecState {
        if record_from_answer {
            RecState::Requested
        } else {
            RecState::Off
        }
    }
}

impl CallMachine {
    /// The media just started: a requested recording starts with it.
    pub(super) fn start_recording_with_media(&mut self) {
        if self.recording == RecState::Requested {
            self.recording = RecState::On;
            self.emit(Output::Recording(RecordingOp::Start));
        }
    }

    /// A recording activity from the bot: carried out when the recording's state allows it,
    /// else one timeline line says why not.
    pub(super) fn on_recording_activity(&mut self, op: RecordingOp) {
        use RecState::*;
        let (next, did) = match (op, self.recording) {
            (RecordingOp::Start, Off) if self.media_running => (On, "recording started"),
            (RecordingOp::Start, Off) => (Requested, "recording will start at the answer"),
            (RecordingOp::Start, Requested | On | Paused) => {
                return self.refuse(op, "the call is already being recorded");
            }
            (RecordingOp::Start, Stopped) => {
                return self.refuse(
                    op,
                    "the recording was stopped; a call has one recording, so it is not restarted",
                );
            }
            (RecordingOp::Pause, On) => (Paused, "recording paused (silence until resumed)"),
            (RecordingOp::Resume, Paused) => (On, "recording resumed"),
            (RecordingOp::Stop, On | Paused) => (Stopped, "recording stopped; the file is closed"),
            (RecordingOp::Stop, Requested) => (Stopped, "recording cancelled before it started"),
            (RecordingOp::Pause, _) => return self.refuse(op, "nothing is being recorded"),
            (RecordingOp::Resume, _) => return self.refuse(op, "the recording is not paused"),
            (RecordingOp::Stop, _) => return self.refuse(op, "nothing is being recorded"),
        };
        let was = self.recording;
        self.recording = next;
        // `Requested` has no file yet: nothing for the shell to do until the media starts.
        if next != Requested && was != Requested {
            self.emit(Output::Recording(op));
        }
        self.emit(Output::Timeline {
            kind: "recording",
            note: did.to_owned(),
        });
    }

    fn refuse(&mut self, op: RecordingOp, why: &str) {
        let name = crate::core::activity::Activity::Recording(op).name();
        self.note_once(
            &format!("{name}: {why}"),
            format!("activity `{name}` refused: {why}"),
        );
    }
}
