//! `bench-rtp relay`: dialgate's relay in its own process, serving sessions
//! over a line protocol on TCP (loopback):
//! `create <carrier_peer> <bot_peer>` → `<carrier_local> <bot_local>`;
//! `create-srtp <carrier_peer> <bot_peer>` → the same with SRTP on the carrier leg
//! (fixed benchmark keys, see [`generator_srtp`]);
//! `clear` → `ok` (drops all sessions of this connection).

use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::{BenchError, io_err};
use crate::media::srtp::{MASTER_LEN, SrtpKeys, SrtpLeg, SrtpSuite};
use crate::media::{AudioCodec, Direction, Leg, MediaConfig, MediaEngine, RemoteMedia};

/// Serves relay sessions until the process is stopped.
pub async fn serve_relay(control: SocketAddr, cfg: MediaConfig) -> Result<(), BenchError> {
    let engine = MediaEngine::new(cfg)?;
    let listener = TcpListener::bind(control)
        .await
        .map_err(io_err("bind control"))?;
    println!(
        "bench-rtp relay: pid {} control {control}",
        std::process::id()
    );
    loop {
        let (sock, _) = listener.accept().await.map_err(io_err("accept"))?;
        let engine = engine.clone();
        tokio::spawn(async move {
            let (r, mut w) = sock.into_split();
            let mut lines = BufReader::new(r).lines();
            let mut sessions = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = handle(&engine, &line, &mut sessions);
                if w.write_all(format!("{reply}\n").as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}

fn handle(
    engine: &MediaEngine,
    line: &str,
    sessions: &mut Vec<crate::media::MediaSession>,
) -> String {
    let parts: Vec<&str> = line.split_whitespace().collect();
    match parts.as_slice() {
        [cmd @ ("create" | "create-srtp"), a, b] => {
            let (Ok(a), Ok(b)) = (a.parse::<SocketAddr>(), b.parse::<SocketAddr>()) else {
                return "err bad address".into();
            };
            let s = match engine.create_session("bench") {
                Ok(s) => s,
                Err(e) => return format!("err {e}"),
            };
            let remote = |rtp| RemoteMedia {
                rtp,
                rtcp: None,
                codec: AudioCodec::PCMU,
                dtmf_pt: Some(101),
                direction: Direction::SendRecv,
            };
            if *cmd == "create-srtp"
                && let Err(e) = s.set_srtp(Leg::Carrier, Some(relay_keys()))
            {
                return format!("err {e}");
            }
            if let Err(e) = s
                .set_remote(Leg::Carrier, remote(a))
                .and(s.set_remote(Leg::Bot, remote(b)))
            {
                return format!("err {e}");
            }
            let reply = format!(
                "{} {}",
                s.local_rtp_addr(Leg::Carrier),
                s.local_rtp_addr(Leg::Bot)
            );
            sessions.push(s);
            reply
        }
        ["clear"] => {
            sessions.clear();
            "ok".into()
        }
        _ => "err unknown command".into(),
    }
}

/// Benchmark-only SRTP keys (never used for a call): the relay's and the generator's.
const RELAY_KEY: [u8; MASTER_LEN] = [0x11; MASTER_LEN];
const GENERATOR_KEY: [u8; MASTER_LEN] = [0x22; MASTER_LEN];

fn relay_keys() -> SrtpKeys {
    SrtpKeys {
        suite: SrtpSuite::AesCm128HmacSha1_80,
        local: RELAY_KEY,
        remote: GENERATOR_KEY,
    }
}

/// The load generator's side of a `create-srtp` session's carrier leg.
pub(crate) fn generator_srtp() -> Result<SrtpLeg, BenchError> {
    SrtpLeg::new(SrtpKeys {
        suite: SrtpSuite::AesCm128HmacSha1_80,
        local: GENERATOR_KEY,
        remote: RELAY_KEY,
    })
    .map_err(|e| BenchError::Control(e.to_string()))
}
