//! The relay's bot leg served in process for a WebSocket bot (`media/direct.rs`): no socket
//! between the relay and the session. Real sockets where there are any: the person is a UDP
//! socket on loopback speaking RTP to the relay's carrier port, the bot is the WebSocket bot
//! server of `tests/common/wsbot.rs`.

use crate::common;

use common::wsbot::*;
use dialgate::media::g711::{G711Law, decode, linear_to_ulaw};
use dialgate::media::{
    AudioCodec, DIRECT_FRAME, DirectPort, Direction, Leg, MediaConfig, MediaEngine, MediaSession,
    RemoteMedia,
};
use dialgate::overflow::{self, Queue};
use dialgate::wsbot::{MediaFormat, MediaSide};
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

/// A call's media with the bot leg served in process: the relay, the person's phone (a UDP
/// socket that is the carrier leg's peer) and the relay's carrier address it talks to.
pub(crate) struct PersonSide {
    _engine: MediaEngine,
    pub session: MediaSession,
    pub person: UdpSocket,
    pub relay: SocketAddr,
}

/// Step 1 of these tests: a relay on ports `min..=max`, one session, the person's socket as
/// the carrier's peer (PCMU), and the bot leg's port.
pub(crate) async fn person_side(min: u16, max: u16) -> (PersonSide, DirectPort) {
    let engine = MediaEngine::new(MediaConfig {
        port_min: min,
        port_max: max,
        inactivity_timeout: None,
        ..MediaConfig::default()
    })
    .expect("media engine");
    let session = engine.create_session("conv-direct").expect("session");
    let person = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let remote = RemoteMedia {
        rtp: person.local_addr().unwrap(),
        rtcp: None,
        codec: AudioCodec::PCMU,
        dtmf_pt: None,
        direction: Direction::SendRecv,
    };
    session.set_remote(Leg::Carrier, remote).unwrap();
    let port = session.attach_direct().expect("direct bot leg");
    let relay = session.local_rtp_addr(Leg::Carrier);
    let side = PersonSide {
        _engine: engine,
        session,
        person,
        relay,
    };
    (side, port)
}

/// One RTP packet of the person's: PCMU, 20 ms.
fn rtp_packet(seq: u16, pcm: &[i16]) -> Vec<u8> {
    let mut pkt = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d, 0x1e];
    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
    pkt[4..8].copy_from_slice(&(seq as u32 * 160).to_be_bytes());
    pkt.extend(pcm.iter().map(|s| linear_to_ulaw(*s)));
    pkt
}

/// The samples after the first loud one (minus a margin): where a test signal starts.
fn from_first_sound(samples: &[i16]) -> &[i16] {
    let first = samples.iter().position(|s| s.unsigned_abs() > 500);
    &samples[first.unwrap_or(samples.len()).saturating_sub(40)..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_crosses_the_direct_leg_both_ways_and_correlates() {
    // The `ws://` socket served by the relay thread (the default).
    audio_crosses(true, 44480, 44519).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_crosses_the_direct_leg_with_the_socket_kept_by_the_session() {
    // `relay_served: false`: the session's task keeps the socket and paces the audio itself.
    audio_crosses(false, 44940, 44979).await;
}

async fn audio_crosses(served: bool, min: u16, max: u16) {
    // 1. The call's media with the bot leg served in process.
    let (side, port) = person_side(min, max).await;

    // 2. An AC-mode bot (µ-law) accepts the session, which takes the bot leg's port; the user
    //    stream starts.
    let mut server = BotServer::start(None, None).await;
    let opts = dialgate::wsbot::WsBotOptions {
        relay_served: served,
        ..quick_options()
    };
    let connecting = connect_ac_with(&server, MediaFormat::Mulaw, "conv-direct", opts);
    let mut conn = server.accept().await;
    assert_eq!(conn.recv().await["type"], "session.initiate");
    conn.send(json!({"type": "session.accepted", "mediaFormat": "raw/mulaw"}))
        .await;
    let ws = connecting.await.unwrap().expect("session opened");
    ws.start_media(MediaSide::new(port, None)).await.unwrap();
    ws.start_user_stream().await.unwrap();
    assert_eq!(conn.recv().await["type"], "userStream.start");
    conn.send(json!({"type": "userStream.started"})).await;

    // 3. The person says a 1 s chirp: 50 RTP packets, one per 20 ms.
    let chirp = chirp_8k(1.0);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for (k, frame) in chirp.chunks(160).enumerate() {
        tick.tick().await;
        let pkt = rtp_packet(k as u16, frame);
        side.person.send_to(&pkt, side.relay).await.unwrap();
    }

    // 4. The bot hears it, sample for sample (µ-law both ways: the same waveform).
    let mut heard = Vec::new();
    while heard.len() < chirp.len() {
        let m = conn.recv().await;
        if m["type"] == "userStream.chunk" {
            let bytes = unb64(m["audioChunk"].as_str().expect("audioChunk"));
            heard.extend(bytes.iter().map(|b| decode(G711Law::Pcmu, *b)));
        }
    }
    let (peak, _) = best_correlation(&chirp, from_first_sound(&heard), 200);
    assert!(peak > 0.95, "person->bot correlation {peak}");

    // 5. The bot says the chirp back at once (far faster than real time): the person hears it
    //    paced, whole.
    let said: Vec<u8> = chirp.iter().map(|s| linear_to_ulaw(*s)).collect();
    conn.send(json!({"type": "playStream.start", "streamId": "s"}))
        .await;
    for chunk in said.chunks(800) {
        conn.send(json!({"type": "playStream.chunk", "streamId": "s", "audioChunk": b64(chunk)}))
            .await;
    }
    conn.send(json!({"type": "playStream.stop", "streamId": "s"}))
        .await;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let _ = tokio::time::timeout(WAIT, async {
        while from_first_sound(&got).len() < chirp.len() + 200 {
            let (n, _) = side.person.recv_from(&mut buf).await.unwrap();
            got.extend(buf[12..n].iter().map(|b| decode(G711Law::Pcmu, *b)));
        }
    })
    .await;
    let (peak, _) = best_correlation(&chirp, from_first_sound(&got), 200);
    assert!(peak > 0.95, "bot->person correlation {peak}");

    // 6. The relay counted the bot's frames as the bot leg's packets; the socket was handed
    //    to the relay thread only when asked.
    assert!(side.session.stats().bot.packets_received >= 50);
    assert_eq!(ws.stats().served, u64::from(served));

    // 7. Hang-up: `session.end` reaches the bot, then the socket closes.
    assert!(ws.hangup("client-disconnected", "done").await);
    loop {
        let m = conn.recv().await;
        if m["type"] == "session.end" {
            assert_eq!(m["reasonCode"], "client-disconnected");
            break;
        }
    }
    assert!(
        conn.try_recv().await.is_none(),
        "socket closed after session.end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_direct_queue_drops_and_counts_and_the_relay_goes_on() {
    // 1. The call's media with the bot leg served in process; nobody takes the person's audio.
    let (side, port) = person_side(44520, 44559).await;
    let before = overflow::count(Queue::WsBotAudio);

    // 2. The person sends 1.2 s of audio (60 packets) at once: 1 s of it fits the port's queue.
    for k in 0..60u16 {
        let pkt = rtp_packet(k, &[3000i16; 160]);
        side.person.send_to(&pkt, side.relay).await.unwrap();
    }
    let mut dropped = 0;
    wait_until(|| {
        dropped += port.take_dropped();
        dropped >= 10
    })
    .await;

    // 3. The rest were dropped and counted, on the port and in the queue-full counter.
    assert_eq!(dropped, 10);
    assert!(overflow::count(Queue::WsBotAudio) >= before + 10);
    let mut taken = Vec::new();
    assert_eq!(port.take_person_audio(&mut taken), 50 * DIRECT_FRAME);

    // 4. Meanwhile the relay was never held: the bot's frames still reach the person, in order.
    for k in 0..5u8 {
        port.send_to_person(&[k + 1; DIRECT_FRAME]);
    }
    let mut buf = [0u8; 2048];
    for k in 0..5u8 {
        let (n, _) = tokio::time::timeout(WAIT, side.person.recv_from(&mut buf))
            .await
            .expect("the bot's frame in time")
            .unwrap();
        assert_eq!(n, 12 + DIRECT_FRAME);
        assert_eq!(buf[12], k + 1);
    }

    // 5. Emptied, the queue takes the person's audio again.
    let pkt = rtp_packet(60, &[3000i16; 160]);
    side.person.send_to(&pkt, side.relay).await.unwrap();
    taken.clear();
    wait_until(|| port.take_person_audio(&mut taken) > 0 || !taken.is_empty()).await;
    assert_eq!(taken.len(), DIRECT_FRAME);
}

#[tokio::test]
async fn a_stray_sender_on_a_direct_legs_socket_is_not_heard() {
    // 1. The call's media with the bot leg served in process.
    let (side, port) = person_side(44560, 44599).await;

    // 2. Someone sends RTP to the bot leg's socket, which nobody should be using now.
    let stray = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let bot_port = side.session.local_rtp_addr(Leg::Bot);
    for k in 0..5u16 {
        stray
            .send_to(&rtp_packet(k, &[3000i16; 160]), bot_port)
            .await
            .unwrap();
    }

    // 3. The relay drops it as a foreign source; the person hears nothing of it.
    wait_until(|| side.session.stats().bot.dropped_foreign_source >= 5).await;
    let mut buf = [0u8; 2048];
    let heard = tokio::time::timeout(Duration::from_millis(200), side.person.recv_from(&mut buf));
    assert!(heard.await.is_err(), "the stray audio reached the person");
    drop(port);
}

#[tokio::test]
async fn a_frame_handed_over_ahead_of_its_time_leaves_no_earlier() {
    // 1. The call's media with the bot leg served in process.
    let (side, port) = person_side(44900, 44939).await;

    // 2. The session hands over a frame due 80 ms from now (its playout clock's next frame,
    //    so that it need not wake again for it).
    let due = std::time::Instant::now() + Duration::from_millis(80);
    port.send_to_person_at(&[9; DIRECT_FRAME], Some(due));

    // 3. The relay holds it until then: the person gets it, once, not before its time.
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(WAIT, side.person.recv_from(&mut buf))
        .await
        .expect("the held frame in time")
        .unwrap();
    assert!(std::time::Instant::now() >= due, "the frame left early");
    assert_eq!((n, buf[12]), (12 + DIRECT_FRAME, 9));

    // 4. Frames without a time (or one already past) go at once, in order, after it.
    port.send_to_person(&[10; DIRECT_FRAME]);
    port.send_to_person_at(&[11; DIRECT_FRAME], Some(std::time::Instant::now()));
    for k in [10u8, 11] {
        let (_, _) = tokio::time::timeout(WAIT, side.person.recv_from(&mut buf))
            .await
            .expect("the frame in time")
            .unwrap();
        assert_eq!(buf[12], k);
    }
    let extra = tokio::time::timeout(Duration::from_millis(100), side.person.recv_from(&mut buf));
    assert!(extra.await.is_err(), "a frame was sent twice");
}

/// A served leg whose code panics on the person's first packet (a stand-in for a bug in the
/// protocol code the relay thread runs for `ws://` bots); says when it is dropped.
struct PanickingLeg {
    sock: std::net::UdpSocket,
    dropped: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl dialgate::media::ServedLeg for PanickingLeg {
    fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.sock)
    }
    fn interest(&self) -> (bool, bool) {
        (true, false)
    }
    fn on_socket(&mut self, _: std::time::Instant, _: &mut Vec<[u8; DIRECT_FRAME]>) {}
    fn on_person(&mut self, _: &[u8]) {
        panic!("test: a bug in a served leg");
    }
    fn on_tick(&mut self, _: std::time::Instant, _: &mut Vec<[u8; DIRECT_FRAME]>) {}
    fn next_tick(&self) -> std::time::Instant {
        std::time::Instant::now() + Duration::from_secs(1)
    }
    fn alive(&self) -> bool {
        true
    }
    fn finish(&mut self) {}
}

impl Drop for PanickingLeg {
    fn drop(&mut self) {
        self.dropped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_leg_that_panics_is_dropped_and_the_relay_thread_goes_on() {
    // 1. One relay thread with two calls: A's bot leg served in process, B a plain relay
    //    between a carrier peer and a SIP bot's peer.
    let engine = MediaEngine::new(MediaConfig {
        port_min: 44980,
        port_max: 44999,
        relay_threads: 1,
        inactivity_timeout: None,
        ..MediaConfig::default()
    })
    .expect("media engine");
    let remote = |addr: SocketAddr| RemoteMedia {
        rtp: addr,
        rtcp: None,
        codec: AudioCodec::PCMU,
        dtmf_pt: None,
        direction: Direction::SendRecv,
    };
    let a = engine.create_session("conv-a").expect("session a");
    let person_a = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    a.set_remote(Leg::Carrier, remote(person_a.local_addr().unwrap()))
        .unwrap();
    let port = a.attach_direct().expect("direct bot leg");
    let b = engine.create_session("conv-b").expect("session b");
    let (carrier_b, bot_b) = (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    b.set_remote(Leg::Carrier, remote(carrier_b.local_addr().unwrap()))
        .unwrap();
    b.set_remote(Leg::Bot, remote(bot_b.local_addr().unwrap()))
        .unwrap();

    // 2. A's bot leg is handed to a leg that panics on the person's audio.
    let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    port.serve(Box::new(PanickingLeg {
        sock: std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        dropped: dropped.clone(),
    }));

    // 3. A's person speaks: the leg panics on the relay thread and is dropped.
    let silence = [0i16; 160];
    let a_relay = a.local_rtp_addr(Leg::Carrier);
    for seq in 0..10u16 {
        person_a
            .send_to(&rtp_packet(seq, &silence), a_relay)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_until(|| dropped.load(std::sync::atomic::Ordering::SeqCst)).await;

    // 4. The same thread still relays B's packets to B's bot.
    let b_relay = b.local_rtp_addr(Leg::Carrier);
    let mut buf = [0u8; 2048];
    let got = tokio::time::timeout(WAIT, async {
        loop {
            carrier_b
                .send_to(&rtp_packet(1, &silence), b_relay)
                .await
                .unwrap();
            let recv = bot_b.recv_from(&mut buf);
            if let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(100), recv).await {
                return n;
            }
        }
    })
    .await
    .expect("the relay thread stopped relaying");
    assert_eq!(got, 12 + 160);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_on_a_served_socket_are_counted_and_survived() {
    // 1. A call's media and an AC bot (µ-law) whose socket the relay thread serves once the
    //    user stream starts; messages over 64 KiB are dropped, over 256 KiB fatal.
    let (side, port) = person_side(43000, 43039).await;
    let mut server = BotServer::start(None, None).await;
    let connecting = connect_ac_with(
        &server,
        MediaFormat::Mulaw,
        "conv-bad-served",
        options_up_to(64 * 1024),
    );
    let mut conn = server.accept().await;
    assert_eq!(conn.recv().await["type"], "session.initiate");
    conn.send(json!({"type": "session.accepted", "mediaFormat": "raw/mulaw"}))
        .await;
    let mut ws = connecting.await.unwrap().expect("session opened");
    ws.start_media(MediaSide::new(port, None)).await.unwrap();
    ws.start_user_stream().await.unwrap();
    assert_eq!(conn.recv().await["type"], "userStream.start");
    conn.send(json!({"type": "userStream.started"})).await;
    wait_until(|| ws.stats().served == 1).await;

    // 2. Mid-call, on the served socket: invalid JSON, bad base64, an unknown type, no type,
    //    an oversized message, a binary frame, and a ping between them.
    use tokio_tungstenite::tungstenite::Message;
    conn.send_raw(Message::text("{not json")).await;
    conn.send(json!({"type": "playStream.chunk", "streamId": "x", "audioChunk": "%%%notbase64"}))
        .await;
    conn.send(json!({"type": "session.dance"})).await;
    conn.send_raw(Message::Ping(vec![7u8; 4].into())).await;
    conn.send(json!({"activities": []})).await;
    conn.send(json!({"type": "activities", "pad": "x".repeat(100 * 1024)}))
        .await;
    conn.send_raw(Message::binary(vec![1u8, 2, 3])).await;

    // 3. Each was counted, none ended the session: the next activity arrives as an event.
    conn.send(
        json!({"type": "activities", "activities": [{"type": "message", "text": "still here"}]}),
    )
    .await;
    assert_eq!(
        event(&mut ws).await,
        dialgate::wsbot::WsBotEvent::UserStreamStarted
    );
    assert_eq!(
        event(&mut ws).await,
        dialgate::wsbot::WsBotEvent::Activities(vec![
            json!({"type": "message", "text": "still here"})
        ])
    );
    let stats = ws.stats();
    assert_eq!(stats.bad_frames, 6, "{stats:?}");
    assert_eq!(stats.connections, 1, "no reconnect was needed");
    assert_eq!(stats.served, 1, "the socket stayed with the relay");

    // 4. The person's audio still reaches the bot over the same socket: ten packets, ten
    //    chunks.
    let tone: Vec<i16> = (0..160)
        .map(|i| if i % 20 < 10 { 8000 } else { -8000 })
        .collect();
    for seq in 0..10u16 {
        side.person
            .send_to(&rtp_packet(seq, &tone), side.relay)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut chunks = 0;
    while chunks < 10 {
        if conn.recv().await["type"] == "userStream.chunk" {
            chunks += 1;
        }
    }

    // 5. A message over the hard limit (4 × 64 KiB) cannot be skipped: the relay drops the
    //    socket, the session resumes on a new one, which the relay serves in turn.
    conn.send(json!({"type": "activities", "pad": "x".repeat(300 * 1024)}))
        .await;
    assert!(conn.try_recv().await.is_none(), "the socket was dropped");
    assert!(matches!(
        event(&mut ws).await,
        dialgate::wsbot::WsBotEvent::Reconnecting { attempt: 1, .. }
    ));
    let mut conn = server.accept().await;
    assert_eq!(conn.recv().await["type"], "session.resume");
    conn.send(json!({"type": "session.accepted"})).await;
    assert_eq!(event(&mut ws).await, dialgate::wsbot::WsBotEvent::Resumed);
    wait_until(|| ws.stats().served == 2).await;
    assert_eq!(ws.stats().connections, 2);

    // 5. Hang-up: `session.end` reaches the bot, then the socket closes.
    assert!(ws.hangup("client-disconnected", "done").await);
    loop {
        let m = conn.recv().await;
        if m["type"] == "session.end" {
            break;
        }
    }
    assert!(
        conn.try_recv().await.is_none(),
        "socket closed after session.end"
    );
}
