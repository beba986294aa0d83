//! Carrier interop over real SIP on loopback (issue 16): session timers (RFC 4028), reliable
//! provisionals (RFC 3262) and the retries after 422 and 420. SIPp plays the carrier with
//! `tests/sipp/carrier_*.xml` scenarios that check the headers dialgate sends (SIPp exits
//! non-zero on a failed check or an unexpected message) and a SIPp bot answers.
//! Ports: SIP 16520-16559, relay RTP 31000-31889, SIPp media 31790 and 31890.

use crate::common;
use common::simcall::{assert_rejected_for, timeline_details as details};
use std::time::{Duration, Instant};

use common::audio::ringback_then_sit;
use common::peers::Sipp;
use common::sippflows::*;
use serde_json::json;

fn seq(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn trunk(port: u16, extra: &[&str]) -> Trunk {
    Trunk {
        address: format!("127.0.0.1:{port}"),
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// SIP port of test `n`'s carrier (0-based; its bot listens on the next port).
fn carrier_port(n: u16) -> u16 {
    16520 + 2 * n
}

/// Test `n`'s SIPp bot (answers, waits for BYE) and flow: relay RTP 31000 + 100n up to +89
/// (the 90s are the early-media tests' SIPp media), the trunk at [`carrier_port`] with the
/// extra keys `extra`.
async fn bot_and_flow(n: u16, extra: &[&str]) -> (Sipp, Flow) {
    let bot_port = carrier_port(n) + 1;
    let botp = uas("flow_bot_answer.xml", bot_port, 40);
    let rtp = 31000 + 100 * n;
    let f = start_flow(FlowSetup {
        rtp: (rtp, rtp + 89),
        bot_port,
        trunk: trunk(carrier_port(n), extra),
    })
    .await;
    (botp, f)
}

/// Dials test `n`'s number (`+1555124000<n + 1>`) and waits for the call's end: the person
/// hung up (completed, client-disconnected). Returns the conversation ID.
async fn dial_completed_by_person(f: &Flow, n: u16) -> String {
    let id = f.dial(&format!("+1555124{:04}", n + 1), json!({})).await;
    let term = one_terminal(&f.sink, &id).await;
    assert_eq!(term["status"], "completed", "{term}");
    assert_eq!(term["reasonCode"], "client-disconnected", "{term}");
    id
}

/// The bot's view of an answered call ended by dialgate.
fn bot_answer() -> Vec<String> {
    seq(&["<INVITE", ">200", "<ACK", "<BYE", ">200"])
}

#[tokio::test]
async fn dialgate_refreshes_the_session_with_update() {
    // 1. Carrier: 200 with `Session-Expires: 4;refresher=uac` (dialgate refreshes, every 2 s),
    //    Allow with UPDATE; it expects two UPDATEs carrying `Session-Expires: 4;refresher=uac`,
    //    then hangs up. The INVITE must carry `Supported: timer`.
    let carrier = uas("carrier_timer_refresh.xml", carrier_port(0), 40);
    let (botp, f) = bot_and_flow(0, &[]).await;
    // 2. Dial.
    // 3. The person hung up after the refreshes: completed, client-disconnected.
    let id = dial_completed_by_person(&f, 0).await;
    // 4. The carrier saw the INVITE with the timer headers and exactly two UPDATE refreshes.
    let clog = saw_exactly(
        &carrier,
        "carrier scenario",
        &[
            "<INVITE", ">200", "<ACK", "<UPDATE", ">200", "<UPDATE", ">200", ">BYE", "<200",
        ],
    )
    .await;
    let invite = &sip_messages(&clog)[0].1;
    assert!(invite.contains("Session-Expires: 1800"), "{invite}");
    assert!(invite.contains("Min-SE: 90"), "{invite}");
    assert!(invite.contains("100rel"), "{invite}");
    saw_exactly(&botp, "bot scenario", &bot_answer()).await;
    // 5. The record notes the negotiated session.
    let rec = f.settled(&id).await;
    let st = details(&rec, "session-timer");
    assert!(
        st.iter()
            .any(|d| d == "session interval 4 s, refresher dialgate"),
        "{rec:#}"
    );
    f.stop().await;
}

#[tokio::test]
async fn a_missing_refresh_from_the_carrier_ends_the_call_with_error() {
    // 1. Carrier: 200 with `Session-Expires: 6;refresher=uas` (the carrier refreshes) and
    //    then never refreshes; it expects dialgate's BYE.
    let carrier = uas("carrier_timer_expires.xml", carrier_port(1), 40);
    let (botp, f) = bot_and_flow(1, &[]).await;
    // 2. Dial.
    let t0 = Instant::now();
    let id = f.dial("+15551240002", json!({})).await;
    // 3. dialgate ended the call at the expiry (6 - 2 = 4 s after the answer): completed,
    //    reasonCode error, "session timer expired". Bounded well below the 30 s ring timeout.
    let term = one_terminal_within(&f.sink, &id, Duration::from_secs(25)).await;
    assert_eq!(term["status"], "completed");
    assert_eq!(term["reasonCode"], "error");
    let reason = term["reason"].as_str().unwrap_or("");
    assert!(reason.contains("session timer expired"), "{term}");
    assert!(t0.elapsed() >= Duration::from_secs(4), "{:?}", t0.elapsed());
    // 4. The carrier got the BYE, the bot too.
    saw_exactly(
        &carrier,
        "carrier scenario",
        &["<INVITE", ">200", "<ACK", "<BYE", ">200"],
    )
    .await;
    saw_exactly(&botp, "bot scenario", &bot_answer()).await;
    let rec = f.settled(&id).await;
    assert_eq!(rec["reasonCode"], "error", "{rec:#}");
    f.stop().await;
}

#[tokio::test]
async fn a_422_is_retried_with_the_carriers_min_se() {
    // 1. Carrier: 422 with `Min-SE: 3600` to an INVITE asking 1800 s, then expects the INVITE
    //    again with `Session-Expires: 3600` (checked by the scenario), answers and hangs up.
    let carrier = uas("carrier_422.xml", carrier_port(2), 40);
    let (botp, f) = bot_and_flow(2, &[]).await;
    // 2. Dial.
    // 3. Answered and completed by the person: the 422 was not the end of the call.
    dial_completed_by_person(&f, 2).await;
    // 4. The carrier's view: 422, ACK, the second INVITE with the same Call-ID.
    let clog = saw_exactly(
        &carrier,
        "carrier scenario",
        &[
            "<INVITE", ">422", "<ACK", "<INVITE", ">180", ">200", "<ACK", ">BYE", "<200",
        ],
    )
    .await;
    let msgs = sip_messages(&clog);
    assert!(msgs[3].1.contains("Min-SE: 3600"), "{}", msgs[3].1);
    passed(&botp, "bot scenario").await;
    f.stop().await;
}

#[tokio::test]
async fn a_reliable_183_is_pracked_before_the_answer() {
    // 1. Carrier: 183 with SDP, `Require: 100rel`, `RSeq: 1`; expects a PRACK with
    //    `RAck: 1 <cseq> INVITE`, answers it, then answers the INVITE and hangs up.
    let carrier = uas("carrier_reliable_183.xml", carrier_port(3), 40);
    let (botp, f) = bot_and_flow(3, &[]).await;
    // 2. Dial.
    // 3. Completed by the person.
    dial_completed_by_person(&f, 3).await;
    // 4. The PRACK came between the 183 and the 200.
    saw_exactly(
        &carrier,
        "carrier scenario",
        &[
            "<INVITE", ">183", "<PRACK", ">200", ">200", "<ACK", ">BYE", "<200",
        ],
    )
    .await;
    passed(&botp, "bot scenario").await;
    f.stop().await;
}

#[tokio::test]
async fn a_420_for_100rel_is_retried_without_the_extension() {
    // 1. The trunk has `require_100rel: true`; the carrier answers 420 `Unsupported: 100rel`
    //    and expects the INVITE again without `Require: 100rel` (checked by the scenario).
    let carrier = uas("carrier_420_100rel.xml", carrier_port(4), 40);
    let (botp, f) = bot_and_flow(4, &["require_100rel: true"]).await;
    // 2. Dial.
    // 3. Completed by the person.
    dial_completed_by_person(&f, 4).await;
    // 4. The carrier's view: 420, ACK, the INVITE again, answered.
    let clog = saw_exactly(
        &carrier,
        "carrier scenario",
        &[
            "<INVITE", ">420", "<ACK", "<INVITE", ">180", ">200", "<ACK", ">BYE", "<200",
        ],
    )
    .await;
    let msgs = sip_messages(&clog);
    assert!(msgs[0].1.contains("Require: 100rel"), "{}", msgs[0].1);
    assert!(!msgs[3].1.contains("100rel"), "{}", msgs[3].1);
    passed(&botp, "bot scenario").await;
    f.stop().await;
}

#[tokio::test]
async fn without_update_in_allow_the_refresh_is_a_reinvite_with_sdp() {
    // 1. Carrier: like the UPDATE case, but its Allow has no UPDATE: it expects two
    //    re-INVITEs carrying SDP and `Session-Expires: 4;refresher=uac`, each answered and ACKed.
    let carrier = uas("carrier_timer_reinvite.xml", carrier_port(5), 40);
    let (botp, f) = bot_and_flow(5, &[]).await;
    // 2. Dial.
    // 3. Completed by the person after the refreshes.
    dial_completed_by_person(&f, 5).await;
    saw_exactly(
        &carrier,
        "carrier scenario",
        &[
            "<INVITE", ">200", "<ACK", "<INVITE", ">200", "<ACK", "<INVITE", ">200", "<ACK",
            ">BYE", "<200",
        ],
    )
    .await;
    passed(&botp, "bot scenario").await;
    f.stop().await;
}

#[tokio::test]
async fn the_carriers_refresh_is_answered_and_keeps_the_call_up() {
    // 1. Carrier: refresher of a 6 s session (dialgate would end it 4 s after the answer);
    //    it refreshes with a bodiless UPDATE at 2.5 s, expects `Session-Expires` in the 200,
    //    and hangs up itself at 5.5 s — after the first expiry would have struck.
    let carrier = uas("carrier_timer_peer_refresh.xml", carrier_port(6), 40);
    let (botp, f) = bot_and_flow(6, &[]).await;
    // 2. Dial.
    // 3. The person hung up (no "session timer expired").
    dial_completed_by_person(&f, 6).await;
    saw_exactly(
        &carrier,
        "carrier scenario",
        &["<INVITE", ">200", "<ACK", ">UPDATE", "<200", ">BYE", "<200"],
    )
    .await;
    passed(&botp, "bot scenario").await;
    f.stop().await;
}

#[tokio::test]
async fn a_sit_in_early_media_fails_the_call_long_before_the_ring_timeout() {
    // 1. Carrier: 183 with SDP, then RTP: ringback, then SIT tones; it expects a CANCEL.
    let dir = tempfile::tempdir().unwrap();
    let audio = write_ulaw(dir.path(), "sit.ulaw", &ringback_then_sit());
    let early = "carrier_early_media_until_cancel.xml";
    let xml_path = scenario_with_audio(dir.path(), early, &audio, "early.xml");
    let carrier = uas_file(&xml_path, carrier_port(7), 40, &["-mp", "31790"]);
    let (botp, f) = bot_and_flow(7, &[]).await;
    // 2. Dial with a 60 s ring timeout.
    let t0 = Instant::now();
    let id = f
        .dial("+15551240008", json!({"answerTimeoutSec": 60}))
        .await;
    // 3. failed / rejected, the reason says "number not in service" and names the SIT, well
    //    before the ring timeout (the tones end ~2.5 s after the 183).
    let term = one_terminal_within(&f.sink, &id, Duration::from_secs(30)).await;
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert_eq!(term["status"], "failed", "{term}");
    assert_eq!(term["reasonCode"], "rejected", "{term}");
    let reason = term["reason"].as_str().unwrap_or("");
    assert!(reason.contains("number not in service"), "{term}");
    assert!(reason.contains("SIT tones"), "{term}");
    // 4. The carrier saw the CANCEL; the bot was never called.
    saw_exactly(
        &carrier,
        "carrier scenario",
        &["<INVITE", ">183", "<CANCEL", ">200", ">487", "<ACK"],
    )
    .await;
    let rec = f.settled(&id).await;
    assert_rejected_for(&rec, "SIT tones");
    let bot = botp.stop().await.expect("bot SIPp stopped");
    assert!(!bot.messages.contains("INVITE"), "{}", bot.messages);
    f.stop().await;
}

/// US ringback cadence (8 kHz PCM): 2 s of 440+480 Hz, 1 s of silence, 2 s again.
fn ringback() -> Vec<i16> {
    let on: Vec<i16> = (0..16000)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let v = (2.0 * std::f32::consts::PI * 440.0 * t).sin()
                + (2.0 * std::f32::consts::PI * 480.0 * t).sin();
            (v * 4000.0) as i16
        })
        .collect();
    let mut pcm = on.clone();
    pcm.extend(vec![0i16; 8000]);
    pcm.extend(on);
    pcm
}

#[tokio::test]
async fn plain_ringback_in_early_media_is_ignored_and_the_answer_takes_over() {
    // 1. Carrier: 183 with SDP and ringback RTP for 3.5 s, then 200 whose SDP names another
    //    media port; it hangs up 0.5 s later.
    let dir = tempfile::tempdir().unwrap();
    let audio = write_ulaw(dir.path(), "ringback.ulaw", &ringback());
    let then_answer = "carrier_early_ringback_then_answer.xml";
    let xml_path = scenario_with_audio(dir.path(), then_answer, &audio, "ringback.xml");
    let carrier = uas_file(&xml_path, carrier_port(8), 40, &["-mp", "31890"]);
    let (botp, f) = bot_and_flow(8, &[]).await;
    // 2. Dial.
    // 3. The ringback did not end the call: answered, then completed by the person.
    let id = dial_completed_by_person(&f, 8).await;
    saw_exactly(
        &carrier,
        "carrier scenario",
        &["<INVITE", ">183", ">200", "<ACK", ">BYE", "<200"],
    )
    .await;
    passed(&botp, "bot scenario").await;
    // 4. The record shows early media was listened to, and nothing was heard in it.
    let rec = f.settled(&id).await;
    assert_eq!(details(&rec, "early-media").len(), 1, "{rec:#}");
    f.stop().await;
}

#[tokio::test]
async fn an_intercept_announcement_in_early_media_fails_the_call_with_its_words() {
    // 1. Carrier: 183 with SDP, then "We're sorry. The number you have dialed is not in service…"
    //    (espeak-ng, tests/fixtures/audio/intercept_not_in_service.wav) over RTP, then silence;
    //    it expects a CANCEL. dialgate recognises early media with Whisper tiny.en.
    let dir = tempfile::tempdir().unwrap();
    let mut pcm = vec![0i16; 4000];
    pcm.extend(common::simcall::samples(
        "tests/fixtures/audio/intercept_not_in_service.wav",
    ));
    pcm.extend(vec![0i16; 8000 * 20]);
    let audio = write_ulaw(dir.path(), "announcement.ulaw", &pcm);
    let early = "carrier_early_media_until_cancel.xml";
    let xml_path = scenario_with_audio(dir.path(), early, &audio, "announcement.xml");
    let carrier = uas_file(&xml_path, 16538, 120, &["-mp", "31990"]);
    let botp = uas("flow_bot_answer.xml", 16539, 120);
    let f = start_flow_with_model(FlowSetup {
        rtp: (31900, 31989),
        bot_port: 16539,
        trunk: trunk(16538, &[]),
    })
    .await;
    // 2. Dial with a 120 s ring timeout.
    let t0 = Instant::now();
    let id = f
        .dial("+15551240010", json!({"answerTimeoutSec": 120}))
        .await;
    // 3. failed / rejected with the recognised words, well before the ring timeout (the
    //    bound allows for Whisper on a loaded machine).
    let term = one_terminal_within(&f.sink, &id, Duration::from_secs(90)).await;
    assert!(t0.elapsed() < Duration::from_secs(90), "{:?}", t0.elapsed());
    assert_eq!(term["status"], "failed", "{term}");
    assert_eq!(term["reasonCode"], "rejected", "{term}");
    let reason = term["reason"].as_str().unwrap_or("").to_lowercase();
    assert!(reason.contains("intercept announcement"), "{term}");
    assert!(reason.contains("not in service"), "{term}");
    // 4. The carrier saw the CANCEL; the words are on the record's transcript.
    saw_exactly(
        &carrier,
        "carrier scenario",
        &["<INVITE", ">183", "<CANCEL", ">200", ">487", "<ACK"],
    )
    .await;
    let rec = f.settled(&id).await;
    assert!(
        rec["transcript"]
            .to_string()
            .to_lowercase()
            .contains("not in service"),
        "{rec:#}"
    );
    let bot = botp.stop().await.expect("bot SIPp stopped");
    assert!(!bot.messages.contains("INVITE"), "{}", bot.messages);
    f.stop().await;
}
