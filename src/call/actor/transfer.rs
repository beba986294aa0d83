//! Carrying out a transfer's steps (the machine decides them, see `machine::transfer`): the
//! agent's leg of a `bridge` transfer — placed like a dialout, through the routing rules, the
//! chosen trunk and its digest credentials, offering the relay's bot side — and the REFER of a
//! `refer` transfer on the carrier leg's dialog. Facts from the agent's leg and the REFER come
//! back as `Input::Transfer`.

use super::{Actor, LegSlot};
use crate::call::legs::{self, LegSide};
use crate::call::machine::{FailureKind, Input, TransferInput, TransferOutput};
use crate::core::Target;
use crate::core::transfer::TransferTarget;
use crate::media::Leg;
use crate::sip::{self, LegEvent};

fn agent_failed(kind: FailureKind, reason: String) -> Input {
    Input::Transfer(TransferInput::AgentFailed {
        code: None,
        kind,
        reason,
    })
}

impl Actor {
    /// Carries out one transfer step; a failure comes back as the machine's next input.
    pub(super) async fn transfer_step(&mut self, step: TransferOutput) -> Option<Input> {
        match step {
            TransferOutput::StopDetection => {
                self.amd = None;
                self.stt = None;
                self.stt_results = None;
                self.timeline("transfer", "machine detection and recognition stopped")
                    .await;
            }
            TransferOutput::InviteAgent { target, headers } => {
                return self.invite_agent(target, headers).await;
            }
            TransferOutput::CancelAgent | TransferOutput::ByeAgent => {
                if let Some(h) = &self.agent.handle {
                    h.hangup();
                }
            }
            TransferOutput::BridgeAgent => self.bridge_agent(),
            TransferOutput::SendRefer { target, headers } => {
                return self.send_refer(target, headers).await;
            }
        }
        None
    }

    async fn invite_agent(
        &mut self,
        target: TransferTarget,
        headers: Vec<(String, String)>,
    ) -> Option<Input> {
        let Some(media) = self.media.as_ref() else {
            return Some(agent_failed(
                FailureKind::Internal,
                "the call's media is gone".into(),
            ));
        };
        let target = match target {
            TransferTarget::Tel(n) => Target::Tel(n),
            TransferTarget::Sip(u) => Target::Sip(u),
        };
        let mut req = self.call.request.clone();
        req.target = target;
        req.headers = headers.into_iter().collect();
        let cfg = &self.call.config.config;
        let Some(route) = crate::call::routing::resolve(cfg, &self.bot, &req.target) else {
            let reason = format!("no routing rule matches {}", req.target.display());
            return Some(agent_failed(FailureKind::Internal, reason));
        };
        let caller = legs::caller_user(
            &req,
            &route,
            &self.bot,
            super::actions::default_caller(cfg, &self.bot),
        );
        let session = rand::random::<u32>() as u64;
        // The agent takes the bot's place on the relay: it is offered the bot side's address.
        let bot_side = media.local_rtp_addr(Leg::Bot);
        let offer = crate::sip::sdp::offer(&crate::sip::sdp::LocalSdp {
            address: self.engine.public_ip_for(Some(bot_side.ip())),
            port: bot_side.port(),
            session_id: session,
            version: 1,
        });
        let out = legs::carrier_call(
            &self.id,
            &req,
            &route,
            &caller,
            self.engine
                .public_ip_for(route.connection.address.host.parse().ok()),
            offer,
        );
        let note = format!(
            "INVITE {} via {} (rule {})",
            out.request_uri, route.connection.id, route.rule
        );
        tracing::info!("transfer: {note}");
        self.timeline("agent-invite", &note).await;
        match self.engine.sip.place_call(out).await {
            Ok((h, rx)) => {
                self.agent = LegSlot::placed(h, rx, session);
                None
            }
            Err(e) => Some(agent_failed(
                FailureKind::Transport,
                format!("cannot send the INVITE: {e}"),
            )),
        }
    }

    /// The relay's bot side now sends to and accepts from the agent; the text bot's voice, if
    /// any, stops (its leg is released by the machine right after).
    fn bridge_agent(&mut self) {
        self.player = None;
        self.player_events = None;
        let remote = self.agent.negotiated.as_ref().and_then(legs::remote_media);
        if let (Some(m), Some(r)) = (&self.media, remote)
            && let Err(e) = m.set_remote(Leg::Bot, r)
        {
            tracing::error!(error = %e, "cannot bridge the agent");
        }
    }

    /// REFER on the carrier leg: `Refer-To` the target (a number as a SIP URI at the call's
    /// trunk, like the INVITE's), `Referred-By` the caller.
    async fn send_refer(
        &mut self,
        target: TransferTarget,
        headers: Vec<(String, String)>,
    ) -> Option<Input> {
        let Some(h) = &self.carrier.handle else {
            return Some(Input::Transfer(TransferInput::ReferAnswered {
                code: None,
                reason: "the carrier leg is gone".into(),
            }));
        };
        let public = crate::sip::family::uri_host(
            self.engine
                .public_ip_for(crate::sip::family::literal_ip(&self.trunk_address)),
        );
        let refer_to = match target {
            TransferTarget::Tel(n) => format!(
                "sip:{n}@{};user=phone",
                legs::host_port(&self.trunk_address)
            ),
            TransferTarget::Sip(u) => u,
        };
        let referred_by = format!("sip:{}@{public}", self.caller);
        h.refer(&refer_to, &referred_by, headers);
        self.timeline(
            "refer",
            &format!("REFER Refer-To {refer_to}, Referred-By {referred_by}"),
        )
        .await;
        None
    }

    /// The REFER's response and NOTIFYs on the carrier leg, as facts for the machine.
    pub(super) async fn on_refer_event(&mut self, side: LegSide, ev: LegEvent) {
        if side != LegSide::Carrier {
            return;
        }
        let input = match ev {
            LegEvent::ReferAnswered { code, reason } => {
                let note = format!("REFER answered {code:?} {reason}");
                self.timeline("refer", &note).await;
                TransferInput::ReferAnswered { code, reason }
            }
            LegEvent::ReferNotify { code } => {
                self.timeline("refer", &format!("NOTIFY sipfrag {code}"))
                    .await;
                TransferInput::ReferNotify { code }
            }
            _ => return,
        };
        self.handle(Input::Transfer(input)).await;
    }

    /// An event of the agent's leg, as a fact for the machine.
    pub(super) async fn on_agent_leg(&mut self, ev: LegEvent) {
        let input = match ev {
            LegEvent::Provisional { code, .. } => TransferInput::AgentProvisional { code },
            LegEvent::Answered { code, sdp } => {
                let negotiated = sip::sdp::read_answer(&sdp).ok();
                let sdp_ok = negotiated.as_ref().and_then(legs::remote_media).is_some();
                self.agent.negotiated = negotiated;
                self.timeline("agent-answered", &format!("the agent answered {code}"))
                    .await;
                TransferInput::AgentAnswered { sdp_ok }
            }
            LegEvent::Failed { code, reason, kind } => {
                self.agent.ended = true;
                self.timeline(
                    "agent-failed",
                    &format!("the agent's leg failed: {code:?} {reason}"),
                )
                .await;
                TransferInput::AgentFailed {
                    code,
                    kind: super::inputs::failure_kind(kind),
                    reason,
                }
            }
            LegEvent::RemoteBye => {
                self.agent.ended = true;
                self.timeline("bye", "BYE from the agent").await;
                TransferInput::AgentBye
            }
            LegEvent::ReInvite { reply, .. } => {
                // The agent's media stays where it was answered: hold and moves are refused.
                tracing::info!("re-INVITE from the agent refused");
                let _ = reply.send(None);
                return;
            }
            LegEvent::Terminated => return self.agent_gone().await,
            // We never REFER the agent.
            LegEvent::ReferAnswered { .. } | LegEvent::ReferNotify { .. } => return,
            // The agent's leg keeps no session timer of its own (the machine refreshes the
            // carrier leg only): noted, not acted on.
            LegEvent::SessionTimer(n) => {
                tracing::debug!(
                    ?n,
                    "the agent's leg negotiated a session timer (not refreshed)"
                );
                return;
            }
        };
        self.handle(Input::Transfer(input)).await;
    }

    /// The agent's event stream ended without a final word: an answered leg is as good as hung
    /// up, a pending one failed at the transport.
    pub(super) async fn agent_gone(&mut self) {
        self.agent.events = None;
        if std::mem::replace(&mut self.agent.ended, true) {
            return;
        }
        let input = if self.agent.negotiated.is_some() {
            TransferInput::AgentBye
        } else {
            TransferInput::AgentFailed {
                code: None,
                kind: FailureKind::Transport,
                reason: "the agent's dialog ended without a final response".into(),
            }
        };
        self.handle(Input::Transfer(input)).await;
    }
}
