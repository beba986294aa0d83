//! Outbound SIP legs (carrier and bot): one INVITE dialog per leg, driven by one task.
//!
//! The task owns the rsipstack dialog and turns its state changes into [`LegEvent`]s; the
//! [`LegHandle`] only sends commands to it, so no lock is held across awaits and the caller's
//! state machine sees events strictly in order, always ending with [`LegEvent::Terminated`].

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver, TerminatedReason};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt as _;
use rsipstack::sip::{Header, Response, StatusCode, StatusCodeKind, Uri};
use tokio::sync::{mpsc, oneshot};
use tracing::{Instrument, debug, info, info_span, warn};

use super::endpoint::{SipEndpoint, Transport};
use super::error::SipError;
use super::leg_types::Command;
pub use super::leg_types::{FailureKind, LegEvent, LegHandle, OutboundCall};

fn invalid(what: &'static str, value: &str) -> SipError {
    SipError::InvalidInput {
        what,
        value: value.to_string(),
    }
}

fn route_for(
    host_port: &str,
    transport: Transport,
) -> Result<rsipstack::sip::typed::Route, SipError> {
    let tp = match transport {
        Transport::Udp => String::new(),
        t => format!(";transport={}", t.as_str()),
    };
    let scheme = if transport == Transport::Tls {
        "sips"
    } else {
        "sip"
    };
    let text = format!("{scheme}:{host_port};lr{tp}");
    let uri = Uri::try_from(text.as_str()).map_err(|_| invalid("proxy", host_port))?;
    Ok(rsipstack::sip::typed::Route {
        display_name: None,
        uri,
        params: vec![],
    })
}

fn body_string(resp: &Response) -> String {
    String::from_utf8_lossy(&resp.body).into_owned()
}

impl SipEndpoint {
    /// Place an outbound INVITE. Events arrive on the receiver until [`LegEvent::Terminated`].
    pub async fn place_call(
        &self,
        call: OutboundCall,
    ) -> Result<(LegHandle, mpsc::Receiver<LegEvent>), SipError> {
        let callee = Uri::try_from(call.request_uri.as_str())
            .map_err(|_| invalid("request_uri", &call.request_uri))?;
        let caller_text = format!("sip:{}@{}", call.from_user, call.from_host);
        let caller =
            Uri::try_from(caller_text.as_str()).map_err(|_| invalid("from", &caller_text))?;
        if !call.to_uri.is_empty() && call.to_uri != call.request_uri {
            debug!(to = %call.to_uri, "To differs from Request-URI; rsipstack writes To = R-URI");
        }
        let mut headers = Vec::with_capacity(call.headers.len() + 1);
        for (name, value) in &call.headers {
            if name.is_empty() || name.contains([':', '\r', '\n']) || value.contains(['\r', '\n']) {
                return Err(invalid("header", name));
            }
            headers.push(Header::Other(name.clone(), value.clone()));
        }
        headers.push(Header::ContentType("application/sdp".into()));
        let mut routes = Vec::new();
        if let Some((hp, t)) = &call.proxy {
            routes.push(Some((route_for(hp, *t)?, hp.clone(), *t)));
        }
        if let Some((hp, t)) = &call.backup_proxy {
            routes.push(Some((route_for(hp, *t)?, hp.clone(), *t)));
        }
        if routes.is_empty() {
            routes.push(None);
        }
        let transport = match routes.first() {
            Some(Some((_, _, t))) => *t,
            _ if call.request_uri.starts_with("sips:") => Transport::Tls,
            _ if call.request_uri.contains("transport=tcp") => Transport::Tcp,
            _ => Transport::Udp,
        };
        let contact_addr = self.contact_addr(transport).ok_or(SipError::Shutdown)?;
        let contact = Uri {
            scheme: Some(rsipstack::sip::Scheme::Sip),
            auth: Some(rsipstack::sip::Auth {
                user: call.from_user.clone(),
                password: None,
            }),
            host_with_port: contact_addr.addr,
            ..Default::default()
        };
        let call_id = call
            .call_id
            .clone()
            .unwrap_or_else(|| format!("{}@dialgate", uuid::Uuid::new_v4()));
        let base = InviteOption {
            caller_display_name: call.from_display.clone(),
            caller,
            callee,
            content_type: Some("application/sdp".into()),
            offer: Some(call.sdp_offer.clone().into_bytes()),
            contact,
            credential: call.credentials.as_ref().map(|(u, p)| Credential {
                username: u.clone(),
                password: p.clone(),
                realm: None,
                auth_username: None,
            }),
            headers: Some(headers),
            call_id: Some(call_id.clone()),
            ..Default::default()
        };
        let id = self.next_leg_id();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::channel(32);
        let span = info_span!("sip_leg", conversation_id = %call.conversation_id, leg = id, call_id = %call_id);
        let attempts: Vec<(InviteOption, Option<(String, Transport)>)> = routes
            .into_iter()
            .map(|r| {
                let mut o = base.clone();
                let target = r.map(|(route, hp, t)| {
                    o.route_set = vec![route];
                    (hp, t)
                });
                (o, target)
            })
            .collect();
        let ep = self.clone();
        // The leg's dialog state is journaled from its INVITE until its task ends.
        self.core.hook.register(&call_id, &call.conversation_id);
        let gone = call_id.clone();
        tokio::spawn(
            async move {
                let hook = ep.core.hook.clone();
                let mut leg = LegTask {
                    ep,
                    events: ev_tx,
                    cmds: cmd_rx,
                    cancelled: false,
                };
                leg.run(attempts).await;
                hook.unregister(&gone);
                let _ = leg.events.send(LegEvent::Terminated).await;
            }
            .instrument(span),
        );
        Ok((
            LegHandle {
                id,
                call_id,
                cmd: cmd_tx,
            },
            ev_rx,
        ))
    }
}

/// rsipstack 0.7.14 does not fail an INVITE whose TCP/TLS connection is refused: it retries on
/// Timer A until Timer B (32 s) and reports a 408. To fail over promptly, a stream proxy is
/// probed with a plain TCP connect first (bounded: 3 s); a refusal is a transport error.
async fn probe_stream(target: Option<&(String, Transport)>) -> Result<(), String> {
    let Some((host_port, transport)) = target else {
        return Ok(());
    };
    if *transport == Transport::Udp {
        return Ok(());
    }
    let connect = tokio::net::TcpStream::connect(host_port.as_str());
    match tokio::time::timeout(std::time::Duration::from_secs(3), connect).await {
        Ok(Ok(_stream)) => Ok(()),
        Ok(Err(e)) => Err(format!("connect {host_port}: {e}")),
        Err(_) => Err(format!("connect {host_port}: timed out")),
    }
}

struct LegTask {
    ep: SipEndpoint,
    events: mpsc::Sender<LegEvent>,
    cmds: mpsc::UnboundedReceiver<Command>,
    cancelled: bool,
}

/// Outcome of one INVITE attempt.
enum Attempt {
    Answered(InviteDialog, DialogStateReceiver),
    /// Failed; `retry` says failover to the next proxy is allowed.
    Failed {
        code: Option<u16>,
        reason: String,
        kind: FailureKind,
        retry: bool,
    },
}

impl LegTask {
    async fn emit(&self, ev: LegEvent) {
        // The receiver may be gone (caller lost interest); the leg still ends cleanly.
        let _ = self.events.send(ev).await;
    }

    async fn run(&mut self, attempts: Vec<(InviteOption, Option<(String, Transport)>)>) {
        let total = attempts.len();
        for (n, (opt, target)) in attempts.into_iter().enumerate() {
            let outcome = match probe_stream(target.as_ref()).await {
                Err(reason) => Attempt::Failed {
                    code: None,
                    reason,
                    kind: FailureKind::Transport,
                    retry: true,
                },
                Ok(()) => self.attempt(opt).await,
            };
            match outcome {
                Attempt::Answered(dialog, states) => {
                    self.confirmed(dialog, states).await;
                    return;
                }
                Attempt::Failed {
                    code,
                    reason,
                    kind,
                    retry,
                } => {
                    if retry && n + 1 < total && !self.cancelled {
                        warn!(?code, %reason, "primary proxy failed, trying backup");
                        continue;
                    }
                    info!(?code, %reason, ?kind, "leg failed");
                    self.emit(LegEvent::Failed { code, reason, kind }).await;
                    return;
                }
            }
        }
    }

    /// One INVITE transaction, until a final response.
    async fn attempt(&mut self, opt: InviteOption) -> Attempt {
        let dialogs = self.ep.core.dialogs.clone();
        let (state_tx, mut states) = dialogs.new_dialog_state_channel();
        let (dialog, mut join) = match dialogs.do_invite_async(opt, state_tx) {
            Ok(v) => v,
            Err(e) => {
                return Attempt::Failed {
                    code: None,
                    reason: e.to_string(),
                    kind: FailureKind::Transport,
                    retry: true,
                };
            }
        };
        if self.cancelled {
            let _ = dialog.cancel().await;
        }
        let mut provisional = false;
        let mut any_response = false;
        let result = loop {
            tokio::select! {
                biased;
                Some(st) = states.recv() => {
                    self.on_early_state(st, &mut provisional, &mut any_response).await;
                }
                Some(cmd) = self.cmds.recv() => {
                    debug!(?cmd, "command while calling");
                    self.cancelled = true;
                    let d = dialog.clone();
                    tokio::spawn(async move {
                        if let Err(e) = d.cancel().await { debug!(error = %e, "cancel"); }
                    });
                }
                r = &mut join => break r,
            }
        };
        // States queued before the final response (180 just before 200) are reported first.
        while let Ok(st) = states.try_recv() {
            self.on_early_state(st, &mut provisional, &mut any_response)
                .await;
        }
        let resp = match result {
            Ok(Ok((_id, Some(resp)))) => resp,
            Ok(Ok((_id, None))) => {
                dialogs.remove_dialog(&dialog.id());
                return Attempt::Failed {
                    code: None,
                    reason: "no final response".into(),
                    kind: FailureKind::Transport,
                    retry: !provisional,
                };
            }
            Ok(Err(e)) => {
                dialogs.remove_dialog(&dialog.id());
                return Attempt::Failed {
                    code: None,
                    reason: e.to_string(),
                    kind: FailureKind::Transport,
                    retry: !provisional,
                };
            }
            Err(e) => {
                dialogs.remove_dialog(&dialog.id());
                return Attempt::Failed {
                    code: None,
                    reason: e.to_string(),
                    kind: FailureKind::Transport,
                    retry: !provisional,
                };
            }
        };
        let code = u16::from(resp.status_code.clone());
        if resp.status_code.kind() == StatusCodeKind::Successful {
            if self.cancelled || matches!(dialog.state(), DialogState::Terminated(..)) {
                // rsipstack ACKed and BYE'd the 2xx that raced our CANCEL.
                dialogs.remove_dialog(&dialog.id());
                return Attempt::Failed {
                    code: Some(code),
                    reason: "answer raced CANCEL; ended with BYE".into(),
                    kind: FailureKind::Cancelled,
                    retry: false,
                };
            }
            info!(code, "answered");
            self.emit(LegEvent::Answered {
                code,
                sdp: body_string(&resp),
            })
            .await;
            return Attempt::Answered(dialog, states);
        }
        dialogs.remove_dialog(&dialog.id());
        let reason = resp.reason_phrase().unwrap_or_default().to_string();
        // Timer B synthesises a 408 from our own request: no response was ever seen, no To tag.
        let synthetic = code == 408
            && !any_response
            && resp
                .to_header()
                .ok()
                .and_then(|t| t.tag().ok().flatten())
                .is_none();
        let kind = if synthetic {
            FailureKind::Timeout
        } else if self.cancelled && code == 487 {
            FailureKind::Cancelled
        } else {
            FailureKind::Response
        };
        let retry = !provisional && !self.cancelled && matches!(code, 503 | 408);
        Attempt::Failed {
            code: Some(code),
            reason,
            kind,
            retry,
        }
    }

    async fn on_early_state(&self, st: DialogState, provisional: &mut bool, any: &mut bool) {
        match st {
            DialogState::Trying(_) => *any = true,
            DialogState::Early(_, resp) => {
                *any = true;
                *provisional = true;
                let code = u16::from(resp.status_code.clone());
                let sdp = (!resp.body.is_empty()).then(|| body_string(&resp));
                self.emit(LegEvent::Provisional { code, sdp }).await;
            }
            other => debug!(state = %other, "early dialog state"),
        }
    }

    /// After answer: serve in-dialog requests until either side hangs up.
    async fn confirmed(&mut self, dialog: InviteDialog, mut states: DialogStateReceiver) {
        let dialogs = self.ep.core.dialogs.clone();
        loop {
            tokio::select! {
                st = states.recv() => match st {
                    None => break,
                    Some(DialogState::Terminated(_, reason)) => {
                        if matches!(reason, TerminatedReason::UasBye) {
                            info!("remote BYE");
                            self.emit(LegEvent::RemoteBye).await;
                        } else {
                            info!(?reason, "dialog terminated");
                        }
                        break;
                    }
                    Some(DialogState::Updated(_, req, handle)) => {
                        let sdp = String::from_utf8_lossy(&req.body).into_owned();
                        let (tx, rx) = oneshot::channel();
                        let method = req.method;
                        self.emit(LegEvent::ReInvite { sdp, reply: tx }).await;
                        tokio::spawn(async move {
                            let r = match rx.await {
                                Ok(Some(answer)) => handle.respond(
                                    StatusCode::OK,
                                    Some(vec![Header::ContentType("application/sdp".into())]),
                                    Some(answer.into_bytes()),
                                ).await,
                                _ => handle.reply(StatusCode::NotAcceptableHere).await,
                            };
                            if r.is_err() { debug!(%method, "re-INVITE reply dropped"); }
                        });
                    }
                    Some(DialogState::Info(_, _, h)) | Some(DialogState::Options(_, _, h))
                    | Some(DialogState::Notify(_, _, h)) | Some(DialogState::Message(_, _, h)) => {
                        let _ = h.reply(StatusCode::OK).await;
                    }
                    Some(DialogState::Refer(_, _, h)) => {
                        // Transfers are call policy we do not support: refuse.
                        let _ = h.reply(StatusCode::Forbidden).await;
                    }
                    Some(other) => debug!(state = %other, "dialog state"),
                },
                Some(cmd) = self.cmds.recv() => {
                    debug!(?cmd, "command while confirmed");
                    if let Err(e) = dialog.bye().await {
                        warn!(error = %e, "BYE failed");
                    }
                    break;
                }
            }
        }
        dialogs.remove_dialog(&dialog.id());
    }
}
