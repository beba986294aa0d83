//! AudioCodes Bot API WebSocket mode against a bot server written for these tests, over real
//! loopback sockets (ws:// and wss://).

use crate::common;
use common::wsbot::*;
use dialgate::wsbot::{MediaFormat, WsBot, WsBotError, WsBotEvent, WsBotOptions, WsProtocol};
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Steps 1–2 of most tests: connect and let the server accept the session with `format`.
async fn open(
    server: &mut BotServer,
    id: &str,
    format: MediaFormat,
    opts: WsBotOptions,
) -> (WsBot, BotConn) {
    let cfg = bot(&server.url("ws"), WsProtocol::AcBotApi, None, format);
    let info = call_info(id);
    let connecting = tokio::spawn(async move { WsBot::connect(&cfg, info, opts).await });
    let mut conn = server.accept().await;
    let initiate = conn.recv().await;
    assert_eq!(initiate["type"], "session.initiate");
    conn.send(json!({"type": "session.accepted", "mediaFormat": format.as_str()}))
        .await;
    let bot = connecting.await.unwrap().expect("session opened");
    (bot, conn)
}

/// [`quick_options`] with the client's TLS configuration `tls`.
fn over_tls(tls: std::sync::Arc<rustls::ClientConfig>) -> WsBotOptions {
    WsBotOptions {
        tls: Some(tls),
        ..quick_options()
    }
}

#[tokio::test]
async fn handshake_over_wss_carries_the_token_and_the_start_parameters() {
    // 1. A TLS bot server that demands a bearer token.
    let (server_tls, client_tls) = tls_pair();
    let mut server = BotServer::start(Some("tok-123"), Some(server_tls)).await;
    let cfg = bot(
        &server.url("wss"),
        WsProtocol::AcBotApi,
        Some("tok-123"),
        MediaFormat::Lpcm16At24k,
    );
    let opts = over_tls(client_tls.clone());

    // 2. dialgate connects and sends session.initiate with the Live Hub start parameters.
    let connecting =
        tokio::spawn(async move { WsBot::connect(&cfg, call_info("conv-tls"), opts).await });
    let mut conn = server.accept().await;
    assert_eq!(conn.authorization.as_deref(), Some("Bearer tok-123"));
    let init = conn.recv().await;
    assert_eq!(init["type"], "session.initiate");
    assert_eq!(init["conversationId"], "conv-tls");
    assert_eq!(init["caller"], "+15550001");
    assert_eq!(init["callee"], "+15550002");
    assert_eq!(
        init["metadata"],
        json!({"campaign": "spring", "attempt": 2})
    );
    assert_eq!(init["expectAudioMessages"], true);
    assert_eq!(
        init["supportedMediaFormats"],
        json!(["raw/lpcm16_24", "raw/lpcm16", "raw/mulaw"])
    );

    // 3. The bot accepts with a format other than the preferred one: that one is used.
    conn.send(json!({"type": "session.accepted", "mediaFormat": "raw/lpcm16"}))
        .await;
    let bot_session = connecting.await.unwrap().expect("session opened");
    assert_eq!(bot_session.media_format(), MediaFormat::Lpcm16);

    // 4. A wrong token is refused in the upgrade: the bot is unreachable.
    let wrong = bot(
        &server.url("wss"),
        WsProtocol::AcBotApi,
        Some("nope"),
        MediaFormat::Lpcm16,
    );
    let opts = over_tls(client_tls);
    let err = WsBot::connect(&wrong, call_info("conv-bad"), opts)
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, WsBotError::Connect { .. }), "{err}");
    assert!(err.is_bot_unreachable());
    assert!(err.to_string().contains("401"), "{err}");

    // 5. Hang-up sends session.end with the reason and closes the socket.
    bot_session
        .hangup("client-disconnected", "the person hung up")
        .await;
    let end = conn.recv().await;
    assert_eq!(end["type"], "session.end");
    assert_eq!(end["conversationId"], "conv-tls");
    assert_eq!(end["reasonCode"], "client-disconnected");
    assert_eq!(end["reason"], "the person hung up");
    assert!(
        conn.try_recv().await.is_none(),
        "socket closed after session.end"
    );
}

#[tokio::test]
async fn session_error_fails_like_an_unreachable_bot() {
    // 1. The bot answers session.initiate with session.error.
    let mut server = BotServer::start(None, None).await;
    let connecting = connect_ac(&server, MediaFormat::Lpcm16, "c1");
    let mut conn = server.accept().await;
    conn.recv().await;
    conn.send(json!({"type": "session.error", "reason": "no agents today"}))
        .await;
    // 2. connect fails with the bot's reason, as an unreachable bot.
    let err = connecting.await.unwrap().err().expect("rejected");
    assert!(
        matches!(&err, WsBotError::Rejected { reason } if reason == "no agents today"),
        "{err}"
    );
    assert!(err.is_bot_unreachable());
    assert_eq!(err.reason_code(), "error");

    // 3. A bot that never answers session.initiate: unreachable once the handshake bound ends.
    let cfg = bot(
        &server.url("ws"),
        WsProtocol::AcBotApi,
        None,
        MediaFormat::Lpcm16,
    );
    let opts = WsBotOptions {
        handshake_timeout: Duration::from_millis(300),
        ..quick_options()
    };
    let connecting = tokio::spawn(async move { WsBot::connect(&cfg, call_info("c3"), opts).await });
    let mut silent = server.accept().await;
    assert_eq!(silent.recv().await["type"], "session.initiate");
    let err = connecting.await.unwrap().err().expect("timed out");
    assert!(
        matches!(
            err,
            WsBotError::Timeout {
                stage: "session.accepted",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_bot_unreachable());
    // The socket was closed on this path too.
    assert!(silent.try_recv().await.is_none());

    // 4. Nobody listening: also unreachable, without waiting for the handshake bound.
    server.stop();
    let cfg = bot(
        "ws://127.0.0.1:9/bot",
        WsProtocol::AcBotApi,
        None,
        MediaFormat::Lpcm16,
    );
    let err = WsBot::connect(&cfg, call_info("c2"), quick_options())
        .await
        .err()
        .expect("refused");
    assert!(err.is_bot_unreachable(), "{err}");
}

/// Sends `input` as the person's audio and has the bot echo every chunk back as a play stream;
/// returns what came out of the playout buffer and the chunk sizes the bot saw.
async fn echo_round_trip(format: MediaFormat, input: &[i16]) -> (Vec<i16>, Vec<usize>) {
    let mut server = BotServer::start(None, None).await;
    let (mut bot, mut conn) = open(&mut server, "echo", format, quick_options()).await;

    // 1. dialgate starts the user stream, the bot says started.
    bot.start_user_stream().await.unwrap();
    assert_eq!(conn.recv().await["type"], "userStream.start");
    conn.send(json!({"type": "userStream.started"})).await;
    assert_eq!(event(&mut bot).await, WsBotEvent::UserStreamStarted);

    // 2. The person's audio in 20 ms frames; the bot collects the chunks until all arrived.
    for frame in input.chunks(160) {
        bot.send_audio(frame);
    }
    let bytes_per_sample = match format {
        MediaFormat::Lpcm16 => 4,
        MediaFormat::Lpcm16At24k => 6,
        MediaFormat::Mulaw => 1,
    };
    let want = input.len() * bytes_per_sample;
    let (mut wire, mut sizes) = (Vec::new(), Vec::new());
    while wire.len() < want {
        let m = conn.recv().await;
        assert_eq!(m["type"], "userStream.chunk", "{m}");
        let chunk = unb64(m["audioChunk"].as_str().unwrap());
        sizes.push(chunk.len());
        wire.extend(chunk);
    }

    // 3. The bot plays it back in chunks of its own size.
    let chunks = wire.chunks(1234).map(b64);
    conn.play_stream("s1", Some(format.as_str()), chunks, true)
        .await;
    assert_eq!(
        event(&mut bot).await,
        WsBotEvent::PlayStarted {
            stream_id: "s1".into()
        }
    );
    assert_eq!(
        event(&mut bot).await,
        WsBotEvent::PlayStopped {
            stream_id: "s1".into()
        }
    );

    // 4. Everything is queued now; pull it out 20 ms at a time.
    let out = pull(&bot, input.len() / 160 + 10);
    let stats = bot.stats();
    assert_eq!(stats.chunks_sent as usize, sizes.len());
    assert_eq!(stats.bad_frames, 0);
    bot.hangup("client-disconnected", "done").await;
    assert_eq!(conn.recv().await["type"], "userStream.stop");
    assert_eq!(conn.recv().await["type"], "session.end");
    (out, sizes)
}

#[tokio::test]
async fn audio_echo_both_ways_matches_in_every_media_format() {
    let input = chirp_8k(1.0);
    // The resampling filters delay by 16 samples (8 kHz) each way; µ-law is not resampled.
    for (format, chunk_bytes, delay) in [
        (MediaFormat::Lpcm16, 640, 32),
        (MediaFormat::Lpcm16At24k, 960, 32),
        (MediaFormat::Mulaw, 160, 0),
    ] {
        let (out, sizes) = echo_round_trip(format, &input).await;
        // 20 ms chunks of the wire format.
        assert!(
            sizes.iter().all(|&s| s == chunk_bytes),
            "{format}: chunk sizes {sizes:?}"
        );
        // The echo is the chirp, delayed by the resampling filters only.
        let (peak, lag) = best_correlation(&input, &out, 200);
        println!("{format}: echo correlation {peak:.4} at lag {lag} samples");
        assert!(peak > 0.99, "{format}: correlation {peak:.3} at lag {lag}");
        assert_eq!(lag, delay, "{format}: lag");
    }
}

#[tokio::test]
async fn activities_both_ways_and_speech_events_reach_the_call() {
    let mut server = BotServer::start(None, None).await;
    let (mut bot, mut conn) = open(&mut server, "acts", MediaFormat::Lpcm16, quick_options()).await;

    // 1. dialgate → bot: the start event and a DTMF key.
    let start = json!({"type": "event", "name": "start", "parameters": {"callee": "+15550002"}});
    bot.send_activities(vec![start.clone()]).await.unwrap();
    let m = conn.recv().await;
    assert_eq!(
        (m["type"].clone(), m["activities"].clone()),
        (json!("activities"), json!([start]))
    );
    bot.send_dtmf('5').await.unwrap();
    let m = conn.recv().await;
    assert_eq!(
        m["activities"],
        json!([{"type": "event", "name": "DTMF", "value": "5"}])
    );

    // 2. bot → dialgate: activities as received, then speech events from the bot's recogniser.
    let reply = json!([{"type": "message", "text": "Hello"}, {"type": "event", "name": "hangup"}]);
    conn.send(json!({"type": "activities", "activities": reply}))
        .await;
    assert_eq!(
        event(&mut bot).await,
        WsBotEvent::Activities(reply.as_array().unwrap().clone())
    );
    conn.send(json!({"type": "userStream.speech.started"}))
        .await;
    assert_eq!(event(&mut bot).await, WsBotEvent::SpeechStarted);
    let alts = json!([{"text": "yes", "confidence": 0.9}]);
    conn.send(json!({"type": "userStream.speech.recognition", "alternatives": alts}))
        .await;
    assert_eq!(event(&mut bot).await, WsBotEvent::SpeechRecognition(alts));
    bot.hangup("bot-disconnected", "hangup activity").await;
}

#[tokio::test]
async fn a_dropped_socket_is_resumed_then_given_up() {
    let mut server = BotServer::start(None, None).await;
    let (mut bot, conn) = open(&mut server, "conv-r", MediaFormat::Lpcm16, quick_options()).await;

    // 1. The bot's socket drops: dialgate reconnects and sends session.resume.
    conn.drop_hard();
    assert!(matches!(
        event(&mut bot).await,
        WsBotEvent::Reconnecting { attempt: 1, .. }
    ));
    let mut conn = server.accept().await;
    let resume = conn.recv().await;
    assert_eq!(
        (resume["type"].clone(), resume["conversationId"].clone()),
        (json!("session.resume"), json!("conv-r"))
    );
    conn.send(json!({"type": "session.accepted"})).await;
    assert_eq!(event(&mut bot).await, WsBotEvent::Resumed);

    // 2. The resumed session carries activities as before.
    bot.send_activities(vec![json!({"type": "event", "name": "ping"})])
        .await
        .unwrap();
    assert_eq!(conn.recv().await["type"], "activities");
    assert_eq!(bot.stats().connections, 2);

    // 3. Dropped again, and the bot refuses every resume: dialgate gives up.
    conn.drop_hard();
    for attempt in 1..=3 {
        assert!(
            matches!(event(&mut bot).await, WsBotEvent::Reconnecting { attempt: a, .. } if a == attempt)
        );
        let mut c = server.accept().await;
        assert_eq!(c.recv().await["type"], "session.resume");
        c.send(json!({"type": "session.error", "reason": "conversation not found"}))
            .await;
    }
    assert_disconnected_and_over(&mut bot).await;
    assert!(bot.send_activities(vec![]).await.is_err());
}

#[tokio::test]
async fn a_flooding_bot_is_bounded_and_a_silent_bot_gives_silence() {
    let mut server = BotServer::start(None, None).await;
    let opts = WsBotOptions {
        jitter_capacity_ms: 500,
        ..quick_options()
    };
    let (mut bot, mut conn) = open(&mut server, "flood", MediaFormat::Mulaw, opts).await;

    // 1. Before the bot says anything, frames are silence and counted as underruns.
    assert!(pull(&bot, 10).iter().all(|&s| s == 0));
    assert_eq!(bot.stats().jitter.underruns, 10);

    // 2. The bot floods 5 s of audio at once: 0.5 s is kept, the rest counted as overflow.
    let tone: Vec<u8> = chirp_8k(5.0)
        .iter()
        .map(|&s| dialgate::media::g711::linear_to_ulaw(s))
        .collect();
    conn.play_stream("f", None, tone.chunks(800).map(b64), true)
        .await;
    event(&mut bot).await;
    assert_eq!(
        event(&mut bot).await,
        WsBotEvent::PlayStopped {
            stream_id: "f".into()
        }
    );
    let stats = bot.stats();
    assert_eq!(stats.jitter.overflow_samples, 4_000 * 9);
    assert_eq!(stats.chunks_received, 50);

    // 3. Exactly 25 frames of audio come out, then silence again.
    let out = pull(&bot, 30);
    assert!(out[..25 * 160].iter().filter(|&&s| s != 0).count() > 3_000);
    assert!(out[25 * 160..].iter().all(|&s| s == 0));
    assert_eq!(bot.stats().jitter.underruns, 15);
    bot.hangup("client-disconnected", "done").await;
}

#[tokio::test]
async fn bad_frames_are_logged_counted_and_survived() {
    let mut server = BotServer::start(None, None).await;
    let opts = options_up_to(64 * 1024);
    let (mut bot, mut conn) = open(&mut server, "bad", MediaFormat::Lpcm16, opts).await;

    // 1. Invalid JSON, bad base64, an unknown type, no type, an oversized message, a binary frame.
    conn.send_raw(Message::text("{not json")).await;
    conn.send(json!({"type": "playStream.chunk", "streamId": "x", "audioChunk": "%%%notbase64"}))
        .await;
    conn.send(json!({"type": "session.dance"})).await;
    conn.send(json!({"activities": []})).await;
    conn.send(json!({"type": "activities", "pad": "x".repeat(100 * 1024)}))
        .await;
    conn.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    conn.send(json!({"type": "playStream.start", "mediaFormat": "audio/opus"}))
        .await;

    // 2. The session goes on: the next good message arrives as an event.
    conn.send(
        json!({"type": "activities", "activities": [{"type": "message", "text": "still here"}]}),
    )
    .await;
    let ev = event(&mut bot).await;
    assert_eq!(
        ev,
        WsBotEvent::Activities(vec![json!({"type": "message", "text": "still here"})])
    );
    let stats = bot.stats();
    assert_eq!(stats.bad_frames, 7);
    assert_eq!(stats.connections, 1, "no reconnect was needed");

    // 3. dialgate still talks to the bot.
    bot.send_activities(vec![json!({"type": "event", "name": "x"})])
        .await
        .unwrap();
    assert_eq!(conn.recv().await["type"], "activities");
    bot.hangup("client-disconnected", "done").await;
}

#[tokio::test]
async fn the_socket_is_closed_on_every_path() {
    let mut server = BotServer::start(None, None).await;

    // 1. Dropping the handle ends the session with reason `dropped` and closes the socket.
    let (bot, mut conn) = open(&mut server, "gone", MediaFormat::Lpcm16, quick_options()).await;
    drop(bot);
    let end = conn.recv().await;
    assert_eq!(
        (end["type"].clone(), end["reasonCode"].clone()),
        (json!("session.end"), json!("dropped"))
    );
    assert!(conn.try_recv().await.is_none());

    // 2. A hang-up while reconnecting stops trying: no resume reaches the bot afterwards.
    let opts = WsBotOptions {
        resume_backoff: Duration::from_secs(5),
        ..quick_options()
    };
    let (mut bot, conn) = open(&mut server, "mid", MediaFormat::Lpcm16, opts).await;
    conn.drop_hard();
    assert!(matches!(
        event(&mut bot).await,
        WsBotEvent::Reconnecting { attempt: 1, .. }
    ));
    bot.hangup("client-disconnected", "the person hung up")
        .await;
    server.stop();
}
