//! Opening one WebSocket to the bot: `ws://` or `wss://` (rustls), bearer token in the upgrade.

use super::config::WebSocketBot;
use super::error::WsBotError;
use super::types::WsBotOptions;
use std::sync::Arc;
use tokio::net::TcpStream;
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

/// One open socket to the bot.
pub(crate) type Link = WebSocketStream<MaybeTlsStream<TcpStream>>;

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
    // Hard limit far above the session's soft one: an oversized message is dropped by the
    // session (and survived); only an absurd one closes the socket.
    let hard = opts.max_message_bytes.saturating_mul(4);
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
        Ok(Ok((link, _response))) => Ok(link),
        Ok(Err(e)) => Err(WsBotError::Connect {
            url: url.to_string(),
            detail: e.to_string(),
        }),
        Err(_) => Err(WsBotError::Timeout {
            url: url.to_string(),
            stage: "connect",
            ms: opts.handshake_timeout.as_millis() as u64,
        }),
    }
}
