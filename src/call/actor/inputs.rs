//! Turning what happens outside the call into machine events.

use super::{Actor, ActorCmd};
use crate::call::legs::{self, LegSide};
use crate::call::machine::{Event, FailureKind, HangupSource};
use crate::media::{Leg, PcmFrame};
use crate::sip::{self, LegEvent};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

fn kind(k: sip::FailureKind) -> FailureKind {
    match k {
        sip::FailureKind::Response | sip::FailureKind::Cancelled => FailureKind::Response,
        sip::FailureKind::Timeout => FailureKind::Timeout,
        sip::FailureKind::Transport => FailureKind::Transport,
    }
}

impl Actor {
    pub(super) async fn on_leg(&mut self, side: LegSide, ev: LegEvent) {
        match ev {
            LegEvent::Provisional { code, sdp } => {
                if side == LegSide::Carrier {
                    self.last_provisional = Some(code);
                    self.feed(Event::CarrierProvisional {
                        code,
                        has_sdp: sdp.is_some(),
                    })
                    .await;
                }
            }
            LegEvent::Answered { code, sdp } => {
                let negotiated = sip::sdp::read_answer(&sdp);
                if let Err(e) = &negotiated {
                    tracing::warn!(?side, error = %e, "unusable SDP answer");
                }
                let ok = negotiated
                    .as_ref()
                    .ok()
                    .and_then(legs::remote_media)
                    .is_some();
                let slot = self.slot(side);
                slot.answered = true;
                slot.negotiated = negotiated.ok();
                match side {
                    LegSide::Carrier => {
                        let _ = self
                            .engine
                            .deps
                            .store
                            .add_event(&self.id, "answered", &format!("carrier answered {code}"))
                            .await;
                        self.feed(Event::CarrierAnswered { sdp_ok: ok }).await
                    }
                    LegSide::Bot if ok => self.feed(Event::BotAnswered).await,
                    LegSide::Bot => {
                        self.feed(Event::BotFailed {
                            code: Some(488),
                            kind: FailureKind::Response,
                            reason: "the bot's SDP answer has no usable G.711 audio".into(),
                        })
                        .await
                    }
                }
            }
            LegEvent::Failed {
                code,
                reason,
                kind: k,
            } => {
                self.slot(side).ended = true;
                let _ = self
                    .engine
                    .deps
                    .store
                    .add_event(
                        &self.id,
                        "leg-failed",
                        &format!("{side:?} leg failed: {code:?} {reason}"),
                    )
                    .await;
                match side {
                    LegSide::Carrier => {
                        self.feed(Event::CarrierFailed {
                            code,
                            kind: kind(k),
                            reason,
                        })
                        .await
                    }
                    LegSide::Bot => {
                        let reason = match code {
                            Some(c) => format!("the bot rejected the call with {c} {reason}"),
                            None => format!("the bot is unreachable: {reason}"),
                        };
                        self.feed(Event::BotFailed {
                            code,
                            kind: kind(k),
                            reason,
                        })
                        .await
                    }
                }
            }
            LegEvent::RemoteBye => {
                self.slot(side).ended = true;
                let _ = self
                    .engine
                    .deps
                    .store
                    .add_event(&self.id, "bye", &format!("BYE from the {side:?} leg"))
                    .await;
                match side {
                    LegSide::Carrier => self.feed(Event::CarrierBye).await,
                    LegSide::Bot => self.feed(Event::BotBye).await,
                }
            }
            LegEvent::ReInvite { sdp, reply } => {
                let answer = self.on_reinvite(side, &sdp);
                let _ = reply.send(answer);
            }
            LegEvent::Terminated => self.leg_gone(side).await,
        }
    }

    /// Hold and resume: answer the re-INVITE from the relay's side of that
    /// leg and update the relay's view of the remote (direction, address).
    fn on_reinvite(&mut self, side: LegSide, offer: &str) -> Option<String> {
        let media = self.media.as_ref()?;
        let leg = match side {
            LegSide::Carrier => Leg::Carrier,
            LegSide::Bot => Leg::Bot,
        };
        let local = sip::sdp::LocalSdp {
            address: self.engine.public_ip(),
            port: media.local_rtp_addr(leg).port(),
            session_id: 1,
            version: 2 + self.reinvites as u64,
        };
        self.reinvites += 1;
        if offer.trim().is_empty() {
            return Some(sip::sdp::offer(&local));
        }
        let (answer, negotiated) = match sip::sdp::answer(offer, &local) {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(?side, error = %e, "re-INVITE refused");
                return None;
            }
        };
        if let Some(r) = legs::remote_media(&negotiated)
            && let Err(e) = media.set_remote(leg, r)
        {
            tracing::warn!(error = %e, "cannot apply the re-INVITE to the relay");
        }
        tracing::info!(?side, direction = ?negotiated.remote.direction, "re-INVITE answered");
        self.slot(side).negotiated = Some(negotiated);
        Some(answer)
    }

    /// A leg's event stream ended. If it ended without telling the machine
    /// why, say so now so the machine never waits for a dead leg.
    pub(super) async fn leg_gone(&mut self, side: LegSide) {
        let slot = self.slot(side);
        slot.events = None;
        if slot.ended {
            return;
        }
        slot.ended = true;
        let answered = slot.answered;
        let ev = match (side, answered) {
            (LegSide::Carrier, true) => Event::CarrierBye,
            (LegSide::Bot, true) => Event::BotBye,
            (LegSide::Carrier, false) => Event::CarrierFailed {
                code: None,
                kind: FailureKind::Transport,
                reason: "the carrier dialog ended without a final response".into(),
            },
            (LegSide::Bot, false) => Event::BotFailed {
                code: None,
                kind: FailureKind::Transport,
                reason: "the bot dialog ended without a final response".into(),
            },
        };
        self.feed(ev).await;
    }

    pub(super) async fn on_cmd(&mut self, cmd: ActorCmd) {
        match cmd {
            ActorCmd::Hangup(source) => {
                let _ = self
                    .engine
                    .deps
                    .store
                    .add_event(
                        &self.id,
                        "hangup",
                        &format!("hang-up requested ({source:?})"),
                    )
                    .await;
                self.feed(Event::Hangup { source }).await
            }
            ActorCmd::BotSessionOpened(expires) => {
                // Refresh at 80 % of the announced lifetime (at least every 5 s).
                if let Some(e) = expires {
                    let every = Duration::from_millis((e * 800).max(5000));
                    self.refresh = Some((every, Instant::now() + every));
                }
            }
            ActorCmd::BotActivities(acts) => {
                for a in acts {
                    self.on_activity(a).await;
                }
            }
        }
    }

    async fn on_activity(&mut self, a: Value) {
        let kind = a.get("type").and_then(Value::as_str).unwrap_or("");
        let name = a.get("name").and_then(Value::as_str).unwrap_or("");
        match (kind, name) {
            ("event", "hangup") => {
                tracing::info!("the bot asked to hang up");
                let _ = self
                    .engine
                    .deps
                    .store
                    .add_event(&self.id, "hangup", "hangup activity from the bot")
                    .await;
                self.feed(Event::Hangup {
                    source: HangupSource::BotActivity,
                })
                .await
            }
            ("event", "startRecognition") => self.set_recognition(true).await,
            ("event", "stopRecognition") => self.set_recognition(false).await,
            _ => tracing::debug!(%kind, %name, "bot activity not handled by the gateway"),
        }
    }

    pub(super) async fn on_frame(&mut self, f: PcmFrame) {
        if let Some(stt) = &mut self.stt {
            crate::stt::Recognizer::push_frame(stt, &f.samples);
        }
        let Some(det) = &mut self.amd else { return };
        let events = det.push_frame(&f.samples);
        self.on_amd_events(events).await;
    }

    async fn on_amd_events(&mut self, events: Vec<crate::amd::AmdEvent>) {
        for e in events {
            match e {
                crate::amd::AmdEvent::Decision(d) => {
                    tracing::info!(result = d.result.as_str(), at_ms = d.at_ms, cause = %d.cause, "machine detection decided");
                    let store = &self.engine.deps.store;
                    let _ = store
                        .set_amd(
                            &self.id,
                            Some((d.result.as_str(), d.at_ms as i64, &d.cause)),
                            None,
                        )
                        .await;
                    let _ = store
                        .add_event(
                            &self.id,
                            "amd",
                            &format!("{} after {} ms ({})", d.result.as_str(), d.at_ms, d.cause),
                        )
                        .await;
                    self.feed(Event::AmdDecision {
                        result: d.result,
                        at_ms: d.at_ms as u32,
                    })
                    .await;
                    self.stop_amd_only_stt();
                }
                crate::amd::AmdEvent::Beep { at_ms, freq_hz } => {
                    tracing::info!(at_ms, freq_hz, "voicemail beep heard");
                    let store = &self.engine.deps.store;
                    let _ = store.set_amd(&self.id, None, Some(at_ms as i64)).await;
                    let _ = store
                        .add_event(
                            &self.id,
                            "beep",
                            &format!("beep {freq_hz:.0} Hz ending at {at_ms} ms"),
                        )
                        .await;
                    self.feed(Event::AmdBeep {
                        at_ms: at_ms as u32,
                    })
                    .await;
                }
            }
        }
    }

    pub(super) async fn on_stt(&mut self, r: crate::stt::SttResult) {
        if !r.is_final || r.text.trim().is_empty() {
            return;
        }
        tracing::info!(text = %r.text, confidence = r.confidence, latency_ms = r.latency_ms, "speech recognised");
        let entry = json!({
            "text": r.text, "confidence": r.confidence, "startMs": r.start_ms, "endMs": r.end_ms, "latencyMs": r.latency_ms,
        });
        let _ = self
            .engine
            .deps
            .store
            .append_transcript(&self.id, entry)
            .await;
        if let Some(det) = &mut self.amd {
            let events = det.push_transcript(&r.text);
            self.on_amd_events(events).await;
        }
        if self.bot_events && self.recognition_on {
            let msg = json!({"type": "message", "text": r.text, "parameters": {"confidence": r.confidence}});
            if let Err(e) = self.engine.deps.outbox.bot_activity(&self.id, msg).await {
                tracing::error!(error = %e, "cannot queue the recognised text");
            }
        }
    }
}
