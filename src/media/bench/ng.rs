//! Minimal rtpengine ng-protocol client (bencode over UDP) for the benchmark.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::{BenchError, io_err};

pub(crate) struct Ng {
    sock: UdpSocket,
    id: u64,
    cookie: u64,
}

static CLIENTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn bstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(format!("{}:", s.len()).as_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Extracts the byte string value of `key` from a flat bencoded dictionary.
fn dict_str(msg: &[u8], key: &str) -> Option<String> {
    let pat = format!("{}:{}", key.len(), key);
    let i = msg.windows(pat.len()).position(|w| w == pat.as_bytes())? + pat.len();
    let colon = i + msg[i..].iter().position(|&c| c == b':')?;
    let len: usize = std::str::from_utf8(&msg[i..colon]).ok()?.parse().ok()?;
    let v = msg.get(colon + 1..colon + 1 + len)?;
    Some(String::from_utf8_lossy(v).into_owned())
}

/// The `c=` address and `m=audio` port of an SDP.
pub(crate) fn sdp_target(sdp: &str) -> Option<SocketAddr> {
    let ip = sdp
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))?
        .trim();
    let port = sdp
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))?
        .split(' ')
        .next()?;
    format!("{ip}:{port}").parse().ok()
}

pub(crate) fn sdp_for(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )
}

impl Ng {
    pub(crate) async fn new() -> Result<Ng, BenchError> {
        let sock = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(io_err("ng bind"))?;
        Ok(Ng {
            sock,
            id: CLIENTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            cookie: 0,
        })
    }

    /// Sends one command (`pairs` in order) and returns the raw reply dictionary.
    pub(crate) async fn call(
        &mut self,
        to: SocketAddr,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<u8>, BenchError> {
        self.cookie += 1;
        // rtpengine caches replies by cookie (retransmissions): cookies must
        // never repeat, also across clients of successive points.
        let cookie = format!("b{}x{}x{}", std::process::id(), self.id, self.cookie);
        let mut msg = format!("{cookie} d").into_bytes();
        let mut sorted = pairs.to_vec();
        sorted.sort_by_key(|p| p.0);
        for (k, v) in sorted {
            bstr(&mut msg, k);
            bstr(&mut msg, v);
        }
        msg.push(b'e');
        for _ in 0..3 {
            self.sock
                .send_to(&msg, to)
                .await
                .map_err(io_err("ng send"))?;
            let mut buf = vec![0u8; 65536];
            match tokio::time::timeout(Duration::from_secs(2), self.sock.recv(&mut buf)).await {
                Ok(Ok(n)) if buf[..n].starts_with(cookie.as_bytes()) => {
                    let body = buf[cookie.len() + 1..n].to_vec();
                    if dict_str(&body, "result").as_deref() != Some("ok") {
                        return Err(BenchError::Control(String::from_utf8_lossy(&body).into()));
                    }
                    return Ok(body);
                }
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => return Err(io_err("ng recv")(e)),
                Err(_) => continue,
            }
        }
        Err(BenchError::Control("rtpengine did not answer".into()))
    }

    /// offer/answer for one call; returns (where A sends, where B sends).
    pub(crate) async fn setup(
        &mut self,
        ng: SocketAddr,
        call_id: &str,
        a: SocketAddr,
        b: SocketAddr,
    ) -> Result<(SocketAddr, SocketAddr), BenchError> {
        let offer_sdp = sdp_for(a.port());
        let r = self
            .call(
                ng,
                &[
                    ("command", "offer"),
                    ("call-id", call_id),
                    ("from-tag", "ft"),
                    ("sdp", &offer_sdp),
                ],
            )
            .await?;
        let b_to = dict_str(&r, "sdp").and_then(|s| sdp_target(&s));
        let answer_sdp = sdp_for(b.port());
        let r = self
            .call(
                ng,
                &[
                    ("command", "answer"),
                    ("call-id", call_id),
                    ("from-tag", "ft"),
                    ("to-tag", "tt"),
                    ("sdp", &answer_sdp),
                ],
            )
            .await?;
        let a_to = dict_str(&r, "sdp").and_then(|s| sdp_target(&s));
        match (a_to, b_to) {
            (Some(a_to), Some(b_to)) => Ok((a_to, b_to)),
            _ => Err(BenchError::Control(format!(
                "no usable SDP from rtpengine: {}",
                String::from_utf8_lossy(&r)
            ))),
        }
    }

    pub(crate) async fn delete(&mut self, ng: SocketAddr, call_id: &str) -> Result<(), BenchError> {
        self.call(
            ng,
            &[
                ("command", "delete"),
                ("call-id", call_id),
                ("from-tag", "ft"),
            ],
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_sdp_and_bencode() {
        // 1. target from an SDP, string value from a bencoded dict
        let sdp = super::sdp_for(30000);
        assert_eq!(
            super::sdp_target(&sdp),
            Some("127.0.0.1:30000".parse().unwrap())
        );
        assert_eq!(
            super::dict_str(b"d6:result2:ok3:sdp3:abce", "sdp").as_deref(),
            Some("abc")
        );
    }
}
