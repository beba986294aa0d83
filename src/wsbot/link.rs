//! Opening one WebSocket to the bot — `ws://` over dialgate's own client (`plain.rs`),
//! `wss://` over tokio-tungstenite with rustls, bearer token in the upgrade — and the socket as
//! the session's task sees it: its own, or served by the relay thread (`served.rs`).

use super::config::WebSocketBot;
use super::error::WsBotError;
use super::plain::PlainLink;
use super::served_link::{FromRelay, ServedLink};
use super::types::WsBotOptions;
use super::wire::WireMsg;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// Bytes asked of the socket per read. tungstenite zero-fills this much of its input buffer
/// before every read, including the read that finds nothing more (one per message): with its
/// default of 128 KiB that `memset` was half of a session's CPU in the call benchmark's profile
/// (256 KiB per 20 ms per call). Audio messages are a few hundred bytes to a few KiB; a larger
/// message is still read whole (the buffer grows to its announced length), 4 KiB per read.
const READ_BUFFER: usize = 4096;

/// The session's socket to the bot.
#[derive(Debug)]
pub(crate) enum Link {
    /// `wss://`, on tokio-tungstenite.
    Tls(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
    /// `ws://`, on dialgate's own client (its socket can be handed to the relay thread).
    Plain(PlainLink),
    /// `ws://`, served by the relay thread: the task only hears from it.
    Served(ServedLink),
}

/// What the session's task got from its socket.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A text message, for the core.
    Text(String),
    /// A binary message of this size (not spoken by dialgate's bots).
    Binary(usize),
    /// A ping or pong (answered by the link).
    Control,
    /// The bot closed the connection.
    Close,
    /// The outputs of a message the relay thread ran through the core (events).
    Outputs(Vec<super::protocol::Output>),
    /// The relay thread handed the socket back (the link is the session's own again).
    Returned,
}

impl Link {
    /// Writes one text message (never called while served: the core queues frames then).
    pub async fn send_text(&mut self, text: String) -> Result<(), String> {
        match self {
            Link::Tls(ws) => ws
                .send(Message::text(text))
                .await
                .map_err(|e| e.to_string()),
            Link::Plain(p) => p.send_text(&text).await.map_err(|e| e.to_string()),
            // Only when the relay dropped the socket meanwhile (its word is on the way).
            Link::Served(_) => Err("the socket failed while served by the media relay".into()),
        }
    }

    /// Polls for the next message; `None` when the socket ended, `Err` when it failed.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, String>>> {
        match self {
            Link::Tls(ws) => ws.poll_next_unpin(cx).map(|m| {
                m.map(|r| {
                    r.map(|msg| match msg {
                        Message::Text(t) => Incoming::Text(t.as_str().to_owned()),
                        Message::Binary(b) => Incoming::Binary(b.len()),
                        Message::Close(_) => Incoming::Close,
                        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                            Incoming::Control
                        }
                    })
                    .map_err(|e| e.to_string())
                })
            }),
            Link::Plain(p) => p.poll_next(cx).map(|m| {
                m.map(|r| {
                    r.map(|msg| match msg {
                        WireMsg::Text(t) => Incoming::Text(t),
                        WireMsg::Binary(n) => Incoming::Binary(n),
                        WireMsg::Close => Incoming::Close,
                        WireMsg::Ping(_) | WireMsg::Pong => Incoming::Control,
                    })
                })
            }),
            Link::Served(s) => match ready!(s.poll_next(cx)) {
                FromRelay::Outputs(o) => Poll::Ready(Some(Ok(Incoming::Outputs(o)))),
                FromRelay::Dropped(reason) => Poll::Ready(Some(Err(reason))),
                FromRelay::Returned(back) => {
                    let back = *back;
                    match PlainLink::from_parts(back.sock, back.reader, back.owed) {
                        Ok(plain) => {
                            *self = Link::Plain(plain);
                            Poll::Ready(Some(Ok(Incoming::Returned)))
                        }
                        Err(e) => Poll::Ready(Some(Err(e.to_string()))),
                    }
                }
            },
        }
    }

    /// The next message (see [`Link::poll_next`]).
    pub async fn next(&mut self) -> Option<Result<Incoming, String>> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }

    /// Closes the socket (a served one is closed by the relay once the goodbye is written).
    pub async fn close(&mut self) {
        match self {
            Link::Tls(ws) => {
                let _ = WebSocketStream::close(ws, None).await;
            }
            Link::Plain(p) => p.close().await,
            Link::Served(_) => {}
        }
    }
}

/// Installs rustls' `ring` provider unless the process already has one (the API, SIP and
/// webhook code install the same one; a second install would fail harmlessly, but checking
/// first keeps an embedding program's own choice).
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn web_pki_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// Opens the socket, bounded by `opts.handshake_timeout`.
pub(crate) async fn open(bot: &WebSocketBot, opts: &WsBotOptions) -> Result<Link, WsBotError> {
    // Hard limit far above the session's soft one: an oversized message is dropped by the
    // session (and survived); only an absurd one closes the socket.
    let hard = opts.max_message_bytes.saturating_mul(4);
    if bot.url.scheme() == "ws" {
        let connecting = super::plain::connect(&bot.url, bot.token.as_deref(), hard);
        return match tokio::time::timeout(opts.handshake_timeout, connecting).await {
            Ok(Ok(link)) => Ok(Link::Plain(link)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(timeout(bot, opts)),
        };
    }
    let url = bot.url.as_str();
    let mut request = url.into_client_request().map_err(|e| WsBotError::Request {
        url: url.to_string(),
        detail: e.to_string(),
    })?;
    if let Some(token) = &bot.token {
        let value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| WsBotError::Request {
                url: url.to_string(),
                detail: "the token is not a valid HTTP header value".into(),
            })?;
        request.headers_mut().insert("authorization", value);
    }
    let connector = if bot.url.scheme() == "wss" {
        ensure_crypto_provider();
        Connector::Rustls(opts.tls.clone().unwrap_or_else(web_pki_config))
    } else {
        Connector::Plain
    };
    let config = WebSocketConfig::default()
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard))
        .read_buffer_size(READ_BUFFER);
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    );
    match tokio::time::timeout(opts.handshake_timeout, connecting).await {
        Ok(Ok((link, _response))) => Ok(Link::Tls(Box::new(link))),
        Ok(Err(e)) => Err(WsBotError::Connect {
            url: url.to_string(),
            detail: e.to_string(),
        }),
        Err(_) => Err(timeout(bot, opts)),
    }
}

fn timeout(bot: &WebSocketBot, opts: &WsBotOptions) -> WsBotError {
    WsBotError::Timeout {
        url: bot.url.to_string(),
        stage: "connect",
        ms: opts.handshake_timeout.as_millis() as u64,
    }
}
