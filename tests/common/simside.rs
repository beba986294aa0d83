//! What a call-flow test reads back from dialgate and its simulated HTTP peers: the call record
//! through the API, the dialer's notifications and the Bot API requests, each wait bounded.
//! One implementation for the harnesses built on dialgate's simulated peers (`mediaflows`,
//! `sttflows`), which reach it through `Deref`, so a test writes `flow.wait_terminal(&id)`
//! whichever harness it uses.

use std::time::Duration;

use dialgate::sim::{SimBotApi, SimCallee, SimDialer, SimEvent, SimEventKind};
use hyper::StatusCode;
use serde_json::Value;

use super::api::{Answer, TestApp};
use super::simcall::{is_for, is_terminal, sip_trace};

/// dialgate, its dialer and its Bot API server(s), as a flow test observes them.
pub struct SimSide {
    pub app: TestApp,
    pub bot_api: SimBotApi,
    /// A second Bot API server (a second bot of the same flow), if any.
    pub control_api: Option<SimBotApi>,
    pub dialer: SimDialer,
    /// `Basic dialer:secret` (groups call_control and call_data_manager).
    pub auth: String,
    /// The token every Bot API request must carry.
    pub bot_token: &'static str,
    /// Bound of every wait.
    pub wait: Duration,
    /// The API's certificate (DER), trusted by the test's client.
    pub cert_der: Vec<u8>,
}

impl SimSide {
    /// The side of a started `app` with its Bot API server(s) (`bots`: the bot's and perhaps
    /// a second one) and dialer; the test's client trusts `cert_der`. `harness` is the
    /// harness's dialer client secret (for user `dialer`), bot token and bound of every wait.
    pub fn new(
        app: TestApp,
        (bot_api, control_api): (SimBotApi, Option<SimBotApi>),
        dialer: SimDialer,
        cert_der: Vec<u8>,
        (dialer_secret, bot_token, wait): (&str, &'static str, Duration),
    ) -> SimSide {
        SimSide {
            app,
            bot_api,
            control_api,
            dialer,
            auth: super::api::basic("dialer", dialer_secret),
            bot_token,
            wait,
            cert_der,
        }
    }

    /// Starts dialgate in `dir` with the configuration `yaml` (its API certificate `cert_der`)
    /// and returns its side ([`SimSide::new`]).
    pub async fn start(
        (dir, yaml, cert_der): (tempfile::TempDir, &str, &[u8]),
        bots: (SimBotApi, Option<SimBotApi>),
        dialer: SimDialer,
        harness: (&str, &'static str, Duration),
    ) -> SimSide {
        let app = super::api::start_app(dir, yaml, cert_der).await;
        SimSide::new(app, bots, dialer, cert_der.to_vec(), harness)
    }

    /// `DELETE /api/v1/calls/{id}`.
    pub async fn hangup(&self, id: &str) -> Answer {
        self.app.hangup(&self.auth, id).await
    }

    /// `GET /api/v1/calls/{id}` (asserts 200).
    pub async fn record(&self, id: &str) -> Value {
        self.app.record(&self.auth, id).await
    }

    /// `GET /api/v1/status` (asserts 200).
    pub async fn status(&self) -> Value {
        let a = self.app.http.get("/api/v1/status", &self.auth).await;
        assert_eq!(a.status, StatusCode::OK, "status: {}", a.text);
        a.json
    }

    /// Polls the call record until `pred` holds (bounded).
    pub async fn wait_record(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let r = self.record(id).await;
            if pred(&r) {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "call record never showed {what} within {:?}: {r:#}",
                self.wait
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the dialer's terminal notification of `id` and returns its body.
    pub async fn wait_terminal(&self, id: &str) -> Value {
        let n = self
            .dialer
            .wait_for(self.wait, |n| is_for(n, id) && is_terminal(&n.body))
            .await;
        match n {
            Some(n) => n.body,
            None => panic!(
                "no terminal notification within {:?}; notifications: {:#?}; record: {:#}",
                self.wait,
                self.notifications(id),
                self.record(id).await
            ),
        }
    }

    /// The record once the call is terminal and every queued delivery (dialer and bot) has
    /// settled, so what the peers received is final.
    pub async fn wait_settled(&self, id: &str) -> Value {
        self.wait_record(id, "a terminal status with every delivery settled", |r| {
            matches!(r["status"].as_str(), Some("completed" | "failed"))
                && r["deliveries"]
                    .as_array()
                    .is_some_and(|d| d.iter().all(|x| x["state"] != "pending"))
        })
        .await
    }

    /// Notification bodies the dialer received for `id`, in order (each validly signed).
    pub fn notifications(&self, id: &str) -> Vec<Value> {
        self.dialer
            .notifications()
            .into_iter()
            .filter(|n| is_for(n, id))
            .map(|n| {
                assert_eq!(
                    n.signature_valid,
                    Some(true),
                    "every notification is signed with the webhook secret: {:?}",
                    n.body
                );
                n.body
            })
            .collect()
    }

    /// Asserts the dialer was told `answered`, then `completed`, for `id`, both delivered
    /// (`rec` being the call's settled record).
    pub fn assert_answered_then_completed(&self, id: &str, rec: &Value) {
        assert_eq!(self.statuses(id), ["answered", "completed"]);
        assert_delivered(rec, 2);
    }

    /// The statuses the dialer received for `id`, in order.
    pub fn statuses(&self, id: &str) -> Vec<String> {
        self.notifications(id)
            .iter()
            .map(|n| n["status"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// Every Bot API request of every bot server, in order of arrival per server.
    fn bot_requests(&self) -> impl Iterator<Item = dialgate::sim::RecordedRequest> {
        self.bot_api
            .requests()
            .into_iter()
            .chain(self.control_api.iter().flat_map(SimBotApi::requests))
    }

    /// Activities the bot received for `id`, in order (each request carried the Bearer token
    /// and was accepted).
    pub fn bot_activities(&self, id: &str) -> Vec<Value> {
        let bearer = format!("Bearer {}", self.bot_token);
        self.bot_requests()
            .filter(|r| r.path.ends_with("/activities") && r.body["conversation"] == id)
            .inspect(|r| {
                assert_eq!(r.auth.as_deref(), Some(bearer.as_str()));
                assert_eq!(r.status, 200, "the bot accepted {:?}", r.body);
            })
            .filter_map(|r| r.body["activities"].as_array().cloned())
            .flatten()
            .collect()
    }

    /// Names of the events (and `message` for texts) the bot received for `id`, in order.
    pub fn bot_event_names(&self, id: &str) -> Vec<String> {
        self.bot_activities(id)
            .iter()
            .map(|a| {
                a["name"]
                    .as_str()
                    .or(a["type"].as_str())
                    .unwrap_or("?")
                    .to_owned()
            })
            .collect()
    }

    /// The `message` activities the bot received for `id`.
    pub fn messages(&self, id: &str) -> Vec<Value> {
        self.bot_activities(id)
            .into_iter()
            .filter(|a| a["type"] == "message")
            .collect()
    }

    /// Waits until the bot has received an activity for `id` satisfying `pred`; returns it.
    pub async fn wait_bot_activity(
        &self,
        id: &str,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            if let Some(a) = self.bot_activities(id).into_iter().find(&pred) {
                return a;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bot never got {what} within {:?}; it got {:?}; record: {:#}",
                self.wait,
                self.bot_activities(id),
                self.record(id).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the bot has received the event `name` for `id`; returns it.
    pub async fn wait_bot_event(&self, id: &str, name: &str) -> Value {
        self.wait_bot_activity(id, &format!("`{name}`"), |a| a["name"] == name)
            .await
    }

    /// Waits for the bot's `disconnect` request of `id` and returns its body.
    pub async fn wait_bot_disconnect(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let found = self
                .bot_requests()
                .find(|r| r.path.ends_with("/disconnect") && r.body["conversation"] == id);
            if let Some(r) = found {
                return r.body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no bot disconnect for {id} within {:?}",
                self.wait
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops dialgate (ends its live calls) and starts it again on the same configuration
    /// and data directory, as a restart of the service would.
    pub async fn restart(&mut self) {
        if let Some(a) = self.app.app.take() {
            a.shutdown().await;
        }
        let app = dialgate::app::App::start(&self.app.config_path, super::api::flow_app_options())
            .await
            .expect("dialgate restarts");
        // A new process listens on a new port.
        self.app.http = super::api::Http::new(&app.api_url(), Some(&self.cert_der), false);
        self.app.app = Some(app);
    }

    /// Stops dialgate (ends live calls) and the HTTP peers.
    pub async fn stop(self) {
        self.app.stop().await;
        self.bot_api.shutdown();
        if let Some(c) = &self.control_api {
            c.shutdown();
        }
        self.dialer.shutdown();
    }
}

/// Checks the record's deliveries: every one delivered (last attempt answered 200), and
/// `dialer_notifications` of them to the dialer.
pub fn assert_delivered(record: &Value, dialer_notifications: usize) {
    let d = record["deliveries"].as_array().expect("deliveries");
    for x in d {
        assert_eq!(x["state"], "delivered", "delivery {x:#}");
        assert!(
            x["attempts"]
                .as_array()
                .is_some_and(|a| a.last().is_some_and(|l| l["httpStatus"] == 200)),
            "{x:#}"
        );
    }
    let to_dialer = d.iter().filter(|x| x["channel"] == "dialer").count();
    assert_eq!(to_dialer, dialer_notifications, "dialer deliveries: {d:#?}");
}

/// Waits (bounded by `wait`) until a simulated peer's call has ended (its `RtpStats` event).
pub async fn wait_peer_ended(peer: &SimCallee, who: &str, wait: Duration) -> Vec<SimEvent> {
    let ended = peer
        .wait_for(wait, |e| matches!(e.kind, SimEventKind::RtpStats { .. }))
        .await;
    assert!(
        ended.is_some(),
        "the {who}'s call never ended: {:?}",
        sip_trace(&peer.events())
    );
    peer.events()
}

/// A flow's Bot API bot (`dialgate::sim`): it answers 401 without the Bearer `token` and answers
/// the `start` event with the activities `on_start`.
pub async fn sim_bot_api(token: &str, on_start: Vec<Value>) -> SimBotApi {
    SimBotApi::start(dialgate::sim::BotApiOptions {
        token: Some(token.into()),
        on_start,
        ..Default::default()
    })
    .await
    .expect("simulated Bot API")
}
