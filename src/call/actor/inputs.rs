//! Turning what happens outside the call into machine inputs. Facts are translated here (a SIP
//! failure's kind, an SDP answer's usability, a recognised utterance); what they mean for the
//! call is the machine's decision.

use super::{Actor, ActorCmd};
use crate::call::legs::{self, LegSide};
use crate::call::machine::{FailureKind, Input};
use crate::core::activity;
use crate::media::PcmFrame;
use crate::sip::{self, LegEvent};
use serde_json::json;
use std::time::Duration;

/// The machine's failure kind of a SIP leg's failure.
pub(super) fn failure_kind(k: sip::FailureKind) -> FailureKind {
    kind(k)
}

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
            LegEvent::Provisional { code, sdp } => self.on_provisional(side, code, sdp).await,
            LegEvent::Answered { code, sdp } => self.on_answered(side, code, &sdp).await,
            LegEvent::Failed {
                code,
                reason,
                kind: k,
            } => self.on_leg_failed(side, code, reason, k).await,
            LegEvent::RemoteBye => {
                self.slot(side).ended = true;
                self.timeline("bye", &format!("BYE from the {side:?} leg"))
                    .await;
                match side {
                    LegSide::Carrier => self.handle(Input::CarrierBye).await,
                    LegSide::Bot => self.handle(Input::BotBye).await,
                }
            }
            LegEvent::ReInvite { sdp, reply } => {
                // A newer re-INVITE replaces an unanswered one (whose sender, dropped, refuses it).
                self.slot(side).pending_reinvite = Some((sdp, reply));
                self.handle(Input::ReInvite(side)).await
            }
            LegEvent::Terminated => self.leg_gone(side).await,
            ev @ (LegEvent::ReferAnswered { .. } | LegEvent::ReferNotify { .. }) => {
                self.on_refer_event(side, ev).await
            }
            LegEvent::SessionTimer(n) => self.on_session_timer(side, n).await,
        }
    }

    /// A provisional response: on the carrier leg, its early media (if the relay can use it)
    /// and the provisional itself go to the machine; the bot leg's are not the call's news.
    async fn on_provisional(&mut self, side: LegSide, code: u16, sdp: Option<String>) {
        if side == LegSide::Carrier {
            self.last_provisional = Some(code);
            // Early media: only an SDP the relay can use counts (it is kept until the
            // answer's SDP replaces it).
            let early = sdp.as_deref().and_then(|s| sip::sdp::read_answer(s).ok());
            let mut has_sdp = early.as_ref().and_then(legs::remote_media).is_some();
            if has_sdp
                && let Some(sdp) = sdp.as_deref()
                && let Err(reason) = self.apply_carrier_srtp(sdp).await
            {
                // Early media the relay cannot decrypt is not heard; the answer decides.
                tracing::warn!(%reason, "early media ignored");
                has_sdp = false;
            }
            if has_sdp {
                self.carrier.negotiated = early;
            }
            self.handle(Input::CarrierProvisional { code, has_sdp })
                .await;
        }
    }

    /// A leg failed: the timeline says how; the machine gets the failure with the reason a
    /// dialer should read.
    async fn on_leg_failed(
        &mut self,
        side: LegSide,
        code: Option<u16>,
        reason: String,
        k: sip::FailureKind,
    ) {
        self.slot(side).ended = true;
        self.timeline(
            "leg-failed",
            &format!("{side:?} leg failed: {code:?} {reason}"),
        )
        .await;
        let kind = kind(k);
        let input = match side {
            LegSide::Carrier => Input::CarrierFailed { code, kind, reason },
            // An answered bot leg failing (a session refresh answered 481 or never
            // answered) did not reject the call: its reason is kept as it is.
            LegSide::Bot if self.bot_leg.negotiated.is_some() => {
                Input::BotFailed { code, kind, reason }
            }
            LegSide::Bot => Input::BotFailed {
                code,
                kind,
                reason: match code {
                    Some(c) => format!("the bot rejected the call with {c} {reason}"),
                    None => format!("the bot is unreachable: {reason}"),
                },
            },
        };
        self.handle(input).await
    }

    /// A leg's session timer was negotiated (or the peer's session does not expire).
    async fn on_session_timer(&mut self, side: LegSide, n: Option<sip::extensions::Negotiated>) {
        let peer = match side {
            LegSide::Carrier => "carrier",
            LegSide::Bot => "bot",
        };
        let note = match n {
            Some(n) => format!(
                "{}session interval {} s, refresher {}",
                if side == LegSide::Bot {
                    "bot leg: "
                } else {
                    ""
                },
                n.interval.as_secs(),
                if n.we_refresh { "dialgate" } else { peer }
            ),
            None => format!("the {peer} session does not expire"),
        };
        self.timeline("session-timer", &note).await;
        let interval = n.map(|n| n.interval);
        let we_refresh = n.is_some_and(|n| n.we_refresh);
        let input = match side {
            LegSide::Carrier => Input::CarrierSessionTimer {
                interval,
                we_refresh,
            },
            LegSide::Bot => Input::BotLegSessionTimer {
                interval,
                we_refresh,
            },
        };
        self.handle(input).await
    }

    async fn on_answered(&mut self, side: LegSide, code: u16, sdp: &str) {
        let negotiated = sip::sdp::read_answer(sdp);
        if let Err(e) = &negotiated {
            tracing::warn!(?side, error = %e, "unusable SDP answer");
        }
        let mut ok = negotiated
            .as_ref()
            .ok()
            .and_then(legs::remote_media)
            .is_some();
        if ok
            && side == LegSide::Carrier
            && let Err(reason) = self.apply_carrier_srtp(sdp).await
        {
            tracing::warn!(%reason, "carrier answer refused");
            self.timeline("srtp", &reason).await;
            ok = false;
        }
        self.slot(side).negotiated = negotiated.ok();
        match side {
            LegSide::Carrier => {
                self.timeline("answered", &format!("carrier answered {code}"))
                    .await;
                self.handle(Input::CarrierAnswered { sdp_ok: ok }).await
            }
            LegSide::Bot if ok => self.handle(Input::BotAnswered).await,
            LegSide::Bot => {
                self.handle(Input::BotFailed {
                    code: Some(488),
                    kind: FailureKind::Response,
                    reason: "the bot's SDP answer has no usable G.711 audio".into(),
                })
                .await
            }
        }
    }

    /// A leg's event stream ended. If it ended without telling the machine why, the machine
    /// decides what that means (it knows whether the leg was up).
    pub(super) async fn leg_gone(&mut self, side: LegSide) {
        let slot = self.slot(side);
        slot.events = None;
        if slot.ended {
            return;
        }
        slot.ended = true;
        self.handle(Input::LegGone(side)).await;
    }

    pub(super) async fn on_cmd(&mut self, cmd: ActorCmd) {
        match cmd {
            ActorCmd::Hangup(source) => {
                self.timeline("hangup", &format!("hang-up requested ({source:?})"))
                    .await;
                self.handle(Input::Hangup { source }).await
            }
            ActorCmd::BotSessionOpened(expires) => {
                let expires = expires.map(Duration::from_secs);
                self.handle(Input::BotSessionOpened { expires }).await
            }
            ActorCmd::BotUnreachable(reason) => {
                tracing::warn!(%reason, "the bot cannot be reached");
                self.handle(Input::BotUnreachable { reason }).await
            }
            ActorCmd::BotActivities(acts) => {
                for a in &acts {
                    let parsed = activity::parse(a);
                    tracing::info!(activity = %parsed.activity.name(), delay = ?parsed.delay, "bot activity");
                    self.handle(Input::BotActivity(parsed)).await;
                }
            }
        }
    }

    pub(super) async fn on_frame(&mut self, f: PcmFrame) {
        if self.early_frame(&f.samples).await {
            return;
        }
        if let Some(stt) = &mut self.stt {
            crate::stt::Recognizer::push_frame(stt, &f.samples);
        }
        if let crate::stt::segmenter::SegEvent::Started { .. } = self.vad.push(&f.samples) {
            self.handle(Input::SpeechStarted).await;
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
                    let note = format!("{} after {} ms ({})", d.result.as_str(), d.at_ms, d.cause);
                    self.timeline("amd", &note).await;
                    self.handle(Input::AmdDecision {
                        result: d.result,
                        at_ms: d.at_ms as u32,
                    })
                    .await;
                }
                crate::amd::AmdEvent::Beep { at_ms, freq_hz } => {
                    tracing::info!(at_ms, freq_hz, "voicemail beep heard");
                    let store = &self.engine.deps.store;
                    let _ = store.set_amd(&self.id, None, Some(at_ms as i64)).await;
                    let note = format!("beep {freq_hz:.0} Hz ending at {at_ms} ms");
                    self.timeline("beep", &note).await;
                    self.handle(Input::AmdBeep {
                        at_ms: at_ms as u32,
                    })
                    .await;
                }
            }
        }
    }

    /// A recognised utterance: on the record and to the detector always; to the bot if the
    /// machine says so.
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
        if self.early_text(&r.text).await {
            return;
        }
        if let Some(det) = &mut self.amd {
            let events = det.push_transcript(&r.text);
            self.on_amd_events(events).await;
        }
        self.handle(Input::Recognised {
            text: r.text,
            confidence: r.confidence,
        })
        .await;
    }

    /// A line on the call's timeline.
    pub(super) async fn timeline(&self, kind: &str, note: &str) {
        let _ = self.engine.deps.store.add_event(&self.id, kind, note).await;
    }
}
