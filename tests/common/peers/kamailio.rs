//! Kamailio as a carrier proxy with digest authentication.

use std::fs;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::process::Proc;
use super::*;

/// Kamailio 5.6 as a carrier proxy: challenges INVITEs with 407 and relays them to a UAS.
#[derive(Debug)]
pub struct Kamailio {
    proc: Proc,
    dir: TempDir,
    /// The UDP port it listens on (127.0.0.1).
    pub port: u16,
}

impl Kamailio {
    /// Starts `tests/peers/kamailio-carrier.cfg` on `port` (0 picks a free one), relaying to the
    /// UAS on 127.0.0.1:`uas_port`, accepting `user`/`pass` (realm `carrier.test`). With
    /// `wrong_creds_403` wrong credentials get 403 instead of a fresh 407. Waits until it
    /// answers an OPTIONS.
    pub async fn spawn(
        port: u16,
        uas_port: u16,
        user: &str,
        pass: &str,
        wrong_creds_403: bool,
    ) -> Result<Self, PeerError> {
        let bin = find_program("kamailio", &["/usr/sbin/kamailio", "/usr/bin/kamailio"])?;
        let cfg = require(
            "kamailio-carrier.cfg",
            repo_root().join("tests/peers/kamailio-carrier.cfg"),
        )?;
        let port = if port == 0 { free_udp_port() } else { port };
        let dir = tempfile::Builder::new().prefix("kamailio-").tempdir()?;
        let run = dir.path().join("run");
        fs::create_dir_all(&run)?;
        let mut cmd = Command::new(bin);
        cmd.arg("-f")
            .arg(&cfg)
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-P")
            .arg(run.join("kamailio.pid"))
            .arg("-Y")
            .arg(&run)
            .arg("-w")
            .arg(&run)
            .arg("-A")
            .arg(format!("LISTEN=udp:127.0.0.1:{port}")) // must stay unquoted
            .arg("-A")
            .arg(format!("AUTH_USER=\"{user}\""))
            .arg("-A")
            .arg(format!("AUTH_PASS=\"{pass}\""))
            .arg("-A")
            .arg(format!("UAS_PORT={uas_port}"));
        if wrong_creds_403 {
            cmd.args(["-A", "WRONG_CREDS_403"]);
        }
        let log = fs::File::create(dir.path().join("kamailio.log"))?;
        let proc = Proc::spawn_logged("kamailio", &mut cmd, dir.path(), log)?;
        let k = Kamailio { proc, dir, port };
        let timeout = Duration::from_secs(20);
        if let Err(e) = k.wait_ready(timeout).await {
            return Err(e.not_ready("kamailio"));
        }
        Ok(k)
    }

    /// Readiness probe: the config answers OPTIONS with 200 without authentication.
    async fn wait_ready(&self, timeout: Duration) -> Result<(), PeerError> {
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let local = sock.local_addr()?;
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        for n in 0u32.. {
            self.proc
                .alive_before(deadline, "kamailio OPTIONS 200", timeout, || self.tail())?;
            let msg = format!(
                "OPTIONS sip:probe@127.0.0.1:{p} SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {local};branch=z9hG4bK-probe-{n}\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:probe@127.0.0.1>;tag=probe{n}\r\n\
                 To: <sip:probe@127.0.0.1:{p}>\r\n\
                 Call-ID: kamailio-probe-{n}@127.0.0.1\r\n\
                 CSeq: 1 OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                p = self.port
            );
            // Before Kamailio binds, the datagram is simply lost (or ICMP-refused): retry.
            let _ = sock.send_to(msg.as_bytes(), ("127.0.0.1", self.port)).await;
            if let Ok(Ok(len)) =
                tokio::time::timeout(Duration::from_millis(100), sock.recv(&mut buf)).await
                && buf[..len].starts_with(b"SIP/2.0 200")
            {
                return Ok(());
            }
        }
        unreachable!("the probe loop only ends by returning")
    }

    /// `sip:<user>@127.0.0.1:<port>`: the carrier trunk address to call through.
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@127.0.0.1:{}", self.port)
    }

    /// Kamailio's log so far (`REQ …`, `REPLY …`, `auth failed rc=… -> challenge`).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("kamailio.log")).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.proc.pid
    }

    /// Ends it with SIGTERM (bounded, then SIGKILL).
    pub async fn stop(&self) -> Option<ExitStatus> {
        self.proc.stop().await
    }

    fn tail(&self) -> String {
        tail_of(&self.dir.path().join("kamailio.log"), 20)
    }
}
