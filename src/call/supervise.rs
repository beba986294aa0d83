//! Exactly one terminal even when a call's task dies: the supervisor of each call's task, and
//! the one way to end a call whose actor is gone (a panic, or a restart that lost it).

use super::engine::Engine;
use super::notify::StatusNote;
use crate::store::{CallRecord, CallStatus, Finished};
use crate::webhook::Outbox;
use serde_json::Value;
use std::sync::Arc;

/// Watches one call's task: if it panics (or is aborted) before its terminal, the call still
/// gets exactly one terminal notification (`error`) and its registry entry goes. The
/// concurrency permit is released by the actor's drop during the unwind.
pub(super) async fn supervise(engine: Arc<Engine>, id: String, task: tokio::task::JoinHandle<()>) {
    let Some(reason) = abnormal_end(task).await else {
        return;
    };
    // Boxed: this task waits for the call's whole life, and its future is as large as its
    // largest await (the store's); only the rare abnormal end needs that.
    Box::pin(end_abnormal(engine, id, reason)).await;
}

/// A call's task ended without its terminal: unregister it and end it as `error`.
async fn end_abnormal(engine: Arc<Engine>, id: String, reason: String) {
    engine.unregister(&id);
    match engine.deps.store.get_call(&id).await {
        Ok(Some(rec)) => {
            if end_unfinished(&engine.deps.outbox, &rec, &reason).await {
                tracing::error!(conversation_id = %id, %reason, "call ended");
                engine.count_ended("error");
            } else {
                // Stopped after its end was written (a stop that cut the call short).
                tracing::debug!(conversation_id = %id, %reason, "call task stopped");
            }
        }
        Ok(None) => tracing::error!(conversation_id = %id, "no record of the call"),
        Err(err) => tracing::error!(conversation_id = %id, error = %err, "cannot read the call"),
    }
}

/// Waits for a call's task; `Some(reason)` when it did not end normally.
async fn abnormal_end(task: tokio::task::JoinHandle<()>) -> Option<String> {
    let e = task.await.err()?;
    let what = if e.is_panic() {
        "panicked"
    } else {
        "was cancelled"
    };
    Some(format!("internal error: the call's task {what}"))
}

/// Ends a call whose actor is gone without its terminal: state, notification and bot disconnect
/// in one transaction. Returns false when the call was already terminal with its terminal items
/// (nothing is sent twice).
pub(crate) async fn end_unfinished(outbox: &Outbox, c: &CallRecord, reason: &str) -> bool {
    finish(outbox, c, reason).await.newly_terminal
}

/// [`end_unfinished`]'s transaction and what it wrote (nothing, when it failed: logged).
async fn finish(outbox: &Outbox, c: &CallRecord, reason: &str) -> Finished {
    match outbox.finish_call(end_of(c, reason)).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(conversation_id = %c.conversation_id, error = %e, "cannot end the call");
            Finished::default()
        }
    }
}

impl Engine {
    /// Ends calls whose actor is gone — left by the previous process, or by a dead cluster
    /// instance — each as [`end_unfinished`] does. `reason(answered)` says why on a call still
    /// live, by whether it had been answered; `what` is the WARN line for each call whose end
    /// (or missing notification) was written. Returns how many calls became terminal here.
    pub(crate) async fn end_unfinished_calls<'a>(
        &self,
        calls: impl IntoIterator<Item = &'a CallRecord>,
        reason: impl Fn(bool) -> String,
        what: &str,
    ) -> usize {
        let mut ended = 0;
        for c in calls {
            let f = finish(&self.deps.outbox, c, &reason(c.answered_at.is_some())).await;
            if f.queued {
                tracing::warn!(conversation_id = %c.conversation_id, "{what}");
            }
            ended += usize::from(f.newly_terminal);
        }
        ended
    }
}

/// How a call whose actor is gone ends (restart recovery, a panicked task): a call still live
/// ends `error` with `reason_if_live` (answered → `completed`, else `failed`); a call already
/// terminal keeps its stored outcome.
pub(crate) fn end_of(c: &CallRecord, reason_if_live: &str) -> crate::store::CallEnd {
    let (status, code, reason) = if c.status.is_terminal() {
        (
            c.status,
            c.reason_code.clone().unwrap_or_else(|| "error".into()),
            c.reason.clone().unwrap_or_default(),
        )
    } else if c.answered_at.is_some() {
        (CallStatus::Completed, "error".into(), reason_if_live.into())
    } else {
        (CallStatus::Failed, "error".into(), reason_if_live.into())
    };
    end_with(c, status, code, reason)
}

/// How a call ends with this outcome, decided outside its actor (restart recovery, a
/// panicked task, a queued dialout that timed out or was cancelled): its state, the dialer's
/// terminal notification and the bot disconnect, for one `finish_call` transaction.
pub(crate) fn end_with(
    c: &CallRecord,
    status: CallStatus,
    code: String,
    reason: String,
) -> crate::store::CallEnd {
    let end_ms = c.ended_at.unwrap_or_else(crate::store::now_ms);
    // sipCode is the carrier's final answer; a call cut off has none.
    let sip_code = c
        .sip_code
        .filter(|_| c.status.is_terminal())
        .map(|s| s as u16);
    let notification = c
        .request
        .get("notifyUrl")
        .and_then(Value::as_str)
        .map(|url| {
            let note = StatusNote {
                conversation_id: &c.conversation_id,
                status: status.as_str(),
                reason: Some(&reason),
                reason_code: Some(&code),
                sip_code,
                machine_detection: c
                    .machine_detection
                    .as_ref()
                    .and_then(|m| m["result"].as_str()),
                duration_seconds: (status == CallStatus::Completed).then(|| {
                    c.answered_at
                        .map(|a| ((end_ms - a).max(0) / 1000) as u64)
                        .unwrap_or(0)
                }),
            };
            (url.to_owned(), note.body())
        });
    crate::store::CallEnd {
        conversation_id: c.conversation_id.clone(),
        status,
        bot_disconnect: Some(crate::webhook::disconnect_body(
            &c.conversation_id,
            &reason,
            &code,
        )),
        reason_code: code,
        reason,
        sip_code,
        notification,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Channel, NewCall, Store};
    use serde_json::json;

    /// A real store and outbox (not delivering) in a temp directory.
    fn store_and_outbox(dir: &std::path::Path) -> (Store, Arc<Outbox>) {
        let yaml = dir.join("dialgate.yaml");
        std::fs::write(
            &yaml,
            "server:\n  sip:\n    listen: [{ transport: udp, address: \"127.0.0.1:5060\" }]\n  http: { plain_http: true }\nbots:\n  - { id: b, name: B, sip_uri: \"sip:b@127.0.0.1\" }\n",
        )
        .expect("config written");
        let config = Arc::new(crate::config::ConfigStore::open(&yaml).expect("config loads"));
        let store = Store::open(dir).expect("store opens");
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let outbox = Outbox::new(store.clone(), config, metrics, Default::default());
        (store, outbox)
    }

    #[tokio::test]
    async fn a_panicking_call_task_ends_with_exactly_one_terminal_notification() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, outbox) = store_and_outbox(dir.path());
        // 1. An accepted call with a notifyUrl.
        let call = NewCall {
            conversation_id: "conv-panic".into(),
            client_id: "d".into(),
            bot_id: "b".into(),
            target: "tel:+15550001111".into(),
            request: json!({"notifyUrl": "http://127.0.0.1:9/status"}),
            config_version: 1,
            snapshot: Default::default(),
        };
        store.insert_call(call, None).await.expect("call stored");
        // 2. Its task panics: the supervisor sees an abnormal end.
        let task = tokio::spawn(async { panic!("injected fault") });
        let reason = abnormal_end(task).await.expect("abnormal end seen");
        assert!(reason.contains("panicked"), "{reason}");
        // 3. The call is ended: failed/error, one terminal notification queued.
        let rec = store.get_call("conv-panic").await.unwrap().unwrap();
        assert!(end_unfinished(&outbox, &rec, &reason).await);
        let rec = store.get_call("conv-panic").await.unwrap().unwrap();
        assert_eq!(rec.status, CallStatus::Failed);
        // 4. A second attempt (another supervisor, a restart) sends nothing more.
        assert!(!end_unfinished(&outbox, &rec, &reason).await);
        let query = crate::store::DueQuery {
            limit: 64,
            per_destination: 64,
            exclude: Vec::new(),
        };
        let (due, _) = store.due_items(query).await.expect("outbox readable");
        let terminal: Vec<_> = due
            .iter()
            .map(|d| &d.item)
            .filter(|i| i.channel == Channel::Dialer && i.conversation_id == "conv-panic")
            .collect();
        assert_eq!(terminal.len(), 1, "{due:?}");
        assert!(terminal[0].payload.contains("\"reasonCode\":\"error\""));
        // 5. A task that ends normally is not abnormal.
        assert_eq!(abnormal_end(tokio::spawn(async {})).await, None);
    }
}
