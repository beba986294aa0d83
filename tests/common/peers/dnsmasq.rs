//! dnsmasq (Debian `dnsmasq-base`) as a DNS server on loopback: it serves the NAPTR, SRV and
//! A records a test gives it, answers NXDOMAIN for any other name under `test.`, and nothing
//! else (no upstream, no /etc/hosts, no config file).

use std::fs;
use std::net::SocketAddr;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::Proc;
use super::*;

/// A running dnsmasq; killed and reaped when dropped.
#[derive(Debug)]
pub struct Dnsmasq {
    proc: Proc,
    dir: TempDir,
    /// Where it answers (UDP and TCP), 127.0.0.1:<free port>.
    pub addr: SocketAddr,
}

/// Records to serve, as dnsmasq options (each one `--name=value`).
#[derive(Debug, Default, Clone)]
pub struct DnsRecords {
    opts: Vec<String>,
}

impl DnsRecords {
    /// An A record (`--host-record`).
    pub fn a(mut self, name: &str, ip: &str) -> Self {
        self.opts.push(format!("--host-record={name},{ip}"));
        self
    }

    /// An SRV record (`--srv-host`): `_sip._udp.carrier.test` → `target:port`.
    pub fn srv(mut self, name: &str, target: &str, port: u16, priority: u16, weight: u16) -> Self {
        self.opts.push(format!(
            "--srv-host={name},{target},{port},{priority},{weight}"
        ));
        self
    }

    /// A NAPTR record with flag `S` (`--naptr-record`): `services` such as `SIP+D2U`, the
    /// replacement an SRV name.
    pub fn naptr(
        mut self,
        name: &str,
        order: u16,
        preference: u16,
        services: &str,
        replacement: &str,
    ) -> Self {
        self.opts.push(format!(
            "--naptr-record={name},{order},{preference},S,{services},,{replacement}"
        ));
        self
    }

    /// The TTL of every record served (`--local-ttl`; dnsmasq's default is 0: not cached).
    pub fn ttl(mut self, seconds: u32) -> Self {
        self.opts.push(format!("--local-ttl={seconds}"));
        self
    }
}

impl Dnsmasq {
    /// Starts dnsmasq in the foreground on a free port of 127.0.0.1 with `records`; waits
    /// (bounded) until it answers a query.
    pub async fn start(records: DnsRecords) -> Result<Self, PeerError> {
        let bin = find_program("dnsmasq", &["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"])?;
        let port = free_udp_port();
        let dir = tempfile::Builder::new().prefix("dnsmasq-").tempdir()?;
        let log = fs::File::create(dir.path().join("dnsmasq.log"))?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--pid-file",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--log-queries",
            "--log-facility=-",
            // Names under test. that are not served get NXDOMAIN (not REFUSED).
            "--local=/test/",
        ])
        .arg(format!("--port={port}"));
        // As root dnsmasq drops privileges to `nobody`; staying root keeps the log writable.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            cmd.arg("--user=root");
        }
        cmd.args(&records.opts);
        let proc = Proc::spawn_logged("dnsmasq", &mut cmd, dir.path(), log)?;
        let d = Dnsmasq {
            proc,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        d.wait_ready(Duration::from_secs(10)).await?;
        Ok(d)
    }

    /// Readiness: any answer to an A query for `ready.test`.
    async fn wait_ready(&self, timeout: Duration) -> Result<(), PeerError> {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 512];
        for id in 1u16.. {
            self.proc
                .alive_before(deadline, "dnsmasq", timeout, || self.tail())
                .map_err(|e| e.not_ready("dnsmasq"))?;
            let _ = sock.send_to(&a_query(id, "ready.test"), self.addr).await;
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(100), sock.recv(&mut buf)).await
                && n >= 2
                && buf[..2] == id.to_be_bytes()
            {
                return Ok(());
            }
        }
        unreachable!("the probe loop only ends by returning")
    }

    /// `"127.0.0.1:<port>"`, as written in `server.dns.servers`.
    pub fn server(&self) -> String {
        self.addr.to_string()
    }

    /// Its log so far (with `--log-queries`: one `query[SRV] … from …` line per query).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }

    /// The queries it received, `(type, name)` in order, e.g. `("NAPTR", "carrier.test")`.
    pub fn queries(&self) -> Vec<(String, String)> {
        self.log()
            .lines()
            .filter_map(|l| {
                let rest = &l[l.find("query[")? + 6..];
                let (ty, rest) = rest.split_once("] ")?;
                let name = rest.split_whitespace().next()?;
                Some((ty.to_owned(), name.to_owned()))
            })
            .collect()
    }

    /// Ends it with SIGTERM (bounded, then SIGKILL).
    pub async fn stop(&self) -> Option<ExitStatus> {
        self.proc.stop().await
    }

    fn tail(&self) -> String {
        tail_of(&self.dir.path().join("dnsmasq.log"), 20)
    }
}

/// A DNS query packet: one question, `name` IN A, recursion desired.
fn a_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(32);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}
