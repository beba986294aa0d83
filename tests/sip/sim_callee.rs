//! SimCallee / SimBot against a real rsipstack UAC written here, on loopback.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dialgate::sim::endpoint::SimEndpoint;
use dialgate::sim::g711::Codec;
use dialgate::sim::rtp::{parse_packet, write_packet};
use dialgate::sim::{Answer, Hangup, SimCallee, SimCalleeOptions, SimEvent, SimEventKind, sdp};
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver};
use rsipstack::dialog::invitation::{InviteAsyncResult, InviteOption};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Response, StatusCode};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(15);

/// A UAC endpoint that also serves in-dialog requests (the sim's BYE).
async fn uac() -> Arc<SimEndpoint> {
    let (ep, mut incoming) = SimEndpoint::start("127.0.0.1:0".parse().unwrap(), "test-uac", None)
        .await
        .unwrap();
    let ep = Arc::new(ep);
    let dialogs = ep.dialogs.clone();
    let cancel = ep.cancel.clone();
    tokio::spawn(async move {
        loop {
            let mut tx = tokio::select! {
                _ = cancel.cancelled() => break,
                t = incoming.recv() => match t { Some(t) => t, None => break },
            };
            if let Some(mut d) = dialogs.match_dialog(&tx) {
                tokio::spawn(async move {
                    let _ = d.handle(&mut tx).await;
                });
            } else {
                let _ = tx.reply(StatusCode::CallTransactionDoesNotExist).await;
            }
        }
    });
    ep
}

fn invite(ep: &SimEndpoint, target: &str, rtp: SocketAddr, codecs: &[Codec]) -> InviteOption {
    InviteOption {
        caller: format!("sip:alice@{}", ep.local)
            .as_str()
            .try_into()
            .unwrap(),
        callee: target.try_into().unwrap(),
        content_type: Some("application/sdp".into()),
        offer: Some(sdp::write(rtp, 1, codecs, Some(101)).into_bytes()),
        contact: ep.contact("alice").unwrap(),
        headers: Some(vec![
            Header::Other("X-Dialgate-Conversation-Id".into(), "conv-1".into()),
            Header::Other(
                "P-Asserted-Identity".into(),
                "<sip:+15550001@127.0.0.1>".into(),
            ),
        ]),
        ..Default::default()
    }
}

/// Starts a sim with `opts` playing `wav` (a file of the repository); returns it and the
/// number of 20 ms frames the file fills.
async fn start_playing(opts: SimCalleeOptions, wav: &str) -> (SimCallee, u64) {
    let path = format!("{}/{wav}", env!("CARGO_MANIFEST_DIR"));
    let opts = opts.with_wav(&path).unwrap();
    let frames = opts.play.len().div_ceil(160) as u64;
    (SimCallee::start(opts).await.unwrap(), frames)
}

/// An RTP socket of the UAC and an INVITE to `sim` offering `codecs` on it.
async fn rtp_invite(
    ep: &SimEndpoint,
    sim: &SimCallee,
    codecs: &[Codec],
) -> (UdpSocket, InviteOption) {
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let opt = invite(ep, &sim.uri(), rtp.local_addr().unwrap(), codecs);
    (rtp, opt)
}

/// A callee that never answers, called by the UAC (PCMU, RTP to nowhere); it has rung.
struct Ringing {
    sim: SimCallee,
    ep: Arc<SimEndpoint>,
    dialog: InviteDialog,
    /// The INVITE's final response, once it comes.
    join: JoinHandle<InviteAsyncResult>,
    /// The sim's event of its 180 (it names the call).
    ringing: SimEvent,
    _states: DialogStateReceiver,
}

/// Starts a [`Ringing`] call and waits (bounded) for the 180.
async fn ringing_call() -> Ringing {
    let sim = SimCallee::start(SimCalleeOptions::callee().with_answer(Answer::Never))
        .await
        .unwrap();
    let ep = uac().await;
    let opt = mute_invite(&ep, &sim);
    let (state_tx, _states) = ep.dialogs.new_dialog_state_channel();
    let (dialog, join) = ep.dialogs.do_invite_async(opt, state_tx).unwrap();
    let ringing = saw(&sim, |e| e.kind == SimEventKind::Sent { code: 180 }).await;
    Ringing {
        sim,
        ep,
        dialog,
        join,
        ringing,
        _states,
    }
}

/// The status of the INVITE's final response (waited for, bounded).
async fn final_status(join: JoinHandle<InviteAsyncResult>) -> StatusCode {
    let (_, resp) = tokio::time::timeout(WAIT, join)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    resp.expect("a final response").status_code
}

/// A PCMU INVITE to `sim` whose RTP goes nowhere (127.0.0.1:9).
fn mute_invite(ep: &SimEndpoint, sim: &SimCallee) -> InviteOption {
    invite(
        ep,
        &sim.uri(),
        "127.0.0.1:9".parse().unwrap(),
        &[Codec::Pcmu],
    )
}

/// INVITEs with `opt` and waits (bounded) for the final response; returns the dialog, the
/// response (if any) and the dialog's states.
async fn invite_final(
    ep: &SimEndpoint,
    opt: InviteOption,
) -> (InviteDialog, Option<Response>, DialogStateReceiver) {
    let (state_tx, states) = ep.dialogs.new_dialog_state_channel();
    let (dialog, resp) = tokio::time::timeout(WAIT, ep.dialogs.do_invite(opt, state_tx))
        .await
        .unwrap()
        .unwrap();
    (dialog, resp, states)
}

/// Waits (bounded) for an event of `sim` that satisfies `pred`; returns it.
async fn saw(sim: &SimCallee, pred: impl Fn(&SimEvent) -> bool) -> SimEvent {
    sim.wait_for(WAIT, pred)
        .await
        .unwrap_or_else(|| panic!("no such event in {:?}", sim.events()))
}

/// A 400 Hz tone, one 20 ms frame.
fn tone_frame(codec: Codec, n: usize) -> Vec<u8> {
    (0..160)
        .map(|i| {
            let t = (n * 160 + i) as f64 / 8000.0;
            codec.encode((8000.0 * (2.0 * std::f64::consts::PI * 400.0 * t).sin()) as i16)
        })
        .collect()
}

#[tokio::test]
async fn answered_call_rings_plays_records_and_hangs_up() {
    // 1. A callee: 180, answer after 200 ms, play the greeting, BYE 300 ms after it.
    let opts = SimCalleeOptions::callee()
        .with_answer(Answer::After(Duration::from_millis(200)))
        .with_hangup(Hangup::AfterAudio(Duration::from_millis(300)));
    let (sim, greeting_frames) = start_playing(opts, "conf/greeting.wav").await;

    // 2. The UAC offers PCMU then PCMA and INVITEs.
    let ep = uac().await;
    let (rtp, opt) = rtp_invite(&ep, &sim, &[Codec::Pcmu, Codec::Pcma]).await;
    let (dialog, resp, mut states) = invite_final(&ep, opt).await;

    // 3. 180 came before the 200, and the 200 carries an SDP answer with PCMU only.
    let mut saw_180 = false;
    while let Ok(st) = states.try_recv() {
        if let DialogState::Early(_, r) = st {
            saw_180 |= r.status_code == StatusCode::Ringing;
        }
    }
    assert!(saw_180, "no 180 before the answer");
    let resp = resp.unwrap();
    assert_eq!(resp.status_code, StatusCode::OK);
    let answer = sdp::parse(&String::from_utf8_lossy(&resp.body)).unwrap();
    assert_eq!(answer.payload_types, vec![0, 101]);

    // 4. Send 100 frames of tone to the sim, and receive its RTP until its BYE.
    let remote = answer.rtp;
    let sender = tokio::spawn({
        let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        async move {
            let mut buf = Vec::new();
            for n in 0..100u16 {
                write_packet(
                    &mut buf,
                    0,
                    n == 0,
                    n,
                    u32::from(n) * 160,
                    7,
                    &tone_frame(Codec::Pcmu, n.into()),
                );
                rtp.send_to(&buf, remote).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let mut headers = Vec::new();
    let mut buf = [0u8; 1500];
    let started = tokio::time::Instant::now();
    let bye = sim.wait_for(WAIT, |e| {
        matches!(e.kind, SimEventKind::Bye { from_remote: false })
    });
    tokio::pin!(bye);
    loop {
        tokio::select! {
            r = rtp.recv_from(&mut buf) => {
                let (n, _) = r.unwrap();
                headers.push(parse_packet(&buf[..n]).unwrap());
            }
            b = &mut bye => { assert!(b.is_some(), "sim never sent BYE"); break; }
        }
    }
    let elapsed = started.elapsed();
    sender.await.unwrap();

    // 5. The sim's RTP: PCMU, marker on the first packet only, consecutive seq, ts += 160, one SSRC,
    //    and at least the whole greeting before the BYE.
    assert!(
        headers.len() as u64 >= greeting_frames,
        "{} < {greeting_frames}",
        headers.len()
    );
    assert!(headers[0].marker && headers[1..].iter().all(|h| !h.marker));
    for w in headers.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
        assert_eq!(w[1].ts, w[0].ts.wrapping_add(160));
        assert_eq!((w[1].ssrc, w[1].pt), (w[0].ssrc, 0));
    }
    println!(
        "received {} packets in {:?} = {:.1} pps",
        headers.len(),
        elapsed,
        headers.len() as f64 / elapsed.as_secs_f64()
    );

    // 6. The UAC's dialog saw the BYE; the sim forgot the dialog.
    let mut terminated = false;
    while let Ok(Some(st)) = tokio::time::timeout(Duration::from_secs(2), states.recv()).await {
        if matches!(st, DialogState::Terminated(..)) {
            terminated = true;
            break;
        }
    }
    assert!(terminated, "UAC dialog not terminated by the sim's BYE");
    let stats = saw(&sim, |e| matches!(e.kind, SimEventKind::RtpStats { .. })).await;
    assert_eq!(sim.dialog_count(), 0);
    ep.dialogs.remove_dialog(&dialog.id());

    // 7. The event log, in order: Invite (headers), 180, 200, Ack, Bye(local), RtpStats.
    let kinds: Vec<_> = sim.events().into_iter().map(|e| e.kind).collect();
    assert!(matches!(kinds[0], SimEventKind::Invite { .. }));
    assert_eq!(
        &kinds[1..5],
        &[
            SimEventKind::Sent { code: 180 },
            SimEventKind::Sent { code: 200 },
            SimEventKind::Ack,
            SimEventKind::Bye { from_remote: false },
        ]
    );
    let inv = &sim.events()[0];
    assert_eq!(inv.header("X-Dialgate-Conversation-Id"), Some("conv-1"));
    assert!(
        inv.header("P-Asserted-Identity")
            .unwrap()
            .contains("+15550001")
    );
    assert!(inv.header("From").unwrap().contains("alice"));
    let SimEventKind::RtpStats { sent, received } = stats.kind else {
        unreachable!()
    };
    assert_eq!(received, 100);
    assert!(sent >= greeting_frames);

    // 8. The recording is our tone: 100 frames, loud (RMS well above silence).
    let call = &sim.calls()[0];
    assert_eq!(call.codec, Some(Codec::Pcmu));
    assert_eq!(call.recorded.len(), 100 * 160);
    let rms = (call
        .recorded
        .iter()
        .map(|&s| f64::from(s).powi(2))
        .sum::<f64>()
        / call.recorded.len() as f64)
        .sqrt();
    assert!(rms > 4000.0, "rms {rms}");
    sim.shutdown();
    ep.shutdown();
}

#[tokio::test]
async fn reject_mode_rings_then_answers_486() {
    // 1. A busy callee: 180 then 486 after 100 ms.
    let opts = SimCalleeOptions::callee().with_answer(Answer::Reject {
        code: 486,
        after: Duration::from_millis(100),
    });
    let sim = SimCallee::start(opts).await.unwrap();
    let ep = uac().await;

    // 2. INVITE; the final response is 486.
    let opt = mute_invite(&ep, &sim);
    let (_dialog, resp, _states) = invite_final(&ep, opt).await;
    assert_eq!(resp.unwrap().status_code, StatusCode::BusyHere);

    // 3. The sim logged 180 then 486, no media, and forgot the dialog.
    saw(&sim, |e| matches!(e.kind, SimEventKind::RtpStats { .. })).await;
    let kinds: Vec<_> = sim.events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        &kinds[1..],
        &[
            SimEventKind::Sent { code: 180 },
            SimEventKind::Sent { code: 486 },
            SimEventKind::RtpStats {
                sent: 0,
                received: 0
            },
        ]
    );
    assert_eq!(sim.dialog_count(), 0);
    sim.shutdown();
    ep.shutdown();
}

#[tokio::test]
async fn bot_answers_at_once_with_first_g711_and_waits_for_bye() {
    // 1. The bot preset with its prompt.
    let opts = SimCalleeOptions::bot();
    let (sim, prompt_frames) = start_playing(opts, "conf/bot-prompt.wav").await;
    let ep = uac().await;

    // 2. Offer PCMA first: the answer is PCMA, no 180.
    let (rtp, opt) = rtp_invite(&ep, &sim, &[Codec::Pcma, Codec::Pcmu]).await;
    let (dialog, resp, _states) = invite_final(&ep, opt).await;
    let resp = resp.unwrap();
    assert_eq!(resp.status_code, StatusCode::OK);
    assert_eq!(
        sdp::parse(&String::from_utf8_lossy(&resp.body))
            .unwrap()
            .first_g711(),
        Some(Codec::Pcma)
    );

    // 3. Receive the whole prompt plus some silence (PCMA), then hang up from the UAC.
    let mut buf = [0u8; 1500];
    let mut got = 0u64;
    while got < prompt_frames + 10 {
        let (n, _) = tokio::time::timeout(WAIT, rtp.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(parse_packet(&buf[..n]).unwrap().pt, 8);
        got += 1;
    }
    // The bot is still up: it never hangs up by itself.
    assert!(
        !sim.events()
            .iter()
            .any(|e| matches!(e.kind, SimEventKind::Bye { .. }))
    );
    dialog.bye().await.unwrap();

    // 4. The sim saw the remote BYE, then closed the call (stats last) and forgot the dialog.
    saw(&sim, |e| e.kind == SimEventKind::Bye { from_remote: true }).await;
    saw(&sim, |e| matches!(e.kind, SimEventKind::RtpStats { .. })).await;
    let kinds: Vec<_> = sim.events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds[1], SimEventKind::Sent { code: 200 });
    assert_eq!(sim.dialog_count(), 0);
    assert!(sim.calls()[0].ended);
    ep.dialogs.remove_dialog(&dialog.id());
    sim.shutdown();
    ep.shutdown();
}

#[tokio::test]
async fn ring_forever_is_cancelled() {
    // 1. A callee that never answers; the UAC calls and it rings.
    let r = ringing_call().await;

    // 2. CANCEL; the INVITE ends with 487 and the sim logs Cancel.
    r.dialog.cancel().await.unwrap();
    let status = final_status(r.join).await;
    assert_eq!(status, StatusCode::RequestTerminated);
    saw(&r.sim, |e| e.kind == SimEventKind::Cancel).await;
    saw(&r.sim, |e| matches!(e.kind, SimEventKind::RtpStats { .. })).await;
    assert_eq!(r.sim.dialog_count(), 0);
    r.sim.shutdown();
    r.ep.shutdown();
}

#[tokio::test]
async fn told_bot_hangs_up_with_bye_and_drop_frees_the_port() {
    // 1. A bot (silent), called by the UAC.
    let sim = SimCallee::start(SimCalleeOptions::bot()).await.unwrap();
    let sip_addr = sim.local_addr();
    let ep = uac().await;
    let (_rtp, opt) = rtp_invite(&ep, &sim, &[Codec::Pcmu]).await;
    let (dialog, resp, mut states) = invite_final(&ep, opt).await;
    assert_eq!(resp.unwrap().status_code, StatusCode::OK);
    saw(&sim, |e| e.kind == SimEventKind::Ack).await;
    // The Invite event carries the offer.
    let SimEventKind::Invite { sdp: offer, .. } = &sim.events()[0].kind else {
        panic!()
    };
    assert!(offer.contains("m=audio"));

    // 2. Told to hang up: the sim sends BYE and the UAC's dialog ends.
    sim.hangup_all();
    saw(&sim, |e| e.kind == SimEventKind::Bye { from_remote: false }).await;
    let mut terminated = false;
    while let Ok(Some(st)) = tokio::time::timeout(Duration::from_secs(2), states.recv()).await {
        if matches!(st, DialogState::Terminated(..)) {
            terminated = true;
            break;
        }
    }
    assert!(terminated);
    ep.dialogs.remove_dialog(&dialog.id());

    // 3. Once dropped, the SIP port can be bound again (its tasks let go of the socket);
    //    bounded by a count of short waits.
    drop(sim);
    let mut rebound = false;
    for _ in 0..100 {
        if std::net::UdpSocket::bind(sip_addr).is_ok() {
            rebound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(rebound, "SIP socket still held after drop");
    ep.shutdown();
}

#[tokio::test]
async fn hangup_while_ringing_answers_480() {
    // 1. A callee that never answers; the UAC calls and it rings.
    let r = ringing_call().await;

    // 2. While it rings, the sim is told to hang up: the INVITE ends with 480.
    r.sim.hangup(&r.ringing.call_id);
    let status = final_status(r.join).await;
    assert_eq!(status, StatusCode::TemporarilyUnavailable);
    saw(&r.sim, |e| matches!(e.kind, SimEventKind::RtpStats { .. })).await;
    assert_eq!(r.sim.dialog_count(), 0);
    r.ep.shutdown();
}
