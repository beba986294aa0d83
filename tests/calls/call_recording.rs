//! The recording activities inside a real call (issue 12 item 6): the bot pauses the stereo
//! recording and resumes it; what the person says while it is paused is not in the file (the
//! stretch is silence, so the file stays as long as the call), what they say after the resume
//! is. Ports: relay RTP 37600-37799.

use crate::common;
use std::sync::Arc;
use std::time::Duration;

use common::audio::{clip_similarity, rms_dbfs};
use common::mediaflows::{MediaFlow, MediaSetup, ms_between, wait_sim_ended};
use common::simcall::{samples, timeline};
use serde_json::json;

const RATE: usize = 8000;

/// The callee says "Hello?" twice: after 1.5 s of silence, and again 3 s after the first ends.
fn hello_twice() -> (Arc<Vec<i16>>, usize) {
    let hello = samples("tests/fixtures/audio/hello.wav");
    let mut play = vec![0i16; RATE * 3 / 2];
    play.extend(&hello);
    play.extend(std::iter::repeat_n(0i16, RATE * 3));
    let second = play.len();
    play.extend(&hello);
    (Arc::new(play), second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_stretch_is_silent_in_the_recording_and_the_resume_continues_the_file() {
    let mut s = MediaSetup::sim(37600, "tests/fixtures/audio/hello.wav");
    s.recording = true;
    let (play, second) = hello_twice();
    if let common::mediaflows::Carrier::Sim(o) = &mut s.carrier {
        o.play = play;
        o.hangup = dialgate::sim::Hangup::AfterAudio(Duration::from_secs(1));
    }
    // The bot answers `start` by pausing the recording at once and resuming it 4 s later:
    // the first "Hello?" (1.5 s to 3.4 s after the answer) falls in the pause, the second
    // (6.4 s to 8.3 s) after the resume.
    s.bot_on_start = vec![
        json!({"type": "event", "name": "pauseCallRecording"}),
        json!({"type": "event", "name": "resumeCallRecording", "delay": 4000}),
    ];
    let f = MediaFlow::start(s).await;
    // 1. Dial; the callee answers, says "Hello?" twice and hangs up.
    let id = f.dial(json!({})).await;
    let end = f.wait_terminal(&id).await;
    assert_eq!(end["reasonCode"], "client-disconnected", "{end}");
    wait_sim_ended(f.callee(), "callee").await;
    // 2. The timeline says the recording was paused, then resumed.
    let rec = f.wait_settled(&id).await;
    let tl = timeline(&rec);
    let paused = tl.iter().position(|l| l.contains("recording paused"));
    let resumed = tl.iter().position(|l| l.contains("recording resumed"));
    assert!(paused.is_some() && resumed > paused, "{tl:#?}");
    // 3. One file, as long as the talk time (the pause is silence, not cut out).
    let path = rec["recording"].as_str().expect("recording path");
    let mut wav = hound::WavReader::open(path).expect("the recording is a WAV");
    let all: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = all.iter().step_by(2).copied().collect();
    let wav_ms = left.len() as i64 / 8;
    let talk_ms = ms_between(&rec, "answeredAt", "endedAt");
    assert!(
        (wav_ms - talk_ms).abs() <= 1500,
        "recording {wav_ms} ms, talk time {talk_ms} ms"
    );
    // 4. The first "Hello?" is not in the file: its stretch of the callee's channel is silence.
    let first_end = RATE * 3 / 2 + samples("tests/fixtures/audio/hello.wav").len();
    let paused_part = &left[..(first_end + RATE / 4).min(left.len())];
    let level = rms_dbfs(paused_part);
    assert!(level < -60.0, "paused stretch at {level:.1} dBFS");
    // 5. The second one is, after the pause, where the callee said it.
    let hello = samples("tests/fixtures/audio/hello.wav");
    let a = clip_similarity(&hello, &left, left.len()).expect("the callee's channel has audio");
    assert!(a.corr > 0.8, "callee channel vs hello.wav: {a:?}");
    let at = a.lag as f64 / RATE as f64;
    let said = second as f64 / RATE as f64;
    assert!(
        (at - said).abs() < 1.0,
        "the recorded hello is at {at:.2} s, the callee said it at {said:.2} s"
    );
    assert_eq!(f.statuses(&id), ["answered", "completed"]);
    f.stop().await;
}
