//! Ending SIP dialogs that no leg of this process owns: legs a previous process left ringing or
//! up (restart recovery sends CANCEL or BYE from their stored state), and answers nobody is
//! waiting for (a 2xx for an unknown dialog is ACKed and ended with BYE, so a callee who
//! answered after a crash is not left talking to nobody, and billed, until its own timers).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use rsipstack::sip::prelude::HeadersExt as _;
use rsipstack::sip::{Header, Method, Request, Response, SipMessage, StatusCodeKind, Uri};
use rsipstack::transaction::key::{TransactionKey, TransactionRole};
use rsipstack::transaction::transaction::Transaction;
use rsipstack::transport::SipAddr;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::endpoint::{SipEndpoint, to_rsip};
use super::error::SipError;
use super::journal::Orphan;
use crate::core::{LegDialog, LegDialogState};

/// Longest wait for the final response to a BYE or CANCEL (Timer F is 64*T1 = 32 s).
const FINAL_RESPONSE_WAIT: Duration = Duration::from_secs(40);
/// How long a cancelled INVITE's failure response is still ACKed after the CANCEL.
const RECOVERED_INVITE_TTL: Duration = Duration::from_secs(64);
/// BYEs remembered per orphan dialog, so retransmitted 2xx are ACKed but BYEd once.
const ORPHANS_REMEMBERED: usize = 1024;
/// New orphan dialogs ended per second at most: a forged 2xx makes us send an ACK and a BYE
/// (retransmitted) to whatever its Contact says, so a flood of them must not become a flood of
/// ours. A real callee retransmits its 2xx for 32 s, so a dropped one is ended on a later copy.
const ORPHANS_PER_SECOND: u32 = 20;
/// Added to the stored CSeq for the BYE: higher than anything the lost process may have sent
/// since it stored the ACK (an UPDATE, a BYE); RFC 3261 §12.2.2 accepts any higher number.
const CSEQ_GAP: u32 = 100;

fn stack(e: impl std::fmt::Display) -> SipError {
    SipError::Stack(e.to_string())
}

/// Only the headers a request outside the original transaction may carry over.
fn keep_dialog_headers(req: &mut Request) {
    req.headers.retain(|h| {
        matches!(
            h,
            Header::CallId(_)
                | Header::From(_)
                | Header::To(_)
                | Header::CSeq(_)
                | Header::Route(_)
                | Header::MaxForwards(_)
        )
    });
}

impl SipEndpoint {
    /// Ends a leg a previous process left behind, from its stored dialog state: CANCEL while it
    /// was ringing (a late 2xx is then ACKed and BYEd, a 487 ACKed), BYE once it was up.
    /// Returns the final status of the CANCEL or BYE.
    pub async fn end_left_leg(&self, d: &LegDialog) -> Result<u16, SipError> {
        let SipMessage::Request(stored) =
            SipMessage::try_from(d.request.as_str()).map_err(stack)?
        else {
            return Err(SipError::InvalidInput {
                what: "stored request",
                value: d.call_id.clone(),
            });
        };
        let mut req = stored.clone();
        let inner = self.core.endpoint.inner.clone();
        match d.state {
            LegDialogState::Calling => {
                // RFC 3261 §9.1: the INVITE's Request-URI, Call-ID, From, To, CSeq number,
                // Route and top Via (its branch matches the INVITE's transaction).
                let via = stored.top_via_header().map_err(stack)?;
                keep_dialog_headers(&mut req);
                req.headers.push_front(Header::Via(via));
                req.method = Method::Cancel;
                req.cseq_header_mut()
                    .and_then(|c| c.mut_method(Method::Cancel).map(|_| ()))
                    .map_err(stack)?;
                self.core
                    .hook
                    .recovered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(d.call_id.clone(), stored);
                let hook = self.core.hook.clone();
                let call_id = d.call_id.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RECOVERED_INVITE_TTL).await;
                    hook.recovered
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&call_id);
                });
            }
            LegDialogState::Up => {
                keep_dialog_headers(&mut req);
                let via = inner
                    .get_via(self.contact_addr(d.transport), None)
                    .map_err(stack)?;
                req.headers.push_front(Header::Via(via.into()));
                req.method = Method::Bye;
                req.cseq_header_mut()
                    .and_then(|c| {
                        c.mut_seq(d.cseq.saturating_add(CSEQ_GAP))?
                            .mut_method(Method::Bye)
                            .map(|_| ())
                    })
                    .map_err(stack)?;
            }
        }
        req.body.clear();
        let dest = stored_destination(d)?;
        final_response(self, req, dest).await
    }

    /// ACKs and ends with BYE the answers nobody owns; ACKs failures to recovered INVITEs.
    pub(crate) async fn clean_orphans(self, mut orphans: mpsc::Receiver<Orphan>) {
        let mut seen: HashSet<String> = HashSet::new();
        let mut order: VecDeque<String> = VecDeque::new();
        let (mut window, mut in_window, mut dropped) = (tokio::time::Instant::now(), 0u32, 0u64);
        loop {
            let orphan = tokio::select! {
                _ = self.core.cancel.cancelled() => break,
                o = orphans.recv() => match o { Some(o) => o, None => break },
            };
            match orphan {
                Orphan::Answer(resp) => {
                    if seen.contains(&dialog_key(&resp)) {
                        // A retransmission: ACKed again (our ACK may have been lost).
                        let _ = self.ack_orphan_answer(&resp).await;
                        continue;
                    }
                    if window.elapsed() >= Duration::from_secs(1) {
                        if dropped > 0 {
                            warn!(
                                dropped,
                                "2xx for unknown dialogs over the rate limit, ignored"
                            );
                        }
                        (window, in_window, dropped) = (tokio::time::Instant::now(), 0, 0);
                    }
                    if in_window >= ORPHANS_PER_SECOND {
                        dropped += 1;
                        continue;
                    }
                    in_window += 1;
                    let Some(ack) = self.ack_orphan_answer(&resp).await else {
                        continue;
                    };
                    let id = dialog_key(&resp);
                    seen.insert(id.clone());
                    order.push_back(id);
                    if order.len() > ORPHANS_REMEMBERED
                        && let Some(old) = order.pop_front()
                    {
                        seen.remove(&old);
                    }
                    warn!(call_id = %call_id_of(&resp), "a 2xx for a dialog we do not have (answered after a restart or after we gave up): ACKed, ending it with BYE");
                    let ep = self.clone();
                    tokio::spawn(async move {
                        match ep.bye_after_ack(ack).await {
                            Ok(code) => info!(code, "orphan dialog ended"),
                            Err(e) => warn!(error = %e, "BYE of an orphan dialog failed"),
                        }
                    });
                }
                Orphan::Rejected {
                    response,
                    invite,
                    from,
                } => {
                    let inner = self.core.endpoint.inner.clone();
                    match inner.make_ack(&invite, &response) {
                        Ok(ack) => {
                            if let Err(e) = send_stateless(&self, ack, &from).await {
                                debug!(error = %e, "ACK of a recovered INVITE's failure");
                            }
                        }
                        Err(e) => debug!(error = %e, "cannot build the ACK"),
                    }
                }
            }
        }
    }

    /// Sends the ACK of an orphan 2xx (to its Contact, through its Record-Route); returns it.
    async fn ack_orphan_answer(&self, resp: &Response) -> Option<Request> {
        let inner = self.core.endpoint.inner.clone();
        // Only the response matters for a 2xx ACK of a dialog-creating INVITE: an empty INVITE
        // (no To tag) makes rsipstack take the route set from the response's Record-Route.
        let pseudo = Request {
            method: Method::Invite,
            uri: Uri::default(),
            version: rsipstack::sip::Version::V2,
            headers: Vec::<Header>::new().into(),
            body: Vec::new(),
        };
        let ack = match inner.make_ack(&pseudo, resp) {
            Ok(a) => a,
            Err(e) => {
                warn!(error = %e, call_id = %call_id_of(resp), "an orphan 2xx cannot be ACKed");
                return None;
            }
        };
        let dest = match SipAddr::try_from(&ack.destination()) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "an orphan 2xx has no usable Contact");
                return None;
            }
        };
        if let Err(e) = send_stateless(self, ack.clone(), &dest).await {
            warn!(error = %e, "ACK of an orphan 2xx not sent");
            return None;
        }
        Some(ack)
    }

    /// The BYE that follows an orphan 2xx's ACK (same dialog, next CSeq, new transaction).
    async fn bye_after_ack(&self, ack: Request) -> Result<u16, SipError> {
        let mut bye = ack;
        let dest = SipAddr::try_from(&bye.destination()).map_err(stack)?;
        let seq = bye.cseq_header().and_then(|c| c.seq()).map_err(stack)?;
        keep_dialog_headers(&mut bye);
        let transport = match dest.r#type {
            Some(rsipstack::sip::Transport::Tcp) => crate::core::Transport::Tcp,
            Some(rsipstack::sip::Transport::Tls) => crate::core::Transport::Tls,
            _ => crate::core::Transport::Udp,
        };
        let via = self
            .core
            .endpoint
            .inner
            .get_via(self.contact_addr(transport), None)
            .map_err(stack)?;
        bye.headers.push_front(Header::Via(via.into()));
        bye.method = Method::Bye;
        bye.cseq_header_mut()
            .and_then(|c| c.mut_seq(seq + 1)?.mut_method(Method::Bye).map(|_| ()))
            .map_err(stack)?;
        bye.body.clear();
        final_response(self, bye, dest).await
    }
}

/// Sends `req` in a client transaction and waits (bounded) for its final response.
async fn final_response(ep: &SipEndpoint, req: Request, dest: SipAddr) -> Result<u16, SipError> {
    let inner = ep.core.endpoint.inner.clone();
    let key = TransactionKey::from_request(&req, TransactionRole::Client).map_err(stack)?;
    let mut tx = Transaction::new_client(key, req, inner, None);
    tx.destination = Some(dest);
    tx.send().await.map_err(stack)?;
    let wait = async {
        while let Some(msg) = tx.receive().await {
            if let SipMessage::Response(r) = msg
                && r.status_code.kind() != StatusCodeKind::Provisional
            {
                return Ok(u16::from(r.status_code.clone()));
            }
        }
        Err(SipError::Stack("no final response".into()))
    };
    tokio::time::timeout(FINAL_RESPONSE_WAIT, wait)
        .await
        .map_err(|_| SipError::Stack("no final response in time".into()))?
}

/// Sends a request outside any transaction (an ACK).
async fn send_stateless(ep: &SipEndpoint, req: Request, dest: &SipAddr) -> Result<(), SipError> {
    let layer = &ep.core.endpoint.inner.transport_layer;
    let (conn, resolved) = layer.lookup(dest, None).await.map_err(stack)?;
    conn.send(req.into(), Some(&resolved)).await.map_err(stack)
}

/// Where a stored leg's requests go.
fn stored_destination(d: &LegDialog) -> Result<SipAddr, SipError> {
    let mut addr = SipAddr::try_from(
        &Uri::try_from(format!("sip:{}", d.destination).as_str()).map_err(stack)?,
    )
    .map_err(stack)?;
    addr.r#type = Some(to_rsip(d.transport));
    Ok(addr)
}

fn call_id_of(resp: &Response) -> String {
    resp.call_id_header()
        .map(|c| c.value().to_string())
        .unwrap_or_default()
}

fn dialog_key(resp: &Response) -> String {
    let to = resp
        .to_header()
        .ok()
        .and_then(|t| t.tag().ok().flatten())
        .map(|t| t.value().to_string())
        .unwrap_or_default();
    format!("{}/{to}", call_id_of(resp))
}
