//! The media relay inside real calls (issue "Media relay"): RTP inactivity ends a call with
//! `media-timeout`; a recording bot gets a stereo 8 kHz WAV of the call (callee left, bot
//! right); the carrier's hold and resume re-INVITEs are answered from the relay and the call goes
//! on; the call record's `media` counters show the packets forwarded both ways.

use crate::common;
use std::time::Duration;

use common::audio::clip_similarity;
use common::mediaflows::{Carrier, MediaFlow, MediaSetup, ms_between, wait_sim_ended, wait_until};
use common::simcall::{repo_file, rtp_counts, samples, sip_trace, timeline};
use hyper::StatusCode;
use serde_json::{Value, json};

/// A SIPp UAS: 180, 200 with PCMU, then it streams `AUDIO_FILE` (raw µ-law) once and falls
/// silent; it answers dialgate's BYE (`tests/sipp/media_talk_then_silent.xml`).
const SIPP_TALK_THEN_SILENT: &str = "media_talk_then_silent.xml";

/// A SIPp UAS (run with `-rtp_echo`): answers, puts the call on hold with a re-INVITE
/// `a=sendonly` (the answer must say `a=recvonly`), resumes it with `a=sendrecv` (the answer
/// must say `a=sendrecv`), then waits for dialgate's BYE (`tests/sipp/media_hold_resume.xml`).
const SIPP_HOLD_RESUME: &str = "media_hold_resume.xml";

/// The text of the SIPp scenario `tests/sipp/<name>` (the carrier takes it as a string).
fn scenario_xml(name: &str) -> String {
    let path = common::sippflows::scenario(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Waits (bounded) for the SIPp carrier to end after dialgate's BYE, asserts its scenario
/// passed and that the bot got BYE too; returns SIPp's messages.
async fn sipp_and_bot_got_bye(f: &MediaFlow) -> Vec<String> {
    let out = f
        .sipp()
        .wait(common::mediaflows::WAIT)
        .await
        .expect("sipp ends after the BYE");
    assert!(
        out.status.success(),
        "sipp: {}\n{}",
        out.errors,
        out.messages
    );
    let bot = sip_trace(&wait_sim_ended(&f.bot, "bot").await);
    assert_eq!(bot, ["INVITE", "sent 200", "ACK", "BYE in", "RTP"]);
    sipp_messages(&out.messages)
}

/// [`MediaSetup::sim`] with a simulated callee that hangs up two seconds after its `audio`.
fn callee_hangs_up_after_talking(rtp_min: u16, audio: &str) -> MediaSetup {
    let mut s = MediaSetup::sim(rtp_min, audio);
    if let Carrier::Sim(o) = &mut s.carrier {
        o.hangup = dialgate::sim::Hangup::AfterAudio(Duration::from_secs(2));
    }
    s
}

/// The SIP messages of a SIPp trace, each as one string starting with its first line
/// (`-trace_msg` separates them with `----` lines and a caption).
fn sipp_messages(log: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in log.lines() {
        if line.starts_with("----") {
            if !cur.trim().is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            cur.clear();
        } else if line.starts_with("UDP message") || (cur.is_empty() && line.trim().is_empty()) {
            // The trace's "UDP message sent/received" caption and the blank line after it.
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// The response with `status` to the request with CSeq `cseq` in a SIPp trace.
fn response<'a>(msgs: &'a [String], status: &str, cseq: &str) -> Option<&'a String> {
    msgs.iter().find(|m| {
        m.lines()
            .any(|l| l.starts_with(&format!("SIP/2.0 {status}")))
            && m.lines()
                .any(|l| l.eq_ignore_ascii_case(&format!("CSeq: {cseq}")))
    })
}

/// The per-leg relay counters of the record.
fn leg<'a>(rec: &'a Value, name: &str) -> &'a Value {
    let l = &rec["media"][name];
    assert!(l.is_object(), "record has media.{name}: {rec:#}");
    l
}

fn count(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {key} in {v}"))
}

/// The callee stops sending RTP (a SIPp UAS that streams ~1.9 s once, then nothing) with
/// `inactivity_timeout_sec: 2`: dialgate ends the call as media-timeout, BYEs both legs, and the
/// dialer gets exactly one terminal notification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_rtp_stops_then_the_call_ends_as_media_timeout() {
    // SIPp loads the stream when it reads the scenario: "Hello? Who is this?" (1.7 s) in µ-law.
    let audio_dir = tempfile::tempdir().unwrap();
    let audio = audio_dir.path().join("greeting.ulaw");
    let ulaw: Vec<u8> = samples("conf/greeting.wav")
        .iter()
        .map(|&x| dialgate::sim::g711::linear_to_ulaw(x))
        .collect();
    std::fs::write(&audio, ulaw).unwrap();
    let mut s = MediaSetup::sim(29000, "conf/greeting.wav");
    s.inactivity_sec = 2;
    s.carrier = Carrier::Sipp {
        xml: scenario_xml(SIPP_TALK_THEN_SILENT)
            .replace("AUDIO_FILE", &audio.display().to_string()),
        media_port: 29900,
        args: vec![],
    };
    let f = MediaFlow::start(s).await;
    // 1. Dial; the callee answers and talks for a moment.
    let id = f.dial(json!({})).await;
    let answered = f
        .dialer
        .wait_for(common::mediaflows::WAIT, |n| {
            n.body["conversationId"] == id.as_str() && n.body["status"] == "answered"
        })
        .await;
    assert!(answered.is_some(), "{:?}", f.notifications(&id));
    // 2. After its RTP stops, the inactivity timeout ends the call: completed, media-timeout.
    let end = f.wait_terminal(&id).await;
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["reasonCode"], "media-timeout", "{end}");
    // 3. Both legs got BYE from dialgate: SIPp answered it (its scenario passed), and the bot.
    let msgs = sipp_and_bot_got_bye(&f).await;
    assert!(msgs.iter().any(|m| m.starts_with("BYE ")), "{msgs:#?}");
    let disc = f.wait_bot_disconnect(&id).await;
    assert_eq!(disc["reasonCode"], "media-timeout");
    // 4. The record: media-timeout; the relay did get the callee's audio before it stopped.
    let rec = f.wait_settled(&id).await;
    assert_eq!(rec["status"], "completed", "{rec:#}");
    assert_eq!(rec["reasonCode"], "media-timeout");
    let tl = timeline(&rec);
    assert!(
        tl.iter().any(|l| l.starts_with("completed: media-timeout")),
        "{tl:#?}"
    );
    let carrier = leg(&rec, "carrier");
    assert!(count(carrier, "packetsReceived") > 25, "{carrier}");
    assert!(count(leg(&rec, "bot"), "packetsForwarded") > 25);
    // 5. Exactly one terminal notification.
    f.stop_answered_then_completed(&id, &rec).await;
}

/// A bot with `recording: true`: after the call the record's `recording` is a stereo 8 kHz WAV
/// as long as the call's talk time; its left channel is what the callee said, its right channel
/// what the bot played.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_bot_gets_a_stereo_wav_of_the_call() {
    let mut s = callee_hangs_up_after_talking(29200, "tests/fixtures/audio/hello.wav");
    s.recording = true;
    let f = MediaFlow::start(s).await;
    // 1. Dial; the callee says "Hello?" and hangs up two seconds later.
    let id = f.dial(json!({})).await;
    let end = f.wait_terminal(&id).await;
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["reasonCode"], "client-disconnected", "{end}");
    wait_sim_ended(f.callee(), "callee").await;
    // 2. The record names the recording, and the file is there.
    let rec = f.wait_settled(&id).await;
    let path = rec["recording"].as_str().expect("recording path");
    assert!(path.ends_with(&format!("{id}.wav")), "{path}");
    assert!(
        path.starts_with(&f.app.dir.path().display().to_string()),
        "{path}"
    );
    let mut wav = hound::WavReader::open(path).expect("the recording is a WAV");
    // 3. Stereo, 8 kHz, 16-bit PCM.
    let spec = wav.spec();
    assert_eq!(spec.channels, 2);
    assert_eq!(spec.sample_rate, 8000);
    assert_eq!(spec.bits_per_sample, 16);
    assert_eq!(spec.sample_format, hound::SampleFormat::Int);
    let all: Vec<i16> = wav.samples::<i16>().map(Result::unwrap).collect();
    let left: Vec<i16> = all.iter().step_by(2).copied().collect();
    let right: Vec<i16> = all.iter().skip(1).step_by(2).copied().collect();
    // 4. Its length matches the talk time (answer to end) within a generous second and a half.
    let wav_ms = left.len() as i64 / 8;
    let talk_ms = ms_between(&rec, "answeredAt", "endedAt");
    assert!(
        (wav_ms - talk_ms).abs() <= 1500,
        "recording {wav_ms} ms, talk time {talk_ms} ms"
    );
    // 5. Left = the callee's "Hello?", right = the bot's prompt (G.711 through the relay).
    let hello = samples("tests/fixtures/audio/hello.wav");
    let l = clip_similarity(&hello, &left, left.len()).expect("left channel has audio");
    assert!(l.corr > 0.8, "left channel vs hello.wav: {l:?}");
    let prompt = samples("conf/bot-prompt.wav");
    let r = clip_similarity(&prompt, &right, right.len()).expect("right channel has audio");
    assert!(r.corr > 0.8, "right channel vs bot-prompt.wav: {r:?}");
    // ... and not the other way round.
    let cross = clip_similarity(&hello, &right, right.len()).map_or(0.0, |a| a.corr);
    assert!(
        cross < 0.5,
        "right channel should not hold the callee: {cross}"
    );
    f.assert_answered_then_completed(&id, &rec);
    assert!(repo_file("tests/fixtures/audio/hello.wav").exists());
    f.stop().await;
}

/// The carrier holds (re-INVITE `a=sendonly`) and resumes (`a=sendrecv`): dialgate answers 200
/// with `a=recvonly`, then `a=sendrecv`, the call is not dropped, and audio flows again after
/// the resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_hold_and_resume_keep_the_call_up() {
    let mut s = MediaSetup::sim(29400, "conf/greeting.wav");
    s.carrier = Carrier::Sipp {
        xml: scenario_xml(SIPP_HOLD_RESUME),
        media_port: 29950,
        args: vec!["-rtp_echo".into()],
    };
    let f = MediaFlow::start(s).await;
    // 1. Dial; the callee (SIPp, echoing RTP) answers and the bot is bridged.
    let id = f.dial(json!({})).await;
    f.wait_record(&id, "connected", |r| r["status"] == "connected")
        .await;
    // 2. SIPp holds, then resumes: wait for its ACK of the resume's 200.
    wait_until("SIPp acknowledged the resume", || {
        f.sipp().messages().contains("CSeq: 102 ACK")
    })
    .await;
    let msgs = sipp_messages(&f.sipp().messages());
    // 3. The hold's answer: 200 with a=recvonly; the resume's answer: 200 with a=sendrecv.
    let hold = response(&msgs, "200", "101 INVITE").expect("200 to the hold re-INVITE");
    assert!(hold.contains("a=recvonly"), "{hold}");
    assert!(!hold.contains("a=sendrecv"), "{hold}");
    let resume = response(&msgs, "200", "102 INVITE").expect("200 to the resume re-INVITE");
    assert!(resume.contains("a=sendrecv"), "{resume}");
    // Both answers keep dialgate's relay address and port.
    let m_line = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("m=audio"))
            .map(str::to_owned)
    };
    assert_eq!(m_line(hold), m_line(resume));
    // 4. The call was not dropped: still connected, no BYE anywhere.
    let live = f.record(&id).await;
    assert_eq!(live["status"], "connected", "{live:#}");
    assert!(!msgs.iter().any(|m| m.starts_with("BYE ")));
    assert!(
        !sip_trace(&f.bot.events())
            .iter()
            .any(|e| e.starts_with("BYE"))
    );
    // 5. Audio flows again after the resume: the bot's audio, echoed by SIPp, comes back.
    let received = || {
        f.bot
            .calls()
            .first()
            .map(|c| c.rtp_received)
            .unwrap_or_default()
    };
    let at_resume = received();
    wait_until("the bot hears the callee again after the resume", || {
        received() >= at_resume + 25
    })
    .await;
    // 6. The dialer hangs up through the API: SIPp gets the BYE and its scenario passes.
    let a = f.hangup(&id).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    let end = f.wait_terminal(&id).await;
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["reasonCode"], "api-hangup", "{end}");
    sipp_and_bot_got_bye(&f).await;
    // 7. The relay forwarded both ways, and dropped the bot's audio while the carrier held.
    let rec = f.wait_settled(&id).await;
    let (carrier, botleg) = (leg(&rec, "carrier"), leg(&rec, "bot"));
    assert!(count(carrier, "packetsForwarded") > 25, "{carrier}");
    assert!(count(botleg, "packetsForwarded") > 25, "{botleg}");
    assert!(
        count(&botleg["dropped"], "direction") > 0,
        "the bot's audio is not sent to a carrier on hold: {botleg}"
    );
    f.stop_answered_then_completed(&id, &rec).await;
}

/// A plain call between the simulated callee and bot: the call record's `media` shows packets
/// received and forwarded on both legs, matching what each peer sent and received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_record_media_stats_show_both_directions() {
    let f = MediaFlow::start(callee_hangs_up_after_talking(29600, "conf/greeting.wav")).await;
    // 1. Dial; the callee talks, then hangs up.
    let id = f.dial(json!({})).await;
    let end = f.wait_terminal(&id).await;
    assert_eq!(end["reasonCode"], "client-disconnected", "{end}");
    // 2. What the peers counted.
    let (callee_sent, callee_rcvd) =
        rtp_counts(&wait_sim_ended(f.callee(), "callee").await).unwrap();
    let (bot_sent, bot_rcvd) = rtp_counts(&wait_sim_ended(&f.bot, "bot").await).unwrap();
    // 3. The record's counters: each leg received and forwarded audio, nothing malformed.
    let rec = f.wait_settled(&id).await;
    let (carrier, botleg) = (leg(&rec, "carrier"), leg(&rec, "bot"));
    for (name, l) in [("carrier", carrier), ("bot", botleg)] {
        assert!(count(l, "packetsReceived") > 50, "{name}: {l}");
        assert!(count(l, "packetsForwarded") > 50, "{name}: {l}");
        assert!(count(l, "bytesForwarded") >= 160 * count(l, "packetsForwarded"));
        assert_eq!(count(&l["dropped"], "malformed"), 0, "{name}: {l}");
    }
    // 4. They agree with the peers: a leg cannot receive more than its peer sent, nor forward
    //    more than it received; the peers heard (nearly all of) what the relay forwarded.
    let peers = format!(
        "callee sent {callee_sent} received {callee_rcvd}, bot sent {bot_sent} received {bot_rcvd}; carrier leg {carrier}; bot leg {botleg}"
    );
    // (A sim reads its `sent` counter as its call ends, while its sender task may still put
    // out the packet in flight: allow a couple.)
    assert!(
        count(carrier, "packetsReceived") <= callee_sent + 2,
        "{peers}"
    );
    assert!(count(botleg, "packetsReceived") <= bot_sent + 2, "{peers}");
    assert!(
        count(carrier, "packetsForwarded") <= count(carrier, "packetsReceived"),
        "{peers}"
    );
    assert!(
        count(botleg, "packetsForwarded") <= count(botleg, "packetsReceived"),
        "{peers}"
    );
    assert!(bot_rcvd <= count(carrier, "packetsForwarded"), "{peers}");
    assert!(callee_rcvd <= count(botleg, "packetsForwarded"), "{peers}");
    assert!(
        bot_rcvd * 2 >= count(carrier, "packetsForwarded"),
        "bot heard {bot_rcvd}: {carrier}"
    );
    assert!(
        callee_rcvd * 2 >= count(botleg, "packetsForwarded"),
        "callee heard {callee_rcvd}: {botleg}"
    );
    f.stop_answered_then_completed(&id, &rec).await;
}
