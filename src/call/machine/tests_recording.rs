//! The recording activities on a simulated clock, in every state of the recording.

use super::tests::Sim;
use super::*;
use crate::core::activity::{RecordingOp, parse};
use serde_json::json;

fn rec(name: &str) -> Input {
    Input::BotActivity(parse(&json!({"type": "event", "name": name})))
}

fn outputs(acts: &[Output]) -> (Vec<RecordingOp>, Vec<String>) {
    let mut ops = Vec::new();
    let mut notes = Vec::new();
    for a in acts {
        match a {
            Output::Recording(op) => ops.push(*op),
            Output::Timeline { note, .. } => notes.push(note.clone()),
            _ => {}
        }
    }
    (ops, notes)
}

#[test]
fn a_recording_bot_records_from_the_answer_and_can_pause_resume_and_stop() {
    let mut s = Sim::new(MachineConfig {
        recording: true,
        ..MachineConfig::default()
    });
    // 1. The answer starts the media, then the recording.
    let st = s.answered();
    let media = st.acts.iter().position(|a| *a == Output::StartMedia);
    let start = st
        .acts
        .iter()
        .position(|a| *a == Output::Recording(RecordingOp::Start));
    assert!(media.is_some() && start > media, "{:?}", st.acts);
    s.at(5_200).ev(Input::BotAnswered);
    // 2. Pause, resume, stop: each carried out and on the timeline.
    for (name, op, line) in [
        ("pauseCallRecording", RecordingOp::Pause, "paused"),
        ("resumeCallRecording", RecordingOp::Resume, "resumed"),
        ("stopCallRecording", RecordingOp::Stop, "closed"),
    ] {
        let (ops, notes) = outputs(&s.at(6_000).ev(rec(name)).acts);
        assert_eq!(ops, [op], "{name}");
        assert!(notes[0].contains(line), "{notes:?}");
    }
    // 3. Start after stop: refused (one recording per call), noted once.
    let (ops, notes) = outputs(&s.ev(rec("startCallRecording")).acts);
    assert!(ops.is_empty());
    assert!(notes[0].contains("refused"), "{notes:?}");
    assert!(s.ev(rec("startCallRecording")).acts.is_empty());
}

#[test]
fn without_recording_in_the_config_the_bot_starts_it() {
    let mut s = Sim::new(MachineConfig::default());
    // 1. Asked before the answer (an answer to dialoutInitiated): it starts with the media.
    s.ringing();
    let (ops, _) = outputs(&s.at(1_000).ev(rec("StartCallRecording")).acts);
    assert!(ops.is_empty());
    let st = s.at(5_000).ev(Input::CarrierAnswered { sdp_ok: true });
    assert!(st.acts.contains(&Output::Recording(RecordingOp::Start)));
    // 2. A second start, a resume that is not paused: refused, nothing done.
    s.at(5_200).ev(Input::BotAnswered);
    for name in ["startCallRecording", "resumeCallRecording"] {
        let (ops, notes) = outputs(&s.at(6_000).ev(rec(name)).acts);
        assert!(ops.is_empty() && notes[0].contains("refused"), "{notes:?}");
    }
}

#[test]
fn a_call_not_recorded_refuses_pause_and_stop_and_starts_on_request() {
    let mut s = Sim::new(MachineConfig::default());
    s.connected();
    for name in ["pauseCallRecording", "stopCallRecording"] {
        let (ops, notes) = outputs(&s.at(6_000).ev(rec(name)).acts);
        assert!(ops.is_empty() && notes[0].contains("nothing is being recorded"));
    }
    let (ops, notes) = outputs(&s.at(7_000).ev(rec("startCallRecording")).acts);
    assert_eq!(ops, [RecordingOp::Start]);
    assert_eq!(notes, ["recording started"]);
    // Stopping while paused closes the file too.
    s.ev(rec("pauseCallRecording"));
    let (ops, _) = outputs(&s.ev(rec("stopCallRecording")).acts);
    assert_eq!(ops, [RecordingOp::Stop]);
}
