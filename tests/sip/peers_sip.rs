//! Self-tests of the SIP test peers (tests/common/peers.rs): PJSIP as UAS and UAC, SIPp, and
//! Kamailio with digest authentication, all on 127.0.0.1. Needs `scripts/install-peers`.

use crate::common;
use std::path::Path;
use std::time::Duration;

use common::audio::{clip_similarity, read_wav};
use common::peers::{Kamailio, PjsuaOpts, PjsuaPeer, Sipp, fixture_audio, repo_root};

const WAIT: Duration = Duration::from_secs(20);

/// Similarity of the clip `reference` with the recording `recorded` (lag within ±1 s).
fn corr(reference: &Path, recorded: &Path) -> f64 {
    let (r1, a) = read_wav(reference).unwrap();
    let (r2, b) = read_wav(recorded).unwrap();
    assert_eq!((r1, r2), (8000, 8000));
    clip_similarity(&a, &b, 8000)
        .map(|al| al.corr)
        .unwrap_or(0.0)
}

/// A PJSIP caller with `opts`, waited for (bounded) until it exits.
async fn caller_until_exit(opts: PjsuaOpts) -> PjsuaPeer {
    let caller = PjsuaPeer::spawn(opts).await.unwrap();
    assert!(caller.wait_exit(WAIT).await.is_some());
    caller
}

/// A PJSIP caller of `+15551234567` through the proxy `k` as `acme` with `password` (hanging
/// up `bye_after_ms` after the answer, if given); waits (bounded) for it to exit and returns
/// it and the codes of the responses it got, in order.
async fn caller_through(
    k: &Kamailio,
    password: &str,
    bye_after_ms: Option<u64>,
) -> (PjsuaPeer, Vec<u64>) {
    let caller = caller_until_exit(PjsuaOpts {
        auth: Some(("acme".into(), password.into())),
        bye_after_ms,
        ..PjsuaOpts::uac(&k.uri("+15551234567"))
    })
    .await;
    let codes = caller
        .events_named("response")
        .iter()
        .filter_map(|e| e.code())
        .collect();
    (caller, codes)
}

/// A PJSIP callee answering 200 behind Kamailio (trunk user acme / s3cr3t; a wrong password
/// gets 403 if `wrong_creds_403`, else another challenge).
async fn callee_behind_kamailio(wrong_creds_403: bool) -> (PjsuaPeer, Kamailio) {
    let uas = PjsuaPeer::spawn(PjsuaOpts::uas("200")).await.unwrap();
    let k = Kamailio::spawn(0, uas.sip_port, "acme", "s3cr3t", wrong_creds_403)
        .await
        .unwrap();
    (uas, k)
}

#[tokio::test]
async fn pjsua_uas_answers_two_calls_and_both_sides_hear_each_other() {
    let hello = fixture_audio("hello.wav");
    let greeting = repo_root().join("conf/greeting.wav");

    // 1. Callee: answers 200 after 180, plays hello.wav, records what it hears.
    let uas = PjsuaPeer::spawn(PjsuaOpts {
        play: Some(hello.clone()),
        record: Some("heard.wav".into()),
        ..PjsuaOpts::uas("200")
    })
    .await
    .unwrap();

    // 2. Caller: two sequential calls with an X- header, plays greeting.wav, hangs up 3.5 s after answer.
    let uac = PjsuaPeer::spawn(PjsuaOpts {
        user: "carrier".into(),
        play: Some(greeting.clone()),
        record: Some("heard.wav".into()),
        bye_after_ms: Some(3500),
        call_count: 2,
        headers: vec!["X-Dialgate-Test: seq".into()],
        ..PjsuaOpts::uac(&uas.uri("bot"))
    })
    .await
    .unwrap();

    // 3. The callee saw both INVITEs with our header, SDP on 127.0.0.1 and PCMU.
    let inv = uas.wait_event("incoming", WAIT).await.unwrap();
    assert_eq!(inv.header("x-dialgate-test"), Some("seq"));
    assert_eq!(inv.header("Request-URI"), Some(uas.uri("bot").as_str()));
    assert!(
        inv.header("From")
            .unwrap()
            .contains("sip:carrier@127.0.0.1")
    );
    let sdp = inv.sdp().unwrap();
    assert!(
        sdp.contains("c=IN IP4 127.0.0.1") && sdp.contains("PCMU/8000"),
        "{sdp}"
    );

    // 4. Both calls end with the caller's BYE; the caller then exits by itself.
    let d2 = uas.wait_nth("disconnected", 2, WAIT).await.unwrap();
    assert_eq!(d2.str("by"), Some("remote"));
    assert!(uac.wait_exit(WAIT).await.unwrap().success());
    let uac_disc = uac.events_named("disconnected");
    assert_eq!(uac_disc.len(), 2);
    assert!(
        uac_disc
            .iter()
            .all(|e| e.str("by") == Some("local") && e.code() == Some(200))
    );
    assert_eq!(
        uas.events_named("state")
            .iter()
            .filter(|e| e.str("state") == Some("CONFIRMED"))
            .count(),
        2
    );

    // 5. Each recording holds the other side's clip (and not its own): real RTP both ways.
    let uas_rec1 = uas.dir().join("heard.wav");
    let uas_rec2 = uas.dir().join("heard-2.wav");
    let uac_rec1 = uac.wait_recording(1, WAIT).await.unwrap();
    assert_eq!(uac_rec1, uac.dir().join("heard.wav"));
    assert_eq!(d2.str("recording"), Some(uas_rec2.to_str().unwrap()));
    for rec in [&uas_rec1, &uas_rec2] {
        let c = corr(&greeting, rec);
        eprintln!("callee recording {}: corr {c:.3}", rec.display());
        assert!(c > 0.8, "callee heard the caller's greeting: corr {c}");
        let own = corr(&hello, rec);
        eprintln!("callee recording vs its own clip: corr {own:.3}");
        assert!(own < 0.5, "callee's recording must not be its own clip");
    }
    let c = corr(&hello, &uac_rec1);
    eprintln!("caller recording: corr {c:.3}");
    assert!(c > 0.8, "caller heard the callee's hello: corr {c}");
    let own = corr(&greeting, &uac_rec1);
    eprintln!("caller recording vs its own clip: corr {own:.3}");
    assert!(own < 0.5);

    // 6. SIGTERM ends the callee cleanly.
    assert!(uas.stop().await.unwrap().success());
    assert_eq!(uas.events().last().unwrap().str("reason"), Some("SIGTERM"));
}

#[tokio::test]
async fn pjsua_busy_decline_and_cancel_while_ringing() {
    // 1. Callee answering 486, then 603, then ringing forever.
    let uas = PjsuaPeer::spawn(PjsuaOpts {
        answer_after_ms: 100,
        ..PjsuaOpts::uas("486,603,ring")
    })
    .await
    .unwrap();

    // 2. Caller: three calls, cancelling any call unanswered after 600 ms.
    let uac = PjsuaPeer::spawn(PjsuaOpts {
        cancel_after_ms: Some(600),
        call_count: 3,
        ..PjsuaOpts::uac(&uas.uri("callee"))
    })
    .await
    .unwrap();
    assert!(uac.wait_exit(WAIT).await.unwrap().success());

    // 3. The caller saw 180 then 486, 180 then 603, and 180 then 487 after its CANCEL.
    let codes: Vec<(u64, &str)> = uac
        .events_named("disconnected")
        .iter()
        .map(|e| {
            (
                e.code().unwrap(),
                if e.str("by") == Some("local") {
                    "local"
                } else {
                    "remote"
                },
            )
        })
        .collect();
    assert_eq!(codes, [(486, "remote"), (603, "remote"), (487, "local")]);
    let provisional = uac
        .events_named("response")
        .iter()
        .filter(|e| e.code() == Some(180))
        .count();
    assert_eq!(provisional, 3);

    // 4. The callee logged its own rejections and the CANCEL.
    let c = uas.wait_event("cancelled", WAIT).await.unwrap();
    assert_eq!(c.call(), Some(3));
    let d = uas.wait_nth("disconnected", 3, WAIT).await.unwrap();
    assert_eq!((d.code(), d.str("by")), (Some(487), Some("remote")));
    let first = &uas.events_named("disconnected")[0];
    assert_eq!((first.code(), first.str("by")), (Some(486), Some("local")));
}

#[tokio::test]
async fn sipp_uac_calls_pjsua_uas() {
    // 1. PJSIP callee; SIPp's built-in UAC places one call with SDP and hangs up.
    let uas = PjsuaPeer::spawn(PjsuaOpts::uas("200")).await.unwrap();
    let target = format!("127.0.0.1:{}", uas.sip_port);
    let sipp = Sipp::spawn_builtin("uac", &[&target, "-m", "1", "-timeout", "15s"]).unwrap();

    // 2. SIPp exits 0 (every call succeeded) and traced the 200 OK.
    let out = sipp.wait(WAIT).await.unwrap();
    assert!(
        out.status.success(),
        "sipp: {:?}\n{}",
        out.status,
        out.errors
    );
    assert!(out.messages.contains("SIP/2.0 200 OK"));

    // 3. The callee answered and saw the BYE from the remote side.
    let d = uas.wait_event("disconnected", WAIT).await.unwrap();
    assert_eq!(d.str("by"), Some("remote"));
    assert_eq!(
        uas.events_named("incoming")[0]
            .header("Request-URI")
            .map(|u| u.starts_with("sip:service@")),
        Some(true)
    );
}

#[tokio::test]
async fn kamailio_challenges_then_relays_with_good_credentials() {
    // 1. Callee behind Kamailio (trunk user acme / s3cr3t).
    let (uas, k) = callee_behind_kamailio(false).await;

    // 2. Without credentials the caller ends with 407; the callee sees nothing.
    let no_auth = PjsuaPeer::spawn(PjsuaOpts::uac(&k.uri("+15551234567")))
        .await
        .unwrap();
    assert!(no_auth.wait_exit(WAIT).await.is_some());
    let d = &no_auth.events_named("disconnected")[0];
    assert_eq!(d.code(), Some(407));
    let r407 = no_auth
        .events_named("response")
        .into_iter()
        .find(|e| e.code() == Some(407))
        .unwrap();
    assert!(
        r407.header("Proxy-Authenticate")
            .unwrap()
            .contains("realm=\"carrier.test\"")
    );
    assert!(uas.events_named("incoming").is_empty());

    // 3. With credentials the INVITE is relayed (Record-Route added), answered, and ended by BYE.
    let (_good, codes) = caller_through(&k, "s3cr3t", Some(300)).await;
    assert!(codes.contains(&407) && codes.ends_with(&[200]), "{codes:?}");
    let inv = uas.wait_event("incoming", WAIT).await.unwrap();
    assert!(
        inv.header("Record-Route")
            .unwrap()
            .contains(&format!("127.0.0.1:{}", k.port))
    );
    assert_eq!(
        inv.header("Proxy-Authorization"),
        None,
        "credentials are consumed by the proxy"
    );
    assert_eq!(
        uas.wait_event("disconnected", WAIT)
            .await
            .unwrap()
            .str("by"),
        Some("remote")
    );
    assert!(k.log().contains("auth failed"));

    // 4. A SIPp XML scenario: an OPTIONS ping is answered 200 without authentication.
    let xml = repo_root().join("tests/peers/sipp/options-uac.xml");
    let target = format!("127.0.0.1:{}", k.port);
    let ping = Sipp::spawn(&xml, &[&target, "-m", "1", "-timeout", "15s"]).unwrap();
    let out = ping.wait(WAIT).await.unwrap();
    assert!(out.status.success(), "{:?}\n{}", out.status, out.errors);
    assert!(out.messages.contains("OPTIONS sip:service@127.0.0.1"));
}

#[tokio::test]
async fn kamailio_wrong_credentials_get_403_when_asked() {
    // 1. Kamailio in WRONG_CREDS_403 mode; a caller with the wrong password.
    let (uas, k) = callee_behind_kamailio(true).await;

    // 2. First 407, then 403 for the wrong answer; nothing reaches the callee.
    let (bad, codes) = caller_through(&k, "wrong", None).await;
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c >= 400)
            .copied()
            .collect::<Vec<_>>(),
        [407, 403],
        "{codes:?}"
    );
    assert_eq!(bad.events_named("disconnected")[0].code(), Some(403));
    assert!(uas.events_named("incoming").is_empty());
}

#[tokio::test]
async fn pjsua_early_media_183_then_cancel() {
    // 1. Callee sends 183 with SDP, plays its clip as early media, never answers.
    let hello = fixture_audio("hello.wav");
    let uas = PjsuaPeer::spawn(PjsuaOpts {
        ring_code: 183,
        play: Some(hello.clone()),
        ..PjsuaOpts::uas("ring")
    })
    .await
    .unwrap();

    // 2. Caller records the early media and cancels after 2.5 s.
    let uac = caller_until_exit(PjsuaOpts {
        record: Some("early.wav".into()),
        cancel_after_ms: Some(2500),
        ..PjsuaOpts::uac(&uas.uri("callee"))
    })
    .await;

    // 3. 183 carried SDP, the call was never confirmed, and it ended with 487 after CANCEL.
    let r183 = uac
        .events_named("response")
        .into_iter()
        .find(|e| e.code() == Some(183))
        .unwrap();
    assert!(r183.sdp().unwrap().contains("m=audio"));
    assert!(
        !uac.events_named("state")
            .iter()
            .any(|e| e.str("state") == Some("CONFIRMED"))
    );
    assert_eq!(uac.events_named("disconnected")[0].code(), Some(487));
    uas.wait_event("cancelled", WAIT).await.unwrap();

    // 4. What the caller heard before answer is the callee's clip.
    let c = corr(&hello, &uac.dir().join("early.wav"));
    eprintln!("early media recording: corr {c:.3}");
    // 0.6: well above what another clip or silence gives (~0), and robust to the clock drift
    // of two PJSIP null sound devices on a loaded machine (0.76 seen while other builds ran).
    assert!(c > 0.6, "early media: corr {c}");
}
