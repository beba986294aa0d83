//! SimCallee against an independent UAC: SIPp's built-in `uac` scenario with RTP echo.

use std::process::Stdio;
use std::time::Duration;

use dialgate::sim::{Answer, Hangup, SimCallee, SimCalleeOptions, SimEventKind};

fn free_udp_port() -> u16 {
    // Tiny race between drop and SIPp's bind; acceptable for a test.
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sipp_uac_call_is_answered_and_echoed_audio_recorded() {
    if !std::path::Path::new("/usr/bin/sipp").exists() {
        eprintln!("sipp not installed; skipping");
        return;
    }
    // 1. A callee that answers at once, plays the greeting and waits for SIPp's BYE.
    let opts = SimCalleeOptions::callee()
        .with_answer(Answer::After(Duration::ZERO))
        .with_hangup(Hangup::WaitForBye)
        .with_wav(concat!(env!("CARGO_MANIFEST_DIR"), "/conf/greeting.wav"))
        .unwrap();
    let sim = SimCallee::start(opts).await.unwrap();

    // 2. SIPp places one call (its default pause before BYE), echoing our RTP back.
    let (sip_port, media_port) = (free_udp_port(), free_udp_port());
    let status = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new("/usr/bin/sipp")
            .args([
                "-sn",
                "uac",
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
                "-rtp_echo",
                "-m",
                "1",
                "-nostdin",
            ])
            .args(["-timeout", "20s", "-d", "2000"])
            .args(["-p", &sip_port.to_string(), "-mp", &media_port.to_string()])
            .arg(sim.local_addr().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .status(),
    )
    .await
    .unwrap()
    .unwrap();

    // 3. SIPp counted the call as successful; the sim logged 180, 200, ACK, remote BYE.
    assert!(status.success(), "sipp exit {status:?}");
    sim.wait_for(Duration::from_secs(10), |e| {
        matches!(e.kind, SimEventKind::RtpStats { .. })
    })
    .await
    .unwrap();
    let kinds: Vec<_> = sim.events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        &kinds[1..5],
        &[
            SimEventKind::Sent { code: 180 },
            SimEventKind::Sent { code: 200 },
            SimEventKind::Ack,
            SimEventKind::Bye { from_remote: true },
        ]
    );
    // 4. The echo came back: something was recorded and counted.
    let call = &sim.calls()[0];
    assert!(call.rtp_sent > 0 && call.rtp_received > 0, "{call:?}");
    assert!(!call.recorded.is_empty());
    assert_eq!(sim.dialog_count(), 0);
    sim.shutdown();
}
