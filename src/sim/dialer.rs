//! `SimDialer`: receives dialgate's status notifications (`POST` any path), records them and
//! checks `X-Dialgate-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "t.body")>`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::error::SimError;
use super::http::{HttpRequest, serve};

/// The signature header name.
pub const SIGNATURE_HEADER: &str = "x-dialgate-signature";

/// Options of [`SimDialer`].
#[derive(Debug, Clone)]
pub struct DialerOptions {
    /// Listen address (loopback only; port 0 picks one).
    pub bind: SocketAddr,
    /// Webhook secret: when set, a missing or wrong signature is answered 401.
    pub secret: Option<String>,
    /// Answer the first N requests with 500 (to exercise dialgate's retries).
    pub fail_first: usize,
}

impl Default for DialerOptions {
    fn default() -> Self {
        DialerOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            secret: None,
            fail_first: 0,
        }
    }
}

/// One notification received.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// When it arrived.
    pub at: Instant,
    /// URL path.
    pub path: String,
    /// `X-Dialgate-Signature`, verbatim.
    pub signature: Option<String>,
    /// Whether the signature verified (None when no secret is configured).
    pub signature_valid: Option<bool>,
    /// Body as JSON (`Value::Null` if not JSON).
    pub body: Value,
    /// Status the sim answered.
    pub status: u16,
}

impl Notification {
    /// `status` field of the body (`answered`, `failed`, `completed`).
    pub fn call_status(&self) -> Option<&str> {
        self.body.get("status").and_then(Value::as_str)
    }
}

/// Value of the signature header for `body` at unix time `t`.
pub fn sign(secret: &str, t: u64, body: &[u8]) -> String {
    crate::webhook::sign::signature(secret.as_bytes(), t, body)
}

/// Check a signature header against `body` (constant-time compare; any `v1` may match).
pub fn verify_signature(secret: &str, header: &str, body: &[u8]) -> bool {
    crate::webhook::sign::verify_untimed(secret.as_bytes(), header, body)
}

struct State {
    opts: DialerOptions,
    seen: AtomicUsize,
    notifications: Mutex<Vec<Notification>>,
    changed: watch::Sender<u64>,
}

/// The simulated dialer. Dropping it stops it.
pub struct SimDialer {
    state: Arc<State>,
    local: SocketAddr,
    cancel: CancellationToken,
}

impl SimDialer {
    /// Bind and serve.
    pub async fn start(opts: DialerOptions) -> Result<SimDialer, SimError> {
        let cancel = CancellationToken::new();
        let (changed, _) = watch::channel(0);
        let state = Arc::new(State {
            opts: opts.clone(),
            seen: AtomicUsize::new(0),
            notifications: Mutex::new(Vec::new()),
            changed,
        });
        let s = state.clone();
        let local = serve(opts.bind, cancel.clone(), move |req| {
            let s = s.clone();
            async move { s.handle(req) }
        })
        .await?;
        Ok(SimDialer {
            state,
            local,
            cancel,
        })
    }

    /// A `notifyUrl` to hand to dialgate: `http://127.0.0.1:<port>/notify`.
    pub fn notify_url(&self) -> String {
        format!("http://{}/notify", self.local)
    }

    /// Bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Every request so far (including the ones answered 500/401), in order.
    pub fn notifications(&self) -> Vec<Notification> {
        self.state
            .notifications
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    /// Wait (at most `timeout`) for a notification satisfying `pred`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&Notification) -> bool,
    ) -> Option<Notification> {
        let mut rx = self.state.changed.subscribe();
        let wait = async {
            loop {
                if let Some(n) = self.notifications().into_iter().find(|n| pred(n)) {
                    return Some(n);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    /// Stop serving.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

impl Drop for SimDialer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl State {
    fn handle(&self, req: HttpRequest) -> (u16, String) {
        let signature = req.header(SIGNATURE_HEADER);
        let signature_valid = self.opts.secret.as_ref().map(|secret| {
            signature
                .as_deref()
                .is_some_and(|h| verify_signature(secret, h, &req.body))
        });
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        let status = if req.method != hyper::Method::POST {
            405
        } else if n < self.opts.fail_first {
            500
        } else if signature_valid == Some(false) {
            401
        } else {
            200
        };
        let body = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        if let Ok(mut v) = self.notifications.lock() {
            v.push(Notification {
                at: Instant::now(),
                path: req.path,
                signature,
                signature_valid,
                body,
                status,
            });
        }
        self.changed.send_modify(|n| *n += 1);
        let text = if status == 200 {
            "{}"
        } else {
            r#"{"error":"sim dialer refused"}"#
        };
        (status, text.to_string())
    }
}
