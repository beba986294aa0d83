//! The WebSocket bot's queues when the call is slow (issue 10: no unbounded queue; issue 15: the
//! bot's audio keeps its pace): a session or bridge whose events are not read keeps playing the
//! bot's audio to the relay and loses no event once they are read; a flood of commands on the
//! bridge is dropped and counted without crowding out the hang-up. Real sockets on loopback: the
//! bot server of `tests/common/wsbot.rs`, the relay with its bot leg served in process and a UDP
//! socket standing in for the person (`wsbot_direct.rs`).

use crate::common;

use super::wsbot_direct::person_side;
use common::wsbot::*;
use dialgate::call::wsbridge::{BridgeEvent, WsBridge};
use dialgate::media::g711::{G711Law, decode};
use dialgate::overflow::{self, Queue};
use dialgate::wsbot::{MediaFormat, MediaSide, WsBot, WsBotEvent, WsBotOptions, WsProtocol};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::net::UdpSocket;

/// The bots of these tests speak µ-law.
const MULAW: MediaFormat = MediaFormat::Mulaw;

/// Waits (bounded by [`WAIT`]) until `want` RTP packets carrying sound reached `relay` (the
/// person's socket).
async fn sound_packets(relay: &UdpSocket, want: usize) -> usize {
    let mut buf = [0u8; 2048];
    let mut loud = 0;
    let _ = tokio::time::timeout(WAIT, async {
        while loud < want {
            let Ok((n, _)) = relay.recv_from(&mut buf).await else {
                return;
            };
            let peak = buf
                .get(12..n)
                .unwrap_or_default()
                .iter()
                .map(|b| decode(G711Law::Pcmu, *b).unsigned_abs())
                .max()
                .unwrap_or(0);
            if peak > 1000 {
                loud += 1;
            }
        }
    })
    .await;
    loud
}

/// The bot's side of steps 2–3: a play stream with `secs` of tone, then `n` activities
/// numbered from 0, each its own message.
async fn tone_then_activities(conn: &mut BotConn, secs: usize, n: i64) {
    conn.play_stream("s", None, tone_seconds(secs), false).await;
    for i in 0..n {
        conn.send(json!({"type": "activities", "activities": [{"type": "event", "name": "n", "value": i}]}))
            .await;
    }
}

/// The numbers of the activities in `events` (others skipped).
fn numbers<'a>(events: impl IntoIterator<Item = &'a WsBotEvent>) -> Vec<i64> {
    events
        .into_iter()
        .filter_map(|e| match e {
            WsBotEvent::Activities(a) => a.first().and_then(|a| a["value"].as_i64()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_events_are_not_read_keeps_playing_the_bots_audio_and_loses_none() {
    // 1. A session with a tiny event queue (4), serving the relay's bot leg.
    let mut server = BotServer::start(None, None).await;
    let cfg = bot(&server.url("ws"), WsProtocol::AcBotApi, None, MULAW);
    let opts = WsBotOptions {
        channel_capacity: 4,
        ..quick_options()
    };
    let connecting =
        tokio::spawn(async move { WsBot::connect(&cfg, call_info("conv-slow"), opts).await });
    let mut conn = server.accept().await;
    assert_eq!(conn.recv().await["type"], "session.initiate");
    conn.send(json!({"type": "session.accepted", "mediaFormat": "raw/mulaw"}))
        .await;
    let mut ws = connecting.await.unwrap().expect("session opened");
    let (relay, port) = person_side(44400, 44439).await;
    ws.start_media(MediaSide::new(port, None)).await.unwrap();

    // 2. The bot queues 4 s of a tone, then 200 activities: far more events than the queue
    //    holds, and nobody reads them.
    const N: i64 = 200;
    tone_then_activities(&mut conn, 4, N).await;

    // 3. The tone still reaches the relay at its pace: 100 frames (2 s) of sound arrive.
    //    (A task that waited for room in its event queue stopped here, audio included.)
    assert_eq!(sound_packets(&relay.person, 100).await, 100);

    // 4. Read now, the events are all there, in order: the play stream's start, then every
    //    activity.
    let mut got = Vec::new();
    while numbers(&got).len() < N as usize {
        got.push(event(&mut ws).await);
    }
    assert!(matches!(got[0], WsBotEvent::PlayStarted { .. }), "{got:?}");
    assert_eq!(numbers(&got), (0..N).collect::<Vec<_>>());

    // 5. The session still works both ways afterwards and ends cleanly.
    assert!(ws.hangup("client-disconnected", "done").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_whose_call_is_slow_keeps_the_bots_audio_flowing_and_loses_no_event() {
    // 1. A bridge (event queue 64, its session's 256) whose events the "actor" does not read.
    let mut server = BotServer::start(None, None).await;
    let cfg = bot(&server.url("ws"), WsProtocol::AcBotApi, None, MULAW);
    let metrics = Arc::new(dialgate::metrics::Metrics::new());
    let (bridge, mut events) =
        WsBridge::spawn(cfg, call_info("conv-slow-bridge"), quick_options(), metrics);
    let mut conn = server.accept().await;
    assert_eq!(conn.recv().await["type"], "session.initiate");
    conn.send(json!({"type": "session.accepted", "mediaFormat": "raw/mulaw"}))
        .await;
    let (relay, port) = person_side(44440, 44479).await;
    bridge.start_media(port, None);

    // 2. The bot plays 4 s of a tone, then sends 600 activities: more than the bridge's and
    //    the session's queues and the session's backlog together.
    const N: i64 = 600;
    tone_then_activities(&mut conn, 4, N).await;

    // 3. The person's side keeps getting the tone at its pace.
    assert_eq!(sound_packets(&relay.person, 100).await, 100);

    // 4. The call reads at last: the session opened, the stream started, every activity in
    //    order.
    let mut got = Vec::new();
    let mut opened = false;
    while numbers(&got).len() < N as usize {
        let ev = tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("no event in time")
            .expect("the bridge ended");
        match ev {
            BridgeEvent::Opened => opened = true,
            BridgeEvent::Bot(e) => got.push(e),
            BridgeEvent::Failed(r) => panic!("failed: {r}"),
        }
    }
    assert!(opened);
    assert!(matches!(got[0], WsBotEvent::PlayStarted { .. }), "{got:?}");
    assert_eq!(numbers(&got), (0..N).collect::<Vec<_>>());

    // 5. The hang-up ends the session: the user stream, then session.end.
    bridge.hangup("client-disconnected", "done");
    let end = loop {
        let m = conn.recv().await;
        if m["type"] == "session.end" {
            break m;
        }
    };
    assert_eq!(end["reasonCode"], "client-disconnected");
}

#[tokio::test]
async fn a_flooded_bridge_drops_and_counts_commands_and_still_hangs_up_after_what_it_queued() {
    // 1. The bridge opens the session.
    let mut server = BotServer::start(None, None).await;
    let format = MediaFormat::Lpcm16At24k;
    let cfg = bot(&server.url("ws"), WsProtocol::AcBotApi, None, format);
    let metrics = Arc::new(dialgate::metrics::Metrics::new());
    let (bridge, mut events) =
        WsBridge::spawn(cfg, call_info("conv-flood"), quick_options(), metrics);
    let mut conn = server.accept().await;
    assert_eq!(conn.recv().await["type"], "session.initiate");
    conn.send(json!({"type": "session.accepted", "mediaFormat": format.as_str()}))
        .await;
    let opened = tokio::time::timeout(WAIT, events.recv()).await;
    assert!(
        matches!(opened, Ok(Some(BridgeEvent::Opened))),
        "{opened:?}"
    );

    // 2. Far more activities than the bridge's queue holds, without yielding (one thread: the
    //    bridge takes none meanwhile): the queue fills, the rest are dropped and counted.
    let before = overflow::count(Queue::BridgeCommands);
    for i in 0..1000 {
        bridge.activities(vec![json!({"type": "event", "name": "flood", "value": i})]);
    }
    assert!(overflow::count(Queue::BridgeCommands) > before);

    // 3. The hang-up is not crowded out: the bot gets the queued activities, in order, then
    //    the end of the session.
    bridge.hangup("client-disconnected", "the person hung up");
    let mut values = Vec::new();
    loop {
        let v: Value = conn.recv().await;
        match v["type"].as_str() {
            Some("activities") => {
                for a in v["activities"].as_array().into_iter().flatten() {
                    values.push(a["value"].as_i64().expect("value"));
                }
            }
            Some("session.end") => break,
            _ => {}
        }
    }
    assert!(
        values.len() >= 256 && values.len() < 1000,
        "{}",
        values.len()
    );
    assert_eq!(values, (0..values.len() as i64).collect::<Vec<_>>());
}
