//! HTTP peers on 127.0.0.1:0 (hyper 1, HTTP/1.1): a bot speaking the AudioCodes Bot API in HTTP
//! mode (DESIGN §2) and a dialer's notification sink. Both record every request in arrival
//! order, offer bounded async waits, and shut down when dropped.

mod bot;
mod bot_script;
mod notify;
mod signature;

// Re-exports: each test binary uses only some of them.
#[allow(unused_imports)]
pub use bot::BotApiServer;
#[allow(unused_imports)]
pub use bot_script::{BotConfig, BotReply, ReplyDelay, UrlStyle, activity};
#[allow(unused_imports)]
pub use notify::NotifySink;
#[allow(unused_imports)]
pub use signature::{sign, verify_signature};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Request bodies larger than this are answered 413 (and still recorded, without body).
const MAX_BODY: usize = 1 << 20;

/// One request as the peer received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method (`POST`, …).
    pub method: String,
    /// Path and query, e.g. `/conversation/abc/activities`.
    pub path: String,
    /// Headers in arrival order (names lower-case, as hyper gives them).
    pub headers: Vec<(String, String)>,
    /// The raw body (lossy UTF-8).
    pub body: String,
    /// The body parsed as JSON (`Value::Null` when it is not JSON).
    pub json: Value,
    /// The status the peer answered with.
    pub status: u16,
}

impl RecordedRequest {
    /// A header value by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A bounded wait that ran out.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {timeout:?} waiting for {what}; {count} requests so far:\n{summary}")]
pub struct WaitTimeout {
    pub what: String,
    pub timeout: Duration,
    pub count: usize,
    pub summary: String,
}

/// Requests seen so far plus a counter that wakes waiters.
#[derive(Debug)]
struct Journal {
    reqs: Mutex<Vec<RecordedRequest>>,
    count: watch::Sender<usize>,
}

impl Journal {
    fn new() -> Self {
        Journal {
            reqs: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        }
    }

    fn push(&self, r: RecordedRequest) {
        let mut reqs = self.reqs.lock().unwrap_or_else(|e| e.into_inner());
        reqs.push(r);
        let n = reqs.len();
        drop(reqs);
        self.count.send_replace(n);
    }

    fn all(&self) -> Vec<RecordedRequest> {
        self.reqs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn summary(&self) -> String {
        self.all()
            .iter()
            .map(|r| {
                format!(
                    "{} {} -> {} {}",
                    r.method,
                    r.path,
                    r.status,
                    r.body.chars().take(200).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until `n` requests (`what`, e.g. "requests") have arrived; returns them all.
    async fn wait_count(
        &self,
        n: usize,
        what: &str,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, WaitTimeout> {
        let what = format!("{n} {what}");
        self.wait(&what, timeout, |reqs| {
            (reqs.len() >= n).then(|| reqs.to_vec())
        })
        .await
    }

    /// Waits until `pred` holds for the journal (re-checked on every new request).
    async fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[RecordedRequest]) -> Option<T>,
    ) -> Result<T, WaitTimeout> {
        let mut rx = self.count.subscribe();
        let check = || pred(&self.reqs.lock().unwrap_or_else(|e| e.into_inner()));
        let res = tokio::time::timeout(timeout, async {
            loop {
                if let Some(v) = check() {
                    return v;
                }
                // The sender lives in self, so changed() cannot fail while we wait.
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await;
        res.map_err(|_| WaitTimeout {
            what: what.to_string(),
            timeout,
            count: self.all().len(),
            summary: self.summary(),
        })
    }
}

type Handler = Arc<
    dyn Fn(Request<Incoming>) -> Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send>>
        + Send
        + Sync,
>;

/// An HTTP/1.1 server on 127.0.0.1:0 whose accept loop (and every connection) ends on drop.
#[derive(Debug)]
struct HttpServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpServer {
    async fn start(handler: Handler) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Connections live in the JoinSet: aborting this task drops it, which aborts them.
            let mut conns = JoinSet::new();
            loop {
                let stream = match listener.accept().await {
                    Ok((s, _)) => s,
                    Err(_) => {
                        // e.g. out of descriptors: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let h = handler.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req| {
                        let h = h.clone();
                        async move { Ok::<_, Infallible>(h(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(HttpServer { addr, task })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads a request into (method, path, headers, body) with a size limit.
async fn read_request(
    req: Request<Incoming>,
) -> (String, String, Vec<(String, String)>, Result<Bytes, ()>) {
    let method = req.method().to_string();
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| ());
    (method, path, headers, body)
}

fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn now_iso() -> String {
    // Seconds precision is enough for a test bot; RFC 3339 without a date library.
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), H. Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
