//! Carrier interop over real SIP on loopback (issue 16): session timers (RFC 4028), reliable
//! provisionals (RFC 3262) and the retries after 422 and 420. SIPp plays the carrier with
//! `tests/sipp/carrier_*.xml` scenarios that check the headers dialgate sends (SIPp exits
//! non-zero on a failed check or an unexpected message) and a SIPp bot answers.
//! Ports: SIP 16520-16559, relay RTP 31000-31889, SIPp media 31790 and 31890.

use crate::common;
use common::simcall::{
    assert_rejected_for, assert_term_rejected_for, assert_transcript_says,
    timeline_details as details,
};
use std::time::{Duration, Instant};

use common::audio::ringback_then_sit;
use common::peers::Sipp;
use common::sippflows::*;
use serde_json::{Value, json};

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

/// A call of test `n` that the person ends.
struct Ended {
    f: Flow,
    /// The conversation ID.
    id: String,
    /// The carrier's messages, as [`sip_messages`] lists them.
    carrier: Vec<(String, String)>,
    /// The bot's message log.
    bot: String,
}

/// Test `n`'s call with `carrier` (a SIPp carrier on [`carrier_port`]) and the trunk's extra
/// keys `extra`: dials and waits for the person's hang-up ([`dial_completed_by_person`]);
/// the carrier's scenario passed having seen exactly `want` (its messages as [`sip_flow`]
/// labels them, space-separated), the bot's scenario passed.
async fn person_ends_call(n: u16, carrier: Sipp, extra: &[&str], want: &str) -> Ended {
    let (botp, f) = bot_and_flow(n, extra).await;
    let id = dial_completed_by_person(&f, n).await;
    let want: Vec<&str> = want.split(' ').collect();
    let clog = saw_exactly(&carrier, "carrier scenario", &want).await;
    let bot = passed(&botp, "bot scenario").await;
    Ended {
        f,
        id,
        carrier: sip_messages(&clog),
        bot,
    }
}

/// A SIPp carrier playing `scenario` with `pcm` as its RTP stream (SIPp media port
/// `media_port`) on port `port_and_timeout.0`, giving up after `port_and_timeout.1` seconds.
fn carrier_playing(
    dir: &tempfile::TempDir,
    scenario: &str,
    pcm: &[i16],
    port_and_timeout: (u16, u32),
    media_port: &str,
) -> Sipp {
    let audio = write_ulaw(dir.path(), "audio.ulaw", pcm);
    let xml = scenario_with_audio(dir.path(), scenario, &audio, "scenario.xml");
    let (port, timeout_s) = port_and_timeout;
    uas_file(&xml, port, timeout_s, &["-mp", media_port])
}

/// Dials `target` with a ring timeout of `ring_s` and waits for its one terminal notification:
/// failed / rejected within `within_s` of the dial. Returns the conversation ID and it.
async fn rejected_within(f: &Flow, target: &str, ring_s: u64, within_s: u64) -> (String, Value) {
    let t0 = Instant::now();
    let id = f.dial(target, json!({"answerTimeoutSec": ring_s})).await;
    let within = Duration::from_secs(within_s);
    let term = one_terminal_within(&f.sink, &id, within).await;
    assert!(t0.elapsed() < within, "{:?}", t0.elapsed());
    assert_eq!(term["status"], "failed", "{term}");
    assert_eq!(term["reasonCode"], "rejected", "{term}");
    (id, term)
}

/// The carrier was CANCELled in early media (its 487 ACKed) and the bot was never called;
/// returns the settled record.
async fn cancelled_before_the_bot(f: &Flow, id: &str, carrier: &Sipp, botp: Sipp) -> Value {
    let cancelled = ["<INVITE", ">183", "<CANCEL", ">200", ">487", "<ACK"];
    saw_exactly(carrier, "carrier scenario", &cancelled).await;
    let rec = f.settled(id).await;
    let bot = botp.stop().await.expect("bot SIPp stopped");
    assert!(!bot.messages.contains("INVITE"), "{}", bot.messages);
    rec
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
    // 2. Dial. The person hung up after the refreshes: completed, client-disconnected.
    // 3. The carrier saw the INVITE with the timer headers and exactly two UPDATE refreshes.
    let want = "<INVITE >200 <ACK <UPDATE >200 <UPDATE >200 >BYE <200";
    let e = person_ends_call(0, carrier, &[], want).await;
    let invite = &e.carrier[0].1;
    assert!(invite.contains("Session-Expires: 1800"), "{invite}");
    assert!(invite.contains("Min-SE: 90"), "{invite}");
    assert!(invite.contains("100rel"), "{invite}");
    assert_eq!(sip_flow(&e.bot), bot_answer(), "{}", e.bot);
    // 4. The record notes the negotiated session.
    let rec = e.f.settled(&e.id).await;
    let st = details(&rec, "session-timer");
    assert!(
        st.iter()
            .any(|d| d == "session interval 4 s, refresher dialgate"),
        "{rec:#}"
    );
    e.f.stop().await;
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

/// One case of [`retries_prack_and_refreshes_then_the_person_hangs_up`]: test `n`'s carrier
/// plays `scenario` (the trunk with `extra`) and must see exactly `want`; `check` looks at its
/// messages.
struct Case {
    name: &'static str,
    n: u16,
    scenario: &'static str,
    extra: &'static [&'static str],
    want: &'static str,
    check: fn(&[(String, String)]),
}

const CASES: &[Case] = &[
    // The carrier answers 422 with `Min-SE: 3600` to an INVITE asking 1800 s, then expects
    // the INVITE again with `Session-Expires: 3600` (checked by the scenario), answers and
    // hangs up: the 422 was not the end of the call; the second INVITE has the same Call-ID.
    Case {
        name: "a_422_is_retried_with_the_carriers_min_se",
        n: 2,
        scenario: "carrier_422.xml",
        extra: &[],
        want: "<INVITE >422 <ACK <INVITE >180 >200 <ACK >BYE <200",
        check: |msgs| assert!(msgs[3].1.contains("Min-SE: 3600"), "{}", msgs[3].1),
    },
    // 183 with SDP, `Require: 100rel`, `RSeq: 1`; the carrier expects a PRACK with
    // `RAck: 1 <cseq> INVITE`, answers it, then answers the INVITE and hangs up: the PRACK
    // came between the 183 and the 200.
    Case {
        name: "a_reliable_183_is_pracked_before_the_answer",
        n: 3,
        scenario: "carrier_reliable_183.xml",
        extra: &[],
        want: "<INVITE >183 <PRACK >200 >200 <ACK >BYE <200",
        check: |_| {},
    },
    // The trunk has `require_100rel: true`; the carrier answers 420 `Unsupported: 100rel`
    // and expects the INVITE again without `Require: 100rel` (checked by the scenario).
    Case {
        name: "a_420_for_100rel_is_retried_without_the_extension",
        n: 4,
        scenario: "carrier_420_100rel.xml",
        extra: &["require_100rel: true"],
        want: "<INVITE >420 <ACK <INVITE >180 >200 <ACK >BYE <200",
        check: |msgs| {
            assert!(msgs[0].1.contains("Require: 100rel"), "{}", msgs[0].1);
            assert!(!msgs[3].1.contains("100rel"), "{}", msgs[3].1);
        },
    },
    // Like the UPDATE refresh, but the carrier's Allow has no UPDATE: it expects two
    // re-INVITEs carrying SDP and `Session-Expires: 4;refresher=uac`, each answered and ACKed.
    Case {
        name: "without_update_in_allow_the_refresh_is_a_reinvite_with_sdp",
        n: 5,
        scenario: "carrier_timer_reinvite.xml",
        extra: &[],
        want: "<INVITE >200 <ACK <INVITE >200 <ACK <INVITE >200 <ACK >BYE <200",
        check: |_| {},
    },
    // The carrier is the refresher of a 6 s session (dialgate would end it 4 s after the
    // answer); it refreshes with a bodiless UPDATE at 2.5 s, expects `Session-Expires` in the
    // 200, and hangs up itself at 5.5 s — after the first expiry would have struck: the person
    // hung up, no "session timer expired".
    Case {
        name: "the_carriers_refresh_is_answered_and_keeps_the_call_up",
        n: 6,
        scenario: "carrier_timer_peer_refresh.xml",
        extra: &[],
        want: "<INVITE >200 <ACK >UPDATE <200 >BYE <200",
        check: |_| {},
    },
];

#[tokio::test]
async fn retries_prack_and_refreshes_then_the_person_hangs_up() {
    for case in CASES {
        // One case at a time (the session-timer cases keep time); the line below names the
        // case in a failure's captured output.
        println!("case {}", case.name);
        // 1. The case's SIPp carrier; 2. dial: the person hangs up (completed,
        //    client-disconnected); 3. the carrier saw exactly the case's messages, the
        //    bot's scenario passed; 4. the case's own checks.
        let carrier = uas(case.scenario, carrier_port(case.n), 40);
        let e = person_ends_call(case.n, carrier, case.extra, case.want).await;
        (case.check)(&e.carrier);
        e.f.stop().await;
    }
}

#[tokio::test]
async fn a_sit_in_early_media_fails_the_call_long_before_the_ring_timeout() {
    // 1. Carrier: 183 with SDP, then RTP: ringback, then SIT tones; it expects a CANCEL.
    let dir = tempfile::tempdir().unwrap();
    let early = "carrier_early_media_until_cancel.xml";
    let pcm = ringback_then_sit();
    let carrier = carrier_playing(&dir, early, &pcm, (carrier_port(7), 40), "31790");
    let (botp, f) = bot_and_flow(7, &[]).await;
    // 2. Dial with a 60 s ring timeout.
    // 3. failed / rejected, the reason says "number not in service" and names the SIT, well
    //    before the ring timeout (the tones end ~2.5 s after the 183).
    let (id, term) = rejected_within(&f, "+15551240008", 60, 30).await;
    assert_term_rejected_for(&term, &["number not in service", "SIT tones"]);
    // 4. The carrier saw the CANCEL; the bot was never called.
    let rec = cancelled_before_the_bot(&f, &id, &carrier, botp).await;
    assert_rejected_for(&rec, "SIT tones");
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
    let then_answer = "carrier_early_ringback_then_answer.xml";
    let carrier = carrier_playing(
        &dir,
        then_answer,
        &ringback(),
        (carrier_port(8), 40),
        "31890",
    );
    // 2. Dial. The ringback did not end the call: answered, then completed by the person.
    let want = "<INVITE >183 >200 <ACK >BYE <200";
    let e = person_ends_call(8, carrier, &[], want).await;
    // 3. The record shows early media was listened to, and nothing was heard in it.
    let rec = e.f.settled(&e.id).await;
    assert_eq!(details(&rec, "early-media").len(), 1, "{rec:#}");
    e.f.stop().await;
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
    let early = "carrier_early_media_until_cancel.xml";
    let carrier = carrier_playing(&dir, early, &pcm, (16538, 120), "31990");
    let botp = uas("flow_bot_answer.xml", 16539, 120);
    let f = start_flow_with_model(FlowSetup {
        rtp: (31900, 31989),
        bot_port: 16539,
        trunk: trunk(16538, &[]),
    })
    .await;
    // 2. Dial with a 120 s ring timeout.
    // 3. failed / rejected with the recognised words, well before the ring timeout (the
    //    bound allows for Whisper on a loaded machine).
    let (id, term) = rejected_within(&f, "+15551240010", 120, 90).await;
    assert_term_rejected_for(&term, &["intercept announcement", "not in service"]);
    // 4. The carrier saw the CANCEL; the words are on the record's transcript.
    let rec = cancelled_before_the_bot(&f, &id, &carrier, botp).await;
    assert_transcript_says(&rec, "not in service");
    f.stop().await;
}
