//! What the SIP layer tells the rest of dialgate about its legs' dialogs, read off the wire: a
//! message inspector installed on rsipstack's endpoint sees every request we send and every
//! response we receive.
//!
//! - An INVITE (no To tag) of a registered leg is sent: the leg is cancellable
//!   ([`LegDialogState::Calling`]); the ACK of its 2xx is sent: the leg is up
//!   ([`LegDialogState::Up`], with the peer's tag, Contact and route set). Both go to the
//!   [`DialogJournal`], which keeps them so a restart can CANCEL or BYE the leg.
//! - A final response to an INVITE that no transaction or dialog of ours owns (the callee
//!   answered after a restart, or after we gave up on it) is an *orphan*: a 2xx is ACKed and
//!   ended with BYE, a failure to an INVITE we cancelled at recovery is ACKed (see `cleanup.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use rsipstack::dialog::DialogId;
use rsipstack::dialog::dialog_layer::DialogLayer;
use rsipstack::sip::ToTypedHeader as _;
use rsipstack::sip::prelude::HeadersExt as _;
use rsipstack::sip::{Header, Method, Request, Response, SipMessage, StatusCodeKind};
use rsipstack::transaction::endpoint::{EndpointInner, MessageInspector};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transport::SipAddr;
use tokio::sync::mpsc;

use crate::core::{LegDialog, LegDialogState, Transport};

/// Where the SIP layer reports its legs' dialog state (the store, in dialgate).
pub trait DialogJournal: Send + Sync {
    /// The leg is cancellable or established: keep (replace) its state.
    fn save(&self, leg: LegDialog);
    /// The leg is gone: forget it.
    fn forget(&self, call_id: &str);
}

/// A final response to an INVITE that nothing of ours owns.
#[derive(Debug)]
pub(crate) enum Orphan {
    /// 2xx: ACK it, then BYE.
    Answer(Response),
    /// 3xx-6xx to an INVITE cancelled by recovery: ACK it (hop by hop, to where it came from).
    Rejected {
        response: Box<Response>,
        invite: Box<Request>,
        from: SipAddr,
    },
}

/// Orphans waiting for the cleanup task; beyond this they are dropped (a flood of forged 200s
/// must not grow memory; a real callee retransmits its 200).
const ORPHAN_QUEUE: usize = 256;

/// State shared by the inspector (inside rsipstack) and the endpoint.
pub(crate) struct WireHook {
    /// Call-ID → conversation of every leg placed and not yet gone.
    legs: Mutex<HashMap<String, LegBranch>>,
    journal: OnceLock<Arc<dyn DialogJournal>>,
    endpoint: OnceLock<Weak<EndpointInner>>,
    dialogs: OnceLock<Weak<DialogLayer>>,
    orphans: mpsc::Sender<Orphan>,
    /// INVITEs of a previous process cancelled by recovery, by Call-ID: their 487 is ACKed.
    pub(crate) recovered: Mutex<HashMap<String, Request>>,
}

struct LegBranch {
    conversation_id: String,
    /// Via branch of the leg's last INVITE: an ACK with this branch acknowledges a failure
    /// (same transaction), not a 2xx.
    invite_branch: Option<String>,
}

impl WireHook {
    pub(crate) fn new() -> (Arc<WireHook>, mpsc::Receiver<Orphan>) {
        let (tx, rx) = mpsc::channel(ORPHAN_QUEUE);
        let hook = Arc::new(WireHook {
            legs: Mutex::new(HashMap::new()),
            journal: OnceLock::new(),
            endpoint: OnceLock::new(),
            dialogs: OnceLock::new(),
            orphans: tx,
            recovered: Mutex::new(HashMap::new()),
        });
        (hook, rx)
    }

    pub(crate) fn attach(&self, endpoint: &Arc<EndpointInner>, dialogs: &Arc<DialogLayer>) {
        let _ = self.endpoint.set(Arc::downgrade(endpoint));
        let _ = self.dialogs.set(Arc::downgrade(dialogs));
    }

    pub(crate) fn set_journal(&self, journal: Arc<dyn DialogJournal>) {
        let _ = self.journal.set(journal);
    }

    /// A leg is about to send its INVITE.
    pub(crate) fn register(&self, call_id: &str, conversation_id: &str) {
        self.legs.lock().unwrap_or_else(|p| p.into_inner()).insert(
            call_id.to_owned(),
            LegBranch {
                conversation_id: conversation_id.to_owned(),
                invite_branch: None,
            },
        );
    }

    /// Legs placed and not yet gone (a leak check for `/metrics`).
    pub(crate) fn legs_len(&self) -> usize {
        self.legs.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// A leg is gone (its task ended): nothing is left to end.
    pub(crate) fn unregister(&self, call_id: &str) {
        let known = self
            .legs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(call_id)
            .is_some();
        if known && let Some(j) = self.journal.get() {
            j.forget(call_id);
        }
    }

    fn sent(&self, req: &Request, dest: Option<&SipAddr>) {
        if !matches!(req.method, Method::Invite | Method::Ack) {
            return;
        }
        let Some(journal) = self.journal.get() else {
            return;
        };
        let Ok(call_id) = req.call_id_header().map(|c| c.value().to_string()) else {
            return;
        };
        let to_tag = req
            .to_header()
            .ok()
            .and_then(|t| t.tag().ok().flatten())
            .map(|t| t.value().to_string());
        let branch = top_branch(req);
        let state = {
            let mut legs = self.legs.lock().unwrap_or_else(|p| p.into_inner());
            let Some(leg) = legs.get_mut(&call_id) else {
                return;
            };
            match (&req.method, &to_tag) {
                (Method::Invite, None) => {
                    leg.invite_branch = branch;
                    Some((LegDialogState::Calling, leg.conversation_id.clone()))
                }
                // The ACK of a failure shares the INVITE's branch: the leg is ending, not up.
                (Method::Ack, Some(_)) if branch != leg.invite_branch => {
                    Some((LegDialogState::Up, leg.conversation_id.clone()))
                }
                _ => None,
            }
        };
        let Some((state, conversation_id)) = state else {
            return;
        };
        match leg_dialog(req, dest, state, call_id, conversation_id, to_tag) {
            Some(d) => journal.save(d),
            None => tracing::debug!(method = %req.method, "leg dialog state unreadable"),
        }
    }

    fn received(&self, resp: &Response, from: Option<&SipAddr>) {
        // `from` is None when a transaction re-reports its own response: never an orphan.
        let Some(from) = from else { return };
        let kind = resp.status_code.kind();
        if kind == StatusCodeKind::Provisional {
            return;
        }
        if resp.cseq_header().and_then(|c| c.method()).ok() != Some(Method::Invite) {
            return;
        }
        let Some(ep) = self.endpoint.get().and_then(Weak::upgrade) else {
            return;
        };
        let Ok(key) = TransactionKey::from_response(resp, TransactionRole::Client) else {
            return;
        };
        if ep.transactions.contains_key(&key) || ep.finished_transactions.contains_key(&key) {
            return;
        }
        if kind == StatusCodeKind::Successful {
            let live = DialogId::try_from((resp, TransactionRole::Client))
                .ok()
                .zip(self.dialogs.get().and_then(Weak::upgrade))
                .is_some_and(|(id, dialogs)| dialogs.get_dialog(&id).is_some());
            if !live {
                let _ = self.orphans.try_send(Orphan::Answer(resp.clone()));
            }
            return;
        }
        let Ok(call_id) = resp.call_id_header().map(|c| c.value().to_string()) else {
            return;
        };
        let invite = self
            .recovered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&call_id)
            .cloned();
        if let Some(invite) = invite {
            let _ = self.orphans.try_send(Orphan::Rejected {
                response: Box::new(resp.clone()),
                invite: Box::new(invite),
                from: from.clone(),
            });
        }
    }
}

fn top_branch(req: &Request) -> Option<String> {
    let via = req.top_via_header().ok()?.typed().ok()?;
    via.branch().map(|b| b.to_string())
}

/// The leg's dialog state from the request as sent.
fn leg_dialog(
    req: &Request,
    dest: Option<&SipAddr>,
    state: LegDialogState,
    call_id: String,
    conversation_id: String,
    remote_tag: Option<String>,
) -> Option<LegDialog> {
    let local_tag = req.from_header().ok()?.tag().ok()??.value().to_string();
    let cseq = req.cseq_header().ok()?.seq().ok()?;
    let route_set: Vec<String> = req
        .headers
        .iter()
        .filter_map(|h| match h {
            Header::Route(r) => Some(r.value().to_string()),
            _ => None,
        })
        .collect();
    // Where it went: the resolved address when rsipstack knew it, else the first Route or the
    // Request-URI (a 2xx ACK over an existing TCP connection).
    let fallback = SipAddr::try_from(&req.destination()).ok();
    let addr = dest.cloned().or(fallback)?;
    let transport = match addr.r#type {
        Some(rsipstack::sip::Transport::Tcp) => Transport::Tcp,
        Some(rsipstack::sip::Transport::Tls) => Transport::Tls,
        _ => Transport::Udp,
    };
    Some(LegDialog {
        call_id,
        conversation_id,
        state,
        local_tag,
        remote_tag,
        cseq,
        remote_target: req.uri.to_string(),
        route_set,
        transport,
        destination: addr.addr.to_string(),
        local_contact: req.contact_header().ok().map(|c| c.value().to_string()),
        request: req.to_string(),
    })
}

/// The inspector rsipstack calls for every message; it only looks.
pub(crate) struct Inspector(pub(crate) Arc<WireHook>);

impl MessageInspector for Inspector {
    fn before_send(&self, msg: SipMessage, dest: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Request(req) = &msg {
            self.0.sent(req, dest);
        }
        msg
    }

    fn after_received(&self, msg: SipMessage, from: Option<&SipAddr>) -> SipMessage {
        if let SipMessage::Response(resp) = &msg {
            self.0.received(resp, from);
        }
        msg
    }
}
