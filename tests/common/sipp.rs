//! Spawn SIPp (Debian `sip-tester`) with a scenario from tests/sipp/, bounded in time, killed on
//! Drop. Also a Kamailio carrier-proxy runner (tests/peers/kamailio-carrier.cfg).
#![allow(dead_code)]

use std::net::UdpSocket;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running SIPp UAS.
pub struct Sipp {
    child: Option<Child>,
    /// UDP port it listens on.
    pub port: u16,
    /// Message log (`-trace_msg`).
    pub log: PathBuf,
    dir: PathBuf,
}

fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dialgate-sip-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Wait (bounded: 200 tries of 10 ms) until someone holds UDP `port` on 127.0.0.1.
pub fn wait_udp_bound(port: u16) {
    for _ in 0..200 {
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing bound udp port {port}");
}

/// Wait (bounded: 200 tries of 10 ms) until a socket LISTENs on TCP `port`. Reads
/// /proc/net/tcp rather than probing: SIPp's `-t t1` treats a probe connection's close as fatal.
pub fn wait_tcp_listening(port: u16) {
    let needle = format!(":{port:04X} 00000000:0000 0A");
    for _ in 0..200 {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        if table.contains(&needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("nothing listens on tcp port {port}");
}

impl Sipp {
    /// Start `sipp -sf tests/sipp/<scenario>` as a UAS on 127.0.0.1:`port`, one call, 20 s cap.
    pub fn uas(scenario: &str, port: u16) -> Sipp {
        Self::uas_with(scenario, port, &[])
    }

    /// Same over TCP (`-t t1`, one connection).
    pub fn uas_tcp(scenario: &str, port: u16) -> Sipp {
        Self::uas_with(scenario, port, &["-t", "t1"])
    }

    fn uas_with(scenario: &str, port: u16, extra: &[&str]) -> Sipp {
        let dir = scratch_dir(&format!("sipp{port}"));
        let log = dir.join("messages.log");
        let sf = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/sipp")
            .join(scenario);
        let child = Command::new("sipp")
            .args([
                "-sf",
                sf.to_str().unwrap(),
                "-i",
                "127.0.0.1",
                "-mi",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &port.to_string(),
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "20s",
            ])
            .args([
                "-timeout_error",
                "-trace_msg",
                "-trace_err",
                "-message_file",
            ])
            .arg(&log)
            .args(extra)
            .arg("-error_file")
            .arg(dir.join("errors.log"))
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp installed (apt-get install sip-tester)");
        if extra.is_empty() {
            wait_udp_bound(port);
        } else {
            wait_tcp_listening(port);
        }
        Sipp {
            child: Some(child),
            port,
            log,
            dir,
        }
    }

    /// Wait for SIPp to finish (bounded: 25 s) and return (exit code, message log).
    pub async fn finish(mut self) -> (i32, String) {
        let mut child = self.child.take().unwrap();
        for _ in 0..2500 {
            if let Some(st) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let errs = std::fs::read_to_string(self.dir.join("errors.log")).unwrap_or_default();
                if st.code() != Some(0) {
                    eprintln!("sipp errors:\n{errs}\nsipp messages:\n{log}");
                }
                return (st.code().unwrap_or(-1), log);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("sipp did not finish");
    }

    /// Messages logged so far.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Kamailio as a carrier proxy with digest auth, in the foreground, killed on Drop.
pub struct Kamailio {
    child: Child,
    /// Log file (stderr).
    pub log: PathBuf,
}

impl Kamailio {
    /// Listen on 127.0.0.1:`port`, relay authenticated INVITEs to 127.0.0.1:`uas_port`.
    pub fn start(port: u16, uas_port: u16, user: &str, pass: &str, extra: &[&str]) -> Kamailio {
        let dir = scratch_dir(&format!("kam{port}"));
        let cfg =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers/kamailio-carrier.cfg");
        let log = dir.join("kamailio.log");
        let mut cmd = Command::new("kamailio");
        cmd.arg("-f")
            .arg(&cfg)
            .args(["-DD", "-E", "-m", "64", "-M", "8"]);
        cmd.arg("-P")
            .arg(dir.join("kamailio.pid"))
            .arg("-Y")
            .arg(&dir)
            .arg("-w")
            .arg(&dir);
        cmd.args(["-A", &format!("LISTEN=udp:127.0.0.1:{port}")]);
        cmd.args([
            "-A",
            &format!("AUTH_USER=\"{user}\""),
            "-A",
            &format!("AUTH_PASS=\"{pass}\""),
        ]);
        cmd.args(["-A", &format!("UAS_PORT={uas_port}")]);
        for e in extra {
            cmd.args(["-A", e]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("kamailio installed");
        wait_udp_bound(port);
        Kamailio { child, log }
    }

    /// Log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // SIGTERM via kill(1) on our own child's PID, so it removes its pid file.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..200 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
