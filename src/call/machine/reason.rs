//! Reason codes of a terminal status and the carrier-failure mapping (DESIGN §2).

use serde::{Deserialize, Serialize};

/// How a leg's INVITE failed, as classified by the SIP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// A final non-2xx response arrived (its code is in `code`).
    Response,
    /// The INVITE transaction timed out without any response (Timer B).
    Timeout,
    /// The request could not be sent or the connection broke (DNS, TCP/TLS, ICMP).
    Transport,
    /// dialgate itself failed (e.g. no RTP port, SDP could not be built).
    Internal,
}

/// `reasonCode` of a status notification and of the bot's disconnect request.
///
/// Before answer: `no-answer`, `busy`, `declined`, `rejected`, `error` (plus `api-hangup` and
/// `bot-disconnected` when the call was cancelled on purpose while ringing). After answer:
/// `client-disconnected`, `bot-disconnected`, `machine-detected`, `api-hangup`, `media-timeout`,
/// `max-duration`, `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonCode {
    /// Nobody answered: ring timeout, or carrier 408/480/487.
    NoAnswer,
    /// Carrier 486 or 600.
    Busy,
    /// Carrier 603.
    Declined,
    /// Any other final failure response from the carrier (see `sipCode`).
    Rejected,
    /// Transport or internal failure, or the bot leg failed after the answer.
    Error,
    /// The carrier side (the person) hung up.
    ClientDisconnected,
    /// The bot hung up (SIP BYE or a `hangup` activity).
    BotDisconnected,
    /// AMD found a machine or fax and the mode was `disconnect`.
    MachineDetected,
    /// A hang-up request came through the API.
    ApiHangup,
    /// The relay saw no RTP for too long.
    MediaTimeout,
    /// The call reached its configured maximum duration. Not in the Live Hub list: an addition
    /// of dialgate, chosen because none of the listed codes describes a policy limit honestly.
    MaxDuration,
    /// The person was handed to another destination (a `transfer` activity), and the call
    /// ended after that: a Live Hub code.
    Transferred,
}

impl ReasonCode {
    /// The kebab-case wire form, identical to the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::NoAnswer => "no-answer",
            ReasonCode::Busy => "busy",
            ReasonCode::Declined => "declined",
            ReasonCode::Rejected => "rejected",
            ReasonCode::Error => "error",
            ReasonCode::ClientDisconnected => "client-disconnected",
            ReasonCode::BotDisconnected => "bot-disconnected",
            ReasonCode::MachineDetected => "machine-detected",
            ReasonCode::ApiHangup => "api-hangup",
            ReasonCode::MediaTimeout => "media-timeout",
            ReasonCode::MaxDuration => "max-duration",
            ReasonCode::Transferred => "transferred",
        }
    }

    /// Maps a failed carrier INVITE to a reason code (DESIGN §2).
    ///
    /// A transaction timeout (no response at all, not even 100 Trying) maps to `error`, not
    /// `no-answer`: the carrier never took the call, so it is an infrastructure problem and a
    /// dialer should not treat it as "the person did not pick up". A 408 *response* (sent by a
    /// proxy or the far end) is `no-answer`.
    pub fn from_carrier_failure(code: Option<u16>, kind: FailureKind) -> ReasonCode {
        match (kind, code) {
            (FailureKind::Response, Some(486 | 600)) => ReasonCode::Busy,
            (FailureKind::Response, Some(603)) => ReasonCode::Declined,
            (FailureKind::Response, Some(408 | 480 | 487)) => ReasonCode::NoAnswer,
            (FailureKind::Response, Some(_)) => ReasonCode::Rejected,
            // A "response" without a code is a bug in the caller: classify as internal.
            (FailureKind::Response, None) => ReasonCode::Error,
            (FailureKind::Timeout | FailureKind::Transport | FailureKind::Internal, _) => {
                ReasonCode::Error
            }
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reason text for a carrier INVITE failure.
pub(super) fn carrier_failure_text(code: Option<u16>, kind: FailureKind, reason: &str) -> String {
    match (kind, code) {
        (FailureKind::Response, Some(c)) => format!("carrier answered {c} {reason}")
            .trim_end()
            .to_owned(),
        (FailureKind::Timeout, _) => "carrier did not respond to the INVITE".to_owned(),
        (FailureKind::Transport, _) => format!("carrier unreachable: {reason}"),
        (FailureKind::Internal, _) | (FailureKind::Response, None) => {
            format!("internal error on the carrier leg: {reason}")
        }
    }
}

/// Reason text for a bot INVITE failure (`bot rejected with 486 Busy Here`).
pub(super) fn bot_failure_text(code: Option<u16>, kind: FailureKind, reason: &str) -> String {
    match (kind, code) {
        (FailureKind::Response, Some(c)) => format!("bot rejected with {c} {reason}")
            .trim_end()
            .to_owned(),
        (FailureKind::Timeout, _) => "bot did not respond to the INVITE".to_owned(),
        (FailureKind::Transport, _) => format!("bot unreachable: {reason}"),
        (FailureKind::Internal, _) | (FailureKind::Response, None) => {
            format!("internal error on the bot leg: {reason}")
        }
    }
}
