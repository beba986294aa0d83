//! What the benchmarks measure with: CPU time of this process's threads by name, and delay
//! percentiles; and how they read their sizes from the environment.

/// User and system CPU seconds of this process's threads whose name starts with `prefix`.
pub fn thread_cpu_split(prefix: &str) -> (f64, f64) {
    let (mut user, mut sys) = (0.0, 0.0);
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        match stat_times(&stat) {
            Some((name, u, s)) if name.starts_with(prefix) => {
                user += u;
                sys += s;
            }
            _ => {}
        }
    }
    (user, sys)
}

/// A thread's name and its user and system CPU seconds, from its `/proc/.../stat` line.
fn stat_times(stat: &str) -> Option<(&str, f64, f64)> {
    let tick = 100.0; // USER_HZ on Linux
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let f: Vec<&str> = stat.get(close + 2..)?.split(' ').collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    Some((&stat[open + 1..close], field(11), field(12)))
}

/// CPU seconds (user and system) of every thread of this process except those whose name
/// starts with `peers` and the calling thread (which only waits for the peers here). Counts a
/// thread the code under test starts that no name list knows about.
pub fn process_cpu_except(peers: &str) -> f64 {
    let all = thread_cpu("");
    let own = std::fs::read_to_string("/proc/thread-self/stat")
        .ok()
        .and_then(|stat| stat_times(&stat).map(|(_, user, sys)| user + sys))
        .unwrap_or(0.0);
    all - thread_cpu(peers) - own
}

/// CPU seconds (user and system) of this process's threads whose name starts with `prefix`.
pub fn thread_cpu(prefix: &str) -> f64 {
    let (user, sys) = thread_cpu_split(prefix);
    user + sys
}

/// p50 and p99 of the delays `d` (ms), and how many there were.
pub fn p50_p99(mut d: Vec<f64>) -> (f64, f64, usize) {
    d.sort_by(f64::total_cmp);
    let at = |q: f64| {
        d.get(((d.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (at(0.5), at(0.99), d.len())
}

/// The environment variable `name` as a `T`, `default` when unset or unreadable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The call counts of the WebSocket benchmarks: `WSBOT_BENCH_CALLS`, comma-separated (default
/// 100 and 250).
pub fn wsbot_bench_calls<T: std::str::FromStr>() -> Vec<T> {
    std::env::var("WSBOT_BENCH_CALLS")
        .unwrap_or_else(|_| "100,250".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// Accepts WebSocket connections on `listener` for ever, each served by `serve` on its own task.
/// TCP_NODELAY is set: without it a bot's small replies wait for the ACK piggybacked on
/// dialgate's next frame (Nagle + delayed ACK), 20 ms that are the bot's, not dialgate's.
pub async fn serve_websockets<F, Fut>(listener: tokio::net::TcpListener, serve: F)
where
    F: Fn(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> Fut,
    F: Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    while let Ok((tcp, _)) = listener.accept().await {
        let _ = tcp.set_nodelay(true);
        let serve = serve.clone();
        tokio::spawn(async move {
            // A small read buffer, as dialgate's (see `wsbot/link.rs`): tungstenite zero-fills
            // its default 128 KiB one before every read, which made the peers' thread the
            // bottleneck.
            let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                .read_buffer_size(4096);
            if let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await {
                serve(ws).await;
            }
        });
    }
}

/// A multi-threaded runtime of `threads` workers named `name` (its CPU is counted by name).
pub fn runtime(threads: usize, name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .unwrap()
}

/// A benchmark call's view for its WebSocket bot: conversation `id`, caller `a`, callee `b`.
pub fn bench_call(id: String) -> dialgate::wsbot::CallInfo {
    dialgate::wsbot::CallInfo {
        conversation_id: id,
        caller: "a".into(),
        callee: "b".into(),
        metadata: serde_json::Value::Null,
    }
}

/// Session options of a benchmark's bots: the defaults, with a handshake that may take a
/// minute (hundreds of sessions open at once on a shared machine).
pub fn bench_options() -> dialgate::wsbot::WsBotOptions {
    dialgate::wsbot::WsBotOptions {
        handshake_timeout: std::time::Duration::from_secs(60),
        chunk_ms: std::env::var("WSBOT_BENCH_CHUNK_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(dialgate::wsbot::WsBotOptions::default().chunk_ms),
        ..Default::default()
    }
}
