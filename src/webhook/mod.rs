//! Delivery of status notifications (to the dialer) and Bot API requests (to
//! the bot) from the durable outbox, with signing and exponential backoff.
//!
//! Items are written to the store first ([`Outbox::notify_dialer`] and
//! friends return once they are durable), then a worker delivers them; items
//! of one conversation and channel go strictly in order, and pending items
//! survive a restart.

pub mod client;
mod deliver;
pub mod probe;
mod retention;
pub mod scheduler;
pub mod sign;
mod worker;

pub use client::{HttpAnswer, HttpClient};
pub use worker::OutboxOptions;

use crate::config::{ApiClient, Bot, Config, ConfigStore};
use crate::metrics::Metrics;
use crate::store::{CallEnd, CallSnapshot, Channel, Finished, Store, StoreError};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::Notify;

/// Where the bot's answers go: the call engine routes them to the live call.
pub trait BotReplySink: Send + Sync {
    /// Activities the bot returned in answer to a request.
    fn bot_activities(&self, conversation_id: &str, activities: Vec<Value>);
    /// The bot conversation was opened; refresh before `expires_seconds`.
    fn bot_session_opened(&self, conversation_id: &str, expires_seconds: Option<u64>);
    /// A bot request could not be delivered within its budget.
    fn bot_unreachable(&self, conversation_id: &str, error: &str);
}

/// The outbox: durable enqueue plus the delivery worker.
pub struct Outbox {
    pub(crate) store: Store,
    pub(crate) config: Arc<ConfigStore>,
    pub(crate) wake: Notify,
    pub(crate) opts: OutboxOptions,
    pub(crate) client: HttpClient,
    pub(crate) sink: std::sync::RwLock<Option<Arc<dyn BotReplySink>>>,
    pub(crate) metrics: Arc<Metrics>,
}

/// Outbox item kinds, as stored.
pub use crate::store::kind;

impl Outbox {
    /// Creates the outbox; call [`Outbox::spawn`] to start delivering.
    pub fn new(
        store: Store,
        config: Arc<ConfigStore>,
        metrics: Arc<Metrics>,
        opts: OutboxOptions,
    ) -> Arc<Outbox> {
        let connect_timeout = std::time::Duration::from_millis(u64::from(
            config.current().config.server.outbox.connect_timeout_ms,
        ));
        Arc::new(Outbox {
            store,
            config: config.clone(),
            wake: Notify::new(),
            client: HttpClient::new(opts.request_timeout, connect_timeout).with_notify_allow({
                let config = config.clone();
                Arc::new(move || config.current().config.server.notify_allow.clone())
            }),
            opts,
            sink: std::sync::RwLock::new(None),
            metrics,
        })
    }

    /// Connects the bot-answer sink (the call engine).
    pub fn set_sink(&self, sink: Arc<dyn BotReplySink>) {
        *self.sink.write().unwrap_or_else(|p| p.into_inner()) = Some(sink);
    }

    pub(crate) fn sink(&self) -> Option<Arc<dyn BotReplySink>> {
        self.sink.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn put(
        &self,
        conv: &str,
        ch: Channel,
        kind: &str,
        url: Option<&str>,
        payload: Value,
    ) -> Result<i64, StoreError> {
        let id = self
            .store
            .enqueue(conv, ch, kind, url, payload.to_string())
            .await?;
        self.wake.notify_one();
        Ok(id)
    }

    /// Ends a call durably (terminal state, terminal notification and bot disconnect in one
    /// transaction, see [`Store::finish_call`]) and wakes the worker.
    pub async fn finish_call(&self, end: CallEnd) -> Result<Finished, StoreError> {
        let done = self.store.finish_call(end).await?;
        if done.superseded > 0 {
            self.metrics
                .outbox_superseded
                .inc_by(done.superseded as u64);
        }
        if done.queued {
            self.wake.notify_one();
        }
        Ok(done)
    }

    /// Queues a status notification to the dialer's `notifyUrl`.
    pub async fn notify_dialer(
        &self,
        conv: &str,
        url: &str,
        payload: Value,
    ) -> Result<i64, StoreError> {
        self.put(conv, Channel::Dialer, kind::STATUS, Some(url), payload)
            .await
    }

    /// Queues the Bot API conversation opening.
    pub async fn bot_open(
        &self,
        conv: &str,
        events_url: &str,
        bot_name: &str,
    ) -> Result<i64, StoreError> {
        let payload = json!({
            "conversation": conv,
            "bot": bot_name,
            "capabilities": ["websocket:false", "machineDetection", "speechRecognition"],
        });
        self.put(
            conv,
            Channel::Bot,
            kind::BOT_OPEN,
            Some(events_url),
            payload,
        )
        .await
    }

    /// Queues one activity (an event or a message) for the bot.
    pub async fn bot_activity(&self, conv: &str, mut activity: Value) -> Result<i64, StoreError> {
        if let Value::Object(m) = &mut activity {
            m.entry("id")
                .or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
            m.entry("timestamp").or_insert_with(now_rfc3339);
        }
        let payload = json!({ "conversation": conv, "activities": [activity] });
        self.put(conv, Channel::Bot, kind::BOT_ACTIVITY, None, payload)
            .await
    }

    /// Queues a session refresh.
    pub async fn bot_refresh(&self, conv: &str) -> Result<i64, StoreError> {
        self.put(
            conv,
            Channel::Bot,
            kind::BOT_REFRESH,
            None,
            json!({ "conversation": conv }),
        )
        .await
    }
}

/// What a call accepted now keeps for life: its client's webhook secret, its bot's Bot API
/// settings.
pub fn snapshot(cfg: &Config, client_id: &str, bot: &Bot) -> CallSnapshot {
    CallSnapshot {
        webhook_secret: cfg
            .api_client(client_id)
            .and_then(|c: &ApiClient| c.webhook_secret.clone()),
        bot_name: bot.name.clone(),
        bot_events_url: bot.events_url.clone(),
        bot_token: bot.token.clone(),
    }
}

/// The Bot API disconnect body.
pub fn disconnect_body(conv: &str, reason: &str, reason_code: &str) -> Value {
    json!({ "conversation": conv, "reason": reason, "reasonCode": reason_code })
}

/// Now as RFC 3339 (UTC).
pub fn now_rfc3339() -> Value {
    crate::store::rfc3339(crate::store::now_ms())
}
