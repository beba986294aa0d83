//! A WebSocket bot server for the wsbot tests (`tests/calls/`, `tests/bench/`): real sockets on 127.0.0.1 (optionally TLS), the
//! bearer token checked in the upgrade, and a scriptable connection the test drives step by step.
// tungstenite's handshake callback fixes the large error type.
#![allow(dead_code, clippy::result_large_err)]

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

/// Bound on every wait in these tests (generous: the machine is shared).
pub const WAIT: Duration = Duration::from_secs(20);

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One accepted bot connection.
pub struct BotConn {
    pub ws: WebSocketStream<Box<dyn Io>>,
    /// The `Authorization` header of the upgrade.
    pub authorization: Option<String>,
}

impl BotConn {
    /// The next JSON text message (pings etc. skipped); panics after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        self.try_recv().await.expect("the client closed the socket")
    }

    /// The next JSON text message, `None` when the socket closed.
    pub async fn try_recv(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("no message from dialgate in time");
            match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(t))) => {
                    return Some(
                        serde_json::from_str(t.as_str()).expect("dialgate sent invalid JSON"),
                    );
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next message whose `key` (`type`/`event`) is not `skip`.
    pub async fn recv_skipping(&mut self, key: &str, skip: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v[key] != skip {
                return v;
            }
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send to dialgate");
    }

    /// Plays `chunks` (base64 audio) to dialgate as the AC stream `id`: `playStream.start`
    /// (naming `media_format` if given), one `playStream.chunk` each, then `playStream.stop`
    /// if `stop`.
    pub async fn play_stream(
        &mut self,
        id: &str,
        media_format: Option<&str>,
        chunks: impl IntoIterator<Item = String>,
        stop: bool,
    ) {
        let mut start = json!({"type": "playStream.start", "streamId": id});
        if let Some(f) = media_format {
            start["mediaFormat"] = json!(f);
        }
        self.send(start).await;
        for chunk in chunks {
            self.send(json!({"type": "playStream.chunk", "streamId": id, "audioChunk": chunk}))
                .await;
        }
        if stop {
            self.send(json!({"type": "playStream.stop", "streamId": id}))
                .await;
        }
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send to dialgate");
    }

    /// Drops the TCP connection without a close handshake.
    pub fn drop_hard(self) {
        drop(self.ws);
    }
}

/// A listening bot server.
pub struct BotServer {
    pub addr: SocketAddr,
    conns: mpsc::Receiver<BotConn>,
    task: tokio::task::JoinHandle<()>,
}

impl BotServer {
    /// Listens on 127.0.0.1; upgrades without `Bearer {token}` (when given) get 401.
    pub async fn start(token: Option<&str>, tls: Option<Arc<rustls::ServerConfig>>) -> BotServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, conns) = mpsc::channel(16);
        let token = token.map(str::to_string);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let _ = tcp.set_nodelay(true);
                let stream: Box<dyn Io> = match &tls {
                    None => Box::new(tcp),
                    Some(cfg) => match tokio_rustls::TlsAcceptor::from(cfg.clone())
                        .accept(tcp)
                        .await
                    {
                        Ok(s) => Box::new(s),
                        Err(_) => continue,
                    },
                };
                let (auth_tx, auth_rx) = std::sync::mpsc::channel();
                let want = token.clone();
                let check =
                    move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let _ = auth_tx.send(auth.clone());
                        match &want {
                            Some(t) if auth.as_deref() != Some(&format!("Bearer {t}")) => {
                                let mut r = ErrorResponse::new(Some("bad token".into()));
                                *r.status_mut() = StatusCode::UNAUTHORIZED;
                                Err(r)
                            }
                            _ => Ok(resp),
                        }
                    };
                if let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, check).await {
                    let authorization = auth_rx.try_recv().ok().flatten();
                    if tx.send(BotConn { ws, authorization }).await.is_err() {
                        return;
                    }
                }
            }
        });
        BotServer { addr, conns, task }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/bot", self.addr)
    }

    /// The next accepted connection; panics after [`WAIT`].
    pub async fn accept(&mut self) -> BotConn {
        tokio::time::timeout(WAIT, self.conns.recv())
            .await
            .expect("dialgate did not connect in time")
            .expect("server stopped")
    }

    /// Stops listening: later connection attempts are refused.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// A self-signed certificate for 127.0.0.1: the server's config and a client config trusting it.
pub fn tls_pair() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let der = rustls::pki_types::CertificateDer::from(ck.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(ck.signing_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).unwrap();
    let client = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `secs` of a 440 Hz tone at 8 kHz µ-law, base64, one string per second of audio.
pub fn tone_seconds(secs: usize) -> Vec<String> {
    let second: Vec<u8> = (0..8000)
        .map(|i| {
            let v = 8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 8000.0).sin();
            dialgate::media::g711::linear_to_ulaw(v as i16)
        })
        .collect();
    vec![b64(&second); secs]
}

pub fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("dialgate sent bad base64")
}

/// One second of a 300 → 3000 Hz chirp at 8 kHz: a test signal with one clear alignment.
pub fn chirp_8k(seconds: f64) -> Vec<i16> {
    let n = (8000.0 * seconds) as usize;
    let (f0, f1) = (300.0, 3000.0);
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let phase = 2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * seconds));
            (9000.0 * phase.sin()) as i16
        })
        .collect()
}

/// The best normalised cross-correlation of `got` against `want` over lags `0..max_lag`:
/// (peak, lag).
pub fn best_correlation(want: &[i16], got: &[i16], max_lag: usize) -> (f64, usize) {
    let mut best = (f64::MIN, 0);
    for lag in 0..max_lag {
        let n = want.len().min(got.len().saturating_sub(lag));
        if n < 100 {
            break;
        }
        let (mut xy, mut xx, mut yy) = (0f64, 0f64, 0f64);
        for i in 0..n {
            let (x, y) = (want[i] as f64, got[i + lag] as f64);
            xy += x * y;
            xx += x * x;
            yy += y * y;
        }
        let c = xy / (xx.sqrt() * yy.sqrt()).max(1.0);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

/// Frames from `next_frame` until `n` samples are collected.
pub fn pull(bot: &dialgate::wsbot::WsBot, frames: usize) -> Vec<i16> {
    (0..frames).flat_map(|_| bot.next_frame()).collect()
}

/// [`quick_options`] refusing messages over `max_message_bytes`.
pub fn options_up_to(max_message_bytes: usize) -> dialgate::wsbot::WsBotOptions {
    dialgate::wsbot::WsBotOptions {
        max_message_bytes,
        ..quick_options()
    }
}

/// Test options: short bounds so failure paths finish quickly.
pub fn quick_options() -> dialgate::wsbot::WsBotOptions {
    dialgate::wsbot::WsBotOptions {
        handshake_timeout: Duration::from_secs(10),
        resume_backoff: Duration::from_millis(50),
        ..Default::default()
    }
}

pub fn call_info(id: &str) -> dialgate::wsbot::CallInfo {
    dialgate::wsbot::CallInfo {
        conversation_id: id.into(),
        caller: "+15550001".into(),
        callee: "+15550002".into(),
        metadata: serde_json::json!({"campaign": "spring", "attempt": 2}),
    }
}

pub fn bot(
    url: &str,
    protocol: dialgate::wsbot::WsProtocol,
    token: Option<&str>,
    format: dialgate::wsbot::MediaFormat,
) -> dialgate::wsbot::WebSocketBot {
    dialgate::wsbot::WebSocketBot {
        url: url::Url::parse(url).unwrap(),
        protocol,
        token: token.map(str::to_string),
        media_format: format,
        chunk_ms: dialgate::wsbot::config::DEFAULT_CHUNK_MS,
    }
}

/// Starts an AC-mode session (µ-law or linear, quick options) toward `server` in a task of its
/// own, so that the test can play the bot's side of the handshake meanwhile.
pub fn connect_ac(
    server: &BotServer,
    format: dialgate::wsbot::MediaFormat,
    conversation_id: &str,
) -> tokio::task::JoinHandle<Result<dialgate::wsbot::WsBot, dialgate::wsbot::WsBotError>> {
    connect_ac_with(server, format, conversation_id, quick_options())
}

/// [`connect_ac`] with these options.
pub fn connect_ac_with(
    server: &BotServer,
    format: dialgate::wsbot::MediaFormat,
    conversation_id: &str,
    opts: dialgate::wsbot::WsBotOptions,
) -> tokio::task::JoinHandle<Result<dialgate::wsbot::WsBot, dialgate::wsbot::WsBotError>> {
    let cfg = bot(
        &server.url("ws"),
        dialgate::wsbot::WsProtocol::AcBotApi,
        None,
        format,
    );
    let info = call_info(conversation_id);
    tokio::spawn(async move { dialgate::wsbot::WsBot::connect(&cfg, info, opts).await })
}

/// The next event, bounded.
pub async fn event(bot: &mut dialgate::wsbot::WsBot) -> dialgate::wsbot::WsBotEvent {
    tokio::time::timeout(WAIT, bot.next_event())
        .await
        .expect("no event in time")
        .expect("the session ended")
}

/// Asserts that the session's next event is `Disconnected` and that it then ends (no event
/// after it; each wait bounded by [`WAIT`]).
pub async fn assert_disconnected_and_over(bot: &mut dialgate::wsbot::WsBot) {
    assert!(matches!(
        event(bot).await,
        dialgate::wsbot::WsBotEvent::Disconnected { .. }
    ));
    let next = tokio::time::timeout(WAIT, bot.next_event()).await;
    assert!(
        next.expect("the session ends in time").is_none(),
        "session over"
    );
}

/// Waits (bounded by [`WAIT`]) until `cond` holds.
pub async fn wait_until(mut cond: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("condition not reached in time");
}
