//! The machine's single timer table: one deadline per [`TimerKind`]. Every timer of a call lives
//! here (answer, bot answer, bot conversation opening, Bot API refresh, maximum duration, cancel
//! guard, delayed activities, the wait for a voicemail's beep); the shell only learns the earliest deadline through
//! `poll_timeout` and calls `handle_timeout` when it has passed. A cancelled timer simply has no
//! deadline any more, so a stale expiry cannot exist.

use std::time::Instant;

use super::types::TimerKind;

const N: usize = 13;

const KINDS: [TimerKind; N] = [
    TimerKind::Answer,
    TimerKind::BotAnswer,
    TimerKind::BotOpen,
    TimerKind::BotRefresh,
    TimerKind::MaxDuration,
    TimerKind::CancelGuard,
    TimerKind::Delayed,
    TimerKind::BeepWait,
    TimerKind::Transfer,
    TimerKind::SessionRefresh,
    TimerKind::SessionExpiry,
    TimerKind::BotLegSessionRefresh,
    TimerKind::BotLegSessionExpiry,
];

fn slot(kind: TimerKind) -> usize {
    match kind {
        TimerKind::Answer => 0,
        TimerKind::BotAnswer => 1,
        TimerKind::BotOpen => 2,
        TimerKind::BotRefresh => 3,
        TimerKind::MaxDuration => 4,
        TimerKind::CancelGuard => 5,
        TimerKind::Delayed => 6,
        TimerKind::BeepWait => 7,
        TimerKind::Transfer => 8,
        TimerKind::SessionRefresh => 9,
        TimerKind::SessionExpiry => 10,
        TimerKind::BotLegSessionRefresh => 11,
        TimerKind::BotLegSessionExpiry => 12,
    }
}

/// Deadline per timer kind.
#[derive(Debug, Default)]
pub(super) struct TimerTable {
    deadline: [Option<Instant>; N],
}

impl TimerTable {
    /// Arms `kind` at `at`, replacing an earlier arming of the same kind.
    pub(super) fn set(&mut self, kind: TimerKind, at: Instant) {
        self.deadline[slot(kind)] = Some(at);
    }

    /// Disarms `kind` if armed.
    pub(super) fn cancel(&mut self, kind: TimerKind) {
        self.deadline[slot(kind)] = None;
    }

    /// Disarms every timer.
    pub(super) fn cancel_all(&mut self) {
        self.deadline = [None; N];
    }

    /// When `kind` expires, if armed.
    pub(super) fn deadline(&self, kind: TimerKind) -> Option<Instant> {
        self.deadline[slot(kind)]
    }

    /// The earliest deadline of all.
    pub(super) fn earliest(&self) -> Option<Instant> {
        self.deadline.iter().flatten().min().copied()
    }

    /// Takes (disarms) the earliest timer due at `now`, if any; expiries come out in deadline
    /// order, ties in table order.
    pub(super) fn take_due(&mut self, now: Instant) -> Option<TimerKind> {
        let (kind, _) = KINDS
            .iter()
            .filter_map(|k| self.deadline(*k).map(|at| (*k, at)))
            .filter(|(_, at)| *at <= now)
            .min_by_key(|(_, at)| *at)?;
        self.cancel(kind);
        Some(kind)
    }
}
