//! The live-call registry and hang-up routing: each live call's owner instance is a key on
//! Redis (leased, see [`super::Leases`]); a `DELETE` that arrives at another instance is
//! published on the owner's channel, the owner hangs the call up and answers on the asking
//! instance's channel. `PUBLISH` says how many listened: none means the owner is gone.

use super::leases::{Leases, owner_key};
use super::link::{ClusterError, Link};
use crate::call::limiter::Decision;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// How long the asking instance waits for the owner's answer.
pub const ANSWER_WAIT: Duration = Duration::from_secs(3);

/// An instance's channel.
fn channel(instance: &str) -> String {
    format!("dialgate:instance:{instance}")
}

/// What the owner does with a hang-up routed to it: end the call if it is live or queued
/// here, and say whether it was.
pub trait LocalHangup: Send + Sync {
    /// Hangs `conversation_id` up here; false when it is neither live nor queued here.
    fn hangup_here<'a>(&'a self, conversation_id: &'a str) -> Decision<'a, bool>;
}

/// What became of a hang-up sent to another instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteHangup {
    /// The owner told the call to end.
    Requested { owner: String },
    /// The owner no longer has the call (it is ending).
    NotLive { owner: String },
    /// No instance owns the call (none has it live, or its owner's lease expired).
    NoOwner,
    /// The owner did not listen or answer.
    OwnerGone { owner: String, why: String },
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum Message {
    /// Asks the owner to hang `id` up; the answer goes to `from`'s channel with `req`.
    Hangup {
        id: String,
        from: String,
        req: String,
    },
    /// The owner's answer.
    Answer { req: String, live: bool },
}

/// This instance's side of the registry.
pub struct Owners {
    link: Link,
    leases: Arc<Leases>,
    /// Hang-ups sent, waiting for their answer.
    pending: Mutex<HashMap<String, oneshot::Sender<bool>>>,
    local: OnceLock<Arc<dyn LocalHangup>>,
}

impl Owners {
    /// The registry of `leases`' instance.
    pub fn new(link: Link, leases: Arc<Leases>) -> Arc<Owners> {
        Arc::new(Owners {
            link,
            leases,
            pending: Mutex::new(HashMap::new()),
            local: OnceLock::new(),
        })
    }

    /// Sets what hangs calls up here (once the engine and the queue exist).
    pub fn set_local(&self, local: Arc<dyn LocalHangup>) {
        let _ = self.local.set(local);
    }

    /// Subscribes to this instance's channel (re-subscribed after every reconnect).
    pub(super) async fn subscribe(&self) -> Result<(), ClusterError> {
        let ch = channel(self.leases.instance());
        let mut c = self.link.conn();
        self.link
            .run("subscribing", |_| async move { c.subscribe(&ch).await })
            .await
    }

    /// The lease in whole seconds (how long a dead owner's calls stay owned).
    pub fn lease_secs(&self) -> u64 {
        self.leases.lease().as_secs().max(1)
    }

    /// The owner recorded for a call.
    pub async fn owner_of(&self, conversation_id: &str) -> Result<Option<String>, ClusterError> {
        let key = owner_key(conversation_id);
        self.link
            .run("reading a call's owner", |mut c| async move {
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<String>>(&mut c)
                    .await
            })
            .await
    }

    /// Asks the call's owner to hang it up and waits (bounded) for its answer.
    pub async fn hangup_remote(&self, conversation_id: &str) -> Result<RemoteHangup, ClusterError> {
        let Some(owner) = self.owner_of(conversation_id).await? else {
            return Ok(RemoteHangup::NoOwner);
        };
        if owner == self.leases.instance() {
            // Recorded here but not live here: it is ending right now.
            return Ok(RemoteHangup::NotLive { owner });
        }
        let req = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.pending_map().insert(req.clone(), tx);
        let msg = Message::Hangup {
            id: conversation_id.to_owned(),
            from: self.leases.instance().to_owned(),
            req: req.clone(),
        };
        let listeners = self.publish(&owner, &msg).await;
        let outcome = match listeners {
            Ok(0) => Ok(RemoteHangup::OwnerGone {
                owner,
                why: "is not connected to Redis (stopped or crashed; its calls end when its lease expires)".into(),
            }),
            Ok(_) => match tokio::time::timeout(ANSWER_WAIT, rx).await {
                Ok(Ok(true)) => Ok(RemoteHangup::Requested { owner }),
                Ok(Ok(false)) => Ok(RemoteHangup::NotLive { owner }),
                _ => Ok(RemoteHangup::OwnerGone {
                    owner,
                    why: format!("did not confirm the hang-up within {} s", ANSWER_WAIT.as_secs()),
                }),
            },
            Err(e) => Err(e),
        };
        self.pending_map().remove(&req);
        outcome
    }

    fn pending_map(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<bool>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn publish(&self, to: &str, msg: &Message) -> Result<i64, ClusterError> {
        let (ch, body) = (channel(to), serde_json::to_string(msg).unwrap_or_default());
        self.link
            .run("publishing a hang-up", |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(&ch)
                    .arg(&body)
                    .query_async::<i64>(&mut c)
                    .await
            })
            .await
    }

    /// Serves this instance's channel until `shutdown`.
    pub(super) async fn serve(
        self: Arc<Self>,
        mut pushes: mpsc::Receiver<redis::PushInfo>,
        shutdown: CancellationToken,
    ) {
        loop {
            let push = tokio::select! {
                _ = shutdown.cancelled() => return,
                p = pushes.recv() => match p { Some(p) => p, None => return },
            };
            if push.kind != redis::PushKind::Message {
                continue;
            }
            let Some(redis::Value::BulkString(body)) = push.data.get(1) else {
                continue;
            };
            match serde_json::from_slice::<Message>(body) {
                Ok(Message::Hangup { id, from, req }) => {
                    // Answered off the push loop: a hang-up awaits the queue and the store.
                    let me = self.clone();
                    tokio::spawn(async move {
                        let live = match me.local.get() {
                            Some(l) => l.hangup_here(&id).await,
                            None => false,
                        };
                        tracing::info!(conversation_id = %id, from = %from, live, "hang-up routed from another instance");
                        if let Err(e) = me.publish(&from, &Message::Answer { req, live }).await {
                            tracing::warn!(conversation_id = %id, error = %e, "cannot answer a routed hang-up");
                        }
                    });
                }
                Ok(Message::Answer { req, live }) => {
                    if let Some(tx) = self.pending_map().remove(&req) {
                        let _ = tx.send(live);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable message on this instance's channel")
                }
            }
        }
    }
}
