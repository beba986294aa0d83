//! dialgate's own `ws://` client: the HTTP upgrade (RFC 6455 §4.1) and the session's reads and
//! writes over `wire.rs`, on a tokio socket. Its socket and every byte read past the last
//! message can be taken out whole ([`PlainLink::into_parts`]) and handed to the relay thread
//! (`served.rs`) once the call has media.

use super::error::WsBotError;
use super::wire::{self, WireError, WireMsg, WireReader};
use std::io::ErrorKind;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The upgrade response's headers are read up to this size.
const MAX_RESPONSE: usize = 16 * 1024;

/// An open `ws://` connection to the bot.
#[derive(Debug)]
pub(crate) struct PlainLink {
    stream: TcpStream,
    reader: WireReader,
    /// Frames written by the poll side (pongs), sent before the next write.
    owed: Vec<u8>,
}

fn connect_err(url: &url::Url, detail: impl Into<String>) -> WsBotError {
    WsBotError::Connect {
        url: url.to_string(),
        detail: detail.into(),
    }
}

/// Connects and upgrades (not bounded here: the caller bounds the whole opening).
pub(crate) async fn connect(
    url: &url::Url,
    token: Option<&str>,
    limit: usize,
) -> Result<PlainLink, WsBotError> {
    let host = url
        .host_str()
        .ok_or_else(|| connect_err(url, "the URL has no host"))?;
    let port = url.port_or_known_default().unwrap_or(80);
    // An IPv6 literal keeps its brackets in `host_str`; the socket address wants them off.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let mut stream = TcpStream::connect((bare, port))
        .await
        .map_err(|e| connect_err(url, e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
    let request = upgrade_request(url, host, port, &key, token)?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| connect_err(url, e.to_string()))?;
    let leftover = read_response(&mut stream, url, &key).await?;
    Ok(PlainLink {
        stream,
        reader: WireReader::new(leftover, limit),
        owed: Vec::new(),
    })
}

/// The GET that asks for the upgrade, with the bearer token when there is one.
fn upgrade_request(
    url: &url::Url,
    host: &str,
    port: u16,
    key: &str,
    token: Option<&str>,
) -> Result<String, WsBotError> {
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(token) = token {
        // A token cannot break the request: header values may not hold control characters.
        if token.bytes().any(|b| b.is_ascii_control()) {
            return Err(WsBotError::Request {
                url: url.to_string(),
                detail: "the token is not a valid HTTP header value".into(),
            });
        }
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    request.push_str("\r\n");
    Ok(request)
}

/// Reads the upgrade response and checks it; returns the bytes read past its end.
async fn read_response(
    stream: &mut TcpStream,
    url: &url::Url,
    key: &str,
) -> Result<Vec<u8>, WsBotError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| connect_err(url, e.to_string()))?;
        if n == 0 {
            return Err(connect_err(url, "the connection closed during the upgrade"));
        }
        buf.extend_from_slice(&chunk[..n]);
        // As many headers as tungstenite takes (a proxy on the way may add some).
        let mut headers = [httparse::EMPTY_HEADER; 124];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(end)) => {
                check_response(&response, url, key)?;
                return Ok(buf.split_off(end));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE => {}
            Ok(httparse::Status::Partial) => {
                return Err(connect_err(url, "the upgrade response is too large"));
            }
            Err(e) => return Err(connect_err(url, format!("invalid upgrade response: {e}"))),
        }
    }
}

/// A `101 Switching Protocols` with the accept key that answers ours.
fn check_response(
    response: &httparse::Response<'_, '_>,
    url: &url::Url,
    key: &str,
) -> Result<(), WsBotError> {
    let code = response.code.unwrap_or(0);
    if code != 101 {
        let reason = response.reason.unwrap_or("");
        return Err(connect_err(url, format!("HTTP error: {code} {reason}")));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let expected = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    if header("sec-websocket-accept") != Some(expected.as_bytes()) {
        return Err(connect_err(
            url,
            "the upgrade response has a wrong accept key",
        ));
    }
    let upgrade = header("upgrade").and_then(|v| std::str::from_utf8(v).ok());
    if !upgrade.is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(connect_err(
            url,
            "the upgrade response is not a WebSocket upgrade",
        ));
    }
    Ok(())
}

impl PlainLink {
    /// Writes one text message (and any pong owed first).
    pub async fn send_text(&mut self, text: &str) -> std::io::Result<()> {
        let mut out = std::mem::take(&mut self.owed);
        wire::encode_text(text, &mut out);
        self.stream.write_all(&out).await
    }

    /// Polls for the next message; `None` when the bot closed the connection. Pings are
    /// answered here (a pong written at once, or before the next message if the socket is
    /// full).
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<WireMsg, String>>> {
        loop {
            match self.reader.next() {
                Ok(Some(WireMsg::Ping(payload))) => {
                    wire::encode_pong(&payload, &mut self.owed);
                    self.try_flush_owed();
                    return Poll::Ready(Some(Ok(WireMsg::Ping(payload))));
                }
                Ok(Some(msg)) => return Poll::Ready(Some(Ok(msg))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Some(Err(wire_error(e)))),
            }
            if let Err(e) = ready!(self.stream.poll_read_ready(cx)) {
                return Poll::Ready(Some(Err(e.to_string())));
            }
            match self.stream.try_read(self.reader.spare()) {
                Ok(0) => {
                    self.reader.filled(0);
                    return Poll::Ready(None);
                }
                Ok(n) => self.reader.filled(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.reader.filled(0),
                Err(e) => {
                    self.reader.filled(0);
                    return Poll::Ready(Some(Err(e.to_string())));
                }
            }
        }
    }

    /// Writes what of the owed pongs the socket takes now.
    fn try_flush_owed(&mut self) {
        while !self.owed.is_empty() {
            match self.stream.try_write(&self.owed) {
                Ok(n) => {
                    self.owed.drain(..n);
                }
                Err(_) => return,
            }
        }
    }

    /// Sends a close frame and shuts the socket down for writing.
    pub async fn close(&mut self) {
        let mut out = std::mem::take(&mut self.owed);
        wire::encode_close(&mut out);
        let _ = self.stream.write_all(&out).await;
        let _ = self.stream.shutdown().await;
    }

    /// A link again over a socket the relay thread handed back (`served.rs`), with the bytes
    /// it had read and those it still owed the bot.
    pub fn from_parts(
        sock: std::net::TcpStream,
        reader: WireReader,
        owed: Vec<u8>,
    ) -> std::io::Result<PlainLink> {
        sock.set_nonblocking(true)?;
        Ok(PlainLink {
            stream: TcpStream::from_std(sock)?,
            reader,
            owed,
        })
    }

    /// The socket (blocking mode off), the reader holding every byte read but not yet taken
    /// as a message, and the bytes still owed the bot (a pong the socket took only part of:
    /// they must go first, or the next frame would land inside it).
    pub fn into_parts(self) -> std::io::Result<(std::net::TcpStream, WireReader, Vec<u8>)> {
        let stream = self.stream.into_std()?;
        stream.set_nonblocking(true)?;
        Ok((stream, self.reader, self.owed))
    }
}

fn wire_error(e: WireError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_carries_path_query_host_and_token() {
        let url = url::Url::parse("ws://bot.example:8080/v1/ws?a=b").expect("url");
        let req = upgrade_request(&url, "bot.example", 8080, "k==", Some("t0k")).expect("ok");
        assert!(req.starts_with("GET /v1/ws?a=b HTTP/1.1\r\nHost: bot.example:8080\r\n"));
        assert!(req.contains("Sec-WebSocket-Key: k==\r\n"));
        assert!(req.contains("Authorization: Bearer t0k\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
        let bad = upgrade_request(&url, "bot.example", 8080, "k", Some("a\r\nX: y"));
        assert!(matches!(bad, Err(WsBotError::Request { .. })));
    }

    /// A one-connection server on loopback that reads the upgrade request and answers with
    /// what `reply` makes of its key (then keeps the socket open a moment).
    async fn upgrade_against(
        reply: impl FnOnce(&str) -> Vec<u8> + Send + 'static,
    ) -> Result<PlainLink, WsBotError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = url::Url::parse(&format!(
            "ws://{}/bot",
            listener.local_addr().expect("addr")
        ))
        .expect("url");
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let mut req = Vec::new();
            let mut chunk = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = sock.read(&mut chunk).await.expect("read");
                assert!(n > 0, "the client closed before its request ended");
                req.extend_from_slice(&chunk[..n]);
            }
            let req = String::from_utf8(req).expect("utf-8");
            let key = req
                .lines()
                .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
                .expect("a key")
                .to_string();
            let _ = sock.write_all(&reply(&key)).await;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        });
        let link = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            connect(&url, None, 1 << 20),
        )
        .await
        .expect("the upgrade is answered");
        server.abort();
        link
    }

    fn accept(key: &str) -> String {
        tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
    }

    fn detail(r: Result<PlainLink, WsBotError>) -> String {
        match r {
            Err(WsBotError::Connect { detail, .. }) => detail,
            other => panic!("expected a connect error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_upgrade_responses_are_refused_with_a_reason() {
        // 1. Not a 101: the status is the reason.
        let r =
            upgrade_against(|_| b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n".to_vec())
                .await;
        assert_eq!(detail(r), "HTTP error: 401 Unauthorized");
        // 2. A 101 whose accept key does not answer ours.
        let r = upgrade_against(|_| {
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: d3Jvbmc=\r\n\r\n"
                .to_vec()
        })
        .await;
        assert!(detail(r).contains("wrong accept key"));
        // 3. The right key but no `Upgrade: websocket`.
        let r = upgrade_against(|key| {
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {}\r\n\r\n",
                accept(key)
            )
            .into_bytes()
        })
        .await;
        assert!(detail(r).contains("not a WebSocket upgrade"));
        // 4. Not HTTP at all.
        let r = upgrade_against(|_| b"SIP/2.0 200 OK\r\n\r\n".to_vec()).await;
        assert!(detail(r).starts_with("invalid upgrade response"));
        // 5. Headers without end, past the bound.
        let r = upgrade_against(|_| {
            let mut v = b"HTTP/1.1 101 Switching Protocols\r\n".to_vec();
            v.extend(std::iter::repeat_n(b'x', MAX_RESPONSE + 10));
            v
        })
        .await;
        assert!(
            detail(r).contains("too large"),
            "a never-ending header is refused"
        );
        // 6. The server closes mid-response.
        let r = upgrade_against(|_| b"HTTP/1.1 101 Switch".to_vec()).await;
        let d = detail(r);
        assert!(d.contains("closed during the upgrade"), "{d}");
    }

    #[tokio::test]
    async fn bytes_after_the_upgrade_are_the_first_message() {
        // 1. The server answers the upgrade and sends a text frame in the same write.
        let link = upgrade_against(|key| {
            let mut v = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                accept(key)
            )
            .into_bytes();
            // An unmasked server frame: FIN + text, 5 bytes.
            v.extend_from_slice(&[0x81, 5]);
            v.extend_from_slice(b"hello");
            v
        })
        .await;
        let mut link = link.expect("the upgrade succeeds");
        // 2. The frame read with the response is the first message, not lost.
        let msg = std::future::poll_fn(|cx| link.poll_next(cx)).await;
        match msg {
            Some(Ok(WireMsg::Text(t))) => assert_eq!(t, "hello"),
            other => panic!("expected the text frame, got {other:?}"),
        }
    }
}
