//! Benchmark (ignored by default; run by `scripts/bench-wsbot`): N concurrent AC-mode WebSocket
//! bot sessions, each paced at 20 ms like a call, against an echo bot on 127.0.0.1.
//!
//! Measured: person→bot delay (`send_audio` → the bot has the `userStream.chunk`), bot→buffer
//! delay (the bot sends `playStream.chunk` → the audio is in the playout buffer; observed by
//! 1 ms polling on a few probe calls, so ±1 ms), and CPU of dialgate's side (the runtime threads
//! named `bench-gw` and the WebSocket bot I/O threads `wsbot-io-*` where the sessions run; the
//! echo bot runs on its own `bench-bot` threads and is not counted).

use crate::common;
use crate::measure::{
    bench_call, bench_options, env_or, p50_p99, runtime, serve_websockets, thread_cpu,
    wsbot_bench_calls,
};
use common::wsbot::{bot, chirp_8k};
use dialgate::wsbot::{MediaFormat, WsBot, WsProtocol};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

type Times = Arc<Mutex<HashMap<String, Vec<Instant>>>>;

#[derive(Default)]
struct Clocks {
    /// Per call: when each person frame was handed to `send_audio`.
    sent: Times,
    /// Per call: when the bot received each `userStream.chunk`.
    bot_got: Times,
    /// Per call: when the bot sent each `playStream.chunk`.
    bot_sent: Times,
    /// Per probe call: when each bot chunk was seen in the session's counters.
    seen: Times,
    /// Calls that dropped person frames (their frame pairing is off: left out of the figures).
    lossy: Mutex<Vec<String>>,
}

fn record(t: &Times, call: &str, at: Instant) {
    t.lock()
        .unwrap()
        .entry(call.to_string())
        .or_default()
        .push(at);
}

/// The echo bot: accepts, starts the user stream, returns every chunk as a play-stream chunk.
async fn echo_bot(listener: TcpListener, clocks: Arc<Clocks>) {
    serve_websockets(listener, move |mut ws| {
        let clocks = clocks.clone();
        async move {
            let mut call = String::new();
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                let m: Value = serde_json::from_str(t.as_str()).unwrap();
                let reply = match m["type"].as_str().unwrap_or_default() {
                    "session.initiate" => {
                        call = m["conversationId"].as_str().unwrap().to_string();
                        json!({"type": "session.accepted", "mediaFormat": "raw/lpcm16"})
                    }
                    "userStream.start" => {
                        let _ = ws
                            .send(Message::text(
                                json!({"type": "userStream.started"}).to_string(),
                            ))
                            .await;
                        json!({"type": "playStream.start", "streamId": "echo"})
                    }
                    "userStream.chunk" => {
                        record(&clocks.bot_got, &call, Instant::now());
                        record(&clocks.bot_sent, &call, Instant::now());
                        json!({"type": "playStream.chunk", "streamId": "echo", "audioChunk": m["audioChunk"]})
                    }
                    _ => continue,
                };
                if ws.send(Message::text(reply.to_string())).await.is_err() {
                    return;
                }
            }
        }
    })
    .await
}

/// One call: 20 ms pacing, a frame out and a frame in per tick.
async fn call(
    cfg: dialgate::wsbot::WebSocketBot,
    id: String,
    secs: u64,
    probe: bool,
    clocks: Arc<Clocks>,
) {
    let (info, opts) = (bench_call(id.clone()), bench_options());
    let bot = Arc::new(WsBot::connect(&cfg, info, opts).await.expect("connect"));
    bot.start_user_stream().await.unwrap();
    let poller = probe.then(|| {
        let (bot, clocks, id) = (bot.clone(), clocks.clone(), id.clone());
        tokio::spawn(async move {
            let mut seen = 0;
            loop {
                let now = bot.stats().chunks_received;
                for _ in seen..now {
                    record(&clocks.seen, &id, Instant::now());
                }
                seen = now;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    });
    let audio = chirp_8k(1.0);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for n in 0..(secs * 50) as usize {
        tick.tick().await;
        let k = (n * 160) % audio.len();
        record(&clocks.sent, &id, Instant::now());
        bot.send_audio(&audio[k..k + 160]);
        std::hint::black_box(bot.next_frame());
    }
    if let Some(p) = poller {
        p.abort();
    }
    if bot.stats().audio_dropped > 0 {
        clocks.lossy.lock().unwrap().push(id);
    }
}

/// p50 and p99 of the per-frame differences `later[k] - earlier[k]`, in ms (first second skipped).
fn percentiles(earlier: &Times, later: &Times, skip: &[String]) -> (f64, f64, usize) {
    let (a, b) = (earlier.lock().unwrap(), later.lock().unwrap());
    let mut d: Vec<f64> = Vec::new();
    for (call, ts) in b.iter().filter(|(c, _)| !skip.contains(c)) {
        let Some(es) = a.get(call) else { continue };
        d.extend(
            es.iter()
                .zip(ts)
                .skip(50)
                .map(|(e, l)| l.duration_since(*e).as_secs_f64() * 1000.0),
        );
    }
    p50_p99(d)
}

fn run(calls: usize, secs: u64) {
    let bot_rt = runtime(1, "bench-bot");
    let gw_rt = runtime(2, "bench-gw");
    let clocks = Arc::new(Clocks::default());
    let listener = bot_rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("ws://{}/bot", listener.local_addr().unwrap());
    bot_rt.spawn(echo_bot(listener, clocks.clone()));
    let cfg = bot(&url, WsProtocol::AcBotApi, None, MediaFormat::Lpcm16);
    let gw_cpu = || thread_cpu("bench-gw") + thread_cpu("wsbot-io");
    let (cpu0, wall0) = (gw_cpu(), Instant::now());
    gw_rt.block_on(async {
        let tasks: Vec<_> = (0..calls)
            .map(|i| {
                tokio::spawn(call(
                    cfg.clone(),
                    format!("bench-{i}"),
                    secs,
                    i < 5,
                    clocks.clone(),
                ))
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let (cpu, wall) = (gw_cpu() - cpu0, wall0.elapsed().as_secs_f64());
    let lossy = clocks.lossy.lock().unwrap().clone();
    let (up50, up99, n_up) = percentiles(&clocks.sent, &clocks.bot_got, &lossy);
    let (down50, down99, n_down) = percentiles(&clocks.bot_sent, &clocks.seen, &[]);
    println!(
        "calls={calls} secs={secs}: person->bot p50 {up50:.2} ms p99 {up99:.2} ms (n={n_up}); bot->buffer p50 {down50:.2} ms p99 {down99:.2} ms (n={n_down}, probes); {} calls dropped person frames; dialgate side CPU {:.2} % of one core per call ({cpu:.1} s over {wall:.1} s)",
        lossy.len(),
        cpu / wall / calls as f64 * 100.0
    );
    gw_rt.shutdown_timeout(Duration::from_secs(5));
    bot_rt.shutdown_timeout(Duration::from_secs(5));
}

#[test]
#[ignore = "benchmark: run by scripts/bench-wsbot"]
fn wsbot_bench() {
    let secs: u64 = env_or("WSBOT_BENCH_SECS", 10);
    for n in wsbot_bench_calls::<usize>() {
        run(n, secs.clamp(2, 60));
    }
}
