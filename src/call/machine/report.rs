//! The terminal report and the (non-copyable) end cause it is built from.
//!
//! Exactly-once by types: a [`TerminalReport`] can only be built from an `EndCause` by value,
//! an `EndCause` lives only inside the machine's `Ending` phase, and `finish()` moves it out while
//! replacing the phase with `Ended`. Neither type is `Clone`, and `TerminalReport` has a private
//! field, so no code outside this module can conjure a second one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::reason::ReasonCode;
use super::types::AmdOutcome;

/// Terminal `status` of a status notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    /// The dialer was never told `answered`.
    Failed,
    /// The dialer was told `answered`, then the call ended.
    Completed,
}

/// Why the call is ending; latched once, by the first cause (later causes are ignored).
#[derive(Debug, PartialEq)]
pub(super) struct EndCause {
    pub(super) reason_code: ReasonCode,
    pub(super) reason: String,
    /// Carrier final status code when the cause is a carrier response (or 200 after answer).
    pub(super) sip_code: Option<u16>,
    /// The bot's status code when the cause is the bot leg failing.
    pub(super) bot_sip_code: Option<u16>,
}

/// How one call ended. Not `Clone`: exactly one exists per call.
#[derive(Debug, PartialEq)]
pub struct TerminalReport {
    /// `failed` or `completed`: `completed` iff the dialer was sent `answered`.
    pub status: CallStatus,
    /// `reasonCode`.
    pub reason_code: ReasonCode,
    /// `reason` (free text).
    pub reason: String,
    /// `sipCode`: always about the carrier leg (its failure code, or 200 once answered).
    pub sip_code: Option<u16>,
    /// The bot leg's failure code, when the bot leg ended the call (for the call record).
    pub bot_sip_code: Option<u16>,
    /// From `Event::Start` to the first ringing provisional.
    pub ringing_after: Option<Duration>,
    /// From `Event::Start` to the carrier's 200 OK that was accepted as the answer.
    pub answered_after: Option<Duration>,
    /// From `Event::Start` to the bot's answer (legs bridged).
    pub connected_after: Option<Duration>,
    /// From `Event::Start` to the terminal report.
    pub ended_after: Duration,
    /// The first AMD decision, if any.
    pub amd: Option<AmdOutcome>,
    /// Private: only [`TerminalReport::build`] can create a report.
    seal: Seal,
}

/// Unconstructible outside this module; keeps struct-literal construction of a report out of
/// every other module of the crate (`#[non_exhaustive]` would only do that for other crates).
#[derive(Debug, PartialEq)]
struct Seal;

/// Timestamps the machine collected (relative to `Event::Start`).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Times {
    pub(super) ringing: Option<Duration>,
    pub(super) answered: Option<Duration>,
    pub(super) connected: Option<Duration>,
}

impl TerminalReport {
    /// Only `CallMachine::finish` calls this, with the cause it moved out of the phase.
    pub(super) fn build(
        cause: EndCause,
        answered_notified: bool,
        times: Times,
        ended_after: Duration,
        amd: Option<AmdOutcome>,
    ) -> TerminalReport {
        TerminalReport {
            status: if answered_notified {
                CallStatus::Completed
            } else {
                CallStatus::Failed
            },
            reason_code: cause.reason_code,
            reason: cause.reason,
            sip_code: cause.sip_code,
            bot_sip_code: cause.bot_sip_code,
            ringing_after: times.ringing,
            answered_after: if answered_notified {
                times.answered
            } else {
                None
            },
            connected_after: times.connected,
            ended_after,
            amd,
            seal: Seal,
        }
    }

    /// `durationSeconds`: talk time from answer to end (0 when never answered), rounded down.
    pub fn duration_seconds(&self) -> u64 {
        match self.answered_after {
            Some(a) => self.ended_after.saturating_sub(a).as_secs(),
            None => 0,
        }
    }
}

/// Builds an end cause (only the machine does).
pub(super) fn cause(
    reason_code: ReasonCode,
    reason: impl Into<String>,
    sip_code: Option<u16>,
    bot_sip_code: Option<u16>,
) -> EndCause {
    EndCause {
        reason_code,
        reason: reason.into(),
        sip_code,
        bot_sip_code,
    }
}
