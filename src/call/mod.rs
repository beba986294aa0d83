//! The call engine's boundary: the API hands every accepted dialout and every
//! hang-up request to a [`CallControl`].

pub mod actor;
pub mod audio_fetch;
pub mod engine;
mod legjournal;
pub mod legs;
pub mod limiter;
pub mod machine;
pub mod notify;
pub mod queue;
pub mod routing;
pub mod srtp_check;
mod supervise;
mod takeover;
pub mod trunk_dns;
pub mod wsbridge;

use crate::config::Snapshot;
use crate::core::DialoutRequest;
use std::sync::Arc;

/// A dialout that passed every check and is durably stored.
pub struct AcceptedDialout {
    pub conversation_id: String,
    pub client_id: String,
    /// The bot's configured ID (the request may have named it by name).
    pub bot_id: String,
    pub request: DialoutRequest,
    /// The configuration the call was accepted under; it keeps it to the end.
    pub config: Arc<Snapshot>,
    /// The bot's concurrency slot, released when the call ends.
    pub permit: limiter::Permit,
    /// The route chosen when the dialout was accepted (resolved once per call).
    pub route: routing::Route,
}

/// What became of a hang-up request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupOutcome {
    /// The live call was told to end.
    Requested,
    /// No live call with that ID in this process.
    NotLive,
}

/// The call engine as seen by the API.
pub trait CallControl: Send + Sync {
    /// Starts placing an accepted call. Must not block.
    fn start(&self, call: AcceptedDialout);
    /// Asks a live call to end (`api-hangup`).
    fn hangup(&self, conversation_id: &str) -> HangupOutcome;
    /// Number of live calls per state name, for metrics.
    fn live_by_state(&self) -> Vec<(&'static str, i64)>;
}
