//! `SimBotApi`: the bot's AudioCodes Bot API endpoint in **HTTP mode** (DESIGN §2).
//!
//! - `POST /bot` `{"conversation","bot","capabilities"}` opens a conversation and answers
//!   `{"activitiesURL":"conversation/<id>/activities","refreshURL":"conversation/<id>/refresh",
//!   "disconnectURL":"conversation/<id>/disconnect","expiresSeconds":120}` (relative URLs);
//! - `POST …/conversation/<id>/activities` records the activities, answers `{"activities":[…]}`;
//! - `POST …/refresh` → 200 `{"expiresSeconds":…}`; `POST …/disconnect` → 200 (reason recorded).
//!
//! Relative URLs resolve against the bot URL `http://127.0.0.1:<port>/bot` to
//! `/conversation/<id>/…`; a client that appends them to the bot URL instead
//! (`/bot/conversation/<id>/…`) is served too.
//!
//! **Hang-up in HTTP mode.** The bot cannot push anything: it only answers dialgate's POSTs. So
//! [`BotApiOptions::hangup_after_start`] makes the *first activities POST received at least that
//! long after the `start` event* (a recognised `message`, `machineDetection`, …) answer with
//! `{"type":"event","name":"hangup"}`. With no later activities POST, no hang-up happens.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::error::SimError;
use super::http::{HttpRequest, serve};

/// Options of [`SimBotApi`].
#[derive(Debug, Clone)]
pub struct BotApiOptions {
    /// Listen address (loopback only; port 0 picks one).
    pub bind: SocketAddr,
    /// If set, every request must carry `Authorization: Bearer <token>` (else 401).
    pub token: Option<String>,
    /// Answer the first activities POST received this long after `start` with a hangup event.
    pub hangup_after_start: Option<Duration>,
    /// Activities returned in the answer to the POST that carries the `start` event.
    pub on_start: Vec<Value>,
    /// Activities returned in the answer to the first POST that carries a `message` (the
    /// person's first recognised words): how a text bot answers a greeting.
    pub on_message: Vec<Value>,
    /// `expiresSeconds` in the create and refresh answers.
    pub expires_seconds: u64,
}

impl Default for BotApiOptions {
    fn default() -> Self {
        BotApiOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            hangup_after_start: None,
            on_start: Vec::new(),
            on_message: Vec::new(),
            expires_seconds: 120,
        }
    }
}

/// One request the sim received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// When it arrived.
    pub at: Instant,
    /// URL path.
    pub path: String,
    /// `Authorization` header, verbatim.
    pub auth: Option<String>,
    /// JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
    /// Status the sim answered.
    pub status: u16,
}

#[derive(Default)]
struct Conversation {
    started: Option<Instant>,
    hung_up: bool,
    answered_message: bool,
}

struct State {
    opts: BotApiOptions,
    requests: Mutex<Vec<RecordedRequest>>,
    conversations: Mutex<HashMap<String, Conversation>>,
    changed: watch::Sender<u64>,
    next_id: std::sync::atomic::AtomicU64,
}

/// The simulated Bot API server. Dropping it stops it.
pub struct SimBotApi {
    state: Arc<State>,
    local: SocketAddr,
    cancel: CancellationToken,
}

impl SimBotApi {
    /// Bind and serve.
    pub async fn start(opts: BotApiOptions) -> Result<SimBotApi, SimError> {
        let cancel = CancellationToken::new();
        let (changed, _) = watch::channel(0);
        let state = Arc::new(State {
            opts: opts.clone(),
            requests: Mutex::new(Vec::new()),
            conversations: Mutex::new(HashMap::new()),
            changed,
            next_id: 1.into(),
        });
        let s = state.clone();
        let local = serve(opts.bind, cancel.clone(), move |req| {
            let s = s.clone();
            async move { s.handle(req) }
        })
        .await?;
        Ok(SimBotApi {
            state,
            local,
            cancel,
        })
    }

    /// The bot URL (`events_url`): `http://127.0.0.1:<port>/bot`.
    pub fn events_url(&self) -> String {
        format!("http://{}/bot", self.local)
    }

    /// Bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Every activity received (all conversations), in order.
    pub fn activities(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/activities") && r.status == 200)
            .filter_map(|r| r.body.get("activities").and_then(Value::as_array).cloned())
            .flatten()
            .collect()
    }

    /// Wait (at most `timeout`) for a request satisfying `pred`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&RecordedRequest) -> bool,
    ) -> Option<RecordedRequest> {
        let mut rx = self.state.changed.subscribe();
        let wait = async {
            loop {
                if let Some(r) = self.requests().into_iter().find(|r| pred(r)) {
                    return Some(r);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    /// Stop serving (open connections are closed).
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }
}

impl Drop for SimBotApi {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// `(conversation id, last segment)` of `…/conversation/<id>/<action>`.
fn conversation_path(path: &str) -> Option<(&str, &str)> {
    let rest = &path[path.find("conversation/")? + "conversation/".len()..];
    let (id, action) = rest.split_once('/')?;
    (!id.is_empty()).then_some((id, action))
}

impl State {
    fn handle(&self, req: HttpRequest) -> (u16, String) {
        let auth = req.header("authorization");
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let (status, answer) = self.route(&req, auth.as_deref(), &body);
        if let Ok(mut r) = self.requests.lock() {
            r.push(RecordedRequest {
                at: Instant::now(),
                path: req.path.clone(),
                auth,
                body,
                status,
            });
        }
        self.changed.send_modify(|n| *n += 1);
        (status, answer.to_string())
    }

    fn route(&self, req: &HttpRequest, auth: Option<&str>, body: &Value) -> (u16, Value) {
        if let Some(answer) = self.screen(req, auth, body) {
            return answer;
        }
        let path = req.path.trim_end_matches('/');
        if path == "/bot" {
            return self.open_conversation(body);
        }
        let Some((id, action)) = conversation_path(path) else {
            return (404, json!({"error": "unknown path"}));
        };
        let Ok(mut convs) = self.conversations.lock() else {
            return (500, json!({"error": "poisoned"}));
        };
        let Some(conv) = convs.get_mut(id) else {
            return (404, json!({"error": "unknown conversation"}));
        };
        match action {
            "activities" => (200, json!({ "activities": self.reply_to(conv, body) })),
            "refresh" => (200, json!({ "expiresSeconds": self.opts.expires_seconds })),
            "disconnect" => {
                convs.remove(id);
                (200, json!({}))
            }
            _ => (404, json!({"error": "unknown action"})),
        }
    }

    /// The answer to a request that is not a conversation's POST with a JSON body: a wrong
    /// token (401), the Bot API's validation GET, another method, a body that is not JSON.
    fn screen(&self, req: &HttpRequest, auth: Option<&str>, body: &Value) -> Option<(u16, Value)> {
        if let Some(token) = &self.opts.token
            && auth != Some(format!("Bearer {token}").as_str())
        {
            return Some((401, json!({"error": "unauthorized"})));
        }
        if req.method == hyper::Method::GET {
            // The Bot API's validation request: a bot that takes the token answers 200.
            return Some(if req.path.trim_end_matches('/') == "/bot" {
                (200, json!({"type": "ac-bot-api", "success": true}))
            } else {
                (404, json!({"error": "unknown path"}))
            });
        }
        if req.method != hyper::Method::POST {
            return Some((405, json!({"error": "POST only"})));
        }
        body.is_null()
            .then(|| (400, json!({"error": "body is not JSON"})))
    }

    /// `POST /bot`: a new conversation and its URLs.
    fn open_conversation(&self, body: &Value) -> (u16, Value) {
        let Some(id) = body.get("conversation").and_then(Value::as_str) else {
            return (400, json!({"error": "missing conversation"}));
        };
        if let Ok(mut c) = self.conversations.lock() {
            c.entry(id.to_string()).or_default();
        }
        (
            200,
            json!({
                "activitiesURL": format!("conversation/{id}/activities"),
                "refreshURL": format!("conversation/{id}/refresh"),
                "disconnectURL": format!("conversation/{id}/disconnect"),
                "expiresSeconds": self.opts.expires_seconds,
            }),
        )
    }

    /// The bot's activities in answer to dialgate's: the scripted replies to `start` and to
    /// the first message, then a hang-up once `hangup_after_start` has passed.
    fn reply_to(&self, conv: &mut Conversation, body: &Value) -> Vec<Value> {
        let acts = body
            .get("activities")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut reply = Vec::new();
        let has_start = acts.iter().any(|a| {
            a.get("type").and_then(Value::as_str) == Some("event")
                && a.get("name").and_then(Value::as_str) == Some("start")
        });
        let has_message = acts
            .iter()
            .any(|a| a.get("type").and_then(Value::as_str) == Some("message"));
        if has_message && !conv.answered_message {
            conv.answered_message = true;
            reply.extend(self.opts.on_message.iter().cloned());
        }
        let now = Instant::now();
        if has_start {
            conv.started.get_or_insert(now);
            reply.extend(self.opts.on_start.iter().cloned());
        } else if let (Some(delay), Some(started)) = (self.opts.hangup_after_start, conv.started)
            && !conv.hung_up
            && now.duration_since(started) >= delay
        {
            conv.hung_up = true;
            let n = self
                .next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            reply.push(json!({"id": format!("sim-bot-{n}"), "type": "event", "name": "hangup"}));
        }
        reply
    }
}
