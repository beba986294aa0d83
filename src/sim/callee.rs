//! `SimCallee`: a minimal SIP UAS on rsipstack playing a person (or, with other options, the
//! bot's media endpoint). Each INVITE gets its own task; nothing outlives [`SimCallee::shutdown`].

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::prelude::HeadersExt as _;
use rsipstack::sip::{Method, StatusCode};
use rsipstack::transaction::TransactionReceiver;
use tokio::sync::watch;

use super::audio::save_wav;
use super::call::{CallTask, Shared};
use super::endpoint::SimEndpoint;
use super::error::SimError;
use super::options::{SimCall, SimCalleeOptions, SimEvent};

/// The bot's SIP media endpoint is the same UAS with [`SimCalleeOptions::bot`].
pub type SimBot = SimCallee;

/// A simulated SIP UAS (see the module docs). Dropping it stops everything.
pub struct SimCallee {
    shared: Arc<Shared>,
    endpoint: SimEndpoint,
}

impl SimCallee {
    /// Bind and start answering INVITEs.
    pub async fn start(opts: SimCalleeOptions) -> Result<SimCallee, SimError> {
        let ua = format!("dialgate-sim-{}", opts.user);
        let (endpoint, incoming) = SimEndpoint::start(opts.bind, &ua, opts.t1).await?;
        let contact = endpoint.contact(&opts.user)?;
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            opts,
            events: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            changed,
            cancel: endpoint.cancel.clone(),
        });
        tokio::spawn(dispatch(
            incoming,
            endpoint.dialogs.clone(),
            contact,
            shared.clone(),
        ));
        Ok(SimCallee { shared, endpoint })
    }

    /// The SIP address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.endpoint.local
    }

    /// `sip:<user>@<addr>` to dial.
    pub fn uri(&self) -> String {
        format!("sip:{}@{}", self.shared.opts.user, self.endpoint.local)
    }

    /// Everything seen and done so far, in order.
    pub fn events(&self) -> Vec<SimEvent> {
        self.shared
            .events
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
    }

    /// Media snapshot of every call so far.
    pub fn calls(&self) -> Vec<SimCall> {
        let Ok(calls) = self.shared.calls.lock() else {
            return Vec::new();
        };
        calls
            .iter()
            .map(|c| SimCall {
                call_id: c.call_id.clone(),
                codec: c.codec,
                remote_rtp: c.remote_rtp,
                local_rtp: c.local_rtp,
                rtp_sent: c.media.sent.load(Ordering::Relaxed),
                rtp_received: c.media.received.load(Ordering::Relaxed),
                recorded: c
                    .media
                    .recorded
                    .lock()
                    .map(|r| r.clone())
                    .unwrap_or_default(),
                ended: c.ended,
            })
            .collect()
    }

    /// Save what the sim heard on `call_id` as a WAV.
    pub fn save_recording(&self, call_id: &str, path: impl AsRef<Path>) -> Result<(), SimError> {
        let call = self
            .calls()
            .into_iter()
            .find(|c| c.call_id == call_id)
            .ok_or_else(|| SimError::UnknownCall(call_id.to_string()))?;
        save_wav(path, &call.recorded)
    }

    /// Wait (at most `timeout`) until some event satisfies `pred`; returns it.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&SimEvent) -> bool,
    ) -> Option<SimEvent> {
        let mut rx = self.shared.changed.subscribe();
        let wait = async {
            loop {
                if let Some(e) = self.events().into_iter().find(|e| pred(e)) {
                    return Some(e);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }

    /// End one call: BYE if answered, 480 if still ringing.
    pub fn hangup(&self, call_id: &str) {
        self.shared.with_call(call_id, |c| c.hangup.cancel());
    }

    /// End every live call (BYE / 480). "Telling" the bot to hang up is this.
    pub fn hangup_all(&self) {
        if let Ok(calls) = self.shared.calls.lock() {
            calls.iter().for_each(|c| c.hangup.cancel());
        }
    }

    /// Number of dialogs rsipstack still tracks (0 when no call is up: leak check).
    pub fn dialog_count(&self) -> usize {
        self.endpoint.dialogs.len()
    }

    /// Stop at once: listener, timers, media and call tasks. Live calls are dropped without BYE;
    /// call [`SimCallee::hangup_all`] and wait for the `Bye` events first to end them cleanly.
    pub fn shutdown(&self) {
        self.endpoint.shutdown();
    }
}

impl Drop for SimCallee {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Route incoming server transactions: in-dialog → their dialog; new INVITE → a call task.
async fn dispatch(
    mut incoming: TransactionReceiver,
    dialogs: Arc<DialogLayer>,
    contact: rsipstack::sip::Uri,
    shared: Arc<Shared>,
) {
    loop {
        let mut tx = tokio::select! {
            _ = shared.cancel.cancelled() => break,
            tx = incoming.recv() => match tx { Some(tx) => tx, None => break },
        };
        if let Some(mut dialog) = dialogs.match_dialog(&tx) {
            let cancel = shared.cancel.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    r = dialog.handle(&mut tx) => if let Err(e) = r {
                        tracing::debug!(error = %e, "in-dialog request failed");
                    },
                }
            });
            continue;
        }
        let has_to_tag = tx
            .original
            .to_header()
            .ok()
            .and_then(|t| t.tag().ok().flatten())
            .is_some();
        let status = match tx.original.method {
            Method::Invite if !has_to_tag => {
                let call = CallTask {
                    shared: shared.clone(),
                    dialogs: dialogs.clone(),
                    contact: contact.clone(),
                };
                tokio::spawn(call.run(tx));
                continue;
            }
            Method::Ack => continue,
            Method::Options if !has_to_tag => StatusCode::OK,
            _ => StatusCode::CallTransactionDoesNotExist,
        };
        tokio::spawn(async move {
            let _ = tx.reply(status).await;
        });
    }
}
