//! The machine's handling of a bot's `transfer` activity (Bot API): whether it may happen now,
//! how it is carried out (`refer`: REFER on the carrier leg and its NOTIFYs; `bridge`: dialgate
//! calls the target — the agent — and re-points the relay's bot side to it), what its outcome
//! tells the bot (`transferStatus`), and how the call ends after it (`transferred`).
//!
//! Policy:
//! - Only while the person talks to the bot (`Connected`); refused with a timeline line and
//!   `transferStatus: failed` while ringing, before the bot answered, during another transfer and
//!   once the call is ending.
//! - Machine detection and recognition stop when the transfer starts; if it fails, the bot's
//!   recognition resumes (the person is still talking to it) and detection stays off.
//! - A failed transfer (busy, no answer, declined, REFER refused) leaves the person with the bot.
//! - `bridge`: when the agent answers, the bot is released (BYE) and hears nothing more; either
//!   side hanging up afterwards ends the call `completed/transferred`.
//! - `refer`: a NOTIFY with a 2xx sipfrag ends the call `completed/transferred` (dialgate BYEs
//!   the carrier leg, which the transferee has moved to the target).

use std::time::{Duration, Instant};

use super::core::{CallMachine, Leg, Phase, Recognition};
use super::reason::{FailureKind, ReasonCode, carrier_failure_text};
use super::report::cause;
use super::types::{BotEvent, Output, TimerKind, TransferMethod};
use crate::core::transfer::{TransferRequest, TransferTarget};

/// How long a REFER's outcome may take beyond the ring time (the target is called by the
/// transferee, which may itself retry a transaction: 32 s is Timer B).
const REFER_GRACE: Duration = Duration::from_secs(32);

/// What happens to a transfer under way, as the shell reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum TransferInput {
    /// The final response to the REFER (`None`: none came, or it could not be sent).
    ReferAnswered {
        /// Its status code.
        code: Option<u16>,
        /// Reason phrase or error text.
        reason: String,
    },
    /// A NOTIFY of the REFER's implicit subscription: the status code of its `message/sipfrag`.
    ReferNotify {
        /// The sipfrag's status code (100..699).
        code: u16,
    },
    /// A 1xx from the agent (bridge).
    AgentProvisional {
        /// Its status code.
        code: u16,
    },
    /// The agent answered (bridge); whether its SDP is usable.
    AgentAnswered {
        /// A common codec and an address.
        sdp_ok: bool,
    },
    /// The agent's INVITE ended without a 2xx, or sending it failed.
    AgentFailed {
        /// Final status code, if a response arrived.
        code: Option<u16>,
        /// How it failed.
        kind: FailureKind,
        /// Reason phrase or error text.
        reason: String,
    },
    /// The agent hung up (BYE, or its established dialog vanished).
    AgentBye,
}

/// A step of a transfer for the shell to carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum TransferOutput {
    /// Send REFER on the carrier leg's dialog: `Refer-To` the target, `Referred-By` the caller.
    SendRefer {
        /// Where the person goes.
        target: TransferTarget,
        /// The bot's `transferSipHeaders` (checked).
        headers: Vec<(String, String)>,
    },
    /// INVITE the target the way a dialout is placed (routing rules, trunk, digest), offering
    /// the relay's bot-side address.
    InviteAgent {
        /// Where the person goes.
        target: TransferTarget,
        /// The bot's `transferSipHeaders` (checked).
        headers: Vec<(String, String)>,
    },
    /// CANCEL the agent's pending INVITE.
    CancelAgent,
    /// BYE on the agent's dialog.
    ByeAgent,
    /// Stop machine detection and recognition: the person is being handed over.
    StopDetection,
    /// Point the relay's bot side at the agent's media; the bot's media side is cut off.
    BridgeAgent,
}

/// Where a transfer is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Step {
    /// None under way (none yet, or the last one failed).
    #[default]
    Idle,
    /// REFER sent; `accepted` once it got its 2xx.
    Referring { target: String, accepted: bool },
    /// The agent's INVITE is out.
    Calling { target: String, ringing: bool },
    /// The person talks to the agent; the bot is released.
    Bridged,
}

/// The transfer's part of the machine's state.
#[derive(Debug)]
pub(super) struct TransferState {
    pub(super) step: Step,
    /// The agent's leg (bridge).
    pub(super) agent: Leg,
    /// The bot had recognition on when the transfer started: it resumes if the transfer fails.
    resume_recognition: bool,
    /// Detection and recognition were stopped for a transfer (AMD is not restarted).
    pub(super) detection_stopped: bool,
}

impl Default for TransferState {
    fn default() -> Self {
        TransferState {
            step: Step::Idle,
            agent: Leg::Idle,
            resume_recognition: false,
            detection_stopped: false,
        }
    }
}

impl TransferState {
    /// The bot was released: the person talks to the agent.
    pub(super) fn bridged(&self) -> bool {
        self.step == Step::Bridged
    }

    /// A transfer has started and its outcome is not known yet.
    pub(super) fn under_way(&self) -> bool {
        matches!(self.step, Step::Referring { .. } | Step::Calling { .. })
    }

    /// `startRecognition` / `stopRecognition` during a transfer: recognition stays off until the
    /// outcome, then follows the bot's last word if the person stays with it.
    pub(super) fn set_resume_recognition(&mut self, on: bool) {
        self.resume_recognition = on;
    }
}

impl CallMachine {
    /// A `transfer` activity (already delayed if it asked to be).
    pub(super) fn on_transfer_activity(
        &mut self,
        now: Instant,
        req: Result<TransferRequest, String>,
    ) {
        let req = match req {
            Ok(r) => r,
            Err(why) => {
                return self.refuse_transfer("invalid-request", format!("transfer refused: {why}"));
            }
        };
        let target = req.target.uri();
        if !self.is_live() {
            return self.refuse_transfer(
                "call-ending",
                format!("transfer to {target} refused: the call is ending"),
            );
        }
        match self.xfer.step {
            Step::Bridged => {
                return self.ignore("transfer from a bot that was released");
            }
            Step::Referring { .. } | Step::Calling { .. } => {
                return self.refuse_transfer(
                    "transfer-in-progress",
                    format!("transfer to {target} refused: another transfer is under way"),
                );
            }
            Step::Idle if self.xfer.agent == Leg::Cancelling => {
                return self.refuse_transfer(
                    "transfer-in-progress",
                    format!(
                        "transfer to {target} refused: the last agent call is still being cancelled"
                    ),
                );
            }
            Step::Idle => {}
        }
        if !matches!(self.phase, Phase::Connected) {
            return self.refuse_transfer(
                "not-connected",
                format!("transfer to {target} refused: the person is not talking to the bot yet"),
            );
        }
        let method = self.cfg.transfer;
        let why = req
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        let how = match method {
            TransferMethod::Refer => "refer",
            TransferMethod::Bridge => "bridge",
        };
        self.emit(Output::Timeline {
            kind: "transfer",
            note: format!("transfer to {target} by {how}{why}"),
        });
        self.stop_detection_for_transfer();
        let headers = req.headers;
        match method {
            TransferMethod::Refer => {
                self.emit(Output::Transfer(TransferOutput::SendRefer {
                    target: req.target,
                    headers,
                }));
                self.timers.set(
                    TimerKind::Transfer,
                    now + self.cfg.answer_timeout + REFER_GRACE,
                );
                self.xfer.step = Step::Referring {
                    target,
                    accepted: false,
                };
            }
            TransferMethod::Bridge => {
                self.xfer.agent = Leg::Inviting;
                self.emit(Output::Transfer(TransferOutput::InviteAgent {
                    target: req.target,
                    headers,
                }));
                self.timers
                    .set(TimerKind::Transfer, now + self.cfg.answer_timeout);
                self.xfer.step = Step::Calling {
                    target,
                    ringing: false,
                };
            }
        }
    }

    fn stop_detection_for_transfer(&mut self) {
        self.xfer.resume_recognition = self.recognition == Recognition::Bot(true);
        self.xfer.detection_stopped = true;
        if self.media_running {
            self.recognition = Recognition::Off;
            self.emit(Output::Transfer(TransferOutput::StopDetection));
        }
    }

    /// A transfer that cannot start: a line on the timeline, `failed` to the bot.
    fn refuse_transfer(&mut self, reason_code: &'static str, note: String) {
        self.emit(Output::Timeline {
            kind: "transfer",
            note,
        });
        self.transfer_status(false, reason_code, None);
    }

    /// `transferStatus` to the bot: at once (it answers the bot's own activity), while its
    /// conversation is open and it has not been released.
    fn transfer_status(
        &mut self,
        answered: bool,
        reason_code: &'static str,
        sip_code: Option<u16>,
    ) {
        if self.cfg.bot_api && self.bot_conversation_open && !self.xfer.bridged() {
            self.emit(Output::BotEvent(BotEvent::TransferStatus {
                answered,
                reason_code,
                sip_code,
            }));
        }
    }

    /// The transfer failed: the person stays with the bot, whose recognition resumes.
    fn transfer_failed(&mut self, reason_code: &'static str, sip_code: Option<u16>, note: String) {
        self.xfer.step = Step::Idle;
        self.timers.cancel(TimerKind::Transfer);
        self.emit(Output::Timeline {
            kind: "transfer",
            note: format!("{note}; the person stays with the bot"),
        });
        self.transfer_status(false, reason_code, sip_code);
        if std::mem::take(&mut self.xfer.resume_recognition) && self.media_running {
            self.recognition = Recognition::Bot(true);
            self.emit(Output::StartRecognition { to_bot: true });
        }
    }

    pub(super) fn on_transfer_input(&mut self, now: Instant, input: TransferInput) {
        match input {
            TransferInput::ReferAnswered { code, reason } => self.on_refer_answered(code, reason),
            TransferInput::ReferNotify { code } => self.on_refer_notify(now, code),
            TransferInput::AgentProvisional { code } => self.on_agent_provisional(now, code),
            TransferInput::AgentAnswered { sdp_ok } => self.on_agent_answered(now, sdp_ok),
            TransferInput::AgentFailed { code, kind, reason } => {
                self.on_agent_failed(code, kind, reason)
            }
            TransferInput::AgentBye => self.on_agent_bye(now),
        }
    }

    fn on_refer_answered(&mut self, code: Option<u16>, reason: String) {
        let Step::Referring { accepted, .. } = &mut self.xfer.step else {
            return self.ignore("REFER response without a REFER");
        };
        match code {
            Some(c) if (200..300).contains(&c) => {
                *accepted = true;
                self.emit(Output::Timeline {
                    kind: "transfer",
                    note: format!("REFER accepted ({c})"),
                });
            }
            Some(c) => {
                let rc = ReasonCode::from_carrier_failure(code, FailureKind::Response);
                let note = format!("REFER refused: {c} {reason}").trim_end().to_owned();
                self.transfer_failed(rc.as_str(), Some(c), note);
            }
            None => self.transfer_failed("error", None, format!("REFER failed: {reason}")),
        }
    }

    fn on_refer_notify(&mut self, now: Instant, code: u16) {
        let Step::Referring { target, .. } = &self.xfer.step else {
            return self.ignore("NOTIFY without a REFER");
        };
        let target = target.clone();
        match code {
            100..=199 => self.emit(Output::Timeline {
                kind: "transfer",
                note: format!("the transfer is under way ({code})"),
            }),
            200..=299 => {
                self.transfer_status(true, ReasonCode::Transferred.as_str(), Some(code));
                self.xfer.step = Step::Idle;
                let text = format!("transferred to {target} by REFER");
                self.begin_end(now, cause(ReasonCode::Transferred, text, None, None));
            }
            _ => {
                let rc = ReasonCode::from_carrier_failure(Some(code), FailureKind::Response);
                let note = format!("the transfer target answered {code}");
                self.transfer_failed(rc.as_str(), Some(code), note);
            }
        }
    }

    fn on_agent_provisional(&mut self, now: Instant, code: u16) {
        match &mut self.xfer.step {
            Step::Calling { ringing, .. } if code > 100 && !*ringing => {
                *ringing = true;
                let at = self.since_start(now).as_millis();
                self.emit(Output::Timeline {
                    kind: "transfer",
                    note: format!("the agent is ringing ({code}) at {at} ms"),
                });
            }
            Step::Calling { .. } => {}
            _ => self.ignore("agent provisional without an agent INVITE"),
        }
    }

    fn on_agent_answered(&mut self, now: Instant, sdp_ok: bool) {
        match (&self.xfer.step, self.xfer.agent) {
            (Step::Calling { target, .. }, Leg::Inviting) => {
                let target = target.clone();
                self.timers.cancel(TimerKind::Transfer);
                if !sdp_ok {
                    self.xfer.agent = Leg::Gone;
                    self.emit(Output::Transfer(TransferOutput::ByeAgent));
                    let note = "the agent answered without usable audio".to_owned();
                    return self.transfer_failed("error", Some(488), note);
                }
                self.xfer.agent = Leg::Up;
                self.emit(Output::Transfer(TransferOutput::BridgeAgent));
                self.transfer_status(true, ReasonCode::Transferred.as_str(), Some(200));
                let at = self.since_start(now).as_millis();
                self.emit(Output::Timeline {
                    kind: "transfer",
                    note: format!(
                        "the agent {target} answered 200 at {at} ms; the person is bridged to \
                         the agent and the bot is released"
                    ),
                });
                self.xfer.step = Step::Bridged;
                self.release_bot();
            }
            (_, Leg::Cancelling) => {
                // Answered across our CANCEL: the SIP layer ACKs it, we end it at once.
                self.xfer.agent = Leg::Gone;
                self.emit(Output::Transfer(TransferOutput::ByeAgent));
            }
            _ => self.ignore("duplicate or late 200 OK from the agent"),
        }
    }

    /// The bot's part of the call ends: its leg (BYE), its prompts, its pending activities.
    /// Its Bot API conversation is closed with the call (`disconnect`, reason `transferred`).
    fn release_bot(&mut self) {
        if self.bot == Leg::Up {
            self.bot = Leg::Gone;
            self.emit(Output::ByeBot);
        }
        self.pending_prompts.clear();
        self.playing = false;
        self.awaiting_beep = false;
        self.delayed.clear();
        self.timers.cancel(TimerKind::Delayed);
        self.timers.cancel(TimerKind::BeepWait);
        // The bot's dialog is over: its session timer (RFC 4028) with it.
        self.timers.cancel(TimerKind::BotLegSessionRefresh);
        self.timers.cancel(TimerKind::BotLegSessionExpiry);
    }

    fn on_agent_failed(&mut self, code: Option<u16>, kind: FailureKind, reason: String) {
        match (&self.xfer.step, self.xfer.agent) {
            (Step::Calling { .. }, Leg::Inviting) => {
                self.xfer.agent = Leg::Gone;
                let rc = ReasonCode::from_carrier_failure(code, kind);
                let text =
                    carrier_failure_text(code, kind, &reason).replacen("carrier", "the agent", 1);
                self.transfer_failed(rc.as_str(), code, text);
            }
            (_, Leg::Cancelling) => self.xfer.agent = Leg::Gone,
            _ => self.ignore("agent failure without an agent INVITE"),
        }
    }

    fn on_agent_bye(&mut self, now: Instant) {
        if self.xfer.agent != Leg::Up {
            return self.ignore("agent BYE without an agent leg");
        }
        self.xfer.agent = Leg::Gone;
        if self.is_live() {
            let c = cause(
                ReasonCode::Transferred,
                "the agent hung up after the transfer",
                None,
                None,
            );
            self.begin_end(now, c);
        }
    }

    /// The transfer timer: the agent did not answer in time, or the REFER's outcome never came.
    pub(super) fn on_transfer_timeout(&mut self) {
        let secs = self.cfg.answer_timeout.as_secs();
        match self.xfer.step {
            Step::Calling { .. } => {
                self.xfer.agent = Leg::Cancelling;
                self.emit(Output::Transfer(TransferOutput::CancelAgent));
                self.transfer_failed(
                    "no-answer",
                    None,
                    format!("the agent did not answer within {secs} s"),
                );
            }
            Step::Referring { .. } => {
                let secs = secs + REFER_GRACE.as_secs();
                self.transfer_failed(
                    "no-answer",
                    None,
                    format!("the transfer did not complete within {secs} s"),
                );
            }
            _ => self.ignore("transfer timer without a transfer"),
        }
    }

    /// The call ends (any cause): the agent's leg goes with it, and a transfer still under way
    /// is reported failed to the bot.
    pub(super) fn end_transfer(&mut self) {
        match self.xfer.agent {
            Leg::Inviting => {
                self.xfer.agent = Leg::Cancelling;
                self.emit(Output::Transfer(TransferOutput::CancelAgent));
            }
            Leg::Up => {
                self.xfer.agent = Leg::Gone;
                self.emit(Output::Transfer(TransferOutput::ByeAgent));
            }
            Leg::Idle | Leg::Cancelling | Leg::Gone => {}
        }
        if matches!(
            self.xfer.step,
            Step::Referring { .. } | Step::Calling { .. }
        ) {
            self.xfer.step = Step::Idle;
            self.emit(Output::Timeline {
                kind: "transfer",
                note: "the call ended before the transfer did".to_owned(),
            });
            self.transfer_status(false, "call-ended", None);
        }
    }

    /// The cause of a person hanging up: `transferred` once they talk to the agent.
    pub(super) fn carrier_bye_cause(&self) -> super::report::EndCause {
        if self.xfer.bridged() {
            cause(
                ReasonCode::Transferred,
                "the person hung up after the transfer",
                None,
                None,
            )
        } else {
            cause(ReasonCode::ClientDisconnected, "callee hung up", None, None)
        }
    }
}
