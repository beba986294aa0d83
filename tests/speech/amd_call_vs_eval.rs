//! `amd-eval`'s path and a real call decide alike (issue "First words right"): the same clip is
//! (a) recognised as `amd-eval` does — the machine-detection session fed in simulated real
//! time, each text reaching the detector at end of speech + measured latency — and scored by the
//! detector, and (b) played by a PJSIP person answering a call that dialgate places over SIP/RTP
//! with machine detection on and the speech model installed. Both must give the same decision.
//!
//! The clip is the hard one: a long business greeting ("Good afternoon, Parker Dental, this is
//! Linda speaking, how can I help you?"), a `machine` by its length alone and a `human` only by
//! its transcript. Both sides get a 30 s transcript hold: on a loaded machine the call's
//! transcript can come seconds late, and the default 3 s hold would then fall back to the
//! audio-only decision (a timing matter of the machine, not of the decision logic compared).

use crate::common;
use std::time::{Duration, Instant};

use common::flows::{Flow, FlowSetup};
use common::peers::repo_root;
use serde_json::json;

const CLIP: &str = "tests/fixtures/amd/dev-047.wav";
const HOLD_MS: u32 = 30_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amd_eval_path_and_a_pjsip_call_decide_alike() {
    // 1. The amd-eval path: recognise the clip as a call's detection session would, then run
    //    the detector over the audio with the texts arriving when a call would have them. It
    //    runs in simulated time but takes the cores, so it holds the binary's CPU slot too.
    let cpu = common::cpu::exclusive().await;
    let path = repo_root().join(CLIP);
    let samples = dialgate::stt::eval::read_wav_8k(&path).unwrap();
    let engine = dialgate::stt::SttEngine::new(dialgate::stt::SttEngineConfig {
        data_dir: repo_root().join("data"),
        ..Default::default()
    });
    assert!(
        matches!(engine.status(), dialgate::stt::SttStatus::Ready { .. }),
        "speech model missing: run scripts/setup-model ({:?})",
        engine.status()
    );
    let transcript = dialgate::stt::eval::transcript_for_amd(&engine, &samples).unwrap();
    let params = dialgate::amd::AmdParams {
        transcript_hold_ms: HOLD_MS,
        ..Default::default()
    };
    let eval = dialgate::amd::run_clip_with(&samples, &params, &transcript);
    assert_eq!(
        eval.decision.as_str(),
        "human",
        "eval: {eval:?}, {transcript:?}"
    );
    drop(engine);
    drop(cpu);

    // 2. The call: a PJSIP callee answers and plays the same clip; dialgate detects with its
    //    recogniser (the model linked into its data directory); the flow holds the CPU slot.
    let mut setup = FlowSetup::new(27400, 45000, "200");
    setup.callee.play = Some(path.clone());
    setup.with_model = true;
    setup.amd_hold_ms = Some(HOLD_MS);
    let flow = Flow::start(setup).await;
    let id = flow.dial(json!({"machineDetection": "detect"})).await;

    // 3. The bot gets `machineDetection` (bounded wait: the clip is 8 s, the hold 30 s).
    let deadline = Instant::now() + Duration::from_secs(90);
    let md = loop {
        if let Some(a) = flow.bot_activity(&id, "machineDetection") {
            break a;
        }
        assert!(Instant::now() < deadline, "no machineDetection for {id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // 4. Same decision as the amd-eval path.
    assert_eq!(
        md["value"],
        eval.decision.as_str(),
        "call: {md}, eval: {eval:?}"
    );
    flow.hangup(&id).await;
    flow.stop().await;
}
