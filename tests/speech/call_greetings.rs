//! The person's first words inside a real call (issue "First words right"): the simulated
//! carrier callee answers and says a one-word greeting over RTP (G.711) through dialgate's
//! relay; the bot, recognising from the start, gets exactly that word as a `message`.

use crate::common;
use common::sttflows::{SttFlow, SttSetup};
use dialgate::stt::eval::{normalize, read_wav_8k};

/// A one-word "Hi." from the greeting set (Piper's joe voice, telephone band, µ-law).
const HI_WAV: &str = "tests/fixtures/stt-greetings/hi-joe10.wav";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_word_hi_reaches_the_bot() {
    // 1. The callee answers and says "Hi." (then silence); the bot recognises from the start.
    let mut s = SttSetup::new(31600, "conf/greeting.wav");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(HI_WAV);
    s.play = read_wav_8k(&path).expect("greeting clip");
    let f = SttFlow::start(s).await;
    // 2. Dial; the bot gets `start`.
    let id = f.dial().await;
    f.wait_bot_event(&id, "start").await;
    // 3. The bot gets a `message` saying exactly "Hi" — not dropped as a silence
    //    hallucination, not a digit, not another word.
    let msg = f
        .wait_bot_activity(&id, "a `message`", |a| a["type"] == "message")
        .await;
    let text = msg["text"].as_str().unwrap_or_default();
    assert_eq!(normalize(text), ["hi"], "{msg}");
    // 4. The person hangs up; the call ends normally and the transcript holds the word.
    f.callee.hangup_all();
    let end = f.wait_terminal(&id).await;
    assert_eq!(end["status"], "completed", "{end}");
    let rec = f.wait_settled(&id).await;
    let tr = rec["transcript"].as_array().expect("transcript");
    assert_eq!(tr.len(), 1, "{tr:#?}");
    assert_eq!(tr[0]["text"], text, "{tr:#?}");
    f.stop().await;
}
