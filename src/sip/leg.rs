//! Outbound SIP legs (carrier and bot): one INVITE dialog per leg, driven by one task.
//!
//! The task owns the rsipstack dialog and turns its state changes into [`LegEvent`]s; the
//! [`LegHandle`] only sends commands to it, so no lock is held across awaits and the caller's
//! state machine sees events strictly in order, always ending with [`LegEvent::Terminated`].

use rsipstack::dialog::authenticate::Credential;
use rsipstack::dialog::dialog::{DialogState, TerminatedReason};
use rsipstack::dialog::invitation::InviteOption;
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::prelude::HeadersExt as _;
use rsipstack::sip::{Header, Response, StatusCode, StatusCodeKind, Uri};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info, info_span, warn};

use super::dialog_router::LegStates;
use super::dns::TrunkHost;
use super::endpoint::{SipEndpoint, Transport};
use super::error::SipError;
use super::extensions::{Extensions, Negotiated};
use super::leg_types::Command;
pub use super::leg_types::{FailureKind, LegEvent, LegEvents, LegHandle, OutboundCall};

#[path = "leg_refresh.rs"]
mod refresh;
use refresh::RefreshNext;
#[path = "leg_in_dialog.rs"]
mod in_dialog;
#[path = "leg_linger.rs"]
mod linger;
use in_dialog::{refer, refer_notify_code, send_info};

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
    pub async fn place_call(&self, call: OutboundCall) -> Result<(LegHandle, LegEvents), SipError> {
        let (callee, caller, headers) = request_parts(&call)?;
        // Each configured proxy is checked here; a name is located (RFC 3263) by the leg's task.
        let mut hops = Vec::new();
        for (hp, t) in call.proxy.iter().chain(call.backup_proxy.iter()) {
            route_for(hp, *t)?;
            hops.push((hp.clone(), TrunkHost::parse(hp, *t, call.naptr)));
        }
        let contact = self.contact(&call, &hops)?;
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
        Ok(self.spawn_leg(call, call_id, base, hops))
    }

    /// Our Contact in the INVITE: over the first hop's transport, naming dialgate by the next
    /// hop's address family (an IPv6 trunk gets our IPv6).
    fn contact(&self, call: &OutboundCall, hops: &[(String, TrunkHost)]) -> Result<Uri, SipError> {
        let transport = match hops.first() {
            Some((_, h)) => h.transport,
            _ if call.request_uri.starts_with("sips:") => Transport::Tls,
            _ if call.request_uri.contains("transport=tcp") => Transport::Tcp,
            _ => Transport::Udp,
        };
        let hop = match &call.proxy {
            Some((hp, _)) => super::family::literal_ip(hp),
            None => super::family::literal_ip(&call.request_uri),
        };
        let contact_addr = self
            .contact_addr_for(transport, hop)
            .ok_or(SipError::Shutdown)?;
        Ok(Uri {
            scheme: Some(rsipstack::sip::Scheme::Sip),
            auth: Some(rsipstack::sip::Auth {
                user: call.from_user.clone(),
                password: None,
            }),
            host_with_port: contact_addr.addr,
            ..Default::default()
        })
    }

    /// Starts the leg's task on the INVITE `base` and returns the call's handle on it.
    fn spawn_leg(
        &self,
        call: OutboundCall,
        call_id: String,
        base: InviteOption,
        hops: Vec<(String, TrunkHost)>,
    ) -> (LegHandle, LegEvents) {
        let id = self.next_leg_id();
        let (cmd_tx, cmd_rx) = mpsc::channel(super::leg_types::COMMAND_BOUND);
        let end = tokio_util::sync::CancellationToken::new();
        let (ev_tx, ev_rx) = LegEvents::channel();
        let span = info_span!("sip_leg", conversation_id = %call.conversation_id, leg = id, call_id = %call_id);
        let ep = self.clone();
        // The leg's dialog state is journaled from its INVITE until its task ends.
        self.core.hook.register(&call_id, &call.conversation_id);
        let gone = call_id.clone();
        let leg_end = end.clone();
        let leg = LegTask {
            ep,
            states: self.core.router.register(&call_id),
            events: ev_tx,
            cmds: cmd_rx,
            end: leg_end,
            cancelled: false,
            ext: call.extensions,
            session: None,
            peer_update: false,
            sdp_offer: call.sdp_offer,
            tls: call.tls,
            early_answer: None,
            invite_key: None,
        };
        tokio::spawn(leg_task(leg, Box::new(base), hops, gone).instrument(span));
        let handle = LegHandle {
            id,
            call_id,
            cmd: cmd_tx,
            end,
        };
        (handle, ev_rx)
    }
}

/// The leg's task: the leg from its INVITE to its end, then `Terminated` (always the last event).
///
/// Tokio keeps a task's future in one allocation for the task's life, as large as its largest
/// await; dialling (DNS, TLS, the INVITE transactions and each attempt's options) is large and
/// over once the leg is up, so it is boxed (and the INVITE with it), leaving the answered leg
/// only its own state and the wait between its dialog's events (see `leg_future_size.rs`).
async fn leg_task(
    mut leg: LegTask,
    base: Box<InviteOption>,
    hops: Vec<(String, TrunkHost)>,
    call_id: String,
) {
    let hook = leg.ep.core.hook.clone();
    if let Some(dialog) = Box::pin(leg.dial(*base, hops)).await {
        leg.confirmed(dialog).await;
    }
    hook.unregister(&call_id);
    let _ = leg.events.send(Box::new(LegEvent::Terminated)).await;
}

/// rsipstack 0.7.14 does not fail an INVITE whose TCP/TLS connection is refused: it retries on
/// Timer A until Timer B (32 s) and reports a 408. To fail over promptly, a stream proxy is
/// probed with a plain TCP connect first (bounded: 3 s); a refusal is a transport error.
async fn probe_stream(target: Option<&Hop>) -> Result<(), String> {
    let Some(Hop {
        host_port,
        transport,
        ..
    }) = target
    else {
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

/// One place to send the INVITE: where, over what, and which name a TLS server there must prove.
struct Hop {
    /// `ip:port` of a located target, or the proxy as written.
    host_port: String,
    transport: Transport,
    /// SNI and the name the certificate must carry: the trunk's host as configured — for a
    /// domain located through NAPTR/SRV, the domain itself, never the SRV target's name nor the
    /// address (RFC 3263 §4, RFC 5922 §4: the server must be authoritative for the domain
    /// dialled; a DNS answer is not proof of that).
    tls_name: String,
}

struct LegTask {
    ep: SipEndpoint,
    /// This leg's dialog states (every attempt's), routed to it by Call-ID.
    states: LegStates,
    events: mpsc::Sender<Box<LegEvent>>,
    cmds: mpsc::Receiver<Box<Command>>,
    /// The call asked to end the leg (see `LegHandle::end`).
    end: tokio_util::sync::CancellationToken,
    cancelled: bool,
    /// Extensions of the next INVITE (changed by a 422 or a 420).
    ext: Extensions,
    /// The session timer as negotiated (RFC 4028).
    session: Option<Negotiated>,
    /// The peer's 2xx listed UPDATE in `Allow`: refreshes use UPDATE, else re-INVITE.
    peer_update: bool,
    /// Our SDP, sent again unchanged in a refresh re-INVITE.
    sdp_offer: String,
    /// The trunk's TLS verification settings (TLS trunks).
    tls: Option<super::tls_client::TrunkTlsSettings>,
    /// The SDP answer of a reliable provisional of the current attempt: it completed the
    /// offer/answer (RFC 3262 §5), so the 2xx may carry no SDP (PJSIP's does not).
    early_answer: Option<String>,
    /// The answered INVITE's client transaction, ended with the leg (see `leg_linger.rs`).
    invite_key: Option<rsipstack::transaction::key::TransactionKey>,
}

/// Outcome of one INVITE attempt.
enum Attempt {
    Answered(InviteDialog),
    /// Failed; `retry` says failover to the next proxy is allowed.
    Failed {
        code: Option<u16>,
        reason: String,
        kind: FailureKind,
        retry: bool,
        /// A 422 or 420 that a new INVITE with these extensions answers (same target).
        renegotiate: Option<Extensions>,
    },
}

impl LegTask {
    /// Before an INVITE to a stream proxy: a TLS trunk gets its verified connection (dialled
    /// now, so a refused handshake fails the attempt at once with its reason); other stream
    /// targets are probed with a TCP connect.
    async fn connect(&self, target: Option<&Hop>) -> Result<(), String> {
        match (target, &self.tls) {
            (Some(hop), Some(settings)) if hop.transport == Transport::Tls => {
                let core = &self.ep.core;
                core.tls_dialer
                    .ensure(
                        &core.endpoint.inner.transport_layer,
                        &core.cancel,
                        &hop.host_port,
                        &hop.tls_name,
                        settings,
                    )
                    .await
                    .map_err(|e| e.to_string())
            }
            _ => probe_stream(target).await,
        }
    }

    async fn emit(&self, ev: LegEvent) {
        // The receiver may be gone (caller lost interest); the leg still ends cleanly.
        let _ = self.events.send(Box::new(ev)).await;
    }

    /// The places to send the INVITE, in order: each proxy's targets (a literal as written, a
    /// name located by RFC 3263), the primary's before the backup's; `None` = no proxy (the
    /// Request-URI's host). `Err` is the event that ends the leg: no proxy could be located,
    /// or the leg was cancelled meanwhile.
    async fn locate(
        &mut self,
        hops: Vec<(String, TrunkHost)>,
    ) -> Result<Vec<Option<Hop>>, LegEvent> {
        if hops.is_empty() {
            return Ok(vec![None]);
        }
        let resolver = self.ep.dns();
        let mut out = Vec::new();
        let mut last_error = None;
        for (written, hop) in hops {
            if hop.is_literal() {
                out.push(Some(Hop {
                    host_port: written,
                    transport: hop.transport,
                    tls_name: hop.host.clone(),
                }));
                continue;
            }
            let resolving = resolver.resolve(&hop);
            tokio::pin!(resolving);
            let result = loop {
                tokio::select! {
                    r = &mut resolving => break r,
                    ended = next_cmd(&mut self.cmds, &self.end) => {
                        if !ended {
                            continue;
                        }
                        // Nothing was sent yet: there is nothing to CANCEL.
                        self.cancelled = true;
                        return Err(LegEvent::Failed {
                            code: None,
                            reason: "cancelled while locating the trunk".into(),
                            kind: FailureKind::Cancelled,
                        });
                    }
                }
            };
            match result {
                Ok(targets) => {
                    let list: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
                    info!(trunk = %hop, targets = ?list, "trunk located");
                    out.extend(targets.into_iter().map(|t| {
                        Some(Hop {
                            host_port: t.host_port(),
                            transport: t.transport,
                            tls_name: hop.host.clone(),
                        })
                    }));
                }
                Err(e) => {
                    warn!(trunk = %hop, error = %e, "trunk not located");
                    last_error = Some(e);
                }
            }
        }
        match (out.is_empty(), last_error) {
            (true, Some(e)) => Err(LegEvent::Failed {
                code: None,
                reason: e.to_string(),
                kind: e.failure_kind(),
            }),
            _ => Ok(out),
        }
    }

    /// From the INVITE to the answer: the answered dialog, or `None` once the leg failed (its
    /// failure already reported).
    async fn dial(
        &mut self,
        base: InviteOption,
        hops: Vec<(String, TrunkHost)>,
    ) -> Option<InviteDialog> {
        let targets = match self.locate(hops).await {
            Ok(t) => t,
            Err(failed) => {
                self.emit(failed).await;
                return None;
            }
        };
        let attempts: Vec<_> = targets
            .into_iter()
            .filter_map(|target| Some((self.invite_for(&base, target.as_ref())?, target)))
            .collect();
        let total = attempts.len();
        for (n, (opt, target)) in attempts.into_iter().enumerate() {
            let outcome = match self.connect(target.as_ref()).await {
                Err(reason) => Attempt::Failed {
                    code: None,
                    reason,
                    kind: FailureKind::Transport,
                    retry: true,
                    renegotiate: None,
                },
                Ok(()) => self.attempt_renegotiating(opt).await,
            };
            match outcome {
                Attempt::Answered(dialog) => return Some(dialog),
                Attempt::Failed {
                    code,
                    reason,
                    kind,
                    retry,
                    ..
                } => {
                    if retry && n + 1 < total && !self.cancelled {
                        let target = target
                            .as_ref()
                            .map(|h| format!("{} {}", h.transport, h.host_port));
                        warn!(?code, %reason, ?target, "trunk target failed, trying the next");
                        continue;
                    }
                    info!(?code, %reason, ?kind, "leg failed");
                    self.emit(LegEvent::Failed { code, reason, kind }).await;
                    return None;
                }
            }
        }
        None
    }

    /// The INVITE for one target: `base` routed to the target (none = the Request-URI's host),
    /// or `None` when the target is unusable (logged and skipped).
    fn invite_for(&self, base: &InviteOption, target: Option<&Hop>) -> Option<InviteOption> {
        let mut o = base.clone();
        let Some(Hop {
            host_port: hp,
            transport: t,
            ..
        }) = target
        else {
            return Some(o);
        };
        let Ok(route) = route_for(hp, *t) else {
            warn!(target = %hp, "unusable target skipped");
            return None;
        };
        o.route_set = vec![route];
        // rsipstack takes the Via's transport from `destination` or the Request-URI,
        // not from the preloaded Route: without this an INVITE sent over TLS or TCP
        // said `SIP/2.0/UDP` in its Via (a strict carrier refuses that). The
        // destination is the Route's own address, so nothing else changes.
        if *t != Transport::Udp
            && let Ok(sa) = hp.parse::<std::net::SocketAddr>()
        {
            o.destination = Some(rsipstack::transport::SipAddr {
                r#type: Some(super::endpoint::to_rsip(*t)),
                addr: sa.into(),
            });
        }
        // The Contact names the transport the INVITE goes over (NAPTR may pick another
        // one than the first proxy's) and dialgate by the target's address family.
        if let Some(addr) = self.ep.contact_addr_for(*t, super::family::literal_ip(hp)) {
            o.contact.host_with_port = addr.addr;
        }
        Some(o)
    }

    /// One target's INVITE, sent again with adjusted extensions after a 422 (RFC 4028 §7.4) or
    /// a 420 (RFC 3261 §8.1.3.5). Bounded: each retry changes the extensions, which only shrink
    /// or grow towards a fixed point (see `Extensions::retry_after`); at most 3.
    async fn attempt_renegotiating(&mut self, opt: InviteOption) -> Attempt {
        let mut outcome = self.attempt(opt.clone()).await;
        for _ in 0..3 {
            match outcome {
                Attempt::Failed {
                    renegotiate: Some(next),
                    code,
                    ..
                } if !self.cancelled => {
                    info!(?code, ?next, "retrying the INVITE with adjusted extensions");
                    self.ext = next;
                    outcome = self.attempt(opt.clone()).await;
                }
                _ => break,
            }
        }
        outcome
    }

    /// One INVITE transaction, until a final response.
    async fn attempt(&mut self, mut opt: InviteOption) -> Attempt {
        let mut headers = opt.headers.take().unwrap_or_default();
        headers.extend(self.ext.invite_headers());
        opt.headers = Some(headers);
        let dialogs = self.ep.core.dialogs.clone();
        let (dialog, mut join) = match dialogs.do_invite_async(opt, self.states.sender()) {
            Ok(v) => v,
            Err(e) => return transport_failure(e.to_string(), true),
        };
        // States of an earlier attempt's dialog (same Call-ID, another From tag) are not ours.
        let tag = dialog.id().local_tag;
        if self.cancelled {
            let _ = dialog.cancel().await;
        }
        self.early_answer = None;
        let mut provisional = false;
        let mut any_response = false;
        let result = loop {
            tokio::select! {
                biased;
                Some(st) = self.states.recv() => {
                    if st.id().local_tag == tag {
                        self.on_early_state(st, &mut provisional, &mut any_response).await;
                    }
                }
                ended = next_cmd(&mut self.cmds, &self.end), if !self.cancelled => {
                    if !ended {
                        continue;
                    }
                    self.cancelled = true;
                    let d = dialog.clone();
                    tokio::spawn(async move {
                        if let Err(e) = d.cancel().await { debug!(error = %e, "cancel"); }
                    });
                }
                r = &mut join => break r,
            }
        };
        // States sent before the final response (180 just before 200) are reported first.
        for st in self.states.flush().await {
            if st.id().local_tag == tag {
                self.on_early_state(st, &mut provisional, &mut any_response)
                    .await;
            }
        }
        let reason = match result {
            Ok(Ok((_id, Some(resp)))) if resp.status_code.kind() == StatusCodeKind::Successful => {
                return self.answered(resp, dialog).await;
            }
            Ok(Ok((_id, Some(resp)))) => {
                dialogs.remove_dialog(&dialog.id());
                return self.refused(&resp, provisional, any_response);
            }
            Ok(Ok((_id, None))) => "no final response".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        dialogs.remove_dialog(&dialog.id());
        transport_failure(reason, !provisional)
    }

    /// A 2xx: the leg is up, unless it raced our CANCEL (then rsipstack has ACKed and ended
    /// it with BYE).
    async fn answered(&mut self, resp: Response, dialog: InviteDialog) -> Attempt {
        let code = u16::from(resp.status_code.clone());
        if self.cancelled || matches!(dialog.state(), DialogState::Terminated(..)) {
            // rsipstack ACKed and BYE'd the 2xx that raced our CANCEL.
            self.ep.core.dialogs.remove_dialog(&dialog.id());
            return Attempt::Failed {
                code: Some(code),
                reason: "answer raced CANCEL; ended with BYE".into(),
                kind: FailureKind::Cancelled,
                retry: false,
                renegotiate: None,
            };
        }
        info!(code, "answered");
        let sdp = match self.early_answer.take() {
            Some(early) if resp.body.is_empty() => early,
            _ => body_string(&resp),
        };
        self.invite_key = linger::invite_key(&resp);
        self.emit(LegEvent::Answered { code, sdp }).await;
        if self.ext.session_timer.is_some() {
            self.session = self.ext.negotiated(&resp);
            self.peer_update = super::extensions::allows_update(&resp);
            info!(session = ?self.session, update = self.peer_update, "session timer");
            self.emit(LegEvent::SessionTimer(self.session)).await;
        }
        Attempt::Answered(dialog)
    }

    /// A final response other than 2xx: what kind of failure it is, and whether the next
    /// target may be tried (a 503 or 408 before any provisional response).
    fn refused(&self, resp: &Response, provisional: bool, any_response: bool) -> Attempt {
        let code = u16::from(resp.status_code.clone());
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
            renegotiate: self.ext.retry_after(resp),
        }
    }

    async fn on_early_state(&mut self, st: DialogState, provisional: &mut bool, any: &mut bool) {
        match st {
            DialogState::Trying(_) => *any = true,
            DialogState::Early(_, resp) => {
                *any = true;
                *provisional = true;
                let code = u16::from(resp.status_code.clone());
                let sdp = (!resp.body.is_empty()).then(|| body_string(&resp));
                if sdp.is_some() && super::extensions::is_reliable(&resp) {
                    self.early_answer.clone_from(&sdp);
                }
                self.emit(LegEvent::Provisional { code, sdp }).await;
            }
            other => debug!(state = %other, "early dialog state"),
        }
    }

    /// What the answered dialog reports: the peer's requests, answered; `true` once it ended.
    async fn on_dialog_state(&mut self, st: Option<DialogState>) -> bool {
        match st {
            None => return true,
            Some(DialogState::Terminated(_, reason)) => {
                if matches!(reason, TerminatedReason::UasBye) {
                    info!("remote BYE");
                    self.emit(LegEvent::RemoteBye).await;
                } else {
                    info!(?reason, "dialog terminated");
                }
                return true;
            }
            Some(DialogState::Updated(_, req, handle)) => {
                self.on_peer_request(req, handle).await;
            }
            Some(DialogState::Notify(_, req, h)) => {
                let _ = h.reply(StatusCode::OK).await;
                if let Some(code) = refer_notify_code(&req) {
                    info!(code, "REFER progress");
                    self.emit(LegEvent::ReferNotify { code }).await;
                }
            }
            Some(DialogState::Info(_, _, h))
            | Some(DialogState::Options(_, _, h))
            | Some(DialogState::Message(_, _, h)) => {
                let _ = h.reply(StatusCode::OK).await;
            }
            Some(DialogState::Refer(_, _, h)) => {
                // Transfers are call policy we do not support: refuse.
                let _ = h.reply(StatusCode::Forbidden).await;
            }
            Some(other) => debug!(state = %other, "dialog state"),
        }
        false
    }

    /// After answer: serve in-dialog requests until either side hangs up.
    async fn confirmed(&mut self, dialog: InviteDialog) {
        let dialogs = self.ep.core.dialogs.clone();
        let tag = dialog.id().local_tag;
        // Our refresh runs beside the loop (a transaction may take up to 32 s); its outcome
        // comes back here. At most one at a time.
        let mut refresh = None;
        loop {
            tokio::select! {
                // Commands before the end: an INFO queued before the hang-up still goes out.
                biased;
                st = self.states.recv() => {
                    if st.as_ref().is_some_and(|st| st.id().local_tag != tag) {
                        continue;
                    }
                    if Box::pin(self.on_dialog_state(st)).await {
                        break;
                    }
                }
                outcome = LegTask::refresh_done(&mut refresh) => {
                    // A refresh task that ended without an outcome: the expiry decides.
                    let Some(outcome) = outcome else { continue };
                    match self.on_refresh_outcome(outcome) {
                        RefreshNext::Done(session) => {
                            self.session = session;
                            self.emit(LegEvent::SessionTimer(session)).await;
                        }
                        RefreshNext::Again => {
                            refresh = self.start_refresh(&dialog);
                        }
                        RefreshNext::Keep => {}
                        RefreshNext::End { code, reason } => {
                            // RFC 4028 §10: a refresh answered 481 or timed out ends the session.
                            warn!(?code, %reason, "session refresh failed; ending the dialog");
                            if let Err(e) = Box::pin(dialog.bye()).await {
                                debug!(error = %e, "BYE after failed refresh");
                            }
                            self.emit(LegEvent::Failed { code, reason, kind: FailureKind::Response }).await;
                            break;
                        }
                    }
                }
                Some(cmd) = self.cmds.recv() => match *cmd {
                    Command::Refer { refer_to, referred_by, headers } => {
                        let ev = Box::pin(refer(&dialog, &refer_to, &referred_by, headers)).await;
                        self.emit(ev).await;
                    }
                    Command::RefreshSession => {
                        debug!("session refresh asked");
                        if refresh.is_none() {
                            refresh = self.start_refresh(&dialog);
                        }
                    }
                    Command::Info { content_type, body } => send_info(&dialog, content_type, body),
                },
                _ = self.end.cancelled() => {
                    if let Err(e) = Box::pin(dialog.bye()).await {
                        warn!(error = %e, "BYE failed");
                    }
                    break;
                }
            }
        }
        dialogs.remove_dialog(&dialog.id());
        linger::end_accepted(&self.ep, self.invite_key.take());
    }
}

/// The INVITE's Request-URI, From URI and extra headers, checked (a header that would break
/// the message is refused, not sent).
fn request_parts(call: &OutboundCall) -> Result<(Uri, Uri, Vec<Header>), SipError> {
    let callee = Uri::try_from(call.request_uri.as_str())
        .map_err(|_| invalid("request_uri", &call.request_uri))?;
    let caller_text = format!("sip:{}@{}", call.from_user, call.from_host);
    let caller = Uri::try_from(caller_text.as_str()).map_err(|_| invalid("from", &caller_text))?;
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
    Ok((callee, caller, headers))
}

/// An attempt that ended without a final response (not sent, no answer, connection lost).
fn transport_failure(reason: String, retry: bool) -> Attempt {
    Attempt::Failed {
        code: None,
        reason,
        kind: FailureKind::Transport,
        retry,
        renegotiate: None,
    }
}

/// Before the answer: `true` once the call ends the leg; `false` for a command, which has no
/// dialog to go on yet and is dropped (a refresh, an INFO, a REFER).
async fn next_cmd(
    cmds: &mut mpsc::Receiver<Box<Command>>,
    end: &tokio_util::sync::CancellationToken,
) -> bool {
    tokio::select! {
        biased;
        _ = end.cancelled() => true,
        cmd = cmds.recv() => match cmd {
            Some(cmd) => {
                debug!(?cmd, "command before the answer: nothing to send it on");
                false
            }
            // Every handle is gone: only the end is left to wait for.
            None => {
                end.cancelled().await;
                true
            }
        },
    }
}

#[cfg(test)]
#[path = "leg_future_size.rs"]
mod future_size;
