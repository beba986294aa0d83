//! The load generator: N bidirectional G.711 calls at 50 packets/s per
//! direction through a relay, on loopback only, bounded in count and time.
//! Each payload carries the send time, so the receiver measures the latency
//! the relay adds (plus loopback and scheduling, the same for both relays).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

use super::ng::Ng;
use super::proc_stat::{cpu_seconds, rss_kib};
use super::{BenchError, io_err};

/// Which relay to drive.
#[derive(Debug, Clone)]
pub enum RelayTarget {
    /// A `bench-rtp relay` process.
    Dialgate {
        /// Its TCP control address.
        control: SocketAddr,
        /// Its pid (for CPU and RSS).
        pid: u32,
    },
    /// The same `bench-rtp relay` process with SRTP on each session's carrier leg: the
    /// generator encrypts what it sends to that leg and decrypts what it gets back.
    DialgateSrtp {
        /// Its TCP control address.
        control: SocketAddr,
        /// Its pid (for CPU and RSS).
        pid: u32,
    },
    /// rtpengine driven over its ng protocol.
    Rtpengine {
        /// ng UDP address.
        ng: SocketAddr,
        /// Its pid.
        pid: u32,
    },
}

impl RelayTarget {
    fn name(&self) -> &'static str {
        match self {
            RelayTarget::Dialgate { .. } => "dialgate",
            RelayTarget::DialgateSrtp { .. } => "dialgate+srtp",
            RelayTarget::Rtpengine { .. } => "rtpengine",
        }
    }
    fn pid(&self) -> u32 {
        match self {
            RelayTarget::Dialgate { pid, .. }
            | RelayTarget::DialgateSrtp { pid, .. }
            | RelayTarget::Rtpengine { pid, .. } => *pid,
        }
    }
}

/// Load parameters.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent calls per point (each two directions × 50 packets/s).
    pub calls: Vec<usize>,
    /// Seconds of sending per point (capped at 120).
    pub duration: Duration,
    /// Relays, run alternately for each point.
    pub targets: Vec<RelayTarget>,
    /// First local port for the generator's sockets (stays below 32768).
    pub gen_port_base: u16,
    /// How many times each (point, relay) is repeated, alternating order.
    pub repeat: usize,
}

/// The result of one (relay, call count) run.
#[derive(Debug, Clone)]
pub struct PointReport {
    /// Relay name.
    pub relay: &'static str,
    /// Concurrent calls.
    pub calls: usize,
    /// Packets sent by the generator.
    pub sent: u64,
    /// Packets received back through the relay.
    pub received: u64,
    /// Received packets per second.
    pub forwarded_pps: f64,
    /// Relay CPU seconds (user + system) per million forwarded packets.
    pub cpu_s_per_mpkt: f64,
    /// Added latency percentiles in milliseconds.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Relay resident memory at the end of the point, KiB.
    pub rss_kib: u64,
}

/// Latency histogram: 10 µs bins up to 200 ms.
struct Hist {
    bins: Vec<AtomicU64>,
}

const BIN_US: u64 = 10;
const BINS: usize = 20_000;

impl Hist {
    fn new() -> Self {
        Hist {
            bins: (0..=BINS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
    fn add(&self, us: u64) {
        let i = ((us / BIN_US) as usize).min(BINS);
        self.bins[i].fetch_add(1, Relaxed);
    }
    fn pct(&self, p: f64) -> f64 {
        let total: u64 = self.bins.iter().map(|b| b.load(Relaxed)).sum();
        let want = ((total as f64) * p).ceil() as u64;
        let mut acc = 0;
        for (i, b) in self.bins.iter().enumerate() {
            acc += b.load(Relaxed);
            if acc >= want.max(1) {
                return (i as u64 * BIN_US + BIN_US / 2) as f64 / 1000.0;
            }
        }
        f64::NAN
    }
}

async fn bind_gen(next: &mut u16) -> Result<Arc<UdpSocket>, BenchError> {
    loop {
        if *next >= 32760 {
            return Err(BenchError::Control(
                "generator ran out of ports below 32768".into(),
            ));
        }
        let port = *next;
        *next += 1;
        if let Ok(s) = UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).await {
            return Ok(Arc::new(s));
        }
    }
}

/// Runs every point against every target and prints a table; returns all reports.
pub async fn run_load(opts: &LoadOptions) -> Result<Vec<PointReport>, BenchError> {
    let duration = opts.duration.min(Duration::from_secs(120));
    let mut reports = Vec::new();
    for &n in &opts.calls {
        for rep in 0..opts.repeat.max(1) {
            let mut order: Vec<&RelayTarget> = opts.targets.iter().collect();
            if rep % 2 == 1 {
                order.reverse();
            }
            for t in order {
                let r = run_point(t, n.min(2000), duration, opts.gen_port_base).await?;
                println!(
                    "{:<9} calls={:<4} pps={:>8.0} cpu_s/Mpkt={:>6.2} p50={:.3}ms p99={:.3}ms loss={} rss={}KiB",
                    r.relay,
                    r.calls,
                    r.forwarded_pps,
                    r.cpu_s_per_mpkt,
                    r.p50_ms,
                    r.p99_ms,
                    r.sent.saturating_sub(r.received),
                    r.rss_kib
                );
                reports.push(r);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    print_summary(&reports, &opts.calls);
    Ok(reports)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Prints per-point means, the rtpengine/dialgate ratios and capacity points.
fn print_summary(reports: &[PointReport], calls: &[usize]) {
    println!("\nsummary (means over repeats; ratio = rtpengine / dialgate)");
    for &n in calls {
        let of = |name: &'static str| {
            reports
                .iter()
                .filter(move |r| r.relay == name && r.calls == n)
        };
        let d_cpu = mean(of("dialgate").map(|r| r.cpu_s_per_mpkt));
        let r_cpu = mean(of("rtpengine").map(|r| r.cpu_s_per_mpkt));
        let d_p99 = mean(of("dialgate").map(|r| r.p99_ms));
        let r_p99 = mean(of("rtpengine").map(|r| r.p99_ms));
        let loss = |name: &'static str| {
            of(name)
                .map(|r| r.sent.saturating_sub(r.received))
                .sum::<u64>()
        };
        println!(
            "calls={n:<4} cpu_s/Mpkt dialgate={d_cpu:.2} rtpengine={r_cpu:.2} ratio={:.2}x | p99 dialgate={d_p99:.3}ms rtpengine={r_p99:.3}ms | loss dialgate={} rtpengine={}",
            r_cpu / d_cpu,
            loss("dialgate"),
            loss("rtpengine")
        );
    }
    for &n in calls {
        let cpu = |name: &'static str| {
            mean(
                reports
                    .iter()
                    .filter(|r| r.relay == name && r.calls == n)
                    .map(|r| r.cpu_s_per_mpkt),
            )
        };
        let (plain, srtp) = (cpu("dialgate"), cpu("dialgate+srtp"));
        if srtp.is_finite() {
            println!(
                "calls={n:<4} SRTP point: cpu_s/Mpkt dialgate={plain:.2} dialgate+srtp={srtp:.2} \
                 (srtp/plain={:.2}x; half of the packets cross libsrtp2)",
                srtp / plain
            );
        }
    }
    for name in ["dialgate", "dialgate+srtp", "rtpengine"] {
        let cap = calls.iter().find(|&&n| {
            mean(
                reports
                    .iter()
                    .filter(|r| r.relay == name && r.calls == n)
                    .map(|r| r.p99_ms),
            ) > 20.0
        });
        match cap {
            Some(n) => println!("capacity {name}: p99 passes 20 ms at {n} calls"),
            None => println!("capacity {name}: p99 below 20 ms at every tested point"),
        }
    }
}

struct Setup {
    peers: Vec<(Arc<UdpSocket>, Arc<UdpSocket>, SocketAddr, SocketAddr)>,
    dialgate: Option<(
        tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
        tokio::net::tcp::OwnedWriteHalf,
    )>,
    ng: Option<(Ng, SocketAddr)>,
    point: u64,
    /// SRTP on the carrier leg (socket `a` of each peer).
    srtp: bool,
}

/// Distinguishes the call-ids of successive points (rtpengine keeps deleted
/// calls around briefly; reusing an id would join the old call).
static POINT: AtomicU64 = AtomicU64::new(0);

async fn setup(t: &RelayTarget, n: usize, port_base: u16) -> Result<Setup, BenchError> {
    let point = POINT.fetch_add(1, Relaxed);
    // Successive points use disjoint generator ports: a relay may still hold
    // state (latched addresses) of the previous point's calls.
    let mut next = port_base + (point % 4) as u16 * 2500;
    let mut s = Setup {
        peers: Vec::with_capacity(n),
        dialgate: None,
        ng: None,
        point,
        srtp: matches!(t, RelayTarget::DialgateSrtp { .. }),
    };
    match t {
        RelayTarget::Dialgate { control, .. } | RelayTarget::DialgateSrtp { control, .. } => {
            let tcp = TcpStream::connect(control)
                .await
                .map_err(io_err("connect relay control"))?;
            let (r, w) = tcp.into_split();
            s.dialgate = Some((BufReader::new(r).lines(), w));
        }
        RelayTarget::Rtpengine { ng, .. } => s.ng = Some((Ng::new().await?, *ng)),
    }
    for i in 0..n {
        let a = bind_gen(&mut next).await?;
        let b = bind_gen(&mut next).await?;
        let la = a.local_addr().map_err(io_err("local_addr"))?;
        let lb = b.local_addr().map_err(io_err("local_addr"))?;
        let (a_to, b_to) = if let Some((lines, w)) = s.dialgate.as_mut() {
            let create = if s.srtp { "create-srtp" } else { "create" };
            w.write_all(format!("{create} {la} {lb}\n").as_bytes())
                .await
                .map_err(io_err("control"))?;
            let line = lines
                .next_line()
                .await
                .map_err(io_err("control"))?
                .unwrap_or_default();
            let mut it = line
                .split_whitespace()
                .filter_map(|x| x.parse::<SocketAddr>().ok());
            match (it.next(), it.next()) {
                (Some(x), Some(y)) => (x, y),
                _ => return Err(BenchError::Control(line)),
            }
        } else if let Some((ng, addr)) = s.ng.as_mut() {
            ng.setup(*addr, &format!("bench-{point}-{i}"), la, lb)
                .await?
        } else {
            unreachable!("one control is always set")
        };
        s.peers.push((a, b, a_to, b_to));
    }
    Ok(s)
}

async fn teardown(s: Setup, n: usize) -> Result<(), BenchError> {
    if let Some((mut lines, mut w)) = s.dialgate {
        w.write_all(b"clear\n").await.map_err(io_err("control"))?;
        let _ = lines.next_line().await;
    }
    if let Some((mut ng, addr)) = s.ng {
        for i in 0..n {
            let _ = ng.delete(addr, &format!("bench-{}-{i}", s.point)).await;
        }
    }
    Ok(())
}

fn packet(seq: u16, ssrc: u32, epoch: Instant) -> [u8; 172] {
    let mut p = [0xffu8; 172];
    p[0] = 0x80;
    p[1] = 0;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(seq as u32 * 160).to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let ns = epoch.elapsed().as_nanos() as u64;
    p[12..20].copy_from_slice(&ns.to_be_bytes());
    p
}

async fn run_point(
    t: &RelayTarget,
    n: usize,
    duration: Duration,
    port_base: u16,
) -> Result<PointReport, BenchError> {
    let s = setup(t, n, port_base).await?;
    let epoch = Instant::now();
    let hist = Arc::new(Hist::new());
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let rx_tasks = spawn_receivers(&s, epoch, &hist, &received)?;
    let pid = t.pid();
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let start = Instant::now();
    let tx_tasks = spawn_senders(&s, duration, epoch, &sent)?;
    for t in tx_tasks {
        let _ = t.await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    let rss = rss_kib(pid).unwrap_or(0);
    for t in rx_tasks {
        t.abort();
    }
    teardown(s, n).await?;
    let sent = sent.load(Relaxed);
    let received = received.load(Relaxed);
    Ok(PointReport {
        relay: t.name(),
        calls: n,
        sent,
        received,
        forwarded_pps: received as f64 / elapsed,
        cpu_s_per_mpkt: if received > 0 {
            cpu / (received as f64 / 1e6)
        } else {
            f64::NAN
        },
        p50_ms: hist.pct(0.50),
        p99_ms: hist.pct(0.99),
        rss_kib: rss,
    })
}

/// One receiver per generator socket: each packet's send time (written in it by [`packet`])
/// gives its one-way delay into `hist`; `received` counts them. Runs until aborted.
fn spawn_receivers(
    s: &Setup,
    epoch: Instant,
    hist: &Arc<Hist>,
    received: &Arc<AtomicU64>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, BenchError> {
    let mut rx_tasks = Vec::new();
    for (a, b, _, _) in &s.peers {
        for (sock, carrier) in [(a.clone(), true), (b.clone(), false)] {
            let (hist, received) = (hist.clone(), received.clone());
            let mut srtp = if s.srtp && carrier {
                Some(super::relay_server::generator_srtp()?)
            } else {
                None
            };
            rx_tasks.push(tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok(mut len) = sock.recv(&mut buf).await {
                    if let Some(srtp) = srtp.as_mut() {
                        match srtp.unprotect(&mut buf, len) {
                            Ok(n) => len = n,
                            Err(_) => continue,
                        }
                    }
                    if len >= 20 {
                        let mut ns = [0u8; 8];
                        ns.copy_from_slice(&buf[12..20]);
                        let sent_ns = u64::from_be_bytes(ns);
                        let now = epoch.elapsed().as_nanos() as u64;
                        hist.add(now.saturating_sub(sent_ns) / 1000);
                        received.fetch_add(1, Relaxed);
                    }
                }
            }));
        }
    }
    Ok(rx_tasks)
}

/// One sender per call: both sides send a packet every 20 ms for `duration` (the carrier's
/// SRTP-protected on an SRTP point), the calls spread over the 20 ms period like independent
/// phones; `sent` counts them.
fn spawn_senders(
    s: &Setup,
    duration: Duration,
    epoch: Instant,
    sent: &Arc<AtomicU64>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, BenchError> {
    let n = s.peers.len();
    let mut tx_tasks = Vec::new();
    for (i, (a, b, a_to, b_to)) in s.peers.iter().cloned().enumerate() {
        let sent = sent.clone();
        let mut srtp = if s.srtp {
            Some(super::relay_server::generator_srtp()?)
        } else {
            None
        };
        tx_tasks.push(tokio::spawn(async move {
            let mut out = [0u8; 2048];
            // spread calls over the 20 ms period like independent phones
            tokio::time::sleep(Duration::from_micros(
                (i as u64 * 20_000 / n.max(1) as u64) % 20_000,
            ))
            .await;
            let mut iv = tokio::time::interval(Duration::from_millis(20));
            let frames = duration.as_millis() as u64 / 20;
            for seq in 0..frames {
                iv.tick().await;
                let pa = packet(seq as u16, 2 * i as u32, epoch);
                let pb = packet(seq as u16, 2 * i as u32 + 1, epoch);
                out[..pa.len()].copy_from_slice(&pa);
                let mut la = pa.len();
                if let Some(srtp) = srtp.as_mut() {
                    match srtp.protect(&mut out, la) {
                        Ok(n) => la = n,
                        Err(_) => continue,
                    }
                }
                if a.send_to(&out[..la], a_to).await.is_ok() {
                    sent.fetch_add(1, Relaxed);
                }
                if b.send_to(&pb, b_to).await.is_ok() {
                    sent.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    Ok(tx_tasks)
}
