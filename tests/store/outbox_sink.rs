//! A dialer's notify URL (and a minimal Bot API) for the outbox tests, on 127.0.0.1:0: it
//! records every request with its path, `X-Dialgate-Event-Id`, signature and authorization,
//! and either accepts, fails one status with 500, or accepts the connection and never answers
//! (a hanging URL). A Bot API conversation opening (a body with `capabilities`) is answered
//! with `/c/<conversation>/activities` and `/c/<conversation>/disconnect`. Stops when dropped.
#![allow(dead_code)]

use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// How the sink answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 to everything.
    Accept,
    /// 500 to notifications with this `status`, 200 to the others.
    Fail500On(String),
    /// Accepts TCP connections and never reads nor answers.
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Got {
    pub path: String,
    pub authorization: Option<String>,
    pub event_id: String,
    pub signature: Option<String>,
    pub raw: Vec<u8>,
    pub body: Value,
    /// The status the sink answered.
    pub status: u16,
}

impl Got {
    /// Whether the signature header verifies against the raw body with `secret`.
    pub fn signed_with(&self, secret: &str) -> bool {
        self.signature.as_deref().is_some_and(|s| {
            dialgate::webhook::sign::verify_untimed(secret.as_bytes(), s, &self.raw)
        })
    }
}

#[derive(Default)]
struct State {
    behaviour: Mutex<Option<Behaviour>>,
    got: Mutex<Vec<Got>>,
    connections: AtomicUsize,
    held: Mutex<Vec<tokio::net::TcpStream>>,
    /// GETs (dialgate's bot probe) answered.
    probes: AtomicUsize,
}

/// The sink; its task ends when it is dropped.
pub struct Sink {
    addr: std::net::SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub async fn start(behaviour: Behaviour) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        *state.behaviour.lock().unwrap() = Some(behaviour);
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                if matches!(*st.behaviour.lock().unwrap(), Some(Behaviour::Hang)) {
                    st.held.lock().unwrap().push(stream);
                    continue;
                }
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let st = st.clone();
                        async move { Ok::<_, std::convert::Infallible>(handle(&st, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Sink { addr, state, task }
    }

    /// Changes how the following requests are answered.
    pub fn set(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().unwrap() = Some(behaviour);
    }

    /// The notify URL.
    pub fn url(&self) -> String {
        format!("http://{}/notify", self.addr)
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Got> {
        self.state.got.lock().unwrap().clone()
    }

    /// Bot probes (GET) answered so far.
    pub fn probes(&self) -> usize {
        self.state.probes.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits (bounded) for `n` requests.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Got> {
        self.wait_until(timeout, |g| g.len() >= n, &format!("{n} requests"))
            .await
    }

    /// Waits (bounded) for `n` accepted (2xx) requests; returns those.
    pub async fn wait_for_accepted(&self, n: usize, timeout: Duration) -> Vec<Got> {
        let ok = |g: &[Got]| g.iter().filter(|r| r.status == 200).count() >= n;
        self.wait_until(timeout, ok, &format!("{n} accepted requests"))
            .await
            .into_iter()
            .filter(|r| r.status == 200)
            .collect()
    }

    async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Got]) -> bool,
        what: &str,
    ) -> Vec<Got> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let got = self.requests();
            if done(&got) {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; got {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn handle(st: &State, req: Request<Incoming>) -> Response<Full<bytes::Bytes>> {
    // dialgate's bot probe (a GET of the bot's URL at start and reload) is not a delivery:
    // answered as a healthy bot, counted, not recorded with the deliveries.
    if req.method() == hyper::Method::GET {
        st.probes.fetch_add(1, Ordering::SeqCst);
        return Response::new(Full::new(bytes::Bytes::from_static(b"{}")));
    }
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = req.uri().path().to_owned();
    let authorization = header("authorization");
    let event_id = header("x-dialgate-event-id").unwrap_or_default();
    let signature = header("x-dialgate-signature");
    let raw = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let behaviour = st.behaviour.lock().unwrap().clone();
    let status = match behaviour {
        Some(Behaviour::Fail500On(s)) if body["status"] == s.as_str() => 500,
        _ => 200,
    };
    let reply = if body.get("capabilities").is_some() {
        let c = body["conversation"].as_str().unwrap_or("");
        serde_json::json!({"activitiesURL": format!("/c/{c}/activities"),
            "disconnectURL": format!("/c/{c}/disconnect"), "expiresSeconds": 600})
    } else {
        serde_json::json!({})
    };
    st.got.lock().unwrap().push(Got {
        path,
        authorization,
        event_id,
        signature,
        raw,
        body,
        status,
    });
    let mut resp = Response::new(Full::new(bytes::Bytes::from(reply.to_string())));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    resp
}

/// A simulated carrier answering every INVITE 486 Busy Here after ringing for `after`.
pub async fn busy_carrier(after: Duration) -> dialgate::sim::SimCallee {
    use dialgate::sim::{Answer, SimCallee, SimCalleeOptions};
    let answer = Answer::Reject { code: 486, after };
    SimCallee::start(SimCalleeOptions::callee().with_answer(answer))
        .await
        .expect("simulated carrier starts")
}

/// Polls the store (bounded by `wait`) until every outbox item of the calls `ids` has left
/// `pending`.
pub async fn until_settled(store: &dialgate::store::Store, ids: &[String], wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut pending = 0;
        for id in ids {
            let items = store.deliveries(id).await.unwrap();
            pending += items.iter().filter(|(i, _)| i.state == "pending").count();
        }
        if pending == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pending} items still pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
