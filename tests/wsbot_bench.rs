//! Benchmark (ignored by default; run by `scripts/bench-wsbot`): N concurrent AC-mode WebSocket
//! bot sessions, each paced at 20 ms like a call, against an echo bot on 127.0.0.1.
//!
//! Measured: person→bot delay (`send_audio` → the bot has the `userStream.chunk`), bot→buffer
//! delay (the bot sends `playStream.chunk` → the audio is in the playout buffer; observed by
//! 1 ms polling on a few probe calls, so ±1 ms), and CPU of dialgate's side (the runtime threads
//! named `bench-gw` and the WebSocket bot I/O threads `wsbot-io-*` where the sessions run; the
//! echo bot runs on its own `bench-bot` threads and is not counted).

mod wsbot_support;

use dialgate::wsbot::{MediaFormat, WsBot, WsBotOptions, WsProtocol};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use wsbot_support::{bot, chirp_8k};

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
    while let Ok((tcp, _)) = listener.accept().await {
        // Without TCP_NODELAY the bot's small replies wait for the ACK piggybacked on dialgate's
        // next frame (Nagle + delayed ACK): 20 ms that are the bot's, not dialgate's.
        let _ = tcp.set_nodelay(true);
        let clocks = clocks.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
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
        });
    }
}

/// One call: 20 ms pacing, a frame out and a frame in per tick.
async fn call(
    cfg: dialgate::wsbot::WebSocketBot,
    id: String,
    secs: u64,
    probe: bool,
    clocks: Arc<Clocks>,
) {
    let info = dialgate::wsbot::CallInfo {
        conversation_id: id.clone(),
        caller: "a".into(),
        callee: "b".into(),
        metadata: Value::Null,
    };
    let opts = WsBotOptions {
        handshake_timeout: Duration::from_secs(60),
        ..Default::default()
    };
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

/// CPU seconds of this process's threads whose name starts with `prefix`.
fn thread_cpu(prefix: &str) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let user: f64 = fields[11].parse().unwrap_or(0.0);
        let sys: f64 = fields[12].parse().unwrap_or(0.0);
        total += (user + sys) / tick;
    }
    total
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
    d.sort_by(f64::total_cmp);
    let at = |q: f64| {
        d.get(((d.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (at(0.5), at(0.99), d.len())
}

fn run(calls: usize, secs: u64) {
    let bot_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bench-bot")
        .enable_all()
        .build()
        .unwrap();
    let gw_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-gw")
        .enable_all()
        .build()
        .unwrap();
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
    let calls: Vec<usize> = std::env::var("WSBOT_BENCH_CALLS")
        .unwrap_or_else(|_| "100,250".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let secs: u64 = std::env::var("WSBOT_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    for n in calls {
        run(n, secs.clamp(2, 60));
    }
}
