//! What dialgate plays to the person on the bot's behalf, end to end over real SIP/RTP on
//! loopback (PJSIP as the person and as the SIP bot, a scripted Bot API bot): `sendDtmf` key
//! presses, `playUrl` in place of a SIP bot's audio, `abortPrompts`, barge-in and a SIP bot's
//! `message` spoken with `speak_messages`.
//!
//! Port plan of this file: dialgate's relay RTP 38400-39999 (200 per test), PJSIP RTP
//! 51000-51799 (100 per test: callee at +0, bot at +50).

use crate::common;
use common::audio::clip_similarity;
use common::flows::*;
use common::http_peers::{BotReply, activity};
use common::peers::fixture_audio;
use serde_json::{Value, json};
use std::time::Duration;

/// Relay RTP range and PJSIP RTP base of test number `n` (0-based).
fn ports(n: u16) -> (u16, u16) {
    (38400 + 200 * n, 51000 + 100 * n)
}

/// A flow whose SIP bot talks all the time (noise, looped): what the person hears instead is
/// dialgate's doing. The person records.
fn talking_sip_bot(n: u16) -> FlowSetup {
    let (rtp, peer_rtp) = ports(n);
    let mut setup = FlowSetup::new(rtp, peer_rtp, "200");
    if let Some(bot) = setup.bot.as_mut() {
        bot.play = Some(fixture_audio("noise.wav"));
        bot.play_loop = true;
    }
    setup.callee.record = Some("heard.wav".into());
    setup
}

/// The bot API answers the `start` event with `activities`.
fn answers_start_with(setup: &mut FlowSetup, activities: Vec<Value>) {
    setup.bot_api.replies = vec![BotReply::on_event("start", activities)];
}

/// Waits (bounded) until the person's PJSIP has received `n` key presses; returns their
/// digits in order.
async fn keys_heard(flow: &Flow, n: usize) -> Vec<String> {
    flow.callee
        .wait_nth("dtmf", n, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    flow.callee
        .events_named("dtmf")
        .iter()
        .filter_map(|e| e.str("digit").map(str::to_owned))
        .collect()
}

/// Starts the flow with `fixtures` in its prompts directory ([`install_prompt`]) and dials;
/// returns it and the conversation ID.
async fn start_with_prompts(setup: FlowSetup, fixtures: &[&str]) -> (Flow, String) {
    let flow = Flow::start(setup).await;
    for f in fixtures {
        install_prompt(&flow, f);
    }
    let id = flow.dial(json!({})).await;
    (flow, id)
}

/// The prompt of `id` finishes interrupted, well before its 10.8 s end (8 s after `t0`).
async fn interrupted_early(flow: &Flow, id: &str, t0: tokio::time::Instant) {
    let done = play_finished(flow, id).await;
    assert_eq!(done["parameters"]["interrupted"], true, "{done}");
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
}

/// Puts a fixture into the flow's `data/prompts/` (what `playUrl` `file:NAME` reads).
fn install_prompt(flow: &Flow, fixture: &str) {
    let dir = flow.app.dir.path().join("data").join("prompts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture_audio(fixture), dir.join(fixture)).unwrap();
}

/// The fixture as 8 kHz PCM (dialgate's own decoder).
fn pcm(fixture: &str) -> Vec<i16> {
    let bytes = std::fs::read(fixture_audio(fixture)).unwrap();
    dialgate::tts::audio_file::decode(&bytes, None).unwrap()
}

/// Waits for the `playFinished` of conversation `id`; returns it.
async fn play_finished(flow: &Flow, id: &str) -> Value {
    flow.bot_api
        .wait_for_activity("playFinished", WAIT)
        .await
        .expect("playFinished");
    flow.bot_api
        .activities()
        .into_iter()
        .find(|(c, a)| c == id && a["name"] == "playFinished")
        .map(|(_, a)| a)
        .expect("playFinished of this call")
}

/// Hangs up and returns the person's recording and the settled record.
async fn end_and_recording(flow: &Flow, id: &str) -> (Vec<i16>, Value) {
    flow.hangup(id).await;
    flow.wait_terminal(id).await;
    saw(&flow.callee, "disconnected", |e| e.is("disconnected")).await;
    let heard = wait_wav(&flow.callee.dir().join("heard.wav")).await;
    (heard, flow.wait_record_settled(id).await)
}

#[tokio::test]
async fn send_dtmf_reaches_the_person_in_order_with_its_durations() {
    // 1. A SIP bot answers `start` with a bad digit string, then "1#9".
    let mut setup = talking_sip_bot(0);
    answers_start_with(
        &mut setup,
        vec![activity::send_dtmf("12x"), activity::send_dtmf("1#9")],
    );
    let flow = Flow::start(setup).await;
    let id = flow.dial(json!({})).await;

    // 2. The person's PJSIP receives 1, #, 9 (RFC 4733), in order.
    let digits = keys_heard(&flow, 3).await;
    assert_eq!(digits, ["1", "#", "9"]);

    // 3. Each press ends after 100 ms of tone (its end packets' duration, 800 at 8 kHz).
    let ends = || -> Vec<(String, u64)> {
        flow.callee
            .events_named("dtmf_event")
            .iter()
            .filter(|e| e.0["flags"].as_u64().unwrap_or(0) & 2 != 0)
            .map(|e| {
                (
                    e.str("digit").unwrap_or_default().to_owned(),
                    e.0["duration"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    for _ in 0..50 {
        if ends().len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ends = ends();
    assert_eq!(
        ends.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>(),
        ["1", "#", "9"],
        "{ends:?}"
    );
    assert!(ends.iter().all(|(_, ms)| *ms == 100), "{ends:?}");

    // 4. The bad string was refused with its reason; the call went on.
    let (_, r) = end_and_recording(&flow, &id).await;
    let said = r["timeline"].to_string();
    assert!(said.contains("sendDtmf \\\"12x\\\" refused"), "{said}");
    assert!(said.contains("`x`"), "{said}");
    assert_eq!(r["status"], "completed");
    flow.stop().await;
}

#[tokio::test]
async fn play_url_is_heard_in_place_of_a_sip_bots_audio() {
    // 1. The bot talks (noise); it asks dialgate to play hello.wav to the person.
    let mut setup = talking_sip_bot(1);
    answers_start_with(&mut setup, vec![activity::play_url("file:hello.wav")]);
    let (flow, id) = start_with_prompts(setup, &["hello.wav"]).await;

    // 2. It plays to its end: playFinished, not interrupted.
    let done = play_finished(&flow, &id).await;
    assert!(done["parameters"]["interrupted"].is_null(), "{done}");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 3. The person's recording holds the file itself (not mixed with the bot's noise).
    let (heard, r) = end_and_recording(&flow, &id).await;
    let hello = pcm("hello.wav");
    let sim = clip_similarity(&hello, &heard, heard.len()).expect("the person heard audio");
    assert!(sim.corr > 0.8, "similarity {:.3}", sim.corr);
    // The bot was heard again afterwards (its noise), so its RTP was only held back.
    let after = (sim.lag.max(0) as usize + hello.len() + 1600).min(heard.len());
    let (tail, noise) = (
        common::audio::rms_dbfs(&heard[after..]),
        common::audio::rms_dbfs(&pcm("noise.wav")),
    );
    assert!(
        (tail - noise).abs() < 3.0,
        "the bot's audio did not come back: {tail:.1} dBFS after the prompt, its noise is {noise:.1}"
    );
    let said = r["timeline"].to_string();
    assert!(said.contains("playing file:hello.wav"), "{said}");
    flow.stop().await;
}

#[tokio::test]
async fn abort_prompts_cuts_a_playing_file() {
    // 1. A 10.8 s file, and abortPrompts one second later (the activity's `delay`).
    let mut setup = talking_sip_bot(2);
    let mut abort = activity::event("abortPrompts");
    abort["delay"] = json!(1000);
    answers_start_with(
        &mut setup,
        vec![activity::play_url("file:machine.wav"), abort],
    );
    let (flow, id) = start_with_prompts(setup, &["machine.wav"]).await;
    let t0 = tokio::time::Instant::now();

    // 2. playFinished, interrupted, long before the file's end.
    interrupted_early(&flow, &id, t0).await;
    flow.hangup(&id).await;
    flow.wait_terminal(&id).await;
    flow.stop().await;
}

#[tokio::test]
async fn barge_in_the_person_speaking_cuts_the_prompt() {
    // 1. outbound.barge_in; the bot plays a 10.8 s file; the person says "Hello?" (looped).
    let mut setup = talking_sip_bot(3);
    setup.outbound_extra = vec!["barge_in: true".into()];
    setup.callee.play = Some(fixture_audio("hello.wav"));
    setup.callee.play_loop = true;
    answers_start_with(&mut setup, vec![activity::play_url("file:machine.wav")]);
    let (flow, id) = start_with_prompts(setup, &["machine.wav"]).await;
    let t0 = tokio::time::Instant::now();

    // 2. The prompt stops when the person speaks: playFinished interrupted.
    interrupted_early(&flow, &id, t0).await;
    let (_, r) = end_and_recording(&flow, &id).await;
    assert!(r["timeline"].to_string().contains("barge-in"));
    flow.stop().await;
}

#[tokio::test]
async fn a_sip_bots_message_is_spoken_with_speak_messages() {
    // 1. A SIP bot that opted in (outbound.speak_messages) answers `start` with text.
    let mut setup = talking_sip_bot(4);
    setup.outbound_extra = vec!["speak_messages: true".into()];
    setup.with_voice = true;
    let text = "Hello, we are calling about your order from last week.";
    answers_start_with(&mut setup, vec![activity::message(text)]);
    let flow = Flow::start(setup).await;
    let id = flow.dial(json!({})).await;
    play_finished(&flow, &id).await;

    // 2. The person's recording, recognised by Whisper, holds the words.
    let (heard, _) = end_and_recording(&flow, &id).await;
    assert_heard(heard, text, "order").await;
    flow.stop().await;
}

/// A minimal HTTP/1.1 file server on loopback: `GET /hello.wav` answers the fixture, any other
/// path 404. Counts the requests per path (to see the cache at work).
struct FileServer {
    url: String,
    hits: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FileServer {
    async fn start(fixture: &'static str) -> FileServer {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let body = std::fs::read(fixture_audio(fixture)).unwrap();
        let seen = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut req = vec![0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut req))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                let head = String::from_utf8_lossy(&req[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
                seen.lock().unwrap().push(path.clone());
                let resp = if path == format!("/{fixture}") {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: audio/wav\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(&body);
                    r
                } else {
                    b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        .to_vec()
                };
                let _ = s.write_all(&resp).await;
                let _ = s.shutdown().await;
            }
        });
        FileServer { url, hits }
    }

    fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|p| *p == path)
            .count()
    }
}

#[tokio::test]
async fn play_url_over_http_is_fetched_once_and_a_missing_file_is_reported() {
    // 1. The bot asks for a missing file, then the same file twice (flows allow 127.0.0.0/8 in
    //    server.notify_allow, which is what lets dialgate fetch from loopback).
    let files = FileServer::start("hello.wav").await;
    let mut setup = talking_sip_bot(5);
    let (missing, hello) = (
        format!("{}/missing.wav", files.url),
        format!("{}/hello.wav", files.url),
    );
    answers_start_with(
        &mut setup,
        vec![
            activity::play_url(&missing),
            activity::play_url(&hello),
            activity::play_url(&hello),
        ],
    );
    let flow = Flow::start(setup).await;
    let id = flow.dial(json!({})).await;

    // 2. The missing one: playUrlFailed with the URL and why; the call goes on.
    flow.bot_api
        .wait_for_activity("playUrlFailed", WAIT)
        .await
        .expect("playUrlFailed");
    let failed = flow
        .bot_api
        .activities()
        .into_iter()
        .find(|(c, a)| *c == id && a["name"] == "playUrlFailed")
        .map(|(_, a)| a)
        .unwrap();
    assert_eq!(failed["value"], missing.as_str());
    assert!(
        failed["parameters"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("404")),
        "{failed}"
    );

    // 3. The file plays twice (heard by the person), fetched once.
    play_finished(&flow, &id).await;
    let (heard, r) = end_and_recording(&flow, &id).await;
    assert_eq!(
        files.hits("/hello.wav"),
        1,
        "the second play comes from the cache"
    );
    let sim = clip_similarity(&pcm("hello.wav"), &heard, heard.len()).expect("audio");
    assert!(sim.corr > 0.8, "similarity {:.3}", sim.corr);
    assert_eq!(r["status"], "completed");
    flow.stop().await;
}

#[tokio::test]
async fn a_text_bots_send_dtmf_reaches_the_person() {
    // 1. A text bot (dialgate is its voice) answers `start` with keys.
    let (rtp, peer_rtp) = ports(6);
    let mut setup = FlowSetup::new(rtp, peer_rtp, "200");
    setup.text_bot = true;
    answers_start_with(&mut setup, vec![activity::send_dtmf("*0D")]);
    let flow = Flow::start(setup).await;
    let id = flow.dial(json!({})).await;

    // 2. The person's PJSIP receives them in order.
    let digits = keys_heard(&flow, 3).await;
    assert_eq!(digits, ["*", "0", "D"]);
    flow.hangup(&id).await;
    flow.wait_terminal(&id).await;
    flow.stop().await;
}

#[tokio::test]
async fn a_prompt_queued_right_after_abort_prompts_still_plays_and_is_reported() {
    // 1. A 5 s file (fax tones: nothing like speech, so the recording's speech is the second
    //    file); one second later abortPrompts and, in the same breath, another file.
    let mut setup = talking_sip_bot(7);
    let later = |mut a: Value| {
        a["delay"] = json!(1000);
        a
    };
    answers_start_with(
        &mut setup,
        vec![
            activity::play_url("file:fax.wav"),
            later(activity::event("abortPrompts")),
            later(activity::play_url("file:hello.wav")),
        ],
    );
    let (flow, id) = start_with_prompts(setup, &["fax.wav", "hello.wav"]).await;
    flow.bot_api
        .wait_for_activity("start", WAIT)
        .await
        .expect("start");
    let t0 = tokio::time::Instant::now();

    // 2. One playFinished, after the second file (1 s + 1.9 s; the abort's own drain is not
    //    taken for the end of the queue), and it says the queue was cut on the way.
    let done = play_finished(&flow, &id).await;
    assert!(
        t0.elapsed() > Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(done["parameters"]["interrupted"], true, "{done}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (heard, _) = end_and_recording(&flow, &id).await;
    let sim = clip_similarity(&pcm("hello.wav"), &heard, heard.len()).expect("audio");
    assert!(
        sim.corr > 0.8,
        "the file after the abort: similarity {:.3}",
        sim.corr
    );
    let finished = flow
        .bot_api
        .activities()
        .into_iter()
        .filter(|(c, a)| *c == id && a["name"] == "playFinished")
        .count();
    assert_eq!(finished, 1);
    flow.stop().await;
}
