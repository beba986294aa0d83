//! A flood of malformed SIP from one source writes a bounded number of log
//! lines: the SIP stack's warning about each broken message is written once
//! per source per interval, the rest only counted (`/metrics`).
//! Real UDP on loopback. Its own test binary (not folded into `tests/api/`): it installs the
//! process's global log subscriber and counts the lines it writes, which no other test may share.

mod common;

use common::api::{StartOpts, start};
use dialgate::sip::Transport;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines_with(&self, needle: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).to_string();
        text.lines().filter(|l| l.contains(needle)).count()
    }
}

/// A request the parser accepts but the transaction layer cannot key (no From tag).
fn broken_options(i: usize) -> Vec<u8> {
    format!(
        "OPTIONS sip:probe@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-flood-{i}\r\nFrom: <sip:flood@127.0.0.1>\r\nTo: <sip:probe@127.0.0.1>\r\nCall-ID: flood-{i}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_flood_of_malformed_sip_writes_bounded_log_lines() {
    // 1. dialgate's log pipeline as `dialgate run` builds it: warnings, the per-source limit
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_writer(move || writer.clone())
        .finish()
        .with(dialgate::loglimit::MalformedInputLimit::default());
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let t = start("", StartOpts::default()).await;
    let sip = t.app().engine.sip_addr(Transport::Udp).unwrap();
    // 2. one source sends 2,000 broken requests (paced a little: UDP on a loaded machine drops)
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..2000 {
        sock.send_to(&broken_options(i), sip).unwrap();
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // 3. wait (bounded) until the stack has handled what arrived: the count stops growing
    let count = || dialgate::loglimit::SUPPRESSED.load(std::sync::atomic::Ordering::Relaxed);
    let mut suppressed = count();
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = count();
        if now == suppressed && now > 0 {
            break;
        }
        suppressed = now;
    }
    // 4. a handful of lines at most (one per kind of warning per 10 s), the rest counted
    let lines = out.lines_with("on_received_message error");
    assert!(lines >= 1, "the first broken message is logged");
    assert!(lines <= 3, "{lines} lines for one source");
    assert!(
        suppressed >= 1000,
        "most of the flood reached the stack and was counted: {suppressed}"
    );
    let m = t.http.send(hyper::Method::GET, "/metrics", &[], None).await;
    assert!(
        m.text.lines().any(|l| l
            .strip_prefix("dialgate_log_suppressed_total ")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n >= suppressed)),
        "{}",
        m.text
    );
    t.stop().await;
}
