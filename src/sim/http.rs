//! A tiny hyper 1 (HTTP/1.1) server shared by the Bot API and dialer sims: bounded bodies,
//! bounded reads, every task stopped by the cancellation token.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::error::{SimError, check_loopback};

/// Largest request body accepted (anything bigger gets 413).
const MAX_BODY: usize = 1 << 20;
/// A request body must arrive within this time (else 408).
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// A received request, body fully read.
pub(crate) struct HttpRequest {
    pub method: hyper::Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpRequest {
    /// A header as text (None if absent or not ASCII).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

fn response(status: u16, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Bind `bind` (loopback only) and serve `handler` (returns status and JSON text) until `cancel`.
pub(crate) async fn serve<H, F>(
    bind: SocketAddr,
    cancel: CancellationToken,
    handler: H,
) -> Result<SocketAddr, SimError>
where
    H: Fn(HttpRequest) -> F + Send + Sync + 'static,
    F: Future<Output = (u16, String)> + Send + 'static,
{
    check_loopback(bind)?;
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|source| SimError::Bind { addr: bind, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| SimError::Bind { addr: bind, source })?;
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = cancel.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(_) => {
                        // e.g. EMFILE: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let handler = handler.clone();
            let conn_cancel = cancel.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handle(req, handler.as_ref()).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    _ = conn_cancel.cancelled() => {}
                    _ = conn => {}
                }
            });
        }
    });
    Ok(local)
}

async fn handle<H, F>(req: Request<Incoming>, handler: &H) -> Response<Full<Bytes>>
where
    H: Fn(HttpRequest) -> F,
    F: Future<Output = (u16, String)>,
{
    let (parts, body) = req.into_parts();
    let body = match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect())
        .await
    {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => return response(413, r#"{"error":"body too large or unreadable"}"#.into()),
        Err(_) => return response(408, r#"{"error":"body timeout"}"#.into()),
    };
    let (status, text) = handler(HttpRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body,
    })
    .await;
    response(status, text)
}
