//! Benchmark of the call path (ignored by default; run by `scripts/bench-wsbot`): N concurrent
//! calls through dialgate's media relay, each with a person sending one RTP frame per 20 ms, the
//! bot side either a WebSocket bot (AC mode, `raw/mulaw`, `ws://`: from media start the relay
//! thread serves the bot's socket — jitter buffer, 20 ms pacing — and the call's bridge task
//! keeps the control messages) or a SIP bot (an RTP echo on the relay's bot side). Both bots
//! echo what they hear, on 127.0.0.1, in the same run. With `WSBOT_BENCH_TWO_TASKS=1` a third run
//! puts the RTP side in a second task per call, as the bridge was first built; with
//! `WSBOT_BENCH_FLOOR=1` two more serve the same messages from one thread, with none of
//! dialgate's features (`ws_floor.rs`): raw epoll, the floor of any WebSocket design, and one
//! tokio runtime with tokio-tungstenite — not dialgate, references for it.
//!
//! Each frame carries its number in its first payload bytes (µ-law survives decode/encode), so
//! the delays are per frame: person→bot (the person sends → the bot has it) and bot→person (the
//! bot sends → the person has it). CPU is dialgate's side: every thread of the process but the
//! peers' (`bench-peer`, the persons and bots, not counted) and the test's own — the relay
//! threads (`media-relay-*`), the runtime running the bridges and their sessions (`bench-gw`),
//! the WebSocket bot I/O threads (`wsbot-io-*`, used only by the `io_threads: true` run) and any
//! thread dialgate starts that has no name here. `WSBOT_BENCH_REPEAT=K` runs K rounds (each kind
//! once per round, the order alternating) and prints the medians. CPU is
//! also given per frame delivered (both ways), which stays comparable when a loaded machine
//! starves the run and fewer frames get through.

use crate::common;
use crate::measure::{
    bench_call, bench_options, env_or, p50_p99, process_cpu_except, runtime, serve_websockets,
    thread_cpu, thread_cpu_split, wsbot_bench_calls,
};
use crate::ws_floor::Floor;
use common::wsbot::{b64, bot, unb64};
use dialgate::call::wsbridge::{BridgeEvent, WsBridge};
use dialgate::media::g711::{G711Law, decode, linear_to_ulaw};
use dialgate::media::{AudioCodec, Leg, MediaConfig, MediaEngine, RemoteMedia};
use dialgate::wsbot::{MediaFormat, WsBot, WsProtocol};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, UdpSocket};
use tokio_tungstenite::tungstenite::Message;

/// (call, frame) → instant.
type Stamps = Mutex<HashMap<(u32, u32), Instant>>;

#[derive(Default)]
struct Clocks {
    person_sent: Stamps,
    bot_got: Stamps,
    bot_sent: Stamps,
    person_got: Stamps,
}

fn stamp(t: &Stamps, call: u32, k: u32) {
    t.lock()
        .unwrap()
        .entry((call, k))
        .or_insert_with(Instant::now);
}

const BASE: u32 = 96;

/// A 160-byte µ-law payload numbered `k` (bytes 0x10..0x6f round-trip through linear PCM).
fn payload(k: u32) -> [u8; 160] {
    let mut p = [0x55u8; 160];
    p[0] = 0x10 + (k % BASE) as u8;
    p[1] = 0x10 + ((k / BASE) % BASE) as u8;
    p[2] = 0x10 + ((k / BASE / BASE) % BASE) as u8;
    p
}

/// The frame number of a payload, `None` for silence or foreign audio.
fn frame_no(p: &[u8]) -> Option<u32> {
    if p.len() < 3 || !p[..3].iter().all(|b| (0x10..0x10 + BASE as u8).contains(b)) {
        return None;
    }
    let d = |i: usize| (p[i] - 0x10) as u32;
    Some(d(0) + d(1) * BASE + d(2) * BASE * BASE)
}

fn rtp(seq: u16, k: u32) -> Vec<u8> {
    let mut pkt = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
    pkt[4..8].copy_from_slice(&(k * 160).to_be_bytes());
    pkt.extend_from_slice(&payload(k));
    pkt
}

/// The AC echo bot: accepts in µ-law, starts the user stream, plays every chunk straight back.
async fn ws_echo_bot(listener: TcpListener, clocks: Arc<Clocks>) {
    serve_websockets(listener, move |mut ws| {
        let clocks = clocks.clone();
        async move {
            let mut call = 0u32;
            while let Some(Ok(Message::Text(t))) = ws.next().await {
                let Ok(m) = serde_json::from_str::<Value>(t.as_str()) else {
                    continue;
                };
                let replies = match m["type"].as_str().unwrap_or_default() {
                    "session.initiate" => {
                        call = m["conversationId"]
                            .as_str()
                            .and_then(|c| c.trim_start_matches("call-").parse().ok())
                            .unwrap_or(0);
                        vec![
                            json!({"type": "session.accepted", "mediaFormat": "raw/mulaw"}),
                            json!({"type": "playStream.start", "streamId": "e"}),
                        ]
                    }
                    "userStream.start" => vec![json!({"type": "userStream.started"})],
                    "userStream.chunk" => {
                        let audio = unb64(m["audioChunk"].as_str().unwrap_or_default());
                        if let Some(k) = frame_no(&audio) {
                            stamp(&clocks.bot_got, call, k);
                            stamp(&clocks.bot_sent, call, k);
                        }
                        vec![
                            json!({"type": "playStream.chunk", "streamId": "e", "audioChunk": b64(&audio)}),
                        ]
                    }
                    _ => vec![],
                };
                for r in replies {
                    if ws.send(Message::text(r.to_string())).await.is_err() {
                        return;
                    }
                }
            }
        }
    })
    .await
}

/// The SIP bot's media: an RTP echo on the relay's bot side.
async fn sip_echo_bot(sock: UdpSocket, relay: SocketAddr, call: u32, clocks: Arc<Clocks>) {
    let mut buf = [0u8; 1500];
    while let Ok((n, _)) = sock.recv_from(&mut buf).await {
        if let Some(k) = frame_no(buf.get(12..n).unwrap_or_default()) {
            stamp(&clocks.bot_got, call, k);
            stamp(&clocks.bot_sent, call, k);
        }
        let _ = sock.send_to(&buf[..n], relay).await;
    }
}

/// The person: one numbered frame per 20 ms for `secs`, and whatever comes back.
async fn person(
    sock: Arc<UdpSocket>,
    relay: SocketAddr,
    call: u32,
    secs: u64,
    clocks: Arc<Clocks>,
) {
    let rx = {
        let (sock, clocks) = (sock.clone(), clocks.clone());
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, _)) = sock.recv_from(&mut buf).await {
                if let Some(k) = frame_no(buf.get(12..n).unwrap_or_default()) {
                    stamp(&clocks.person_got, call, k);
                }
            }
        })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for k in 0..(secs * 50) as u32 {
        tick.tick().await;
        stamp(&clocks.person_sent, call, k);
        let _ = sock.send_to(&rtp(k as u16, k), relay).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    rx.abort();
}

fn remote(addr: SocketAddr) -> RemoteMedia {
    crate::common::udp_peer::remote(addr, AudioCodec::PCMU, None)
}

/// p50 and p99 in ms of `later - earlier` over the frames both saw (the first second skipped).
fn delays(earlier: &Stamps, later: &Stamps) -> (f64, f64, usize) {
    let (a, b) = (earlier.lock().unwrap(), later.lock().unwrap());
    let d: Vec<f64> = b
        .iter()
        .filter(|((_, k), _)| *k >= 50)
        .filter_map(|(key, l)| {
            a.get(key)
                .map(|e| l.duration_since(*e).as_secs_f64() * 1000.0)
        })
        .collect();
    p50_p99(d)
}

/// Figures of one run.
struct Figures {
    up: (f64, f64, usize),
    down: (f64, f64, usize),
    cpu_per_call: f64,
    /// Of which the relay threads (the rest: the bridges' runtime).
    relay_cpu_per_call: f64,
    /// dialgate's CPU per frame delivered (either way), in µs.
    cpu_per_frame_us: f64,
    /// The persons' and bots' CPU (% of a core): near 100 the peers, not dialgate, set the delays.
    peer_cpu: f64,
    /// Share of the bridges' CPU spent in the kernel (system calls).
    gw_sys_share: f64,
}

/// Prints how `f` compares with `sip` at `n` calls: p99 latency both ways, CPU per call and
/// per frame, as ratios.
fn print_ratios(n: u32, label: &str, f: &Figures, sip: &Figures) {
    println!(
        "calls={n} {label} ratios: person->bot p99 {:.2}x, bot->person p99 {:.2}x, CPU per call {:.2}x, per frame {:.2}x",
        f.up.1 / sip.up.1,
        f.down.1 / sip.down.1,
        f.cpu_per_call / sip.cpu_per_call,
        f.cpu_per_frame_us / sip.cpu_per_frame_us
    );
}

/// The bot side of a run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A SIP bot: an RTP echo on the relay's bot side.
    Sip,
    /// A WebSocket bot through the call's bridge (the session's task serves the relay's bot
    /// leg in process).
    WebSocket,
    /// The same with the sessions on dialgate's WebSocket bot I/O threads (`io_threads: true`).
    WebSocketIoThreads,
    /// A WebSocket bot with an RTP side over UDP in a second task per call, as the bridge was
    /// built first (each frame crossed a loopback socket, the session's channel and its
    /// jitter-buffer lock): the same run's reference for what the direct leg saved.
    WebSocketTwoTasks,
    /// Not dialgate: the same messages served by one thread with no runtime (`ws_floor.rs`),
    /// the floor of any design.
    Floor,
    /// Not dialgate: the same with tokio and tokio-tungstenite on one thread (`ws_floor.rs`).
    TokioFloor,
}

/// The former bridge's media loop: 20 ms pacing of `next_frame` to the relay, the person's
/// audio handed to the session's task with `send_audio`.
async fn two_task_bridge(mut ws: WsBot, sock: UdpSocket, relay: SocketAddr) {
    let _ = ws.start_user_stream().await;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = [0u8; 2048];
    let (mut seq, mut ts) = (0u16, 0u32);
    let mut events = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let frame = ws.next_frame();
                let mut pkt = vec![0x80u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
                pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                pkt[4..8].copy_from_slice(&ts.to_be_bytes());
                pkt.extend(frame.iter().map(|s| linear_to_ulaw(*s)));
                (seq, ts) = (seq.wrapping_add(1), ts.wrapping_add(160));
                let _ = sock.send_to(&pkt, relay).await;
            }
            r = sock.recv_from(&mut buf) => {
                if let Ok((n, _)) = r && n > 12 {
                    let pcm: Vec<i16> = buf[12..n].iter().map(|b| decode(G711Law::Pcmu, *b)).collect();
                    ws.send_audio(&pcm);
                }
            }
            ev = ws.next_event(), if events => events = ev.is_some(),
        }
    }
}

fn run(calls: u32, secs: u64, kind: Kind) -> Figures {
    let peer_rt = runtime(1, "bench-peer");
    let gw_rt = runtime(2, "bench-gw");
    let engine = MediaEngine::new(MediaConfig {
        port_min: 50_000,
        port_max: 53_998,
        inactivity_timeout: None,
        ..MediaConfig::default()
    })
    .expect("media engine");
    let clocks = Arc::new(Clocks::default());
    let metrics = Arc::new(dialgate::metrics::Metrics::new());
    let listener = peer_rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("ws://{}/bot", listener.local_addr().unwrap());
    peer_rt.spawn(ws_echo_bot(listener, clocks.clone()));
    let cfg = bot(&url, WsProtocol::AcBotApi, None, MediaFormat::Mulaw);
    // Set up every call, then let them all talk at once.
    let mut sessions = Vec::new();
    let mut bridges = Vec::new();
    let mut persons = Vec::new();
    let floored = matches!(kind, Kind::Floor | Kind::TokioFloor);
    let mut floor = None;
    if floored {
        let socks: Vec<_> = (0..calls)
            .map(|_| Arc::new(peer_rt.block_on(UdpSocket::bind("127.0.0.1:0")).unwrap()))
            .collect();
        let addrs: Vec<_> = socks.iter().map(|p| p.local_addr().unwrap()).collect();
        let f = if kind == Kind::Floor {
            Floor::raw(&url, &addrs, &gw_rt)
        } else {
            Floor::tokio(&url, &addrs)
        };
        persons = socks.into_iter().zip(f.addrs.iter().copied()).collect();
        floor = Some(f);
    }
    for call in (0..calls).filter(|_| !floored) {
        let s = engine
            .create_session(&format!("call-{call}"))
            .expect("session");
        let p = Arc::new(peer_rt.block_on(UdpSocket::bind("127.0.0.1:0")).unwrap());
        s.set_remote(Leg::Carrier, remote(p.local_addr().unwrap()))
            .unwrap();
        let relay_bot = s.local_rtp_addr(Leg::Bot);
        if kind != Kind::Sip {
            let (info, mut opts) = (bench_call(format!("call-{call}")), bench_options());
            opts.io_threads = kind == Kind::WebSocketIoThreads;
            let _guard = gw_rt.enter();
            if kind == Kind::WebSocketTwoTasks {
                let b = gw_rt.block_on(UdpSocket::bind("127.0.0.1:0")).unwrap();
                s.set_remote(Leg::Bot, remote(b.local_addr().unwrap()))
                    .unwrap();
                let ws = gw_rt
                    .block_on(WsBot::connect(&cfg, info, opts))
                    .expect("session");
                gw_rt.spawn(two_task_bridge(ws, b, relay_bot));
                persons.push((p, s.local_rtp_addr(Leg::Carrier)));
                sessions.push(s);
                continue;
            }
            let (bridge, mut events) = WsBridge::spawn(cfg.clone(), info, opts, metrics.clone());
            let opened = gw_rt.block_on(async { events.recv().await });
            assert!(matches!(opened, Some(BridgeEvent::Opened)), "{opened:?}");
            // The relay's bot leg served in process by the session (no socket between them).
            bridge.start_media(s.attach_direct().expect("direct bot leg"), None);
            bridges.push((bridge, events));
        } else {
            let sock = peer_rt.block_on(UdpSocket::bind("127.0.0.1:0")).unwrap();
            s.set_remote(Leg::Bot, remote(sock.local_addr().unwrap()))
                .unwrap();
            peer_rt.spawn(sip_echo_bot(sock, relay_bot, call, clocks.clone()));
        }
        persons.push((p, s.local_rtp_addr(Leg::Carrier)));
        sessions.push(s);
    }
    // Every thread of dialgate's side, named or not: all but the peers' and this one.
    let cpu = || process_cpu_except("bench-peer");
    let (cpu0, peer0, wall0) = (cpu(), thread_cpu("bench-peer"), Instant::now());
    let relay0 = thread_cpu("media-relay");
    let gw0 = thread_cpu_split("bench-gw");
    let tasks: Vec<_> = persons
        .into_iter()
        .enumerate()
        .map(|(call, (p, relay))| {
            peer_rt.spawn(person(p, relay, call as u32, secs, clocks.clone()))
        })
        .collect();
    peer_rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let (used, wall) = (cpu() - cpu0, wall0.elapsed().as_secs_f64());
    let peer_used = thread_cpu("bench-peer") - peer0;
    let relay_used = thread_cpu("media-relay") - relay0;
    let gw1 = thread_cpu_split("bench-gw");
    let gw_sys_share = (gw1.1 - gw0.1) / ((gw1.0 - gw0.0) + (gw1.1 - gw0.1)).max(1e-9);
    for (b, _) in &bridges {
        b.hangup("client-disconnected", "bench over");
    }
    drop(bridges);
    for s in sessions {
        s.stop();
    }
    if let Some(f) = floor {
        f.stop();
    }
    gw_rt.shutdown_timeout(Duration::from_secs(3));
    peer_rt.shutdown_timeout(Duration::from_secs(3));
    let (up, down) = (
        delays(&clocks.person_sent, &clocks.bot_got),
        delays(&clocks.bot_sent, &clocks.person_got),
    );
    Figures {
        up,
        down,
        cpu_per_frame_us: used * 1e6 / (up.2 + down.2).max(1) as f64,
        cpu_per_call: used / wall / calls as f64 * 100.0,
        relay_cpu_per_call: relay_used / wall / calls as f64 * 100.0,
        peer_cpu: peer_used / wall * 100.0,
        gw_sys_share,
    }
}

/// The median of `v` (NaN when empty).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[test]
#[ignore = "benchmark: run by scripts/bench-wsbot"]
fn wsbot_call_bench() {
    let secs: u64 = env_or("WSBOT_BENCH_SECS", 10_u64).clamp(3, 60);
    // One run of each kind swings by ±15 % on a shared machine: `WSBOT_BENCH_REPEAT` rounds,
    // each kind once per round in alternating order, give medians.
    let rounds: usize = env_or("WSBOT_BENCH_REPEAT", 1_usize).clamp(1, 9);
    let expected = secs * 50 - 50;
    let two_tasks = std::env::var("WSBOT_BENCH_TWO_TASKS").is_ok_and(|v| v == "1");
    let with_floor = std::env::var("WSBOT_BENCH_FLOOR").is_ok_and(|v| v == "1");
    for n in wsbot_bench_calls::<u32>() {
        let mut per_round: Vec<(Figures, Figures, Figures)> = Vec::new();
        // Per floor kind, its CPU per call over the SIP call's, per round.
        let mut floor_ratios: Vec<Vec<f64>> = vec![Vec::new(); FLOORS.len()];
        for round in 0..rounds {
            // The machine may be shared: say how loaded it was (the ratios are the fair figures).
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            println!(
                "calls={n} round {}/{rounds}: load average before the run: {}",
                round + 1,
                load.trim()
            );
            let (sip, ws, io_threads) = if round % 2 == 0 {
                let sip = run(n, secs, Kind::Sip);
                let ws = run(n, secs, Kind::WebSocket);
                (sip, ws, run(n, secs, Kind::WebSocketIoThreads))
            } else {
                let io_threads = run(n, secs, Kind::WebSocketIoThreads);
                let ws = run(n, secs, Kind::WebSocket);
                (run(n, secs, Kind::Sip), ws, io_threads)
            };
            // The former two-task bridge only on request: the run is a third shorter without it.
            let two = two_tasks.then(|| run(n, secs, Kind::WebSocketTwoTasks));
            print_round(n, expected, &sip, &ws, &io_threads, two.as_ref());
            if with_floor {
                for ((kind, row, label), ratios) in FLOORS.iter().zip(&mut floor_ratios) {
                    let f = run(n, secs, *kind);
                    print_row(n, expected, row, &f);
                    print_ratios(n, label, &f, &sip);
                    ratios.push(f.cpu_per_call / sip.cpu_per_call);
                }
            }
            per_round.push((sip, ws, io_threads));
        }
        if rounds > 1 {
            let sip = median(per_round.iter().map(|r| r.0.cpu_per_call).collect());
            let ws = median(per_round.iter().map(|r| r.1.cpu_per_call).collect());
            let io = median(per_round.iter().map(|r| r.2.cpu_per_call).collect());
            let ratios: Vec<f64> = per_round
                .iter()
                .map(|r| r.1.cpu_per_call / r.0.cpu_per_call)
                .collect();
            println!(
                "calls={n} median of {rounds} rounds: CPU per call SIP {sip:.3} %, WebSocket {ws:.3} %, I/O threads {io:.3} %; WebSocket/SIP {}",
                median_of_rounds(&ratios)
            );
            for ((_, _, label), ratios) in FLOORS.iter().zip(&floor_ratios) {
                if !ratios.is_empty() {
                    println!("calls={n} median {label} {}", median_of_rounds(ratios));
                }
            }
        }
    }
}

/// The references run with `WSBOT_BENCH_FLOOR=1`: kind, row name, ratio label.
const FLOORS: [(Kind, &str, &str); 2] = [
    (Kind::Floor, "floor: one thread, no runtime", "floor/SIP"),
    (
        Kind::TokioFloor,
        "floor on tokio, one thread",
        "tokio floor/SIP",
    ),
];

/// "1.23x (rounds: 1.20x, 1.23x, 1.31x)": the median ratio and each round's.
fn median_of_rounds(ratios: &[f64]) -> String {
    let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}x")).collect();
    format!(
        "{:.2}x (rounds: {})",
        median(ratios.to_vec()),
        listed.join(", ")
    )
}

/// Prints one round's rows and ratios.
fn print_round(
    n: u32,
    expected: u64,
    sip: &Figures,
    ws: &Figures,
    io_threads: &Figures,
    two: Option<&Figures>,
) {
    let mut rows = vec![
        ("SIP bot                 ", sip),
        ("WebSocket bot           ", ws),
        ("WebSocket, I/O threads  ", io_threads),
    ];
    if let Some(two) = two {
        rows.push(("WebSocket bot, two tasks", two));
    }
    for (name, f) in rows {
        print_row(n, expected, name, f);
    }
    print_ratios(n, "WebSocket/SIP", ws, sip);
    print_ratios(n, "I/O-thread WebSocket/SIP", io_threads, sip);
    if let Some(two) = two {
        print_ratios(n, "two-task (former) WebSocket/SIP", two, sip);
    }
}

/// Prints one kind's figures.
fn print_row(n: u32, expected: u64, name: &str, f: &Figures) {
    println!(
        "calls={n} {name}: person->bot p50 {:.2} ms p99 {:.2} ms (n={}/{}); bot->person p50 {:.2} ms p99 {:.2} ms (n={}); dialgate CPU {:.3} % of a core per call (relay {:.3} %, bridges {:.0} % in the kernel), {:.1} us per frame; peers {:.0} % of a core",
        f.up.0,
        f.up.1,
        f.up.2,
        expected * n as u64,
        f.down.0,
        f.down.1,
        f.down.2,
        f.cpu_per_call,
        f.relay_cpu_per_call,
        f.gw_sys_share * 100.0,
        f.cpu_per_frame_us,
        f.peer_cpu
    );
}
