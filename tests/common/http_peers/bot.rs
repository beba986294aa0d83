//! The Bot API bot (HTTP mode): conversations, activities, refresh, disconnect.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::bot_script::*;
use super::*;

#[derive(Debug)]
struct BotState {
    cfg: Mutex<BotConfig>,
    /// Indices of `once` replies already used.
    used: Mutex<Vec<usize>>,
    pushed: Mutex<Vec<Value>>,
    conversations: Mutex<Vec<String>>,
    journal: Journal,
    release: watch::Sender<u64>,
    base: String,
    next_id: AtomicU64,
}

/// A bot behind the Bot API in HTTP mode: `POST /bot` opens a conversation, then
/// `/conversation/<id>/activities|refresh|disconnect`.
#[derive(Debug)]
pub struct BotApiServer {
    server: HttpServer,
    state: Arc<BotState>,
}

impl BotApiServer {
    /// Starts the bot on 127.0.0.1:0.
    pub async fn start(cfg: BotConfig) -> std::io::Result<Self> {
        // The port is known only after binding, and the absolute URLs need it: bind first,
        // then fill the state through a slot the handler reads.
        let slot: Arc<Mutex<Option<Arc<BotState>>>> = Arc::new(Mutex::new(None));
        let s2 = slot.clone();
        let handler: Handler = Arc::new(move |req| {
            let st = s2.lock().unwrap_or_else(|e| e.into_inner()).clone();
            Box::pin(async move {
                match st {
                    Some(st) => bot_handle(st, req).await,
                    None => json_response(503, &json!({"error": "starting"})),
                }
            })
        });
        let server = HttpServer::start(handler).await?;
        let state = Arc::new(BotState {
            cfg: Mutex::new(cfg),
            used: Mutex::new(Vec::new()),
            pushed: Mutex::new(Vec::new()),
            conversations: Mutex::new(Vec::new()),
            journal: Journal::new(),
            release: watch::channel(0).0,
            base: format!("http://{}", server.addr),
            next_id: AtomicU64::new(1),
        });
        *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(state.clone());
        Ok(BotApiServer { server, state })
    }

    /// The bot URL (dialgate's `events_url`): `http://127.0.0.1:<port>/bot`.
    pub fn url(&self) -> String {
        format!("{}/bot", self.state.base)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base(&self) -> &str {
        &self.state.base
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.journal.all()
    }

    /// Conversation ids opened so far.
    pub fn conversations(&self) -> Vec<String> {
        self.state
            .conversations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every activity received (conversation id, activity), in order.
    pub fn activities(&self) -> Vec<(String, Value)> {
        activities_in(&self.requests())
    }

    /// The names (events) or types (others) of the activities received, in order:
    /// e.g. `["start", "machineDetection", "message"]`.
    pub fn activity_names(&self) -> Vec<String> {
        self.activities()
            .iter()
            .map(|(_, a)| activity_label(a))
            .collect()
    }

    /// Replaces the scripted replies (e.g. between calls).
    pub fn set_replies(&self, replies: Vec<BotReply>) {
        self.state
            .cfg
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replies = replies;
        self.state
            .used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Queues activities for the next response to an activities POST (of any conversation):
    /// in HTTP mode a bot can only speak when the gateway posts to it.
    pub fn push_activities(&self, activities: Vec<Value>) {
        self.state
            .pushed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(activities);
    }

    /// Releases every response currently held by `ReplyDelay::UntilReleased` (wait for the
    /// request first: a release before the request arrives does not carry over).
    pub fn release_held(&self) {
        self.state.release.send_modify(|g| *g += 1);
    }

    /// Waits for the first request (from the start) satisfying `pred`.
    pub async fn wait_for_request(
        &self,
        what: &str,
        pred: impl Fn(&RecordedRequest) -> bool,
        timeout: Duration,
    ) -> Result<RecordedRequest, WaitTimeout> {
        self.state
            .journal
            .wait(what, timeout, |reqs| reqs.iter().find(|r| pred(r)).cloned())
            .await
    }

    /// Waits until an activity labelled `label` (event name, or type for non-events such as
    /// `message`) has arrived; returns (conversation, activity).
    pub async fn wait_for_activity(
        &self,
        label: &str,
        timeout: Duration,
    ) -> Result<(String, Value), WaitTimeout> {
        self.state
            .journal
            .wait(&format!("activity {label:?}"), timeout, |reqs| {
                activities_in(reqs)
                    .into_iter()
                    .find(|(_, a)| activity_label(a) == label)
            })
            .await
    }

    /// Waits for a request whose path ends with `suffix` (`/disconnect`, `/refresh`, `/bot`).
    pub async fn wait_for_path(
        &self,
        suffix: &str,
        timeout: Duration,
    ) -> Result<RecordedRequest, WaitTimeout> {
        self.wait_for_request(
            &format!("path *{suffix}"),
            |r| r.path.ends_with(suffix),
            timeout,
        )
        .await
    }

    /// Waits until `n` requests have arrived; returns them all.
    pub async fn wait_for_count(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, WaitTimeout> {
        self.state.journal.wait_count(n, "requests", timeout).await
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}

fn activity_label(a: &Value) -> String {
    match a["type"].as_str() {
        Some("event") | None => a["name"].as_str().unwrap_or("").to_string(),
        Some(t) => t.to_string(),
    }
}

fn activities_in(reqs: &[RecordedRequest]) -> Vec<(String, Value)> {
    reqs.iter()
        .filter(|r| r.path.ends_with("/activities"))
        .flat_map(|r| {
            let conv = r.json["conversation"].as_str().unwrap_or("").to_string();
            r.json["activities"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |a| (conv.clone(), a))
        })
        .collect()
}

/// Splits `…/conversation/<id>/<action>` into (id, action).
fn conversation_route(path: &str) -> Option<(String, String)> {
    let path = path.split('?').next().unwrap_or(path);
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let i = segs.iter().position(|s| *s == "conversation")?;
    match (segs.get(i + 1), segs.get(i + 2), segs.len() == i + 3) {
        (Some(id), Some(action), true) => Some((id.to_string(), action.to_string())),
        _ => None,
    }
}

async fn bot_handle(st: Arc<BotState>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (method, path, headers, body) = read_request(req).await;
    let mut rec = RecordedRequest {
        method,
        path,
        headers,
        body: String::new(),
        json: Value::Null,
        status: 0,
    };
    let (status, reply, delay) = match body {
        Err(()) => (413, json!({"error": "body too large"}), ReplyDelay::Now),
        Ok(b) => {
            rec.body = String::from_utf8_lossy(&b).into_owned();
            rec.json = serde_json::from_slice(&b).unwrap_or(Value::Null);
            bot_decide(&st, &rec)
        }
    };
    rec.status = status;
    // Recorded before any delay, so tests see the request while its answer is held.
    st.journal.push(rec);
    match delay {
        ReplyDelay::Now => {}
        ReplyDelay::Ms(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        ReplyDelay::UntilReleased => {
            let max = st.cfg.lock().unwrap_or_else(|e| e.into_inner()).max_hold;
            let mut rx = st.release.subscribe();
            let gen0 = *rx.borrow_and_update();
            let _ = tokio::time::timeout(max, rx.wait_for(|g| *g > gen0)).await;
        }
    }
    json_response(status, &reply)
}

/// Decides the status, the JSON answer and its delay for one request.
fn bot_decide(st: &BotState, rec: &RecordedRequest) -> (u16, Value, ReplyDelay) {
    let cfg = st.cfg.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if rec.method != "POST" {
        return (405, json!({"error": "POST only"}), ReplyDelay::Now);
    }
    if let Some(tok) = &cfg.expected_token
        && rec.header("authorization") != Some(format!("Bearer {tok}").as_str())
    {
        return (401, json!({"error": "bad token"}), ReplyDelay::Now);
    }
    let Some((cid, action)) = conversation_route(&rec.path) else {
        // Anything else is the bot URL: open a conversation.
        if cfg.create_status != 200 {
            return (
                cfg.create_status,
                json!({"error": "scripted failure"}),
                ReplyDelay::Now,
            );
        }
        let cid = match rec.json["conversation"].as_str() {
            Some(c) if !c.is_empty() && !c.contains('/') => c.to_string(),
            _ => format!("conv-{}", st.next_id.fetch_add(1, Ordering::Relaxed)),
        };
        st.conversations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(cid.clone());
        let url = |action: &str| match cfg.url_style {
            UrlStyle::AbsolutePath => format!("/conversation/{cid}/{action}"),
            UrlStyle::Relative => format!("conversation/{cid}/{action}"),
            UrlStyle::Absolute => format!("{}/conversation/{cid}/{action}", st.base),
        };
        let answer = json!({
            "activitiesURL": url("activities"),
            "refreshURL": url("refresh"),
            "disconnectURL": url("disconnect"),
            "expiresSeconds": cfg.expires_seconds,
        });
        return (200, answer, ReplyDelay::Now);
    };
    if !st
        .conversations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&cid)
    {
        return (
            404,
            json!({"error": "unknown conversation"}),
            ReplyDelay::Now,
        );
    }
    match action.as_str() {
        "activities" => {
            let incoming = rec.json["activities"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut out = Vec::new();
            let mut delay = ReplyDelay::Now;
            let mut used = st.used.lock().unwrap_or_else(|e| e.into_inner());
            for a in &incoming {
                let hit = cfg
                    .replies
                    .iter()
                    .enumerate()
                    .find(|(i, r)| r.matches(a) && !(r.once && used.contains(i)));
                if let Some((i, r)) = hit {
                    if r.once {
                        used.push(i);
                    }
                    out.extend(r.activities.iter().cloned());
                    delay = longer(delay, r.delay.clone());
                }
            }
            drop(used);
            out.extend(
                st.pushed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .drain(..),
            );
            for a in &mut out {
                if a.get("id").is_none() {
                    a["id"] = json!(format!(
                        "bot-{}",
                        st.next_id.fetch_add(1, Ordering::Relaxed)
                    ));
                }
                if a.get("timestamp").is_none() {
                    a["timestamp"] = json!(now_iso());
                }
            }
            (200, json!({"conversation": cid, "activities": out}), delay)
        }
        "refresh" => (
            200,
            json!({"expiresSeconds": cfg.expires_seconds}),
            ReplyDelay::Now,
        ),
        "disconnect" => (200, json!({}), ReplyDelay::Now),
        _ => (404, json!({"error": "unknown action"}), ReplyDelay::Now),
    }
}

fn longer(a: ReplyDelay, b: ReplyDelay) -> ReplyDelay {
    match (a, b) {
        (ReplyDelay::UntilReleased, _) | (_, ReplyDelay::UntilReleased) => {
            ReplyDelay::UntilReleased
        }
        (ReplyDelay::Ms(x), ReplyDelay::Ms(y)) => ReplyDelay::Ms(x.max(y)),
        (ReplyDelay::Ms(x), ReplyDelay::Now) | (ReplyDelay::Now, ReplyDelay::Ms(x)) => {
            ReplyDelay::Ms(x)
        }
        (ReplyDelay::Now, ReplyDelay::Now) => ReplyDelay::Now,
    }
}
