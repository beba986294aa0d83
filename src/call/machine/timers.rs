//! The machine's single timer table: one slot per [`TimerKind`], with generations so that a
//! timer event that was already in flight when its timer was cancelled is recognised as stale.

use std::time::Instant;

use super::types::{Action, TimerId, TimerKind};

const KINDS: [TimerKind; 4] = [
    TimerKind::Answer,
    TimerKind::BotAnswer,
    TimerKind::MaxDuration,
    TimerKind::CancelGuard,
];

fn slot(kind: TimerKind) -> usize {
    match kind {
        TimerKind::Answer => 0,
        TimerKind::BotAnswer => 1,
        TimerKind::MaxDuration => 2,
        TimerKind::CancelGuard => 3,
    }
}

/// Armed generation per timer kind.
#[derive(Debug, Default)]
pub(super) struct TimerTable {
    armed: [Option<u32>; 4],
    next_generation: u32,
}

impl TimerTable {
    /// Arms `kind` at `at` (disarming a previous arming of the same kind first).
    pub(super) fn set(&mut self, kind: TimerKind, at: Instant, out: &mut Vec<Action>) {
        self.cancel(kind, out);
        self.next_generation = self.next_generation.wrapping_add(1);
        let id = TimerId {
            kind,
            generation: self.next_generation,
        };
        self.armed[slot(kind)] = Some(id.generation);
        out.push(Action::SetTimer { id, at });
    }

    /// Disarms `kind` if armed.
    pub(super) fn cancel(&mut self, kind: TimerKind, out: &mut Vec<Action>) {
        if let Some(generation) = self.armed[slot(kind)].take() {
            out.push(Action::CancelTimer(TimerId { kind, generation }));
        }
    }

    /// Disarms every armed timer.
    pub(super) fn cancel_all(&mut self, out: &mut Vec<Action>) {
        for kind in KINDS {
            self.cancel(kind, out);
        }
    }

    /// Accepts an expiry: true (and disarmed) iff `id` is the current arming of its kind.
    pub(super) fn fire(&mut self, id: TimerId) -> bool {
        let s = &mut self.armed[slot(id.kind)];
        if *s == Some(id.generation) {
            *s = None;
            true
        } else {
            false
        }
    }
}
