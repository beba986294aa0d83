//! Delivery of status notifications (to the dialer) and Bot API requests (to
//! the bot) from the durable outbox, with signing and exponential backoff.
//!
//! Items are written to the store first ([`Outbox::notify_dialer`] and
//! friends return once they are durable), then a worker delivers them; items
//! of one conversation and channel go strictly in order, and pending items
//! survive a restart.

pub mod client;
pub mod sign;
mod worker;

pub use client::{HttpAnswer, HttpClient};
pub use worker::OutboxOptions;

use crate::config::ConfigStore;
use crate::metrics::Metrics;
use crate::store::{Channel, Store, StoreError};
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

/// Bot API request kinds, as stored in the outbox.
pub mod kind {
    pub const STATUS: &str = "status";
    pub const BOT_OPEN: &str = "open";
    pub const BOT_ACTIVITY: &str = "activity";
    pub const BOT_REFRESH: &str = "refresh";
    pub const BOT_DISCONNECT: &str = "disconnect";
}

impl Outbox {
    /// Creates the outbox; call [`Outbox::spawn`] to start delivering.
    pub fn new(
        store: Store,
        config: Arc<ConfigStore>,
        metrics: Arc<Metrics>,
        opts: OutboxOptions,
    ) -> Arc<Outbox> {
        Arc::new(Outbox {
            store,
            config: config.clone(),
            wake: Notify::new(),
            client: HttpClient::new(opts.request_timeout).with_notify_allow({
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

    /// Queues the end of the bot conversation.
    pub async fn bot_disconnect(
        &self,
        conv: &str,
        reason: &str,
        reason_code: &str,
    ) -> Result<i64, StoreError> {
        let payload = json!({ "conversation": conv, "reason": reason, "reasonCode": reason_code });
        self.put(conv, Channel::Bot, kind::BOT_DISCONNECT, None, payload)
            .await
    }
}

/// Now as RFC 3339 (UTC).
pub fn now_rfc3339() -> Value {
    crate::store::rfc3339(crate::store::now_ms())
}
