//! Inputs (events), outputs (actions) and small value types of the call state machine.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::reason::{FailureKind, ReasonCode};
use super::report::TerminalReport;
use crate::core::activity::{BotActivity, RecordingOp};

pub use crate::core::AmdMode;
pub use crate::core::transfer::TransferMethod;

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
    /// dialgate is stopping (SIGTERM / Ctrl-C) and ends every live call → `error`, with a
    /// reason that says so (not "requested through the API": no client asked for it).
    Shutdown,
}

/// Which timer of the machine's single timer table. The machine arms and fires them itself:
/// the shell only asks [`super::CallMachine::poll_timeout`] when to call
/// [`super::CallMachine::handle_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// `answerTimeoutSec` since the carrier INVITE went out.
    Answer,
    /// How long the bot may take to answer its INVITE.
    BotAnswer,
    /// How long the bot may take to open its conversation when `dialoutInitiated` must reach it
    /// before the person is called.
    BotOpen,
    /// The next Bot API session refresh, before the bot's `expiresSeconds` runs out.
    BotRefresh,
    /// Maximum call duration, counted from the carrier's 200 OK.
    MaxDuration,
    /// How long to wait for a CANCELled INVITE to end (487 or a racing 200) before giving up.
    CancelGuard,
    /// The earliest `delay`ed bot activity is due.
    Delayed,
    /// How long a text bot's prompts wait for a voicemail's beep.
    BeepWait,
    /// How long a transfer may take: the agent's ring time (bridge), or the REFER's outcome.
    Transfer,
    /// Our next carrier session refresh (RFC 4028), at half the interval.
    SessionRefresh,
    /// The carrier session expires without a refresh: BYE, `error`.
    SessionExpiry,
    /// Our next bot-leg session refresh (RFC 4028, `bots[].session_expires_sec`).
    BotLegSessionRefresh,
    /// The bot-leg session expires without a refresh: BYE both legs, `error`.
    BotLegSessionExpiry,
}

/// Which leg of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegSide {
    /// The carrier leg (the person).
    Carrier,
    /// The bot's media leg.
    Bot,
}

/// What the shell feeds into [`super::CallMachine::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The call was accepted and recorded; begin (open the bot conversation, then dial).
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
    /// The carrier INVITE ended without a 2xx (includes the 487 after our CANCEL), or sending it
    /// failed.
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
    /// The bot INVITE ended without a usable 2xx, or sending it failed.
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
    /// A leg's dialog vanished without a final response or a BYE (its event stream ended). The
    /// machine knows whether that leg was up, and so what it means.
    LegGone(LegSide),
    /// A re-INVITE arrived on a leg; answered per [`Output::AnswerReInvite`].
    ReInvite(LegSide),
    /// A hang-up request from the API.
    Hangup {
        /// Who asked.
        source: HangupSource,
    },
    /// The Bot API conversation is open; `expires` is the bot's `expiresSeconds`.
    BotSessionOpened {
        /// How long the session lives without a refresh.
        expires: Option<Duration>,
    },
    /// A Bot API request could not be delivered (the bot answered 4xx, or its retry budget ran
    /// out); `reason` says what the bot answered.
    BotUnreachable {
        /// What happened, in words (e.g. "the bot answered 401").
        reason: String,
    },
    /// An activity from the bot (already parsed; see [`crate::core::activity`]).
    BotActivity(BotActivity),
    /// The recogniser heard an utterance.
    Recognised {
        /// The text.
        text: String,
        /// The recogniser's confidence, 0..1.
        confidence: f32,
    },
    /// A recognition session could not be started.
    RecognitionFailed {
        /// Why (no model, too many sessions, …).
        reason: String,
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
    /// The person pressed a key (RFC 4733 from the carrier leg).
    Dtmf(char),
    /// Everything queued for the person has been played (or cut by `abortPrompts`).
    PlaybackDone,
    /// What happens to a transfer under way (the agent's leg, the REFER and its NOTIFYs).
    Transfer(super::transfer::TransferInput),
    /// The carrier session timer (RFC 4028) after the 2xx, a refresh, or the peer's refresh.
    CarrierSessionTimer {
        /// The session interval; `None` = the session does not expire.
        interval: Option<Duration>,
        /// dialgate sends the refreshes (else it only waits for the peer's).
        we_refresh: bool,
    },
    /// The pre-answer detector heard an intercept in the early media (SIT tones, or an
    /// announcement's words).
    EarlyIntercept {
        /// SIT tones (else recognised words).
        sit: bool,
        /// What was heard (tone frequencies or the recognised text).
        heard: String,
    },
    /// A `playUrl` prompt could not be played (not fetched, not decoded); the call goes on.
    PromptFailed {
        /// The URL as the bot gave it.
        url: String,
        /// Why, in words.
        reason: String,
    },
    /// The person started speaking (voice activity on the carrier leg): barge-in.
    SpeechStarted,
    /// A WebSocket bot's socket dropped and could not be resumed (or the bot ended its media
    /// stream): the bot is gone for good.
    BotSocketLost {
        /// Why, in words.
        reason: String,
    },
    /// The bot-leg session timer (RFC 4028) after the bot's 2xx, a refresh, or the bot's own
    /// refresh (SIP bots with `session_expires_sec`).
    BotLegSessionTimer {
        /// The session interval; `None` = the session does not expire.
        interval: Option<Duration>,
        /// dialgate sends the refreshes (else it only waits for the bot's).
        we_refresh: bool,
    },
}

/// Something a text bot has the gateway play to the person.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Text spoken with speech synthesis (a `message` activity).
    Speak(String),
    /// An audio file (`playUrl`).
    Url(String),
    /// Key presses for the person (`sendDtmf`; checked by the machine, see
    /// [`crate::media::inject::dtmf_plan`]).
    Dtmf(String),
    /// An audio file with the bot's `playUrlMediaFormat`.
    UrlAs {
        /// The URL.
        url: String,
        /// `playUrlMediaFormat` as the bot wrote it.
        format: String,
    },
}

/// A bot event (Bot API activity the gateway sends).
#[derive(Debug, Clone, PartialEq)]
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
    /// The prompts queued for the person have all played: `playFinished`.
    PlayFinished,
    /// A key the person pressed: `{"type": "event", "name": "DTMF", "value": "5"}`.
    Dtmf {
        /// The digit (`0-9`, `*`, `#`, `A-D`).
        digit: char,
    },
    /// `playFinished` for prompts cut short (`abortPrompts`, barge-in):
    /// `{"type": "event", "name": "playFinished", "parameters": {"interrupted": true}}`.
    PlayInterrupted,
    /// A `playUrl` that could not be played:
    /// `{"type": "event", "name": "playUrlFailed", "value": url, "parameters": {"reason"}}`.
    PlayUrlFailed {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// Recognised speech: `{"type": "message", "text", "parameters": {"confidence"}}`.
    Message {
        /// The text.
        text: String,
        /// The recogniser's confidence.
        confidence: f32,
    },
    /// How a `transfer` ended: `{"type": "event", "name": "transferStatus", "value":
    /// "answered"|"failed", "parameters": {"reasonCode", "sipCode"}}`.
    TransferStatus {
        /// The target answered (bridge) or the REFER succeeded.
        answered: bool,
        /// `transferred`, or why it failed (`busy`, `no-answer`, `not-connected`, …).
        reason_code: &'static str,
        /// The SIP code that decided it, if one did.
        sip_code: Option<u16>,
    },
}

/// What the shell must do. Each output is a complete decision: the shell executes it in the
/// order given and never needs to look at call state to decide whether to do it. When executing
/// one fails, the shell feeds the failure back as an [`Input`].
#[derive(Debug, PartialEq)]
pub enum Output {
    /// Open the Bot API conversation (`POST events_url`). Always emitted before the first
    /// [`Output::BotEvent`]; at most once.
    OpenBotConversation,
    /// Refresh the Bot API session (`POST refreshURL`).
    RefreshBotSession,
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
    /// Answer a re-INVITE on a leg: with the relay's SDP (`accept`), or refuse it.
    AnswerReInvite {
        /// Which leg asked.
        side: LegSide,
        /// Answer it (the leg is up and the call is not ending) or refuse it.
        accept: bool,
    },
    /// Start the media relay for the carrier leg, with the audio tap attached.
    StartMedia,
    /// Start AMD on the callee's audio in this mode (never `Disabled`).
    StartAmd {
        /// The mode.
        mode: AmdMode,
        /// A recognition session feeds the detector: a long greeting's `machine` decision
        /// waits for its transcript (`transcript_hold_ms`).
        transcripts: bool,
    },
    /// Start a recognition session on the callee's audio.
    StartRecognition {
        /// Its text goes to the bot (else only to machine detection and the call record).
        to_bot: bool,
    },
    /// The running recognition session's text goes to the bot from now on (or no longer).
    RecognitionToBot(bool),
    /// End the recognition session (it only served machine detection, which has decided).
    StopRecognition,
    /// Connect the relay's carrier side to the bot side (both legs are up).
    BridgeMedia,
    /// Play to the person (a text bot: dialgate is its voice).
    Play(Prompt),
    /// Cut what is playing and everything queued.
    AbortPrompts,
    /// Stop the relay, its taps, AMD and recognition.
    StopMedia,
    /// Tell the dialer `answered` (status notification).
    NotifyAnswered,
    /// Write a line on the call's timeline (and the log).
    Timeline {
        /// Short kind (`activity`, `stt`, …).
        kind: &'static str,
        /// What happened.
        note: String,
    },
    /// `POST disconnectURL` of the bot conversation; only if it was opened.
    BotDisconnect {
        /// Free text.
        reason: String,
        /// Same code as the terminal report.
        reason_code: ReasonCode,
    },
    /// The one terminal outcome: notify the dialer, write the call record. Always the last
    /// output of the machine; emitted exactly once per call.
    Terminal(TerminalReport),
    /// A step of a transfer (REFER, the agent's leg, re-pointing the relay).
    Transfer(super::transfer::TransferOutput),
    /// Refresh the carrier session (RFC 4028): UPDATE, or re-INVITE when the carrier lacks it.
    RefreshCarrierSession,
    /// Early media: start the relay's carrier direction with the provisional's SDP and the
    /// pre-answer detector (SIT, intercept words). The answer's `StartMedia` takes over.
    StartEarlyMedia,
    /// Start, stop, pause or resume the call's stereo recording (the machine only asks for what
    /// the recording's state allows: see `recording.rs`).
    Recording(RecordingOp),
    /// Send an in-dialog INFO on the carrier leg (the bot's `sendMetaData`).
    CarrierInfo {
        /// `Content-Type` of the body.
        content_type: &'static str,
        /// The body.
        body: String,
    },
    /// The bot leg answered before the person (`early_media_to_bot`): the carrier's early media
    /// goes to the bot, one way — the bot's audio reaches nobody until [`Output::BridgeMedia`]
    /// at the answer.
    BotHearsEarlyMedia,
    /// Refresh the bot leg's SIP session (RFC 4028): UPDATE, or re-INVITE when the bot lacks
    /// it. (Not the Bot API session: that is [`Output::RefreshBotSession`].)
    RefreshBotLegSession,
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
    /// The bot has a Bot API (`events_url`): conversations are opened and events sent.
    pub bot_api: bool,
    /// With `dialout_initiated_event`, how long the bot may take to open its conversation
    /// before the call fails without the person being called.
    pub bot_open_timeout: Duration,
    /// A speech model is loaded, so recognition sessions can run (for the bot or for AMD).
    pub recognizer_available: bool,
    /// The bot is a text bot: dialgate is its media side and plays its messages and files.
    pub text_bot: bool,
    /// After a `machine` decision (mode `detect`), how long a text bot's prompts wait for the
    /// beep before they play anyway.
    pub beep_wait: Duration,
    /// How the bot's `transfer` activities are carried out (`outbound.transfer`).
    pub transfer: TransferMethod,
    /// Barge-in from the start of the call (`outbound.barge_in`): the person's speech cuts a
    /// prompt that is playing. Copied into the machine's `barge_in` flag, which the `config`
    /// activity (`bargeIn`) switches and barge-in reads.
    pub barge_in: bool,
    /// Record the call from the answer (`bots[].recording`); without it the bot may still start
    /// a recording with `startCallRecording`.
    pub recording: bool,
    /// Forward `sendMetaData` to the person's leg as SIP INFO (`outbound.send_metadata_info`).
    pub send_metadata_info: bool,
    /// A SIP bot's `message` activities are spoken by dialgate in place of its audio
    /// (`outbound.speak_messages`).
    pub speak_messages: bool,
    /// The bot's media side is a WebSocket (`bots[].websocket`): its session is opened (and
    /// must be accepted) before the person is called, and it carries the bot events.
    pub ws_bot: bool,
    /// A SIP bot's leg is placed at the carrier's first provisional with SDP, so the bot hears
    /// the early media (`outbound.early_media_to_bot`; see `early_bot.rs`).
    pub early_media_to_bot: bool,
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
            bot_api: true,
            bot_open_timeout: Duration::from_secs(10),
            recognizer_available: false,
            text_bot: false,
            beep_wait: Duration::from_secs(10),
            transfer: TransferMethod::Bridge,
            barge_in: false,
            recording: false,
            send_metadata_info: false,
            speak_messages: false,
            ws_bot: false,
            early_media_to_bot: false,
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
