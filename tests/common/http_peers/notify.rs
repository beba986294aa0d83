//! The dialer's notification sink.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

#[derive(Debug)]
struct SinkState {
    journal: Journal,
    fail_first: AtomicUsize,
    seen: AtomicUsize,
    status: AtomicU16,
}

/// The dialer's `notifyUrl`: records every status notification (and every retried attempt).
#[derive(Debug)]
pub struct NotifySink {
    server: HttpServer,
    state: Arc<SinkState>,
}

impl NotifySink {
    /// Starts the sink on 127.0.0.1:0, answering 200 to everything.
    pub async fn start() -> std::io::Result<Self> {
        let state = Arc::new(SinkState {
            journal: Journal::new(),
            fail_first: AtomicUsize::new(0),
            seen: AtomicUsize::new(0),
            status: AtomicU16::new(200),
        });
        let st = state.clone();
        let handler: Handler = Arc::new(move |req| {
            let st = st.clone();
            Box::pin(async move {
                let (method, path, headers, body) = read_request(req).await;
                let n = st.seen.fetch_add(1, Ordering::SeqCst);
                let mut status = if n < st.fail_first.load(Ordering::SeqCst) {
                    500
                } else {
                    st.status.load(Ordering::SeqCst)
                };
                let (body, json) = match body {
                    Ok(b) => (
                        String::from_utf8_lossy(&b).into_owned(),
                        serde_json::from_slice(&b).unwrap_or(Value::Null),
                    ),
                    Err(()) => {
                        status = 413;
                        (String::new(), Value::Null)
                    }
                };
                st.journal.push(RecordedRequest {
                    method,
                    path,
                    headers,
                    body,
                    json,
                    status,
                });
                json_response(status, &json!({}))
            })
        });
        let server = HttpServer::start(handler).await?;
        Ok(NotifySink { server, state })
    }

    /// `http://127.0.0.1:<port>/notify`: the dialout request's `notifyUrl`.
    pub fn url(&self) -> String {
        format!("http://{}/notify", self.server.addr)
    }

    /// Answers 500 to the next `n` requests (counted from the sink's start), then `status`.
    pub fn fail_first(&self, n: usize) {
        self.state.fail_first.store(n, Ordering::SeqCst);
    }

    /// The status answered once the failures are used up (default 200).
    pub fn set_status(&self, status: u16) {
        self.state.status.store(status, Ordering::SeqCst);
    }

    /// Every request (delivery attempt) so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.journal.all()
    }

    /// The requests answered with 2xx: the notifications the dialer accepted.
    pub fn accepted(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Waits until `n` requests (attempts, including failed ones) have arrived.
    pub async fn wait_for_count(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, WaitTimeout> {
        self.state
            .journal
            .wait_count(n, "notifications", timeout)
            .await
    }

    /// Waits for the first notification with `"status": status` that was accepted (2xx).
    pub async fn wait_for_status(
        &self,
        status: &str,
        timeout: Duration,
    ) -> Result<RecordedRequest, WaitTimeout> {
        self.state
            .journal
            .wait(
                &format!("accepted {status:?} notification"),
                timeout,
                |reqs| {
                    reqs.iter()
                        .find(|r| {
                            r.json["status"].as_str() == Some(status)
                                && (200..300).contains(&r.status)
                        })
                        .cloned()
                },
            )
            .await
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}
