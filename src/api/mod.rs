//! The HTTPS API (hyper 1 + rustls; HTTP/1.1 and HTTP/2): OAuth tokens,
//! dialout, call records, hang-up, status, health and metrics.

pub mod auth;
pub mod brake;
pub mod dialout;
pub mod error;
mod handlers;
pub mod openapi;
mod recognition;
mod router;
pub mod tls;

use crate::call::CallControl;
use crate::call::limiter::RateLimiter;
use crate::config::ConfigStore;
use crate::metrics::Metrics;
use crate::store::Store;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything a request handler can reach.
pub struct ApiState {
    pub config: Arc<ConfigStore>,
    pub store: Store,
    pub limiter: Arc<dyn RateLimiter>,
    pub calls: Arc<dyn CallControl>,
    /// Dialouts waiting for their bot's limits (`outbound.on_limit`).
    pub queue: Arc<crate::call::queue::DialQueue>,
    pub metrics: Arc<Metrics>,
    pub auth: auth::Authenticator,
    pub started: std::time::SystemTime,
    /// Extra lines for `GET /api/v1/status` (e.g. recognition availability).
    pub status_extra: Box<dyn Fn() -> serde_json::Value + Send + Sync>,
    /// Whether one more call fits (RTP ports, descriptors); checked before a
    /// dialout is accepted.
    pub capacity: Box<dyn Fn() -> Result<(), crate::limits::Shortage> + Send + Sync>,
    /// Cluster mode: the live-call registry that routes a hang-up to the call's owner.
    pub owners: Option<Arc<crate::cluster::Owners>>,
}

/// Errors starting the API listener.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen for HTTP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("server.http has neither tls nor plain_http: true")]
    NoTls,
}

/// A running API listener.
pub struct ApiServer {
    pub local_addr: SocketAddr,
    pub tls: bool,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds the listener from the current configuration and serves until
/// `shutdown` is cancelled.
pub async fn serve(
    state: Arc<ApiState>,
    shutdown: CancellationToken,
) -> Result<ApiServer, ServeError> {
    let snap = state.config.current();
    let http = &snap.config.server.http;
    let acceptor = match (&http.tls, http.plain_http) {
        (_, true) => None,
        (Some(t), false) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(
            &t.cert, &t.key,
        )?)),
        (None, false) => return Err(ServeError::NoTls),
    };
    let listener = TcpListener::bind(http.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: http.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: http.listen,
        source,
    })?;
    let tls = acceptor.is_some();
    let limits = ConnLimits {
        header_timeout: Duration::from_secs(http.header_timeout_sec.into()),
        slots: Arc::new(tokio::sync::Semaphore::new(http.max_connections as usize)),
    };
    tracing::info!(%local_addr, tls, max_connections = http.max_connections, "HTTP API listening");
    let task = tokio::spawn(accept_loop(listener, acceptor, state, limits, shutdown));
    Ok(ApiServer {
        local_addr,
        tls,
        task,
    })
}

/// Bounds on connections (read at start; a reload does not change them).
struct ConnLimits {
    /// Time to send a request's headers (HTTP/1) and to finish the TLS handshake.
    header_timeout: Duration,
    /// One permit per connection served (`server.http.max_connections`).
    slots: Arc<tokio::sync::Semaphore>,
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<ApiState>,
    limits: ConnLimits,
    shutdown: CancellationToken,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Over the cap: close at once rather than leave the client hanging
        // in the backlog (and keep descriptors for calls).
        let Ok(permit) = limits.slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "HTTP connection refused: server.http.max_connections reached");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let header_timeout = limits.header_timeout;
        let state = state.clone();
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(router::handle(state, peer, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Slow or idle clients (slowloris): HTTP/1 headers must arrive in time;
            // HTTP/2 connections are pinged and closed when the peer is gone.
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)))
                .keep_alive_timeout(Duration::from_secs(10))
                .max_concurrent_streams(64);
            let result = match acceptor {
                Some(acc) => {
                    let tls = match tokio::time::timeout(header_timeout, acc.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), svc);
                    tokio::select! { r = conn => r, _ = shutdown.cancelled() => Ok(()) }
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(tcp), svc);
                    tokio::select! { r = conn => r, _ = shutdown.cancelled() => Ok(()) }
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}
