//! Session refreshes on an established leg (RFC 4028): dialgate's own refresh (UPDATE, or
//! re-INVITE when the peer's 2xx did not allow UPDATE) and the peer's refresh requests.
//! When to refresh is decided by the call machine; this only speaks the protocol.

use rsipstack::dialog::dialog::TransactionHandle;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Method, Request, Response, StatusCode, StatusCodeKind};
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::super::extensions::{self, Negotiated};
use super::{LegEvent, LegTask};

/// How our refresh request ended.
pub(super) struct RefreshOutcome {
    /// It was an UPDATE (else a re-INVITE).
    update: bool,
    /// The final response, or the error text (no response: timeout or transport).
    result: Result<Option<Response>, String>,
}

/// What to do after a refresh.
pub(super) enum RefreshNext {
    /// Refreshed: the session as the 2xx states it.
    Done(Option<Negotiated>),
    /// Send again (422 with a larger Min-SE, or UPDATE refused: re-INVITE).
    Again,
    /// Failed without ending the session; the expiry decides.
    Keep,
    /// The dialog is gone (481, 408, no response): end it.
    End { code: Option<u16>, reason: String },
}

impl LegTask {
    /// Sends one refresh in the background; its outcome comes on the returned receiver (a
    /// oneshot made per refresh: a leg rarely refreshes, and a channel kept for the leg's life
    /// would hold a 32-slot block). `None` when the leg has no session timer.
    pub(super) fn start_refresh(
        &mut self,
        dialog: &InviteDialog,
    ) -> Option<oneshot::Receiver<RefreshOutcome>> {
        let (Some(st), Some(n)) = (self.ext.session_timer, self.session) else {
            debug!("refresh asked without a session timer");
            return None;
        };
        let update = self.peer_update;
        let mut headers = extensions::refresh_headers(&n, st);
        let body = if update {
            None
        } else {
            headers.push(Header::ContentType("application/sdp".into()));
            Some(self.sdp_offer.clone().into_bytes())
        };
        info!(
            update,
            interval = n.interval.as_secs(),
            "refreshing the session"
        );
        let dialog = dialog.clone();
        let (done, outcome) = oneshot::channel();
        tokio::spawn(async move {
            let r = if update {
                dialog.update(Some(headers), body).await
            } else {
                dialog.reinvite(Some(headers), body).await
            };
            let result = r.map_err(|e| e.to_string());
            let _ = done.send(RefreshOutcome { update, result });
        });
        Some(outcome)
    }

    /// The outcome of the refresh in flight; pends while there is none. `None` if the refresh
    /// task ended without one. Either way the refresh is over once this returns.
    pub(super) async fn refresh_done(
        pending: &mut Option<oneshot::Receiver<RefreshOutcome>>,
    ) -> Option<RefreshOutcome> {
        let Some(rx) = pending.as_mut() else {
            return std::future::pending().await;
        };
        let outcome = rx.await.ok();
        *pending = None;
        outcome
    }

    pub(super) fn on_refresh_outcome(&mut self, o: RefreshOutcome) -> RefreshNext {
        let resp = match o.result {
            Ok(Some(r)) => r,
            Ok(None) => {
                return RefreshNext::End {
                    code: None,
                    reason: "session refresh: the dialog is no longer confirmed".into(),
                };
            }
            Err(e) => {
                return RefreshNext::End {
                    code: Some(408),
                    reason: format!("session refresh got no answer: {e}"),
                };
            }
        };
        let code = u16::from(resp.status_code.clone());
        if resp.status_code.kind() == StatusCodeKind::Successful {
            return RefreshNext::Done(self.ext.negotiated(&resp));
        }
        match code {
            422 => match self.ext.retry_after(&resp) {
                Some(next) => {
                    self.ext = next;
                    if let (Some(st), Some(n)) = (next.session_timer, self.session.as_mut()) {
                        n.interval = n
                            .interval
                            .max(std::time::Duration::from_secs(u64::from(st.expires)));
                    }
                    RefreshNext::Again
                }
                None => RefreshNext::Keep,
            },
            405 | 501 if o.update => {
                // The peer does not do UPDATE after all: refresh with re-INVITE from now on.
                self.peer_update = false;
                RefreshNext::Again
            }
            481 | 408 => RefreshNext::End {
                code: Some(code),
                reason: format!(
                    "session refresh answered {code} {}",
                    resp.reason_phrase().unwrap_or_default()
                ),
            },
            _ => {
                warn!(code, "session refresh refused; the session may expire");
                RefreshNext::Keep
            }
        }
    }

    /// A re-INVITE or UPDATE from the peer. A bodiless UPDATE is a pure session refresh and is
    /// answered here; anything with SDP goes to the call machine (hold, new address) with the
    /// session timer headers added to the answer.
    pub(super) async fn on_peer_request(&mut self, req: Request, handle: TransactionHandle) {
        let refresh = if self.ext.session_timer.is_some() {
            extensions::answer_refresh(&req)
        } else {
            None
        };
        if self.ext.session_timer.is_some() {
            let session = refresh.as_ref().map(|(_, n)| *n);
            self.session = session;
            self.emit(LegEvent::SessionTimer(session)).await;
        }
        let mut headers = refresh.map(|(h, _)| h).unwrap_or_default();
        let method = req.method;
        if method == Method::Update && req.body.is_empty() {
            if handle
                .respond(StatusCode::OK, Some(headers), None)
                .await
                .is_err()
            {
                debug!("UPDATE reply dropped");
            }
            return;
        }
        let sdp = String::from_utf8_lossy(&req.body).into_owned();
        let (tx, rx) = oneshot::channel();
        self.emit(LegEvent::ReInvite { sdp, reply: tx }).await;
        tokio::spawn(async move {
            let r = match rx.await {
                Ok(Some(answer)) => {
                    headers.push(Header::ContentType("application/sdp".into()));
                    handle
                        .respond(StatusCode::OK, Some(headers), Some(answer.into_bytes()))
                        .await
                }
                _ => handle.reply(StatusCode::NotAcceptableHere).await,
            };
            if r.is_err() {
                debug!(%method, "re-INVITE reply dropped");
            }
        });
    }
}
