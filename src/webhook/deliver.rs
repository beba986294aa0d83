//! One HTTP delivery of an outbox item: a signed status notification to the dialer, or a Bot
//! API request to the bot, with the settings the call was accepted under (its snapshot).

use super::Outbox;
use super::kind;
use super::worker::Delivery;
use crate::store::{CallSnapshot, DueItem};
use bytes::Bytes;
use serde_json::Value;

/// Headers every delivery carries: the attempt's id (changes per attempt) and the event id
/// (the same on every attempt and after restarts: the receiver's deduplication key).
fn id_headers(due: &DueItem) -> Vec<(&'static str, String)> {
    let item = &due.item;
    vec![
        (
            "x-dialgate-delivery",
            format!("{}-{}", item.id, item.attempts + 1),
        ),
        ("x-dialgate-event-id", item.event_id.clone()),
    ]
}

impl Outbox {
    pub(super) fn classify(status: u16, what: &str) -> Delivery {
        match status {
            200..=299 => Delivery::Ok,
            408 | 429 | 500..=599 => {
                Delivery::Transient(Some(status), format!("{what} answered {status}"))
            }
            _ => Delivery::Permanent(Some(status), format!("{what} answered {status}")),
        }
    }

    /// The call's snapshot; for calls stored before snapshots existed, one made from the
    /// configuration in force (what older versions did).
    fn snapshot_of(&self, due: &DueItem) -> Option<CallSnapshot> {
        let call = due.call.as_ref()?;
        if let Some(s) = &call.snapshot {
            return Some(s.clone());
        }
        let snap = self.config.current();
        let cfg = &snap.config;
        let bot = cfg.bot(&call.bot_id)?;
        Some(super::snapshot(cfg, &call.client_id, bot))
    }

    /// The keys a notification is signed with: the call's own (its snapshot) and, when the
    /// client is still configured with another one (a rotation), that one too.
    fn secrets_of(&self, due: &DueItem) -> Vec<String> {
        let mut keys: Vec<String> = self
            .snapshot_of(due)
            .and_then(|s| s.webhook_secret)
            .into_iter()
            .collect();
        let current = due.call.as_ref().and_then(|c| {
            let snap = self.config.current();
            snap.config
                .api_client(&c.client_id)
                .and_then(|a| a.webhook_secret.clone())
        });
        if let Some(k) = current
            && !keys.contains(&k)
        {
            keys.push(k);
        }
        keys
    }

    pub(super) async fn deliver_dialer(&self, due: &DueItem) -> Delivery {
        let item = &due.item;
        let Some(url) = item.url.as_deref() else {
            return Delivery::Permanent(None, "no notifyUrl".into());
        };
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let body = Bytes::from(item.payload.clone());
        let mut headers = id_headers(due);
        let secrets = self.secrets_of(due);
        if secrets.is_empty() {
            tracing::warn!("no webhook secret for this call: notification sent unsigned");
        } else {
            let keys: Vec<&[u8]> = secrets.iter().map(|s| s.as_bytes()).collect();
            headers.push((
                "x-dialgate-signature",
                super::sign::signature_multi(&keys, t, &body),
            ));
        }
        match self.client.post_notification(url, body, &headers).await {
            Ok(a) => Self::classify(a.status, "the dialer"),
            Err(e) => Delivery::Transient(None, e),
        }
    }

    /// The URL a Bot API request goes to: the events URL for the opening, else the
    /// conversation's URLs returned by the opening. `Err` ends the attempt.
    async fn bot_url(&self, due: &DueItem) -> Result<Option<String>, Delivery> {
        let item = &due.item;
        if item.kind == kind::BOT_OPEN {
            return match &item.url {
                Some(u) => Ok(Some(u.clone())),
                None => Err(Delivery::Permanent(None, "no events_url".into())),
            };
        }
        let session = match self.store.bot_session(&item.conversation_id).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Err(Delivery::Permanent(
                    None,
                    "the bot conversation was never opened".into(),
                ));
            }
            Err(e) => return Err(Delivery::Transient(None, e.to_string())),
        };
        Ok(match item.kind.as_str() {
            kind::BOT_REFRESH => Some(session.1.unwrap_or(session.0)),
            // No disconnect URL: nothing to tell.
            kind::BOT_DISCONNECT => session.2,
            _ => Some(session.0),
        })
    }

    pub(super) async fn deliver_bot(&self, due: &DueItem) -> Delivery {
        let item = &due.item;
        let Some(snapshot) = self.snapshot_of(due) else {
            let bot = due.call.as_ref().map(|c| c.bot_id.as_str()).unwrap_or("?");
            return Delivery::Permanent(None, format!("bot `{bot}` is no longer configured"));
        };
        let mut headers = id_headers(due);
        if let Some(t) = snapshot.bot_token.as_deref() {
            headers.push(("authorization", format!("Bearer {t}")));
        }
        let url = match self.bot_url(due).await {
            Ok(Some(u)) => u,
            Ok(None) => return Delivery::Ok,
            Err(d) => return d,
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
        if item.kind == kind::BOT_OPEN
            && let Err(d) = self.bot_opened(due, &reply, answer.status).await
        {
            return d;
        }
        if let Some(acts) = reply.get("activities").and_then(Value::as_array)
            && !acts.is_empty()
            && let Some(sink) = self.sink()
        {
            sink.bot_activities(&item.conversation_id, acts.clone());
        }
        Delivery::Ok
    }

    /// Stores the conversation URLs the bot's answer to the opening gave.
    async fn bot_opened(&self, due: &DueItem, reply: &Value, status: u16) -> Result<(), Delivery> {
        let item = &due.item;
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
            return Err(Delivery::Permanent(
                Some(status),
                "the bot's answer has no activitiesURL".into(),
            ));
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
            return Err(Delivery::Transient(None, e.to_string()));
        }
        if let Some(sink) = self.sink() {
            sink.bot_session_opened(&item.conversation_id, expires);
        }
        Ok(())
    }
}
