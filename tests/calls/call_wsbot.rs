//! Calls with a WebSocket bot (`bots[].websocket`), end to end over real sockets on loopback:
//! dialgate in-process, a PJSIP person (the carrier's callee) and a WebSocket bot server written
//! for the tests (`tests/common/wsbot.rs`), in both protocols. Each test reads as the numbered
//! steps of its call flow; the shared kit is `tests/common/flows.rs` (`FlowSetup::websocket`).

use crate::common;
use common::flows::*;
use common::peers::fixture_audio;
use common::wsbot::{BotConn, BotServer, tone_seconds};
use serde_json::{Value, json};
use std::time::Duration;

/// Relay and peer ports of test `n` (distinct from the other flow binaries' ranges; test 10
/// has a range of its own, the first ten fill 35000-36999 / 49000-49999).
fn ports(n: u16) -> (u16, u16) {
    match n {
        10 => (44_600, 44_800),
        n => (35_000 + 200 * n, 49_000 + 100 * n),
    }
}

/// [`start`], then a dial (no extra request fields); returns its conversation ID too.
async fn start_and_dial(
    n: u16,
    protocol: &'static str,
    format: Option<&'static str>,
    person: impl FnOnce(&mut FlowSetup),
) -> (Flow, BotServer, String) {
    let (flow, server) = start(n, protocol, format, person).await;
    let id = flow.dial(json!({})).await;
    (flow, server, id)
}

/// Test `n`'s call with an AC bot speaking raw/mulaw, the person set up by `person`: dialled,
/// its socket accepted and its session started ([`accept_ac`]). Returns the flow, the server,
/// the conversation ID and the bot's connection.
async fn ac_mulaw_call(
    n: u16,
    person: impl FnOnce(&mut FlowSetup),
) -> (Flow, BotServer, String, BotConn) {
    let (flow, mut server, id) = start_and_dial(n, "ac-bot-api", Some("raw/mulaw"), person).await;
    let mut conn = server.accept().await;
    accept_ac(&mut conn, "raw/mulaw").await;
    (flow, server, id, conn)
}

/// A flow whose bot is the test's WebSocket server, the person answering 200.
async fn start(
    n: u16,
    protocol: &'static str,
    format: Option<&'static str>,
    person: impl FnOnce(&mut FlowSetup),
) -> (Flow, BotServer) {
    start_with(n, protocol, format, None, person).await
}

/// [`start`] with the bot's `chunk_ms` set.
async fn start_with(
    n: u16,
    protocol: &'static str,
    format: Option<&'static str>,
    chunk_ms: Option<u32>,
    person: impl FnOnce(&mut FlowSetup),
) -> (Flow, BotServer) {
    let server = BotServer::start(Some(BOT_TOKEN), None).await;
    let (rtp, peer_rtp) = ports(n);
    let mut setup = FlowSetup::new(rtp, peer_rtp, "200");
    setup.websocket = Some(WsBotSetup {
        url: server.url("ws"),
        protocol,
        media_format: format,
        chunk_ms,
    });
    person(&mut setup);
    (Flow::start(setup).await, server)
}

/// An AC bot: answers `session.initiate` with `session.accepted` in `format`; returns the
/// initiate message.
async fn accept_ac(conn: &mut BotConn, format: &str) -> Value {
    let initiate = conn.recv().await;
    assert_eq!(initiate["type"], "session.initiate", "{initiate}");
    conn.send(json!({"type": "session.accepted", "mediaFormat": format}))
        .await;
    initiate
}

/// What an echo bot saw over its socket, in order.
#[derive(Debug, Default)]
struct Seen {
    messages: Vec<Value>,
    chunks: usize,
    /// Bytes of audio in each `userStream.chunk`, in order.
    chunk_bytes: Vec<usize>,
}

impl Seen {
    fn types(&self) -> Vec<String> {
        self.messages
            .iter()
            .map(|m| {
                m["type"]
                    .as_str()
                    .or(m["event"].as_str())
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }

    fn event_names(&self) -> Vec<String> {
        self.messages
            .iter()
            .filter(|m| m["type"] == "activities")
            .flat_map(|m| m["activities"].as_array().cloned().unwrap_or_default())
            .map(|a| a["name"].as_str().unwrap_or("").to_owned())
            .collect()
    }
}

/// An AC echo bot: starts the person's stream when asked and plays each chunk straight back;
/// `say` is sent as a `message` activity when the `start` event arrives. Runs until the socket
/// closes.
async fn ac_echo(mut conn: BotConn, say: Option<&'static str>) -> Seen {
    let mut seen = Seen::default();
    let mut playing = false;
    while let Some(m) = conn.try_recv().await {
        match m["type"].as_str().unwrap_or("") {
            "userStream.start" => conn.send(json!({"type": "userStream.started"})).await,
            "userStream.chunk" => {
                seen.chunks += 1;
                let audio = common::wsbot::unb64(m["audioChunk"].as_str().unwrap_or(""));
                seen.chunk_bytes.push(audio.len());
                if say.is_none() {
                    if !playing {
                        playing = true;
                        conn.send(json!({"type": "playStream.start", "streamId": "echo"}))
                            .await;
                    }
                    let chunk = m["audioChunk"].clone();
                    conn.send(json!({"type": "playStream.chunk", "streamId": "echo", "audioChunk": chunk}))
                        .await;
                }
                continue;
            }
            "activities" => {
                let start = m["activities"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|a| a["name"] == "start"));
                if let (true, Some(text)) = (start, say) {
                    conn.send(json!({"type": "activities", "activities": [{"type": "message", "text": text}]}))
                        .await;
                }
            }
            _ => {}
        }
        seen.messages.push(m);
    }
    seen
}

/// A media-stream echo bot: plays each `media` straight back, marks its audio once.
async fn stream_echo(mut conn: BotConn) -> Seen {
    let mut seen = Seen::default();
    while let Some(m) = conn.try_recv().await {
        if m["event"] == "media" {
            seen.chunks += 1;
            let payload = m["media"]["payload"].clone();
            conn.send(json!({"event": "media", "streamSid": "x", "media": {"payload": payload}}))
                .await;
            if seen.chunks == 50 {
                conn.send(
                    json!({"event": "mark", "streamSid": "x", "mark": {"name": "one-second"}}),
                )
                .await;
            }
            continue;
        }
        seen.messages.push(m);
    }
    seen
}

/// The person loops hello.wav, records, and hangs up after `secs`.
fn talking_person(secs: u64) -> impl FnOnce(&mut FlowSetup) {
    move |s| {
        s.callee.play = Some(fixture_audio("hello.wav"));
        s.callee.play_loop = true;
        s.callee.record = Some("heard.wav".into());
        s.callee.bye_after_ms = Some(secs * 1000);
    }
}

/// The person heard their own hello.wav back through the bot (both directions of the bridge).
async fn assert_heard_echo(flow: &Flow) {
    let heard = heard_by(&flow.callee).await;
    let (hello, machine) = hello_and_machine();
    let (echo, other) = similarities(&heard, &hello, &machine, 2.5).await;
    eprintln!("the person heard hello back: {echo:.3} (another clip: {other:.3})");
    assert!(
        echo > 0.8 && other < echo,
        "echo {echo:.3}, another clip {other:.3}"
    );
}

/// A bot that says nothing: it starts the person's stream when asked (AC) and listens until
/// the socket closes.
async fn quiet_bot(mut conn: BotConn) -> Seen {
    let mut seen = Seen::default();
    while let Some(m) = conn.try_recv().await {
        if m["type"] == "userStream.chunk" || m["event"] == "media" {
            seen.chunks += 1;
            continue;
        }
        if m["type"] == "userStream.start" {
            conn.send(json!({"type": "userStream.started"})).await;
        }
        seen.messages.push(m);
    }
    seen
}

/// How much of a recording (8 kHz) is sound rather than silence, in ms (20 ms windows above
/// -45 dBFS).
fn heard_ms(samples: &[i16]) -> usize {
    samples
        .chunks(160)
        .filter(|w| common::audio::rms_dbfs(w) > -45.0)
        .count()
        * 20
}

/// A counter of dialgate's `/metrics` (0 when absent).
async fn metric(flow: &Flow, series: &str) -> f64 {
    let text = flow.app.http.get("/metrics", &flow.auth).await.text;
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// Waits (bounded) until a counter satisfies `ok` (a bridge adds its counters about once a
/// second and at hang-up); returns the last value seen.
async fn wait_metric(flow: &Flow, series: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = metric(flow, series).await;
        if ok(v) || tokio::time::Instant::now() >= deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The person's RTP counters (`rtp_stats`, logged by the PJSIP peer before it hangs up):
/// packets received and for how long its audio stream had been up, in s.
async fn person_rtp(flow: &Flow) -> (u64, f64) {
    let st = flow
        .callee
        .wait_event("rtp_stats", WAIT)
        .await
        .expect("the person logged no RTP counters");
    eprintln!("the person's RTP: {}", st.0);
    let pkts = st.0["rx_pkt"].as_u64().unwrap_or(0);
    (pkts, st.0["media_s"].as_f64().unwrap_or(0.0))
}

#[tokio::test]
async fn ac_bot_api_audio_both_ways_then_the_person_hangs_up() {
    // 1. An AC Bot API bot with raw/lpcm16 (both resamplers run); the person talks for 8 s.
    let (flow, mut server, id) =
        start_and_dial(0, "ac-bot-api", Some("raw/lpcm16"), talking_person(8)).await;

    // 2. dialgate connects with the token and sends session.initiate with the call's data;
    //    the person is not called before the bot accepts.
    let mut conn = server.accept().await;
    assert_eq!(
        conn.authorization.as_deref(),
        Some(format!("Bearer {BOT_TOKEN}").as_str())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(flow.callee.events_named("incoming").is_empty());
    let initiate = accept_ac(&mut conn, "raw/lpcm16").await;
    assert_eq!(initiate["conversationId"], id.as_str());
    assert_eq!(initiate["metadata"]["campaign"], "flows");
    assert_eq!(initiate["supportedMediaFormats"][0], "raw/lpcm16");

    // 3. The bot echoes the person's stream; the person hangs up after 8 s.
    let bot = tokio::spawn(ac_echo(conn, None));
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "client-disconnected");
    let seen = tokio::time::timeout(WAIT, bot).await.unwrap().unwrap();

    // 4. The bot got `start`, the stream, ~8 s of chunks, and session.end with the reason;
    //    then the socket closed.
    assert!(seen.event_names().contains(&"start".to_owned()), "{seen:?}");
    let types = seen.types();
    assert!(types.contains(&"userStream.start".to_owned()), "{types:?}");
    assert_eq!(
        types.last().map(String::as_str),
        Some("session.end"),
        "{types:?}"
    );
    let end = seen.messages.last().unwrap();
    assert_eq!(end["reasonCode"], "client-disconnected", "{end}");
    assert!(seen.chunks > 150, "only {} chunks", seen.chunks);

    // 5. The person heard their own words back; one terminal notification.
    assert_heard_echo(&flow).await;
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    assert!(timeline(&r).iter().any(|e| e == "bot"), "{r:#}");
    // 6. The metrics count the session per bot kind.
    let connections = metric(
        &flow,
        "dialgate_wsbot_connections_total{kind=\"ac-bot-api\"}",
    )
    .await;
    assert_eq!(connections, 1.0);
    let to_bot = metric(
        &flow,
        "dialgate_wsbot_audio_chunks_total{kind=\"ac-bot-api\",direction=\"to_bot\"}",
    )
    .await;
    assert!(to_bot > 150.0, "{to_bot} chunks to the bot");
    flow.stop().await;
}

#[tokio::test]
async fn media_stream_audio_both_ways_marks_and_stop() {
    // 1. A media-stream voice agent; the person talks for 8 s.
    let (flow, mut server, id) = start_and_dial(1, "media-stream", None, talking_person(8)).await;

    // 2. connected, then start with the call's data.
    let mut conn = server.accept().await;
    let connected = conn.recv().await;
    assert_eq!(connected["event"], "connected");
    let start = conn.recv().await;
    assert_eq!(start["event"], "start");
    assert_eq!(start["start"]["callSid"], id.as_str());
    assert_eq!(start["start"]["customParameters"]["campaign"], "flows");

    // 3. The agent echoes; the person hangs up after 8 s.
    let bot = tokio::spawn(stream_echo(conn));
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "client-disconnected");
    let seen = tokio::time::timeout(WAIT, bot).await.unwrap().unwrap();

    // 4. The mark came back once its audio had played; `stop` ended the stream.
    let types = seen.types();
    assert!(types.contains(&"mark".to_owned()), "{types:?}");
    assert_eq!(types.last().map(String::as_str), Some("stop"), "{types:?}");
    assert!(seen.chunks > 150, "only {} chunks", seen.chunks);

    // 5. The person heard their words back; one terminal notification.
    assert_heard_echo(&flow).await;
    flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    flow.stop().await;
}

#[tokio::test]
async fn session_error_means_the_person_is_never_called() {
    // 1. An AC bot that refuses the session.
    let (flow, mut server, id) = start_and_dial(2, "ac-bot-api", None, |_| {}).await;
    let mut conn = server.accept().await;
    let initiate = conn.recv().await;
    assert_eq!(initiate["type"], "session.initiate");
    conn.send(json!({"type": "session.error", "reason": "no agents free"}))
        .await;

    // 2. failed/error naming the bot's answer, the only notification.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["reasonCode"], "error");
    let reason = done["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("no agents free") && reason.contains("not called"),
        "{reason}"
    );
    flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["failed"]);

    // 3. The person's phone never rang.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(flow.callee.events_named("incoming").is_empty());
    flow.stop().await;
}

#[tokio::test]
async fn a_refused_socket_means_the_person_is_never_called() {
    // 1. A bot URL where nothing listens.
    let (flow, server) = start(3, "media-stream", None, |_| {}).await;
    server.stop();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = flow.dial(json!({})).await;

    // 2. failed/error; the person's phone never rang.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(
        (done["status"].as_str(), done["reasonCode"].as_str()),
        (Some("failed"), Some("error"))
    );
    flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["failed"]);
    assert!(flow.callee.events_named("incoming").is_empty());
    flow.stop().await;
}

#[tokio::test]
async fn a_dropped_socket_is_resumed_then_dropped_for_good_ends_bot_disconnected() {
    // 1. An AC bot; the person stays on the line.
    let (flow, mut server, id, conn) = ac_mulaw_call(4, talking_person(60)).await;
    flow.wait_status(&id, "connected").await;

    // 2. The socket drops without a close: dialgate reconnects with session.resume.
    conn.drop_hard();
    let mut conn = server.accept().await;
    let resume = conn.recv().await;
    assert_eq!(resume["type"], "session.resume", "{resume}");
    assert_eq!(resume["conversationId"], id.as_str());
    conn.send(json!({"type": "session.accepted", "mediaFormat": "raw/mulaw"}))
        .await;
    // 3. The call goes on: the person's audio flows on the new socket.
    let mut chunks = 0;
    while chunks < 10 {
        let m = conn.recv().await;
        if m["type"] == "userStream.chunk" {
            chunks += 1;
        } else if m["type"] == "userStream.start" {
            conn.send(json!({"type": "userStream.started"})).await;
        }
    }
    assert!(flow.wait_status(&id, "connected").await["status"] == "connected");

    // 4. The bot goes away for good: every resume is refused.
    server.stop();
    conn.drop_hard();

    // 5. completed/bot-disconnected, once; the person got a BYE.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["reasonCode"], "bot-disconnected");
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    let notes: Vec<String> = r["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|e| e["detail"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(notes.iter().any(|n| n.contains("resumed")), "{notes:#?}");
    let bye = flow
        .callee
        .wait_for("disconnected", |e| e.is("disconnected"), WAIT)
        .await;
    assert!(bye.is_ok(), "the person was not hung up on");
    flow.stop().await;
}

#[tokio::test]
async fn bad_frames_are_survived_and_text_is_spoken_in_ac_mode() {
    // 1. An AC bot that says a sentence at `start`; the person listens (records) for 8 s.
    let voice = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/models/piper");
    let (flow, mut server, id) = start_and_dial(5, "ac-bot-api", None, |s| {
        s.callee.record = Some("heard.wav".into());
        s.callee.bye_after_ms = Some(8_000);
    })
    .await;
    let mut conn = server.accept().await;
    accept_ac(&mut conn, "raw/lpcm16").await;

    // 2. Garbage first: invalid JSON, an unknown type, bad base64, a binary frame.
    use tokio_tungstenite::tungstenite::Message;
    conn.send_raw(Message::text("{not json")).await;
    conn.send(json!({"type": "no.such.type"})).await;
    conn.send(json!({"type": "playStream.start", "streamId": "s"}))
        .await;
    conn.send(json!({"type": "playStream.chunk", "streamId": "s", "audioChunk": "***"}))
        .await;
    conn.send_raw(Message::binary(vec![1u8, 2, 3])).await;

    // 3. The bot speaks a sentence once the call starts; the person hangs up after 8 s.
    let bot = tokio::spawn(ac_echo(
        conn,
        Some("Hello, this is your appointment reminder."),
    ));
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "client-disconnected");
    let seen = tokio::time::timeout(WAIT, bot).await.unwrap().unwrap();
    assert_eq!(seen.types().last().map(String::as_str), Some("session.end"));

    // 4. With the voice installed: the sentence was spoken (a `speak` on the timeline, speech
    //    in the person's recording) and `playFinished` went to the bot over its socket.
    let r = flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    if !voice.exists() {
        eprintln!("no Piper voice in data/models/piper: the spoken part is not checked");
        flow.stop().await;
        return;
    }
    assert!(timeline(&r).iter().any(|e| e == "speak"), "{r:#}");
    let heard = heard_by(&flow.callee).await;
    let loud = common::audio::rms_dbfs(&heard);
    eprintln!("the person's recording: {loud:.1} dBFS");
    assert!(
        loud > -45.0,
        "the sentence was not heard: {loud:.1} dBFS; timeline {}",
        r["timeline"]
    );
    assert!(
        seen.event_names().contains(&"playFinished".to_owned()),
        "{:?}",
        seen.event_names()
    );
    flow.stop().await;
}

#[tokio::test]
async fn key_presses_reach_a_media_stream_as_dtmf_messages() {
    // 1. A media-stream agent; the person presses 1, # and 5 half a second after answering and
    //    hangs up after 4 s.
    let (flow, mut server, id) = start_and_dial(6, "media-stream", None, |s| {
        s.callee.dtmf = Some(("1#5".into(), 500));
        // PJSIP sends RTP (telephone-events included) only while something feeds the call.
        s.callee.play = Some(fixture_audio("hello.wav"));
        s.callee.play_loop = true;
        s.callee.bye_after_ms = Some(4_000);
    })
    .await;
    let conn = server.accept().await;

    // 2. The agent gets `dtmf` messages with the digits, in order, then `stop`.
    let seen = tokio::time::timeout(WAIT, stream_echo(conn)).await.unwrap();
    let digits: String = seen
        .messages
        .iter()
        .filter(|m| m["event"] == "dtmf")
        .filter_map(|m| m["dtmf"]["digit"].as_str())
        .collect();
    assert_eq!(digits, "1#5", "{:?}", seen.types());
    assert_eq!(seen.types().last().map(String::as_str), Some("stop"));

    // 3. One terminal notification.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "client-disconnected");
    flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    flow.stop().await;
}

#[tokio::test]
async fn a_bot_flooding_audio_is_paced_at_20_ms_and_the_excess_is_counted() {
    // 1. An AC bot with raw/mulaw; the person talks (PJSIP sends RTP only while fed), records
    //    and hangs up after 4 s.
    let (flow, _server, id, mut conn) = ac_mulaw_call(7, talking_person(4)).await;

    // 2. Once the call is up (the person's stream starts), the bot sends 25 s of a tone at
    //    once, in 1 s chunks: far faster than real time, and 5 s beyond the 20 s playout buffer.
    while conn.recv().await["type"] != "userStream.start" {}
    conn.send(json!({"type": "userStream.started"})).await;
    const FLOOD_S: usize = 25;
    conn.play_stream("flood", None, tone_seconds(FLOOD_S), false)
        .await;
    let bot = tokio::spawn(quiet_bot(conn));

    // 3. The call is unaffected: the person hangs up after 4 s, one terminal, session.end.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "client-disconnected");
    let seen = tokio::time::timeout(WAIT, bot).await.unwrap().unwrap();
    assert_eq!(seen.types().last().map(String::as_str), Some("session.end"));
    flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);

    // 4. Paced: the person got at most one packet per 20 ms while its stream was up — a few
    //    seconds' worth, not the 25 s the bot sent.
    let (pkts, media_s) = person_rtp(&flow).await;
    assert!(pkts >= 50, "only {pkts} packets reached the person");
    assert!(
        pkts as f64 <= media_s * 50.0 + 10.0,
        "{pkts} packets in {media_s} s: not paced at 20 ms"
    );
    assert!((pkts as usize) < FLOOD_S * 50 / 2, "{pkts} packets");

    // 5. The tone still played when the person hung up: the buffer held the flood and
    //    played it in real time (the recording's last second is the tone).
    let heard = heard_by(&flow.callee).await;
    let last = &heard[heard.len().saturating_sub(8000)..];
    let share = common::audio::tone_share(last, 8000, 440.0);
    assert!(share > 0.8, "the last second is not the tone: {share:.2}");

    // 6. What did not fit the buffer was dropped and counted; every chunk was received.
    let kind = "kind=\"ac-bot-api\"";
    let overflows = wait_metric(
        &flow,
        &format!("dialgate_wsbot_jitter_overflows_total{{{kind}}}"),
        |v| v >= 1.0,
    )
    .await;
    assert!(overflows >= 1.0, "no overflow counted");
    let from_bot = wait_metric(
        &flow,
        &format!("dialgate_wsbot_audio_chunks_total{{{kind},direction=\"from_bot\"}}"),
        |v| v >= FLOOD_S as f64,
    )
    .await;
    assert_eq!(from_bot, FLOOD_S as f64);
    flow.stop().await;
}

#[tokio::test]
async fn a_bot_sending_nothing_gives_silence_and_the_call_ends_cleanly() {
    // 1. A media-stream agent that listens and never answers; the person talks, records and
    //    hangs up after 4 s.
    let (flow, mut server, id) = start_and_dial(8, "media-stream", None, talking_person(4)).await;
    let conn = server.accept().await;
    let bot = tokio::spawn(quiet_bot(conn));

    // 2. The call carries on to the person's hang-up and ends cleanly: `stop` to the agent,
    //    one terminal notification.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(
        (done["status"].as_str(), done["reasonCode"].as_str()),
        (Some("completed"), Some("client-disconnected"))
    );
    let seen = tokio::time::timeout(WAIT, bot).await.unwrap().unwrap();
    assert_eq!(seen.types().last().map(String::as_str), Some("stop"));
    assert!(
        seen.chunks > 100,
        "only {} chunks to the agent",
        seen.chunks
    );
    flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);

    // 3. The person heard silence (the stream kept its 20 ms packets, with nothing in them).
    let (pkts, media_s) = person_rtp(&flow).await;
    assert!(
        pkts as f64 <= media_s * 50.0 + 10.0,
        "{pkts} in {media_s} s"
    );
    let heard = heard_by(&flow.callee).await;
    assert_eq!(heard_ms(&heard), 0, "the person heard something");

    // 4. The empty playout buffer was counted as underruns, and nothing came from the agent.
    let kind = "kind=\"media-stream\"";
    let underruns = wait_metric(
        &flow,
        &format!("dialgate_wsbot_jitter_underruns_total{{{kind}}}"),
        |v| v >= 100.0,
    )
    .await;
    assert!(underruns >= 100.0, "{underruns} underruns");
    let from_bot = format!("dialgate_wsbot_audio_chunks_total{{{kind},direction=\"from_bot\"}}");
    assert_eq!(metric(&flow, &from_bot).await, 0.0);
    flow.stop().await;
}

#[tokio::test]
async fn clear_drops_the_queued_audio_and_marks_are_echoed_as_twilio_does() {
    // 1. A media-stream agent; the person talks, records and hangs up after 5 s.
    let (flow, mut server, id) = start_and_dial(9, "media-stream", None, talking_person(5)).await;
    let mut conn = server.accept().await;

    // 2. At the person's first audio the agent queues 10 s of a tone and a mark behind it.
    while conn.recv().await["event"] != "media" {}
    for payload in tone_seconds(10) {
        conn.send(json!({"event": "media", "streamSid": "x", "media": {"payload": payload}}))
            .await;
    }
    conn.send(json!({"event": "mark", "streamSid": "x", "mark": {"name": "queued"}}))
        .await;

    // 3. About a second later (50 more frames of the person's audio) it barges in: `clear`,
    //    then a mark with nothing queued before it.
    let mut before_clear = Vec::new();
    let mut frames = 0;
    while frames < 50 {
        let m = conn.recv().await;
        if m["event"] == "media" {
            frames += 1;
        } else {
            before_clear.push(m);
        }
    }
    conn.send(json!({"event": "clear", "streamSid": "x"})).await;
    conn.send(json!({"event": "mark", "streamSid": "x", "mark": {"name": "after-clear"}}))
        .await;
    let bot = tokio::spawn(quiet_bot(conn));

    // 4. The call goes on to the person's hang-up.
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "client-disconnected");
    let seen = tokio::time::timeout(WAIT, bot).await.unwrap().unwrap();
    flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);

    // 5. Twilio's semantics: no mark came back while its audio was still queued; the clear
    //    echoed the pending mark, then the later one (nothing before it), in order, before `stop`.
    assert!(
        !before_clear.iter().any(|m| m["event"] == "mark"),
        "{before_clear:?}"
    );
    let marks: Vec<&str> = seen
        .messages
        .iter()
        .filter(|m| m["event"] == "mark")
        .filter_map(|m| m["mark"]["name"].as_str())
        .collect();
    assert_eq!(marks, ["queued", "after-clear"], "{:?}", seen.types());
    assert_eq!(seen.types().last().map(String::as_str), Some("stop"));

    // 6. The person heard the tone until the clear and silence after it: far less than the
    //    10 s sent, and the end of the call silent.
    let heard = heard_by(&flow.callee).await;
    let ms = heard_ms(&heard);
    eprintln!("the person heard {ms} ms of the 10 s queued");
    assert!((220..4_000).contains(&ms), "{ms} ms heard");
    let end = &heard[heard.len().saturating_sub(8000)..];
    assert_eq!(
        heard_ms(end),
        0,
        "the queued audio still played after the clear"
    );
    flow.stop().await;
}

#[tokio::test]
async fn chunk_ms_sets_the_persons_audio_per_chunk_and_the_echo_still_plays() {
    // 1. An AC bot speaking raw/mulaw whose section says `chunk_ms: 40`; the person talks for
    //    5 s and records.
    let (flow, mut server) = start_with(
        10,
        "ac-bot-api",
        Some("raw/mulaw"),
        Some(40),
        talking_person(5),
    )
    .await;
    let id = flow.dial(json!({})).await;
    let mut conn = server.accept().await;
    accept_ac(&mut conn, "raw/mulaw").await;

    // 2. The bot echoes each chunk; the person hangs up.
    let bot = tokio::spawn(ac_echo(conn, None));
    let done = flow.wait_terminal(&id).await;
    assert_eq!(done["reasonCode"], "client-disconnected");
    let seen = tokio::time::timeout(WAIT, bot).await.unwrap().unwrap();

    // 3. Every chunk but the stream's last carried 40 ms of µ-law (320 bytes), half as many
    //    messages as 20 ms chunks would have taken.
    let (last, whole) = seen.chunk_bytes.split_last().expect("chunks");
    assert!(whole.len() > 80, "only {} chunks", seen.chunks);
    assert!(whole.iter().all(|&b| b == 320), "{:?}", seen.chunk_bytes);
    assert!(*last > 0 && *last <= 320, "last chunk {last} bytes");

    // 4. The person heard their own words back; one terminal notification.
    assert_heard_echo(&flow).await;
    flow.wait_record_settled(&id).await;
    flow.assert_notifications(&id, &["answered", "completed"]);
    flow.stop().await;
}
