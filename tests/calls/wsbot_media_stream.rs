//! Media-stream mode (Twilio Media Streams framing) against a bot server written for these
//! tests, over real loopback sockets.

use crate::common;
use common::wsbot::*;
use dialgate::media::g711::linear_to_ulaw;
use dialgate::wsbot::{MediaFormat, WsBot, WsBotEvent, WsBotOptions, WsProtocol};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Steps 1–2 of every test: dialgate connects, the bot reads `connected` and `start`.
async fn open(
    server: &mut BotServer,
    token: Option<&str>,
    opts: WsBotOptions,
) -> (WsBot, BotConn, Value) {
    let cfg = bot(
        &server.url("ws"),
        WsProtocol::MediaStream,
        token,
        MediaFormat::Mulaw,
    );
    let bot = WsBot::connect(&cfg, call_info("conv-ms"), opts)
        .await
        .expect("stream opened");
    let mut conn = server.accept().await;
    let connected = conn.recv().await;
    assert_eq!(
        connected,
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    );
    let start = conn.recv().await;
    (bot, conn, start)
}

fn ulaw(pcm: &[i16]) -> Vec<u8> {
    pcm.iter().map(|&s| linear_to_ulaw(s)).collect()
}

#[tokio::test]
async fn start_carries_the_stream_the_call_and_the_metadata() {
    // 1. A bot demanding a token.
    let mut server = BotServer::start(Some("ms-token"), None).await;
    let (bot, mut conn, start) = open(&mut server, Some("ms-token"), quick_options()).await;
    assert_eq!(conn.authorization.as_deref(), Some("Bearer ms-token"));
    assert_eq!(bot.media_format(), MediaFormat::Mulaw);

    // 2. `start` names the stream and the call, the tracks, the format and the metadata.
    let sid = start["streamSid"].as_str().unwrap().to_string();
    assert!(sid.starts_with("MZ") && sid.len() == 34, "{sid}");
    assert_eq!(start["event"], "start");
    assert_eq!(start["sequenceNumber"], "1");
    assert_eq!(
        start["start"],
        json!({
            "streamSid": sid,
            "accountSid": "",
            "callSid": "conv-ms",
            "tracks": ["inbound"],
            "customParameters": {"campaign": "spring", "attempt": "2"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        })
    );

    // 3. A key press becomes `dtmf`; hang-up sends `stop` and closes the socket.
    bot.send_dtmf('7').await.unwrap();
    let dtmf = conn.recv().await;
    assert_eq!(
        dtmf,
        json!({"event": "dtmf", "sequenceNumber": "2", "streamSid": sid, "dtmf": {"track": "inbound_track", "digit": "7"}})
    );
    bot.hangup("client-disconnected", "the person hung up")
        .await;
    let stop = conn.recv().await;
    assert_eq!(
        stop,
        json!({"event": "stop", "sequenceNumber": "3", "streamSid": sid, "stop": {"accountSid": "", "callSid": "conv-ms"}})
    );
    assert!(conn.try_recv().await.is_none(), "socket closed after stop");
}

#[tokio::test]
async fn audio_echo_both_ways_matches() {
    let mut server = BotServer::start(None, None).await;
    let (bot, mut conn, start) = open(&mut server, None, quick_options()).await;
    let sid = start["streamSid"].clone();

    // 1. One second of the person's audio, in frames that are not 20 ms long.
    let input = chirp_8k(1.0);
    for frame in input.chunks(100) {
        bot.send_audio(frame);
    }

    // 2. The bot receives 20 ms `media` messages, numbered and timed, and echoes each payload.
    for n in 0..50u64 {
        let m = conn.recv().await;
        assert_eq!(m["event"], "media");
        assert_eq!(m["streamSid"], sid);
        assert_eq!(m["sequenceNumber"], (n + 2).to_string());
        assert_eq!(m["media"]["track"], "inbound");
        assert_eq!(m["media"]["chunk"], (n + 1).to_string());
        assert_eq!(m["media"]["timestamp"], (n * 20).to_string());
        let payload = m["media"]["payload"].as_str().unwrap();
        assert_eq!(unb64(payload).len(), 160);
        conn.send(json!({"event": "media", "streamSid": sid, "media": {"payload": payload}}))
            .await;
    }
    // A mark after the echo tells when it has all arrived.
    conn.send(json!({"event": "mark", "streamSid": sid, "mark": {"name": "end"}}))
        .await;
    bot.send_activities(vec![]).await.unwrap(); // ignored in media-stream mode
    wait_until(|| bot.stats().chunks_received == 50).await;

    // 3. What comes out of the playout buffer is the person's audio.
    let out = pull(&bot, 52);
    let (peak, lag) = best_correlation(&input, &out, 50);
    println!("media-stream echo correlation {peak:.4} at lag {lag}");
    assert!(peak > 0.99, "correlation {peak:.3} at lag {lag}");
    assert_eq!(lag, 0);
    // 4. And the mark is echoed once it has played.
    let mark = conn.recv().await;
    assert_eq!(mark["event"], "mark");
    assert_eq!(mark["mark"]["name"], "end");
    assert_eq!(mark["sequenceNumber"], "52");
    bot.hangup("client-disconnected", "done").await;
}

#[tokio::test]
async fn marks_are_echoed_after_their_audio_and_clear_drops_queued_audio() {
    let mut server = BotServer::start(None, None).await;
    let (mut bot, mut conn, start) = open(&mut server, None, quick_options()).await;
    let sid = start["streamSid"].clone();
    let tone = ulaw(&chirp_8k(1.0));

    // 1. 200 ms of bot audio, then mark m1.
    conn.send(
        json!({"event": "media", "streamSid": sid, "media": {"payload": b64(&tone[..1600])}}),
    )
    .await;
    conn.send(json!({"event": "mark", "streamSid": sid, "mark": {"name": "m1"}}))
        .await;
    // 2. 2 s more, mark m2, then clear (the bot's barge-in).
    for c in tone.chunks(800).chain(tone.chunks(800)) {
        conn.send(json!({"event": "media", "streamSid": sid, "media": {"payload": b64(c)}}))
            .await;
    }
    conn.send(json!({"event": "mark", "streamSid": sid, "mark": {"name": "m2"}}))
        .await;

    // 3. Playing the first 200 ms makes m1 due: it is echoed.
    wait_until(|| bot.stats().chunks_received >= 1).await;
    let first = pull(&bot, 10);
    assert!(first.iter().any(|&s| s != 0));
    let m1 = conn.recv().await;
    assert_eq!(
        (m1["event"].clone(), m1["mark"]["name"].clone()),
        (json!("mark"), json!("m1"))
    );

    // 4. `clear` drops the 2 s still queued: m2 is echoed at once, frames are silence.
    conn.send(json!({"event": "clear", "streamSid": sid})).await;
    assert_eq!(event(&mut bot).await, WsBotEvent::PlaybackCleared);
    let m2 = conn.recv().await;
    assert_eq!(m2["mark"]["name"], "m2");
    assert!(pull(&bot, 5).iter().all(|&s| s == 0));
    let stats = bot.stats();
    assert_eq!(stats.jitter.cleared_samples, 16_000);
    bot.hangup("client-disconnected", "done").await;
}

#[tokio::test]
async fn bad_frames_are_survived_and_a_dropped_socket_ends_the_stream() {
    let mut server = BotServer::start(None, None).await;
    let opts = options_up_to(32 * 1024);
    let (mut bot, mut conn, start) = open(&mut server, None, opts).await;
    let sid = start["streamSid"].clone();

    // 1. Invalid JSON, bad base64, unknown event, a mark without name, oversized, binary.
    conn.send_raw(Message::text("][")).await;
    conn.send(json!({"event": "media", "streamSid": sid, "media": {"payload": "***"}}))
        .await;
    conn.send(json!({"event": "transcript", "streamSid": sid}))
        .await;
    conn.send(json!({"event": "mark", "streamSid": sid})).await;
    conn.send(json!({"event": "media", "media": {"payload": b64(&vec![0xffu8; 40_000])}}))
        .await;
    conn.send_raw(Message::binary(vec![0u8; 10])).await;

    // 2. The stream goes on: a clear still works and reports.
    conn.send(json!({"event": "clear", "streamSid": sid})).await;
    assert_eq!(event(&mut bot).await, WsBotEvent::PlaybackCleared);
    assert_eq!(bot.stats().bad_frames, 6);

    // 3. The bot's socket drops: media streams cannot resume, so the bot is gone.
    conn.drop_hard();
    assert_disconnected_and_over(&mut bot).await;
    assert_eq!(bot.stats().reconnects, 0);
}
