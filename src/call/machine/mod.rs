//! The sans-IO state machine of one outbound call (DESIGN §1, §2, §4).
//!
//! The shell (an async actor per call) owns sockets and clocks. It feeds [`Input`]s into
//! [`CallMachine::handle`] with the current time, calls [`CallMachine::handle_timeout`] when
//! [`CallMachine::poll_timeout`] says so, and carries out every [`Output`] that
//! [`CallMachine::poll_output`] returns, in order; when carrying one out fails, the failure is the
//! next input. Every timer of the call lives in the machine's one table (`timers.rs`), and every
//! policy decision — when to dial, what an activity does, who gets recognised speech, whether a
//! re-INVITE is answered, what a vanished leg means — is made here. Exactly one
//! [`Output::Terminal`] is ever produced per machine (see [`report`]).
//!
//! Nothing in this module does I/O or uses tokio (checked by a test in `crate::core`).

mod bot;
mod core;
mod early_bot;
mod early_media;
mod legs;
mod metadata;
mod prompts;
pub mod reason;
mod recording;
pub mod report;
mod session;
mod session_timer;
mod timers;
pub mod transfer;
pub mod types;
mod wsbot;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_bot;
#[cfg(test)]
mod tests_early_bot;
#[cfg(test)]
mod tests_early_media;
#[cfg(test)]
mod tests_prompts;
#[cfg(test)]
mod tests_random;
#[cfg(test)]
mod tests_recording;
#[cfg(test)]
mod tests_ringing;
#[cfg(test)]
mod tests_session;
#[cfg(test)]
mod tests_session_timer;
#[cfg(test)]
mod tests_session_timer_bot;
#[cfg(test)]
mod tests_talking;
#[cfg(test)]
mod tests_transfer;
#[cfg(test)]
mod tests_wsbot;

pub use self::bot::refresh_interval;
pub use self::core::CallMachine;
pub use self::session_timer::expiry_after;
pub use reason::{FailureKind, ReasonCode};
pub use report::{CallStatus, TerminalReport};
pub use transfer::{TransferInput, TransferOutput};
pub use types::{
    AmdMode, AmdOutcome, AmdResult, BotEvent, CallState, HangupSource, Input, LegSide,
    MachineConfig, Output, Prompt, TimerKind, TransferMethod,
};
