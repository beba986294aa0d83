//! Standalone `bench-rtp` (the main crate wires the same library functions as
//! the hidden subcommand `dialgate bench-rtp`).
//!
//! bench-rtp relay CONTROL_ADDR PORT_MIN PORT_MAX
//! bench-rtp load --calls 100,250,500 --duration 10 [--repeat 1]
//!     [--dialgate CONTROL_ADDR:PID] [--dialgate-srtp CONTROL_ADDR:PID] [--rtpengine NG_ADDR:PID]

use std::time::Duration;

use dialgate::media::MediaConfig;
use dialgate::media::bench::{LoadOptions, RelayTarget, run_load, serve_relay};

fn usage() -> ! {
    eprintln!(
        "usage: bench-rtp relay CONTROL PORT_MIN PORT_MAX | bench-rtp load --calls N,.. --duration S [--repeat R] [--dialgate ADDR@PID] [--dialgate-srtp ADDR@PID] [--rtpengine ADDR@PID]"
    );
    std::process::exit(2)
}

fn target(v: &str, kind: &str) -> RelayTarget {
    let Some((addr, pid)) = v.split_once('@') else {
        usage()
    };
    let (Ok(addr), Ok(pid)) = (addr.parse(), pid.parse()) else {
        usage()
    };
    match kind {
        "dialgate" => RelayTarget::Dialgate { control: addr, pid },
        "dialgate-srtp" => RelayTarget::DialgateSrtp { control: addr, pid },
        _ => RelayTarget::Rtpengine { ng: addr, pid },
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.first().map(String::as_str) {
        Some("relay") if args.len() == 4 => {
            let (Ok(control), Ok(min), Ok(max)) =
                (args[1].parse(), args[2].parse(), args[3].parse())
            else {
                usage()
            };
            let cfg = MediaConfig {
                port_min: min,
                port_max: max,
                inactivity_timeout: None,
                ..MediaConfig::default()
            };
            // Knobs for comparing relay settings in the benchmark.
            let env_num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
            let cfg = MediaConfig {
                relay_threads: env_num("BENCH_RELAY_THREADS")
                    .map_or(cfg.relay_threads, |n| n as usize),
                relay_pack_sessions: env_num("BENCH_PACK")
                    .map_or(cfg.relay_pack_sessions, |n| n as usize),
                ..cfg
            };
            serve_relay(control, cfg).await
        }
        Some("load") => {
            let mut o = LoadOptions {
                calls: vec![100],
                duration: Duration::from_secs(10),
                targets: vec![],
                gen_port_base: 10000,
                repeat: 1,
            };
            let mut it = args[1..].iter();
            while let Some(k) = it.next() {
                let Some(v) = it.next() else { usage() };
                match k.as_str() {
                    "--calls" => o.calls = v.split(',').filter_map(|x| x.parse().ok()).collect(),
                    "--duration" => o.duration = Duration::from_secs(v.parse().unwrap_or(10)),
                    "--repeat" => o.repeat = v.parse().unwrap_or(1),
                    "--dialgate" => o.targets.push(target(v, "dialgate")),
                    "--dialgate-srtp" => o.targets.push(target(v, "dialgate-srtp")),
                    "--rtpengine" => o.targets.push(target(v, "rtpengine")),
                    _ => usage(),
                }
            }
            run_load(&o).await.map(|_| ())
        }
        _ => usage(),
    };
    if let Err(e) = res {
        eprintln!("bench-rtp: {e}");
        std::process::exit(1);
    }
}
