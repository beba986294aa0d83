//! Carrying out the machine's actions.

use super::{Actor, LegSlot};
use crate::call::legs::{self, LegSide};
use crate::call::machine::{BotEvent, FailureKind, Input, Output, TerminalReport};
use crate::call::notify::StatusNote;
use crate::media::Leg;
use crate::store::CallStatus as StoredStatus;
use serde_json::{Value, json};

impl Actor {
    /// Carries out one output; a failure comes back as the machine's next input.
    pub(super) async fn execute(&mut self, output: Output) -> Option<Input> {
        match output {
            Output::OpenBotConversation => self.open_bot_conversation().await,
            Output::RefreshBotSession => {
                if let Err(e) = self.engine.deps.outbox.bot_refresh(&self.id).await {
                    tracing::error!(error = %e, "cannot queue the bot refresh");
                }
            }
            Output::BotEvent(ev) => self.bot_event(ev).await,
            Output::SendCarrierInvite => return self.send_carrier_invite().await,
            Output::CancelCarrier => self.leg_handle(LegSide::Carrier, |h| h.cancel()),
            Output::ByeCarrier => self.leg_handle(LegSide::Carrier, |h| h.hangup()),
            Output::SendBotInvite => return self.send_bot_invite().await,
            Output::CancelBot => self.leg_handle(LegSide::Bot, |h| h.cancel()),
            Output::ByeBot => self.leg_handle(LegSide::Bot, |h| h.hangup()),
            Output::AnswerReInvite { side, accept } => self.answer_reinvite(side, accept),
            Output::StartMedia => self.start_media().await,
            Output::StartAmd { mode, transcripts } => self.start_amd(mode, transcripts).await,
            Output::StartRecognition { to_bot } => return self.start_recognition(to_bot).await,
            Output::RecognitionToBot(on) => self.recognition_to_bot(on).await,
            Output::StopRecognition => {
                self.stt = None;
                self.stt_results = None;
            }
            Output::BridgeMedia => self.bridge_media(),
            Output::Play(prompt) => return self.play(prompt).await,
            Output::AbortPrompts => {
                if let Some(p) = &self.player
                    && let Err(e) = p.abort()
                {
                    tracing::warn!(error = %e, "cannot abort the prompts");
                }
            }
            Output::StopMedia => self.stop_media().await,
            Output::NotifyAnswered => {
                self.answered_at_ms = Some(crate::store::now_ms());
                self.notify("answered", None, None, Some(200), None).await;
            }
            Output::Timeline { kind, note } => {
                tracing::info!(%kind, "{note}");
                self.timeline(kind, &note).await;
            }
            Output::BotDisconnect {
                reason,
                reason_code,
            } => {
                // A WebSocket bot hears the end over its socket (`session.end` / `stop`).
                self.ws_hangup(reason_code.as_str(), &reason);
                // Written by `terminal` (it follows at once) in the same transaction as the
                // terminal state and notification.
                if self.bot_events {
                    self.pending_disconnect = Some(crate::webhook::disconnect_body(
                        &self.id,
                        &reason,
                        reason_code.as_str(),
                    ));
                }
            }
            Output::Terminal(report) => self.terminal(report).await,
            Output::Transfer(step) => return self.transfer_step(step).await,
            Output::StartEarlyMedia => self.start_early_media().await,
            Output::RefreshCarrierSession => {
                self.leg_handle(LegSide::Carrier, |h| h.refresh_session())
            }
            Output::Recording(op) => self.recording(op).await,
            Output::CarrierInfo { content_type, body } => self.leg_handle(LegSide::Carrier, |h| {
                h.info(content_type, body.into_bytes())
            }),
            Output::BotHearsEarlyMedia => self.bot_hears_early_media(),
            Output::RefreshBotLegSession => self.leg_handle(LegSide::Bot, |h| h.refresh_session()),
        }
        None
    }

    fn leg_handle(&self, side: LegSide, f: impl FnOnce(&crate::sip::LegHandle)) {
        let slot = match side {
            LegSide::Carrier => &self.carrier,
            LegSide::Bot => &self.bot_leg,
        };
        if let Some(h) = &slot.handle {
            f(h);
        }
    }

    async fn open_bot_conversation(&mut self) {
        if self.open_ws_session() {
            return;
        }
        if let Some(url) = self.bot.events_url.clone()
            && let Err(e) = self
                .engine
                .deps
                .outbox
                .bot_open(&self.id, &url, &self.bot.name)
                .await
        {
            tracing::error!(error = %e, "cannot queue the bot conversation");
        }
    }

    fn bridge_media(&self) {
        let remote = self
            .bot_leg
            .negotiated
            .as_ref()
            .and_then(legs::remote_media);
        if let (Some(m), Some(r)) = (&self.media, remote)
            && let Err(e) = m.set_remote(Leg::Bot, r)
        {
            tracing::error!(error = %e, "cannot bridge the bot leg");
        }
    }

    async fn start_amd(&mut self, mode: crate::core::AmdMode, transcripts: bool) {
        let mut det = crate::amd::Detector::new(self.bot.amd.clone());
        // Only when the recognition session really runs: without it the detector would hold a
        // long greeting's decision for a transcript that never comes.
        if transcripts && self.stt.is_some() {
            det.expect_transcripts();
        }
        self.amd = Some(Box::new(det));
        self.ensure_tap();
        let note = format!("machine detection started ({mode:?})");
        self.timeline("amd", &note).await;
    }

    async fn notify(
        &self,
        status: &str,
        reason: Option<&str>,
        reason_code: Option<&str>,
        sip_code: Option<u16>,
        duration: Option<u64>,
    ) {
        let Some((url, body)) = self.note(status, reason, reason_code, sip_code, duration) else {
            return;
        };
        if let Err(e) = self
            .engine
            .deps
            .outbox
            .notify_dialer(&self.id, &url, body)
            .await
        {
            tracing::error!(error = %e, "cannot queue the {status} notification");
        }
    }

    /// The dialer's notification `(notifyUrl, body)`; `None` without a `notifyUrl`.
    fn note(
        &self,
        status: &str,
        reason: Option<&str>,
        reason_code: Option<&str>,
        sip_code: Option<u16>,
        duration: Option<u64>,
    ) -> Option<(String, Value)> {
        let url = self.call.request.notify_url.as_deref()?;
        let amd = self.machine.amd().map(|a| a.result.as_str());
        let note = StatusNote {
            conversation_id: &self.id,
            status,
            reason,
            reason_code,
            sip_code,
            machine_detection: amd,
            duration_seconds: duration,
        };
        Some((url.to_owned(), note.body()))
    }

    /// The carrier INVITE on the route the call was accepted with, and where it goes.
    fn carrier_invite(&self, offer: String) -> Option<CarrierInvite> {
        let cfg = &self.call.config.config;
        let route = self.call.route.resolve(cfg)?;
        // The caller ID was worked out with the route when the call was created.
        let call = legs::carrier_call(
            &self.id,
            &self.call.request,
            &route,
            &self.caller,
            self.engine
                .public_ip_for(route.connection.address.host.parse().ok()),
            offer,
        );
        Some(CarrierInvite {
            call,
            latching: crate::call::engine::latch_mode(
                route
                    .connection
                    .rtp_latching
                    .unwrap_or(cfg.server.rtp.latching),
            ),
            connection: route.connection.id.clone(),
            rule: route.rule.to_owned(),
            srtp: route.connection.srtp,
        })
    }

    /// The Live Hub start-event parameters.
    fn start_parameters(&self) -> Value {
        let req = &self.call.request;
        let (callee, callee_host) = match &req.target {
            crate::core::Target::Tel(n) => {
                (n.clone(), legs::host_port(&self.trunk_address).to_owned())
            }
            crate::core::Target::Sip(u) => {
                let rest = u.trim_start_matches("sips:").trim_start_matches("sip:");
                let (user, host) = rest.split_once('@').unwrap_or(("", rest));
                (
                    user.to_owned(),
                    host.split([';', '?']).next().unwrap_or(host).to_owned(),
                )
            }
        };
        json!({
            "vaigConversationId": self.id,
            "callee": callee,
            "calleeHost": callee_host,
            "caller": self.caller,
            "callerHost": req.caller_host.clone().unwrap_or_else(|| self.engine.public_ip().to_string()),
            "callerDisplayName": req.caller_display_name,
            "outboundTarget": req.target.display(),
            "dialoutMetadata": req.metadata,
        })
    }

    async fn bot_event(&mut self, ev: BotEvent) {
        if !self.bot_events && self.ws.is_none() {
            return;
        }
        let activity = match &ev {
            BotEvent::DialoutInitiated => {
                // Sent before the INVITE exists: the caller and trunk it will use were worked out
                // with the route when the call was created, so the parameters are start's
                // (DESIGN §1.2).
                json!({"type": "event", "name": "dialoutInitiated", "parameters": self.start_parameters()})
            }
            BotEvent::Start => {
                json!({"type": "event", "name": "start", "parameters": self.start_parameters()})
            }
            BotEvent::MachineDetection { value } => {
                json!({"type": "event", "name": "machineDetection", "value": value.as_str(), "parameters": {"result": value.as_str()}})
            }
            BotEvent::Beep => json!({"type": "event", "name": "beep"}),
            BotEvent::PlayFinished => json!({"type": "event", "name": "playFinished"}),
            BotEvent::PlayInterrupted => {
                json!({"type": "event", "name": "playFinished", "parameters": {"interrupted": true}})
            }
            BotEvent::PlayUrlFailed { url, reason } => {
                json!({"type": "event", "name": "playUrlFailed", "value": url, "parameters": {"reason": reason}})
            }
            BotEvent::Dtmf { digit } => {
                json!({"type": "event", "name": "DTMF", "value": digit.to_string()})
            }
            BotEvent::Message { text, confidence } => {
                json!({"type": "message", "text": text, "parameters": {"confidence": confidence}})
            }
            BotEvent::TransferStatus {
                answered,
                reason_code,
                sip_code,
            } => json!({"type": "event", "name": "transferStatus",
                "value": if *answered { "answered" } else { "failed" },
                "parameters": {"reasonCode": reason_code, "sipCode": sip_code}}),
        };
        if self.ws_bot_event(&ev, &activity) {
            return;
        }
        if let Err(e) = self
            .engine
            .deps
            .outbox
            .bot_activity(&self.id, activity)
            .await
        {
            tracing::error!(error = %e, "cannot queue a bot event");
        }
    }

    async fn send_carrier_invite(&mut self) -> Option<Input> {
        // The route first: each leg's relay socket is of its peer's family (IPv4 or IPv6).
        let Some(mut inv) = self.carrier_invite(String::new()) else {
            let reason = "no routing rule matches any more".to_owned();
            return Some(carrier_failed(FailureKind::Internal, reason));
        };
        let carrier_ip = inv
            .call
            .proxy
            .as_ref()
            .and_then(|(hp, _)| crate::sip::family::literal_ip(hp));
        let ips = [self.engine.public_ip_for(carrier_ip), self.bot_leg_ip()];
        let media = match self.engine.media.create_session_on(&self.id, ips) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "no media session for the call");
                let reason = format!("dialgate could not allocate media: {e}");
                return Some(carrier_failed(FailureKind::Internal, reason));
            }
        };
        let session = rand::random::<u32>() as u64;
        let offer = self.offer_for(&media, Leg::Carrier, session, 1);
        self.media_events = media.events();
        self.media = Some(media);
        inv.call.sdp_offer = offer;
        let CarrierInvite {
            call: mut out,
            latching,
            connection,
            rule,
            srtp,
        } = inv;
        out.sdp_offer = self.secure_offer(srtp, &out.sdp_offer);
        if let Some(m) = &self.media
            && let Err(e) = m.set_latching(Leg::Carrier, latching)
        {
            tracing::warn!(error = %e, "cannot set the carrier leg's RTP latching");
        }
        tracing::info!(%rule, trunk = %connection, uri = %out.request_uri, "dialing");
        let note = format!(
            "INVITE {} via {} (rule {})",
            out.request_uri, connection, rule
        );
        self.timeline("invite", &note).await;
        match self.engine.sip.place_call(out).await {
            Ok((h, rx)) => {
                self.carrier = LegSlot::placed(h, rx, session);
                None
            }
            Err(e) => {
                let reason = format!("cannot send the INVITE: {e}");
                Some(carrier_failed(FailureKind::Transport, reason))
            }
        }
    }

    /// dialgate's address towards the bot leg: of the SIP bot's family (its `sip_uri`), else the
    /// primary one (text and WebSocket bots' audio stays on dialgate's own sockets).
    fn bot_leg_ip(&self) -> std::net::IpAddr {
        let peer = self
            .bot
            .sip_uri
            .as_deref()
            .and_then(crate::sip::family::literal_ip);
        self.engine.public_ip_for(peer)
    }

    /// Our SDP offer for one leg: the relay's address and port on that side only.
    fn offer_for(
        &self,
        media: &crate::media::MediaSession,
        leg: Leg,
        session_id: u64,
        version: u64,
    ) -> String {
        let local = media.local_rtp_addr(leg);
        crate::sip::sdp::offer(&crate::sip::sdp::LocalSdp {
            address: self.engine.public_ip_for(Some(local.ip())),
            port: local.port(),
            session_id,
            version,
        })
    }

    async fn send_bot_invite(&mut self) -> Option<Input> {
        if self.ws.is_some() {
            return self.start_ws_media().await;
        }
        let Some(sip_uri) = self.bot.sip_uri.clone() else {
            return self.start_text_bot().await;
        };
        let media = self.media.as_ref()?;
        let session = rand::random::<u32>() as u64;
        let offer = self.offer_for(media, Leg::Bot, session, 1);
        let mut out = legs::bot_call(
            &self.id,
            &self.call.request,
            &sip_uri,
            &self.caller,
            self.bot_leg_ip(),
            offer,
        );
        out.extensions = legs::bot_extensions(&self.bot);
        self.timeline("bot-invite", &format!("INVITE {}", out.request_uri))
            .await;
        match self.engine.sip.place_call(out).await {
            Ok((h, rx)) => {
                self.bot_leg = LegSlot::placed(h, rx, session);
                None
            }
            Err(e) => Some(Input::BotFailed {
                code: None,
                kind: FailureKind::Transport,
                reason: format!("bot {sip_uri} unreachable: {e}"),
            }),
        }
    }

    /// Answers (or refuses) the re-INVITE waiting on a leg, as the machine decided. Our answer
    /// keeps the leg's `o=` session id and raises its version (RFC 3264 §8).
    fn answer_reinvite(&mut self, side: LegSide, accept: bool) {
        let Some((offer, reply)) = self.slot(side).pending_reinvite.take() else {
            return;
        };
        let answer = if accept {
            self.reinvite_answer(side, &offer)
        } else {
            tracing::info!(?side, "re-INVITE refused: the call is ending");
            None
        };
        let _ = reply.send(answer);
    }

    fn reinvite_answer(&mut self, side: LegSide, offer: &str) -> Option<String> {
        let leg = match side {
            LegSide::Carrier => Leg::Carrier,
            LegSide::Bot => Leg::Bot,
        };
        let local = self.media.as_ref()?.local_rtp_addr(leg);
        let port = local.port();
        let address = self.engine.public_ip_for(Some(local.ip()));
        let slot = self.slot(side);
        slot.sdp_version += 1;
        let local = crate::sip::sdp::LocalSdp {
            address,
            port,
            session_id: slot.sdp_session,
            version: slot.sdp_version,
        };
        if offer.trim().is_empty() {
            let plain = crate::sip::sdp::offer(&local);
            // On an SDES leg our offer carries our keys again (both suites, as at first).
            return Some(match (side, &self.carrier_sdes) {
                (LegSide::Carrier, Some(sdes)) => sdes.apply(&plain),
                _ => plain,
            });
        }
        // An SDES carrier leg answers with its crypto line, or refuses (488) an offer this
        // trunk cannot take (no crypto while `srtp: required`).
        let srtp = match side {
            LegSide::Carrier => match self.carrier_reoffer_srtp(offer) {
                Ok(re) => re,
                Err(reason) => {
                    tracing::warn!(?side, %reason, "re-INVITE refused");
                    return None;
                }
            },
            LegSide::Bot => None,
        };
        let (answer, negotiated) = match crate::sip::sdp::answer(offer, &local) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(?side, error = %e, "re-INVITE refused");
                return None;
            }
        };
        let answer = match &srtp {
            Some(re) => {
                if let Err(reason) = self.apply_reoffer_srtp(re) {
                    tracing::warn!(?side, %reason, "re-INVITE refused");
                    return None;
                }
                crate::sip::sdes::secure_answer(&answer, re)
            }
            None => answer,
        };
        if let (Some(media), Some(r)) = (&self.media, legs::remote_media(&negotiated))
            && let Err(e) = media.set_remote(leg, r)
        {
            tracing::warn!(error = %e, "cannot apply the re-INVITE to the relay");
        }
        tracing::info!(?side, direction = ?negotiated.remote.direction, "re-INVITE answered");
        self.slot(side).negotiated = Some(negotiated);
        Some(answer)
    }

    async fn start_media(&mut self) {
        self.end_early_media();
        let remote = self
            .carrier
            .negotiated
            .as_ref()
            .and_then(legs::remote_media);
        let Some(m) = &self.media else { return };
        if let Some(r) = remote
            && let Err(e) = m.set_remote(Leg::Carrier, r)
        {
            tracing::error!(error = %e, "cannot start the carrier media");
        }
        match m.subscribe_dtmf(Leg::Carrier, 32) {
            Ok(rx) => self.dtmf = Some(rx),
            Err(e) => tracing::error!(error = %e, "cannot read the callee's key presses"),
        }
        if let Err(e) = m.start_taps() {
            tracing::error!(error = %e, "cannot start the audio taps");
        }
        // One tap on the callee's audio feeds detection, recognition and barge-in; made only
        // when one of them runs (see `tap.rs`).
        if self.tap_wanted() {
            self.ensure_tap();
        }
    }

    pub(super) async fn stop_media(&mut self) {
        // The text bot's voice stops with the media (nothing is played after the hang-up).
        self.player = None;
        self.player_events = None;
        self.tap = None;
        self.dtmf = None;
        self.amd = None;
        self.stt = None;
        self.stt_results = None;
        if let Some(m) = self.media.take() {
            if let Err(e) = m.stop_recording().await {
                tracing::warn!(error = %e, "recording did not finish cleanly");
            }
            let stats = m.stats();
            m.stop();
            let v = media_json(&stats).to_string();
            let _ = self
                .engine
                .deps
                .store
                .set_extra(&self.id, crate::store::ExtraColumn::Media, v)
                .await;
        }
    }

    async fn terminal(&mut self, report: TerminalReport) {
        let status = match report.status {
            crate::call::machine::CallStatus::Failed => StoredStatus::Failed,
            crate::call::machine::CallStatus::Completed => StoredStatus::Completed,
        };
        let code = report.reason_code.as_str();
        tracing::info!(status = status.as_str(), reason_code = code, reason = %report.reason, sip_code = ?report.sip_code, "call ended");
        // The recogniser outlives the media briefly, so words said just before the
        // hang-up still reach the call record (the AMD decision is already stored).
        let recogniser = self.stt.take().zip(self.stt_results.take());
        self.stop_media().await;
        if let Some((session, results)) = recogniser {
            tokio::spawn(drain_recognition(
                self.engine.deps.store.clone(),
                self.id.clone(),
                session,
                results,
            ));
        }
        // The record's recognition state ends with the call (it stayed "active" before).
        if self.recognition_active {
            self.recognition_active = false;
            let _ = self
                .engine
                .deps
                .store
                .set_extra(
                    &self.id,
                    crate::store::ExtraColumn::SttStatus,
                    "ended".into(),
                )
                .await;
        }
        // State, timeline, notification and bot disconnect: one transaction.
        let duration = (status == StoredStatus::Completed).then(|| report.duration_seconds());
        let end = crate::store::CallEnd {
            conversation_id: self.id.clone(),
            status,
            reason_code: code.to_owned(),
            reason: report.reason.clone(),
            sip_code: report.sip_code,
            notification: self.note(
                status.as_str(),
                Some(&report.reason),
                Some(code),
                report.sip_code,
                duration,
            ),
            bot_disconnect: self.pending_disconnect.take(),
        };
        match self.engine.deps.outbox.finish_call(end).await {
            Ok(f) if !f.newly_terminal => {
                tracing::warn!("the call was already terminal in the store")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot store the end of the call"),
        }
        self.engine.count_ended(code);
        self.terminal = Some(report);
    }

    /// Whether a leg slot has a live handle (used by inputs).
    pub(super) fn slot(&mut self, side: LegSide) -> &mut LegSlot {
        match side {
            LegSide::Carrier => &mut self.carrier,
            LegSide::Bot => &mut self.bot_leg,
        }
    }
}

/// The bot's first phone number: the calling number when neither the request nor the route
/// names one.
pub(super) fn default_caller<'a>(
    cfg: &'a crate::config::Config,
    bot: &crate::config::Bot,
) -> Option<&'a str> {
    cfg.phone_numbers
        .iter()
        .find(|p| p.bot == bot.id)
        .map(|p| p.number.as_str())
}

fn carrier_failed(kind: FailureKind, reason: String) -> Input {
    Input::CarrierFailed {
        code: None,
        kind,
        reason,
    }
}

/// A carrier INVITE with where it goes.
struct CarrierInvite {
    call: crate::sip::OutboundCall,
    /// The trunk's RTP latching policy (`rtp_latching`).
    latching: crate::media::LatchMode,
    /// The SIP connection's ID.
    connection: String,
    /// The routing rule that chose it.
    rule: String,
    /// The trunk's SDES-SRTP policy.
    srtp: crate::config::SrtpMode,
}

/// After the end of a call: flushes the utterance in progress with silence and
/// stores whatever is still recognised (bounded), for the record only.
async fn drain_recognition(
    store: crate::store::Store,
    id: String,
    mut session: crate::stt::SttSession,
    mut results: tokio::sync::mpsc::Receiver<crate::stt::SttResult>,
) {
    use crate::stt::Recognizer;
    // 0.8 s of silence ends any utterance under way (the segmenter needs trailing silence).
    for _ in 0..40 {
        session.push_frame(&[0i16; 160]);
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while let Ok(Some(r)) = tokio::time::timeout_at(deadline, results.recv()).await {
        if r.is_final && !r.text.trim().is_empty() {
            tracing::info!(conversation_id = %id, text = %r.text, "speech recognised after the hang-up");
            let entry = json!({
                "text": r.text, "confidence": r.confidence, "startMs": r.start_ms, "endMs": r.end_ms,
                "latencyMs": r.latency_ms, "afterHangup": true,
            });
            let _ = store.append_transcript(&id, entry).await;
        }
    }
}

/// Per-leg relay counters for the call record.
fn media_json(s: &crate::media::MediaStats) -> Value {
    let leg = |l: &crate::media::LegStats| {
        json!({
            "packetsReceived": l.packets_received,
            "packetsForwarded": l.packets_forwarded,
            "bytesForwarded": l.bytes_forwarded,
            "rtcpForwarded": l.rtcp_forwarded,
            "dropped": {
                "malformed": l.dropped_malformed,
                "foreignSource": l.dropped_foreign_source,
                "wrongSsrc": l.dropped_wrong_ssrc,
                "notReady": l.dropped_not_ready,
                "direction": l.dropped_direction,
                "unknownPayloadType": l.dropped_unknown_pt,
                "sendError": l.dropped_send_error,
            },
            "tapDrops": l.tap_drops,
            "jitterMs": (l.jitter_ms * 100.0).round() / 100.0,
            "lostEstimate": l.lost_estimate,
            "sourceChanges": l.source_changes,
        })
    };
    json!({"carrier": leg(&s.carrier), "bot": leg(&s.bot)})
}
