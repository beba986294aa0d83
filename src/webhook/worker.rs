//! The delivery worker: polls the outbox for due items, delivers each, and
//! records every attempt.

use super::{Outbox, kind};
use crate::store::{AttemptOutcome, Channel, OutboxItem};
use bytes::Bytes;
use serde_json::Value;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Retry policy and timeouts.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// First retry delay; doubled after each failure.
    pub base_backoff: Duration,
    /// Upper bound of one retry delay.
    pub max_backoff: Duration,
    /// Attempts before an item is given up.
    pub max_attempts: u32,
    /// Deadline of one HTTP request.
    pub request_timeout: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_attempts: 10,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// How one delivery went.
enum Delivery {
    Ok,
    /// Worth retrying (transport error, 5xx, 408, 429).
    Transient(Option<u16>, String),
    /// Retrying cannot help (4xx, nothing to deliver to).
    Permanent(Option<u16>, String),
}

impl Outbox {
    /// Starts the worker; it stops when `shutdown` is cancelled.
    pub fn spawn(self: &Arc<Self>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move { me.run(shutdown).await })
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let in_flight: Arc<Mutex<HashSet<i64>>> = Arc::default();
        loop {
            let next = match self.store.due_items(64).await {
                Ok((items, next)) => {
                    for item in items {
                        if !in_flight
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(item.id)
                        {
                            continue;
                        }
                        let me = self.clone();
                        let in_flight = in_flight.clone();
                        tokio::spawn(async move {
                            let id = item.id;
                            me.deliver_and_record(item).await;
                            in_flight
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .remove(&id);
                            // The next item of that conversation may now be due.
                            me.wake.notify_one();
                        });
                    }
                    next
                }
                Err(e) => {
                    tracing::error!(error = %e, "outbox poll failed");
                    None
                }
            };
            let wait = next
                .map(
                    |at| Duration::from_millis((at - crate::store::now_ms()).clamp(1, 1000) as u64),
                )
                .unwrap_or(Duration::from_secs(1));
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exp = attempts.clamp(0, 20) as u32;
        self.opts
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.opts.max_backoff)
    }

    async fn deliver_and_record(&self, item: OutboxItem) {
        let started = Instant::now();
        let span = tracing::info_span!("deliver", conversation_id = %item.conversation_id, kind = %item.kind, attempt = item.attempts + 1);
        let _g = span.enter();
        let result = match item.channel {
            Channel::Dialer => self.deliver_dialer(&item).await,
            Channel::Bot => self.deliver_bot(&item).await,
        };
        let ms = started.elapsed().as_millis() as i64;
        let attempts_after = item.attempts + 1;
        let (status, error, outcome, label) = match result {
            Delivery::Ok => (None, None, AttemptOutcome::Delivered, "delivered"),
            Delivery::Transient(s, e) if (attempts_after as u32) < self.opts.max_attempts => {
                let at_ms = crate::store::now_ms() + self.backoff(item.attempts).as_millis() as i64;
                tracing::warn!(status = ?s, error = %e, "delivery failed; will retry");
                (s, Some(e), AttemptOutcome::Retry { at_ms }, "retry")
            }
            Delivery::Transient(s, e) | Delivery::Permanent(s, e) => {
                tracing::error!(status = ?s, error = %e, "delivery given up");
                if item.channel == Channel::Bot
                    && let Some(sink) = self.sink()
                {
                    sink.bot_unreachable(&item.conversation_id, &e);
                }
                (s, Some(e), AttemptOutcome::GiveUp, "failed")
            }
        };
        let status = status.or(match outcome {
            AttemptOutcome::Delivered => Some(200),
            _ => None,
        });
        self.metrics
            .notifications
            .get_or_create(&crate::metrics::ResultLabels {
                result: label.to_owned(),
            })
            .inc();
        if let Err(e) = self
            .store
            .record_attempt(item.id, status, error, ms, outcome)
            .await
        {
            tracing::error!(error = %e, "cannot record a delivery attempt");
        }
    }

    fn classify(status: u16, what: &str) -> Delivery {
        match status {
            200..=299 => Delivery::Ok,
            408 | 429 | 500..=599 => {
                Delivery::Transient(Some(status), format!("{what} answered {status}"))
            }
            _ => Delivery::Permanent(Some(status), format!("{what} answered {status}")),
        }
    }

    async fn deliver_dialer(&self, item: &OutboxItem) -> Delivery {
        let Some(url) = item.url.as_deref() else {
            return Delivery::Permanent(None, "no notifyUrl".into());
        };
        // The signing secret is read at delivery time, so a rotated secret
        // applies to retries too.
        let client_id = match self.store.get_call(&item.conversation_id).await {
            Ok(Some(c)) => c.client_id,
            _ => String::new(),
        };
        let snap = self.config.current();
        let secret = snap
            .config
            .api_client(&client_id)
            .and_then(|c| c.webhook_secret.clone());
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let body = Bytes::from(item.payload.clone());
        let mut headers = vec![(
            "x-dialgate-delivery",
            format!("{}-{}", item.id, item.attempts + 1),
        )];
        match secret {
            Some(s) => headers.push((
                "x-dialgate-signature",
                super::sign::signature(s.as_bytes(), t, &body),
            )),
            None => {
                tracing::warn!(client = %client_id, "no webhook secret configured: notification sent unsigned")
            }
        }
        match self.client.post_notification(url, body, &headers).await {
            Ok(a) => Self::classify(a.status, "the dialer"),
            Err(e) => Delivery::Transient(None, e),
        }
    }

    async fn deliver_bot(&self, item: &OutboxItem) -> Delivery {
        let call = match self.store.get_call(&item.conversation_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Delivery::Permanent(None, "unknown conversation".into()),
            Err(e) => return Delivery::Transient(None, e.to_string()),
        };
        let snap = self.config.current();
        let Some(bot) = snap.config.bot(&call.bot) else {
            return Delivery::Permanent(
                None,
                format!("bot `{}` is no longer configured", call.bot),
            );
        };
        let mut headers = Vec::new();
        if let Some(t) = bot.token.as_deref() {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let url = if item.kind == kind::BOT_OPEN {
            match &item.url {
                Some(u) => u.clone(),
                None => return Delivery::Permanent(None, "no events_url".into()),
            }
        } else {
            let session = match self.store.bot_session(&item.conversation_id).await {
                Ok(Some(s)) => s,
                Ok(None) => {
                    return Delivery::Permanent(
                        None,
                        "the bot conversation was never opened".into(),
                    );
                }
                Err(e) => return Delivery::Transient(None, e.to_string()),
            };
            match item.kind.as_str() {
                kind::BOT_REFRESH => session.1.unwrap_or(session.0),
                kind::BOT_DISCONNECT => match session.2 {
                    Some(d) => d,
                    None => return Delivery::Ok,
                },
                _ => session.0,
            }
        };
        let answer = match self
            .client
            .post_json(&url, Bytes::from(item.payload.clone()), &headers)
            .await
        {
            Ok(a) => a,
            Err(e) => return Delivery::Transient(None, e),
        };
        let verdict = Self::classify(answer.status, "the bot");
        if !matches!(verdict, Delivery::Ok) {
            return verdict;
        }
        let reply: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        if item.kind == kind::BOT_OPEN {
            let base = item.url.clone().unwrap_or_default();
            let resolve = |k: &str| -> Option<String> {
                let rel = reply.get(k)?.as_str()?;
                url::Url::parse(&base)
                    .ok()?
                    .join(rel)
                    .ok()
                    .map(|u| u.to_string())
            };
            let Some(activities) = resolve("activitiesURL") else {
                return Delivery::Permanent(
                    Some(answer.status),
                    "the bot's answer has no activitiesURL".into(),
                );
            };
            let expires = reply.get("expiresSeconds").and_then(Value::as_u64);
            if let Err(e) = self
                .store
                .save_bot_session(
                    &item.conversation_id,
                    &activities,
                    resolve("refreshURL").as_deref(),
                    resolve("disconnectURL").as_deref(),
                    expires.map(|e| e as i64),
                )
                .await
            {
                return Delivery::Transient(None, e.to_string());
            }
            if let Some(sink) = self.sink() {
                sink.bot_session_opened(&item.conversation_id, expires);
            }
        }
        if let Some(acts) = reply.get("activities").and_then(Value::as_array)
            && !acts.is_empty()
            && let Some(sink) = self.sink()
        {
            sink.bot_activities(&item.conversation_id, acts.clone());
        }
        Delivery::Ok
    }
}
