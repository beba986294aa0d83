//! Inputs (events), outputs (actions) and small value types of the call state machine.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::reason::{FailureKind, ReasonCode};
use super::report::TerminalReport;

pub use crate::core::AmdMode;

/// What AMD decided: the detector's own result type.
pub use crate::amd::AmdResult;

/// The AMD decision kept for the terminal report and the call record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmdOutcome {
    /// The decision.
    pub result: AmdResult,
    /// Milliseconds of callee audio AMD needed (as reported by the AMD tap).
    pub at_ms: u32,
}

/// Who asked for a hang-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HangupSource {
    /// `POST .../hangup` through the API → `api-hangup`.
    Api,
    /// The bot answered an activity with a `hangup` event → `bot-disconnected` (the bot chose
    /// to end the call, which is what a bot BYE means too).
    BotActivity,
}

/// Which timer of the machine's single timer table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// `answerTimeoutSec` since the carrier INVITE went out.
    Answer,
    /// How long the bot may take to answer its INVITE.
    BotAnswer,
    /// Maximum call duration, counted from the carrier's 200 OK.
    MaxDuration,
    /// How long to wait for a CANCELled INVITE to end (487 or a racing 200) before giving up.
    CancelGuard,
}

/// Identifies one arming of one timer. The generation makes a stale `Event::Timer` (one whose
/// timer was cancelled or re-armed after the shell scheduled it) recognisable and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    /// Which timer.
    pub kind: TimerKind,
    /// Generation, unique per machine and arming.
    pub generation: u32,
}

/// An event the shell feeds into [`super::CallMachine::on_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The call was accepted and recorded; begin dialing.
    Start,
    /// A 1xx from the carrier. 100 Trying does not count as ringing.
    CarrierProvisional {
        /// SIP status code (100..199).
        code: u16,
        /// Whether it carried SDP (early media). Informational only today.
        has_sdp: bool,
    },
    /// A 2xx to the carrier INVITE (the SIP layer ACKs it itself). Retransmissions may repeat it.
    CarrierAnswered {
        /// Whether the answer SDP was usable (a common codec, an address).
        sdp_ok: bool,
    },
    /// The carrier INVITE ended without a 2xx (includes the 487 after our CANCEL).
    CarrierFailed {
        /// Final status code, if a response arrived.
        code: Option<u16>,
        /// How it failed.
        kind: FailureKind,
        /// Human-readable detail (reason phrase or error text).
        reason: String,
    },
    /// The carrier sent BYE on the established dialog (the person hung up).
    CarrierBye,
    /// The bot answered its INVITE with a usable 2xx.
    BotAnswered,
    /// The bot INVITE ended without a usable 2xx.
    BotFailed {
        /// Final status code, if a response arrived.
        code: Option<u16>,
        /// How it failed.
        kind: FailureKind,
        /// Human-readable detail.
        reason: String,
    },
    /// The bot sent BYE on the established dialog.
    BotBye,
    /// A hang-up request from the API or from a bot `hangup` activity.
    Hangup {
        /// Who asked.
        source: HangupSource,
    },
    /// The AMD tap decided.
    AmdDecision {
        /// The decision.
        result: AmdResult,
        /// Milliseconds of audio it needed.
        at_ms: u32,
    },
    /// The AMD tap heard the voicemail beep.
    AmdBeep {
        /// Milliseconds of audio at the beep.
        at_ms: u32,
    },
    /// The relay saw no RTP for its configured time.
    MediaTimeout,
    /// A timer asked for with [`Action::SetTimer`] expired.
    Timer(TimerId),
}

/// A bot event (Bot API activity of type `event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotEvent {
    /// `dialoutInitiated`, before the carrier INVITE.
    DialoutInitiated,
    /// `start`, once the bot leg is bridged.
    Start,
    /// `machineDetection` with its value.
    MachineDetection {
        /// The AMD result.
        value: AmdResult,
    },
    /// `beep`.
    Beep,
}

/// What the shell must do. Each action is a complete decision: the shell executes it in the
/// order given and never needs to look at call state to decide whether to do it.
#[derive(Debug, PartialEq)]
pub enum Action {
    /// Open the Bot API conversation (`POST events_url`). Always emitted before the first
    /// [`Action::BotEvent`]; at most once.
    OpenBotConversation,
    /// Deliver this event to the bot (in order, through the outbox).
    BotEvent(BotEvent),
    /// Send the INVITE to the carrier (route, SDP offer and headers are the shell's business).
    SendCarrierInvite,
    /// CANCEL the pending carrier INVITE.
    CancelCarrier,
    /// Send BYE on the carrier dialog (also used when a 200 OK arrives after our CANCEL).
    ByeCarrier,
    /// Send the INVITE to the bot's `sip_uri` with the relay's bot-side SDP.
    SendBotInvite,
    /// CANCEL the pending bot INVITE.
    CancelBot,
    /// Send BYE on the bot dialog.
    ByeBot,
    /// Start the media relay for the carrier leg, with the AMD/STT taps attached (audio is
    /// tapped from now on; frames reach AMD/STT only once those are started).
    StartMedia,
    /// Start AMD on the callee's audio in this mode (never `Disabled`).
    StartAmd(AmdMode),
    /// Start speech-to-text on the callee's audio.
    StartStt,
    /// Connect the relay's carrier side to the bot side (both legs are up).
    BridgeMedia,
    /// Stop the relay, its taps, AMD and STT.
    StopMedia,
    /// Tell the dialer `answered` (status notification).
    NotifyAnswered,
    /// `POST disconnectURL` of the bot conversation; only if it was opened.
    BotDisconnect {
        /// Free text.
        reason: String,
        /// Same code as the terminal report.
        reason_code: ReasonCode,
    },
    /// Arm a timer: feed `Event::Timer(id)` at `at`.
    SetTimer {
        /// The timer and its generation.
        id: TimerId,
        /// When it expires.
        at: Instant,
    },
    /// Disarm a timer (best effort: a late `Event::Timer(id)` is ignored anyway).
    CancelTimer(TimerId),
    /// The one terminal outcome: notify the dialer, write the call record. Always the last
    /// action of the machine; emitted exactly once per call.
    Terminal(TerminalReport),
}

/// Per-call settings, resolved by the shell from the bot config and the dialout request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    /// Send `dialoutInitiated` (opening the bot conversation) before the INVITE.
    pub dialout_initiated_event: bool,
    /// AMD mode.
    pub machine_detection: AmdMode,
    /// Start STT at answer (`start_recognition_on_connect`).
    pub start_recognition_on_connect: bool,
    /// Ring timeout (`answerTimeoutSec`).
    pub answer_timeout: Duration,
    /// How long the bot may take to answer.
    pub bot_answer_timeout: Duration,
    /// Maximum duration after answer; `None` = unlimited.
    pub max_duration: Option<Duration>,
    /// How long to wait for a CANCELled INVITE to finish. 32 s = Timer B/64·T1, after which
    /// the transaction layer has given up too.
    pub cancel_guard: Duration,
}

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            dialout_initiated_event: false,
            machine_detection: AmdMode::Disabled,
            start_recognition_on_connect: false,
            answer_timeout: Duration::from_secs(30),
            bot_answer_timeout: Duration::from_secs(10),
            max_duration: Some(Duration::from_secs(4 * 3600)),
            cancel_guard: Duration::from_secs(32),
        }
    }
}

/// Coarse call state for records and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallState {
    /// Created, not started.
    Initiating,
    /// Carrier INVITE sent, no ringing yet.
    Dialing,
    /// Carrier sent 180/183.
    Ringing,
    /// Carrier answered; bot INVITE pending.
    Answered,
    /// Both legs up and bridged.
    Connected,
    /// Tearing down: waiting for a CANCELled INVITE to finish.
    Ending,
    /// Terminal report emitted; every further event is ignored.
    Ended,
}
