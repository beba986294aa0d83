//! PJSIP as the carrier (issue 16, Tests): the interop cases `tests/carrier_interop.rs` plays
//! with SIPp, against a real SIP stack this time — 100rel required with a reliable 183 that is
//! PRACKed and audio both ways after the answer; SIT tones and an intercept announcement in
//! early media ending the attempt long before the ring timeout; session timers (PJSIP's own
//! refresh answered, dialgate's UPDATE refresh answered by PJSIP, and a carrier that names
//! itself refresher and never refreshes); a re-INVITE without crypto on an SRTP leg refused
//! with 488.
//!
//! What PJSIP (2.15.1) cannot play by itself, so SIPp keeps it (`tests/carrier_interop.rs`): a
//! 420 for 100rel — pjsua verifies every INVITE with 100rel supported, so a caller's
//! `Require: 100rel` is always honoured, whatever `prackUse` says (pjsua_call.c
//! `on_incoming_call`, sip_inv.c `pjsip_inv_verify_request3`); here the peer script sends that
//! 420 itself (`--refuse-require`), to see dialgate's retry taken by a real stack; a 422 or a session interval under 90 s — PJSIP refuses to set
//! a Min-SE under 90 and, as UAS, keeps the Session-Expires the caller asked for
//! (sip_timer.c). The session-timer cases here therefore run on 90 s sessions.
//!
//! Port plan of this file: dialgate's relay RTP 57000-58399 (200 per test), PJSIP RTP
//! 58400-59099 (100 per test: callee at +0, bot at +50), SIP ports picked free.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::audio::ringback_then_sit;
use common::flows::*;
use common::peers::{PeerEvent, fixture_audio};
use common::simcall::{
    assert_rejected_for, assert_term_rejected_for, assert_transcript_says,
    timeline_details as details,
};
use serde_json::{Value, json};

/// Relay RTP range and PJSIP RTP base of test number `n` (0-based).
fn ports(n: u16) -> (u16, u16) {
    (57000 + 200 * n, 58400 + 100 * n)
}

/// A flow whose carrier (PJSIP) answers `answer` and logs every SIP message it sees.
fn setup(n: u16, answer: &str) -> FlowSetup {
    let (rtp, peer_rtp) = ports(n);
    let mut s = FlowSetup::new(rtp, peer_rtp, answer);
    s.callee.log_sip = true;
    s
}

/// Waits (bounded by `bound`) for the terminal notification of `id`.
async fn terminal_within(flow: &Flow, id: &str, bound: Duration) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(n) = flow.notifications(id).into_iter().find(is_terminal) {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "no terminal notification for {id} within {bound:?}; record: {:#}\ncarrier: {}",
            flow.record(id).await,
            flow.callee.tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (bounded) for the carrier to log a SIP message in direction `dir` whose start line
/// begins with `start` and whose CSeq method is `method`.
async fn carrier_sip(
    flow: &Flow,
    dir: &str,
    start: &str,
    method: &str,
    bound: Duration,
) -> PeerEvent {
    let what = format!("{dir} {start}… ({method})");
    flow.callee
        .wait_for(
            &what,
            |e| {
                e.is("sip")
                    && e.str("dir") == Some(dir)
                    && e.str("start").is_some_and(|s| s.starts_with(start))
                    && e.cseq_method() == method
            },
            bound,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The re-INVITE the PJSIP carrier sent (bounded by [`WAIT`]).
async fn pjsip_reinvite(flow: &Flow) -> PeerEvent {
    saw(&flow.callee, "PJSIP's re-INVITE", |e| {
        e.is("sip")
            && e.str("dir") == Some("tx")
            && e.str("start").is_some_and(|s| s.starts_with("INVITE "))
    })
    .await
}

/// The final response the PJSIP carrier got to its request `req` (same CSeq).
async fn final_answer_to(flow: &Flow, req: &PeerEvent) -> PeerEvent {
    let cseq = req.header("CSeq").map(str::to_owned);
    saw(&flow.callee, "the answer to PJSIP's re-INVITE", |e| {
        e.is("response")
            && e.code().is_some_and(|c| c >= 200)
            && e.header("CSeq") == cseq.as_deref()
    })
    .await
}

/// The position of the first event satisfying `pred` in the carrier's log.
fn position(events: &[PeerEvent], pred: impl Fn(&PeerEvent) -> bool) -> Option<usize> {
    events.iter().position(pred)
}

/// Both sides hear each other's clip after the answer: the bot `hello` from the carrier, the
/// carrier `machine` from the bot; each matches the other clip less.
async fn assert_audio_both_ways(flow: &Flow, record: &Value) {
    let (hello, machine) = (fixture_audio("hello.wav"), fixture_audio("machine.wav"));
    heard_both_ways(flow, &hello, &machine)
        .await
        .assert_crossed("PJSIP carrier", &record["media"]);
}

/// Gives the carrier hello.wav and the bot machine.wav to loop, both recording; the bot hangs
/// up `bot_bye_ms` after its answer.
fn talk_both_ways(s: &mut FlowSetup, bot_bye_ms: u64) {
    s.callee.play = Some(fixture_audio("hello.wav"));
    s.callee.play_loop = true;
    s.callee.record = Some("heard.wav".into());
    let bot = s.bot.as_mut().expect("flow has a bot");
    bot.play = Some(fixture_audio("machine.wav"));
    bot.play_loop = true;
    bot.bye_after_ms = Some(bot_bye_ms);
    bot.record = Some("heard.wav".into());
}

#[tokio::test]
async fn with_100rel_required_a_reliable_183_is_pracked_and_audio_flows() {
    // 1. The carrier (PJSIP, 100rel mandatory) answers 183 with SDP at once, reliably, and 200
    //    1.5 s later; the trunk requires 100rel. Carrier and bot talk; the bot hangs up 8 s
    //    after its answer.
    let mut s = setup(0, "200");
    s.callee = s.callee.prack("mandatory");
    s.callee.ring_code = 183;
    s.callee.answer_after_ms = 1500;
    s.trunk_extra = vec!["require_100rel: true".into()];
    talk_both_ways(&mut s, 8000);
    let flow = Flow::start(s).await;
    let id = flow.dial(json!({})).await;

    // 2. dialgate's INVITE required 100rel.
    let inv = carrier_sip(&flow, "rx", "INVITE ", "INVITE", WAIT).await;
    let require = inv.header("Require").unwrap_or_default();
    assert!(require.contains("100rel"), "{:?}", inv.0);

    // 3. PJSIP's 183 was reliable (Require: 100rel, an RSeq) and carried SDP.
    let p183 = carrier_sip(&flow, "tx", "SIP/2.0 183", "INVITE", WAIT).await;
    assert!(
        p183.header("Require")
            .unwrap_or_default()
            .contains("100rel"),
        "{:?}",
        p183.0
    );
    let rseq = p183
        .header("RSeq")
        .expect("RSeq on the 183")
        .trim()
        .to_owned();
    assert!(
        p183.str("body").unwrap_or_default().contains("m=audio"),
        "{:?}",
        p183.0
    );

    // 4. dialgate PRACKed it with the matching RAck (RSeq, the INVITE's CSeq), PJSIP took it.
    let prack = carrier_sip(&flow, "rx", "PRACK ", "PRACK", WAIT).await;
    let invite_cseq = inv
        .header("CSeq")
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        prack.header("RAck").map(str::trim),
        Some(format!("{rseq} {invite_cseq} INVITE").as_str()),
        "{:?}",
        prack.0
    );
    carrier_sip(&flow, "tx", "SIP/2.0 200", "PRACK", WAIT).await;

    // 5. The call was answered after the PRACK.
    let ok = carrier_sip(&flow, "tx", "SIP/2.0 200", "INVITE", WAIT).await;
    let events = flow.callee.events();
    let at =
        |ev: &PeerEvent| position(&events, |e| e.0 == ev.0).expect("event in the carrier's log");
    assert!(at(&prack) < at(&ok), "PRACK before the answer");

    // 6. Audio both ways after the answer; the bot's hang-up completed the call.
    let r = flow.wait_record_settled(&id).await;
    assert_eq!(r["status"], "completed", "{r:#}");
    assert_eq!(r["reasonCode"], "bot-disconnected", "{r:#}");
    assert_audio_both_ways(&flow, &r).await;
    flow.stop().await;
}

/// Test `n`'s carrier answers 183 with SDP, plays `early` as early media and never answers.
fn early_media_setup(n: u16, early: PathBuf) -> FlowSetup {
    let mut s = setup(n, "ring");
    s.callee.ring_code = 183;
    s.callee.play = Some(early);
    s
}

/// Dials with a ring timeout of `ring_s` and waits (bounded by `within_s`) for the terminal
/// notification; says how long it took (`what` names the case). Returns the conversation ID
/// and the notification.
async fn dial_until_terminal(
    flow: &Flow,
    ring_s: u64,
    within_s: u64,
    what: &str,
) -> (String, Value) {
    let t0 = Instant::now();
    let id = flow.dial(json!({"answerTimeoutSec": ring_s})).await;
    let term = terminal_within(flow, &id, Duration::from_secs(within_s)).await;
    eprintln!(
        "{what}: ended {:?} after the dial: {}",
        t0.elapsed(),
        term["reason"]
    );
    (id, term)
}

/// Writes `pcm` as an 8 kHz mono 16-bit WAV.
fn write_wav(path: &Path, pcm: &[i16]) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for &s in pcm {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
}

/// Waits (bounded) for the carrier to be cancelled, then checks what it saw of an attempt
/// dialgate cancelled during early media: its 183 with SDP, the media started (its player
/// ran), the CANCEL, and no 200 to the INVITE. Returns the settled record of `id`.
async fn cancelled_in_early_media(flow: &Flow, id: &str) -> Value {
    let carrier = &flow.callee;
    carrier
        .wait_event("cancelled", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(carrier.sip_messages("tx", "SIP/2.0 183").len(), 1);
    assert!(
        !carrier.events_named("media").is_empty(),
        "{}",
        carrier.tail()
    );
    assert_eq!(
        carrier.sip_messages("rx", "CANCEL ").len(),
        1,
        "{}",
        carrier.tail()
    );
    assert_eq!(
        carrier.events_named("cancelled").len(),
        1,
        "{}",
        carrier.tail()
    );
    let answered = carrier
        .sip_messages("tx", "SIP/2.0 200")
        .iter()
        .any(|e| e.cseq_method() == "INVITE");
    assert!(!answered, "{}", carrier.tail());
    // The bot was never called.
    assert!(flow.bot().events_named("incoming").is_empty());
    flow.wait_record_settled(id).await
}

#[tokio::test]
async fn sit_tones_in_early_media_fail_the_call_long_before_the_ring_timeout() {
    // 1. The carrier (PJSIP) answers 183 with SDP and never anything final; its early media is
    //    ringback, then the SIT tones, then silence.
    let dir = tempfile::tempdir().unwrap();
    let sit = dir.path().join("sit.wav");
    write_wav(&sit, &ringback_then_sit());
    let flow = Flow::start(early_media_setup(1, sit)).await;

    // 2. Dial with a 120 s ring timeout.
    // 3. failed / rejected, "number not in service" naming the SIT — not the ring timeout's
    //    no-answer (the tones end ~2.5 s after the 183; the wait is bounded far below 120 s).
    let (id, term) = dial_until_terminal(&flow, 120, 60, "SIT").await;
    assert_term_rejected_for(&term, &["number not in service", "SIT tones"]);

    // 4. The carrier's view: 183, early media, CANCEL, 487; the bot was never called.
    // 5. The record names what was heard.
    let rec = cancelled_in_early_media(&flow, &id).await;
    assert_rejected_for(&rec, "SIT tones");
    flow.stop().await;
}

/// Asterisk's "The number you have dialed is not in service…" prompt (Debian
/// asterisk-core-sounds-en-wav, installed by scripts/install-peers): a recorded human voice,
/// as carriers play it.
fn asterisk_noservice() -> PathBuf {
    let p = PathBuf::from("/usr/share/asterisk/sounds/en_US_f_Allison/ss-noservice.wav");
    assert!(
        p.is_file(),
        "{} missing: run scripts/install-peers (asterisk-core-sounds-en-wav)",
        p.display()
    );
    p
}

#[tokio::test]
async fn an_intercept_announcement_in_early_media_fails_the_call_with_its_words() {
    // 1. The carrier (PJSIP) answers 183 with SDP and plays Asterisk's recorded "number not in
    //    service" prompt as early media, then silence; it never answers. dialgate recognises
    //    early media with the speech model.
    let mut s = early_media_setup(2, asterisk_noservice());
    s.callee.max_seconds = 300.0;
    s.with_model = true;
    let flow = Flow::start(s).await;

    // 2. Dial with a 180 s ring timeout.
    // 3. failed / rejected with the recognised words, well before the ring timeout (the bound
    //    allows for Whisper on a loaded machine).
    let (id, term) = dial_until_terminal(&flow, 180, 120, "intercept").await;
    assert_term_rejected_for(&term, &["intercept announcement", "not in service"]);

    // 4. The carrier's view: 183, early media, CANCEL, 487; the bot was never called.
    // 5. The words are on the record's transcript.
    let rec = cancelled_in_early_media(&flow, &id).await;
    assert_transcript_says(&rec, "not in service");
    flow.stop().await;
}

/// Waits (bounded) for the carrier's 200 to the INVITE, which names a 90 s session with
/// `refresher` (`uac`: dialgate, `uas`: the carrier), and for the call to be connected;
/// returns the 200.
async fn answered_with_session(flow: &Flow, id: &str, refresher: &str) -> PeerEvent {
    let ok = carrier_sip(flow, "tx", "SIP/2.0 200", "INVITE", WAIT).await;
    assert_eq!(
        session_expires(&ok),
        ("90".into(), refresher.into()),
        "{:?}",
        ok.0
    );
    flow.wait_status(id, "connected").await;
    ok
}

/// Asserts that the record's `session-timer` timeline notes `negotiated`.
fn assert_session_timer(rec: &Value, negotiated: &str) {
    assert!(
        details(rec, "session-timer")
            .iter()
            .any(|d| d == negotiated),
        "{rec:#}"
    );
}

/// A flow for a session-timer case: the carrier trunk asks for 90 s sessions (the shortest
/// both RFC 4028 and PJSIP allow); carrier and bot loop audio so that RTP flows the whole
/// call (the relay's inactivity timeout is 30 s), and the peers live long enough.
fn timer_setup(n: u16) -> FlowSetup {
    let mut s = setup(n, "200");
    s.trunk_extra = vec!["session_expires_sec: 90".into(), "min_se: 90".into()];
    s.callee.play = Some(fixture_audio("hello.wav"));
    s.callee.play_loop = true;
    s.callee.max_seconds = 300.0;
    let bot = s.bot.as_mut().expect("flow has a bot");
    bot.play = Some(fixture_audio("machine.wav"));
    bot.play_loop = true;
    bot.max_seconds = 300.0;
    s
}

/// Milliseconds between two events of one peer's log (its own clock).
fn ms_between(a: &PeerEvent, b: &PeerEvent) -> i64 {
    b.0["t_ms"].as_i64().unwrap_or(0) - a.0["t_ms"].as_i64().unwrap_or(0)
}

/// The interval of a `Session-Expires` value and its refresher (`"90;refresher=uac"`).
fn session_expires(e: &PeerEvent) -> (String, String) {
    let v = e.header("Session-Expires").unwrap_or_default().to_owned();
    let mut parts = v.split(';');
    let secs = parts.next().unwrap_or_default().trim().to_owned();
    let refresher = parts
        .find_map(|p| p.trim().strip_prefix("refresher="))
        .unwrap_or_default()
        .to_ascii_lowercase();
    (secs, refresher)
}

#[tokio::test]
async fn session_refreshes_both_ways_keep_a_call_to_pjsip_up() {
    // 1. The carrier (PJSIP, session timers on) answers at once and sends a re-INVITE — a
    //    session refresh — 2 s after the call is confirmed. The trunk asks for 90 s sessions.
    let mut s = timer_setup(3);
    s.callee = s.callee.reinvite_after_ms(2000);
    let flow = Flow::start(s).await;
    let id = flow.dial(json!({})).await;

    // 2. dialgate's INVITE: Supported timer, Session-Expires 90, Min-SE 90.
    let inv = carrier_sip(&flow, "rx", "INVITE ", "INVITE", WAIT).await;
    let supported = inv.header("Supported").unwrap_or_default();
    assert!(supported.contains("timer"), "{:?}", inv.0);
    assert_eq!(inv.header("Session-Expires").map(str::trim), Some("90"));
    assert_eq!(inv.header("Min-SE").map(str::trim), Some("90"));

    // 3. PJSIP's 200 made dialgate (the UAC) the refresher of a 90 s session.
    let ok = answered_with_session(&flow, &id, "uac").await;

    // 4. PJSIP's refresh (re-INVITE, it as UAC keeps dialgate refresher: refresher=uas) was
    //    answered 200 with the session: Session-Expires 90;refresher=uas and Require: timer.
    let reinv = pjsip_reinvite(&flow).await;
    assert_eq!(session_expires(&reinv), ("90".into(), "uas".into()));
    let answered = final_answer_to(&flow, &reinv).await;
    assert_eq!(answered.code(), Some(200), "{:?}", answered.0);
    assert_eq!(
        session_expires(&answered),
        ("90".into(), "uas".into()),
        "{:?}",
        answered.0
    );
    assert!(
        answered
            .header("Require")
            .unwrap_or_default()
            .contains("timer"),
        "{:?}",
        answered.0
    );

    // 5. dialgate refreshed at half the interval after that (~45 s) with an UPDATE (PJSIP
    //    allows it), PJSIP answered 200 with the session. Bounded by the 90 s session.
    let update = carrier_sip(&flow, "rx", "UPDATE ", "UPDATE", Duration::from_secs(90)).await;
    assert_eq!(session_expires(&update), ("90".into(), "uac".into()));
    let update_ok = carrier_sip(&flow, "tx", "SIP/2.0 200", "UPDATE", WAIT).await;
    eprintln!(
        "dialgate's UPDATE came {} ms after PJSIP's re-INVITE ({} ms after the answer)",
        ms_between(&reinv, &update),
        ms_between(&ok, &update)
    );
    assert_eq!(session_expires(&update_ok), ("90".into(), "uac".into()));

    // 6. The call is still up (nobody ended it for a missing refresh); the API hangs it up.
    assert_eq!(flow.record(&id).await["status"], "connected");
    assert!(flow.callee.events_named("disconnected").is_empty());
    flow.hangup(&id).await;
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_ne!(done["reasonCode"], "error", "{done:#}");

    // 7. The record notes the negotiated session.
    let rec = flow.wait_record_settled(&id).await;
    assert_session_timer(&rec, "session interval 90 s, refresher dialgate");
    flow.stop().await;
}

#[tokio::test]
async fn a_carrier_that_never_refreshes_is_hung_up_when_the_session_expires() {
    // 1. The carrier (PJSIP) has its own session timer off, yet its 200 names it refresher of
    //    a 90 s session (Session-Expires: 90;refresher=uas, Require: timer): it will never
    //    refresh. The trunk asks for 90 s sessions.
    let mut s = timer_setup(4);
    s.callee = s
        .callee
        .session_timer("inactive")
        .answer_header("Session-Expires: 90;refresher=uas")
        .answer_header("Require: timer");
    let flow = Flow::start(s).await;
    let id = flow.dial(json!({})).await;

    // 2. The 200 said so; the call is up.
    let ok = answered_with_session(&flow, &id, "uas").await;

    // 3. With no refresh, dialgate ends the call at the expiry (90 - 30 = 60 s after the
    //    answer): completed, reasonCode error, "session timer expired".
    let term = terminal_within(&flow, &id, Duration::from_secs(120)).await;
    assert_eq!(term["status"], "completed", "{term}");
    assert_eq!(term["reasonCode"], "error", "{term}");
    let reason = term["reason"].as_str().unwrap_or("");
    assert!(reason.contains("session timer expired"), "{term}");

    // 4. The carrier got dialgate's BYE; nobody refreshed: no UPDATE or re-INVITE either way.
    let bye = flow
        .callee
        .wait_for("the carrier's disconnect", |e| e.is("disconnected"), WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bye.str("by"), Some("remote"), "{:?}", bye.0);
    assert_eq!(flow.callee.sip_messages("rx", "BYE ").len(), 1);
    let bye_rx = &flow.callee.sip_messages("rx", "BYE ")[0];
    eprintln!(
        "dialgate's BYE came {} ms after the answer (90 s session)",
        ms_between(&ok, bye_rx)
    );
    for dir in ["rx", "tx"] {
        assert!(flow.callee.sip_messages(dir, "UPDATE ").is_empty());
        let invites = flow.callee.sip_messages(dir, "INVITE ").len();
        assert_eq!(
            invites,
            usize::from(dir == "rx"),
            "{dir}: {}",
            flow.callee.tail()
        );
    }
    let rec = flow.wait_record_settled(&id).await;
    assert_eq!(rec["reasonCode"], "error", "{rec:#}");
    assert_session_timer(&rec, "session interval 90 s, refresher carrier");
    flow.stop().await;
}

#[tokio::test]
async fn a_reinvite_without_crypto_on_a_required_srtp_leg_is_refused_with_488() {
    // 1. The carrier (PJSIP on TLS, SRTP optional) takes the SRTP call the trunk requires,
    //    then, 3 s after the answer, re-INVITEs offering plain RTP (its account drops SRTP and
    //    re-creates the media transport). The bot hangs up 8 s after its answer.
    let certs = tempfile::tempdir().unwrap();
    let carrier_cert = cert_files(certs.path(), "carrier", &["localhost", "127.0.0.1"]);
    let mut s = setup(5, "200");
    s.tls_carrier(&carrier_cert, "optional");
    s.callee = s.callee.reinvite_after_ms(3000).reinvite_without_srtp();
    s.trunk_extra.extend([
        format!("tls_ca_file: {}", carrier_cert.0.display()),
        "srtp: required".into(),
    ]);
    s.bot.as_mut().expect("flow has a bot").bye_after_ms = Some(8000);
    let flow = Flow::start(s).await;
    let id = flow.dial(json!({})).await;

    // 2. The call was set up with SRTP: PJSIP's 200 carries a crypto line.
    let ok = carrier_sip(&flow, "tx", "SIP/2.0 200", "INVITE", WAIT).await;
    assert!(
        ok.str("body").unwrap_or_default().contains("a=crypto:"),
        "{:?}",
        ok.0
    );

    // 3. PJSIP's re-INVITE offered plain RTP without crypto.
    let reinv = pjsip_reinvite(&flow).await;
    let offer = reinv.str("body").unwrap_or_default();
    assert!(
        offer.contains("RTP/AVP") && !offer.contains("a=crypto:"),
        "{offer}"
    );

    // 4. dialgate refused it: 488.
    let answered = final_answer_to(&flow, &reinv).await;
    assert_eq!(answered.code(), Some(488), "{:?}", answered.0);

    // 5. The call went on until the bot hung up: completed, not an error.
    let done = terminal_within(&flow, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done:#}");
    flow.wait_record_settled(&id).await;
    flow.stop().await;
}

#[tokio::test]
async fn a_420_for_100rel_is_retried_without_it_and_pjsip_answers_the_retry() {
    // 1. The trunk requires 100rel; the carrier (PJSIP, its peer script refusing a required
    //    100rel — PJSIP itself would honour it) answers such an INVITE 420 Bad Extension,
    //    `Unsupported: 100rel`, and any other with 180 and 200. The bot hangs up 2 s after its
    //    answer.
    let mut s = setup(6, "200");
    s.callee = s.callee.refuse_require("100rel");
    s.trunk_extra = vec!["require_100rel: true".into()];
    s.bot.as_mut().expect("flow has a bot").bye_after_ms = Some(2000);
    let flow = Flow::start(s).await;
    let id = flow.dial(json!({})).await;

    // 2. The first INVITE required 100rel and got the 420, which dialgate ACKed.
    let refused = carrier_sip(&flow, "tx", "SIP/2.0 420", "INVITE", WAIT).await;
    assert_eq!(refused.header("Unsupported"), Some("100rel"));
    carrier_sip(&flow, "rx", "ACK ", "ACK", WAIT).await;
    let invites = || flow.callee.sip_messages("rx", "INVITE ");

    // 3. The retry: same Call-ID, a new CSeq, no 100rel at all; PJSIP answered it 200.
    let ok = carrier_sip(&flow, "tx", "SIP/2.0 200", "INVITE", WAIT).await;
    let (first, retry) = match invites().as_slice() {
        [first, retry] => (first.clone(), retry.clone()),
        other => panic!("two INVITEs expected: {other:?}"),
    };
    assert!(
        first
            .header("Require")
            .unwrap_or_default()
            .contains("100rel")
    );
    assert_eq!(retry.header("Call-ID"), first.header("Call-ID"));
    assert_ne!(retry.header("CSeq"), first.header("CSeq"));
    assert_eq!(ok.header("CSeq"), retry.header("CSeq"));
    for h in ["Require", "Supported"] {
        let v = retry.header(h).unwrap_or_default();
        assert!(!v.contains("100rel"), "{h}: {v}");
    }

    // 4. The call went on: answered, completed by the bot's hang-up.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["status"], "completed", "{done:#}");
    assert_eq!(done["reasonCode"], "bot-disconnected", "{done:#}");
    flow.wait_record_settled(&id).await;
    flow.stop().await;
}
