//! The sans-IO state machine of one outbound call (DESIGN §1, §2, §4).
//!
//! The shell (an async actor per call) owns sockets and clocks. It feeds [`Event`]s into
//! [`CallMachine::on_event`] together with the current time and executes the returned
//! [`Action`]s in order. Timers are asked for with [`Action::SetTimer`] and come back as
//! [`Event::Timer`]; a timer that was cancelled or re-armed is recognised by its generation and
//! ignored. Exactly one [`Action::Terminal`] is ever produced per machine (see [`report`]).

mod core;
pub mod reason;
pub mod report;
mod timers;
pub mod types;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_random;
#[cfg(test)]
mod tests_ringing;
#[cfg(test)]
mod tests_talking;

pub use self::core::CallMachine;
pub use reason::{FailureKind, ReasonCode};
pub use report::{CallStatus, TerminalReport};
pub use types::{
    Action, AmdMode, AmdOutcome, AmdResult, BotEvent, CallState, Event, HangupSource,
    MachineConfig, TimerId, TimerKind,
};
