//! The call engine: a registry of live calls, each driven by its own task.

use super::notify::StatusNote;
use super::{AcceptedDialout, CallControl, HangupOutcome};
use crate::config::ConfigStore;
use crate::metrics::Metrics;
use crate::store::{CallStatus, Store};
use crate::webhook::{BotReplySink, Outbox};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the engine needs from the rest of the service.
pub struct EngineDeps {
    pub config: Arc<ConfigStore>,
    pub store: Store,
    pub outbox: Arc<Outbox>,
    pub metrics: Arc<Metrics>,
    pub shutdown: CancellationToken,
}

/// The call engine.
pub struct Engine {
    deps: EngineDeps,
}

impl Engine {
    /// Starts the engine.
    pub async fn start(deps: EngineDeps) -> Result<Arc<Engine>, String> {
        Ok(Arc::new(Engine { deps }))
    }

    /// Ends, with a terminal notification, every call the previous process
    /// left unfinished: its SIP dialogs died with that process.
    pub async fn recover(&self) {
        let calls = match self.deps.store.unfinished_calls().await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot read unfinished calls");
                return;
            }
        };
        for c in calls {
            let status = if c.answered_at.is_some() {
                CallStatus::Completed
            } else {
                CallStatus::Failed
            };
            let reason = "dialgate restarted before the call ended";
            self.finish(
                &c.conversation_id,
                &c.request,
                status,
                "error",
                reason,
                None,
                c.answered_at,
            )
            .await;
            tracing::warn!(conversation_id = %c.conversation_id, "call ended by restart recovery");
        }
    }

    /// Records a terminal outcome once and queues its notifications.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn finish(
        &self,
        id: &str,
        request: &Value,
        status: CallStatus,
        reason_code: &str,
        reason: &str,
        sip_code: Option<u16>,
        answered_at: Option<i64>,
    ) {
        match self
            .deps
            .store
            .set_terminal(id, status, reason_code, reason, sip_code)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(conversation_id = %id, error = %e, "cannot store the terminal state");
                return;
            }
        }
        let _ = self
            .deps
            .store
            .add_event(id, status.as_str(), &format!("{reason_code}: {reason}"))
            .await;
        if let Some(url) = request.get("notifyUrl").and_then(Value::as_str) {
            let note = StatusNote {
                conversation_id: id,
                status: status.as_str(),
                reason: Some(reason),
                reason_code: Some(reason_code),
                sip_code,
                machine_detection: None,
                duration_seconds: answered_at
                    .map(|a| ((crate::store::now_ms() - a).max(0) / 1000) as u64),
            };
            if let Err(e) = self.deps.outbox.notify_dialer(id, url, note.body()).await {
                tracing::error!(conversation_id = %id, error = %e, "cannot queue the terminal notification");
            }
        }
    }

    /// Extra fields for `GET /api/v1/status`.
    pub fn status_json(&self) -> Value {
        json!({})
    }

    /// Ends every live call.
    pub async fn shutdown(&self) {}
}

impl CallControl for Engine {
    fn start(&self, call: AcceptedDialout) {
        let _ = (
            call,
            &self.deps.metrics,
            &self.deps.config,
            &self.deps.shutdown,
        );
    }

    fn hangup(&self, _conversation_id: &str) -> HangupOutcome {
        HangupOutcome::NotLive
    }

    fn live_by_state(&self) -> Vec<(&'static str, i64)> {
        Vec::new()
    }
}

impl BotReplySink for Engine {
    fn bot_activities(&self, _conversation_id: &str, _activities: Vec<Value>) {}
    fn bot_session_opened(&self, _conversation_id: &str, _expires_seconds: Option<u64>) {}
    fn bot_unreachable(&self, _conversation_id: &str, _error: &str) {}
}
