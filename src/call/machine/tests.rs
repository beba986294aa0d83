//! Test harness: a simulated clock and timer service around a `CallMachine`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;

/// Drives a machine with simulated time and a simulated timer service.
pub(super) struct Sim {
    pub(super) m: CallMachine,
    pub(super) t0: Instant,
    pub(super) now: Instant,
    /// Armed timers as the shell sees them (from SetTimer/CancelTimer).
    pub(super) timers: HashMap<TimerKind, (TimerId, Instant)>,
    pub(super) terminals: usize,
    /// Every timer id ever armed, to replay stale ones.
    pub(super) history: Vec<TimerId>,
}

/// What one event produced: the actions minus timer bookkeeping, and the terminal report.
#[derive(Debug)]
pub(super) struct Step {
    pub(super) acts: Vec<Action>,
    pub(super) terminal: Option<TerminalReport>,
}

impl Sim {
    pub(super) fn new(cfg: MachineConfig) -> Sim {
        let t0 = Instant::now();
        Sim {
            m: CallMachine::new(cfg),
            t0,
            now: t0,
            timers: HashMap::new(),
            terminals: 0,
            history: Vec::new(),
        }
    }

    pub(super) fn at(&mut self, ms: u64) -> &mut Sim {
        let t = self.t0 + Duration::from_millis(ms);
        assert!(t >= self.now, "simulated time runs forward");
        self.now = t;
        self
    }

    pub(super) fn ev(&mut self, e: Event) -> Step {
        let raw = self.m.on_event(self.now, e);
        self.absorb(raw)
    }

    pub(super) fn absorb(&mut self, raw: Vec<Action>) -> Step {
        let mut acts = Vec::new();
        let mut terminal = None;
        for a in raw {
            assert!(terminal.is_none(), "Terminal must be the last action");
            match a {
                Action::SetTimer { id, at } => {
                    assert!(at >= self.now);
                    self.history.push(id);
                    self.timers.insert(id.kind, (id, at));
                }
                Action::CancelTimer(id) => {
                    let removed = self.timers.remove(&id.kind);
                    assert_eq!(removed.map(|r| r.0), Some(id), "cancel of an unarmed timer");
                }
                Action::Terminal(r) => {
                    self.terminals += 1;
                    terminal = Some(r);
                }
                other => acts.push(other),
            }
        }
        assert!(self.terminals <= 1, "more than one Terminal");
        Step { acts, terminal }
    }

    /// Jumps to the expiry of the armed `kind` timer and fires it.
    pub(super) fn fire(&mut self, kind: TimerKind) -> Step {
        let (id, at) = self.timers.remove(&kind).expect("timer armed");
        self.now = self.now.max(at);
        let raw = self.m.on_event(self.now, Event::Timer(id));
        self.absorb(raw)
    }

    pub(super) fn armed(&self, kind: TimerKind) -> Option<Duration> {
        self.timers.get(&kind).map(|(_, at)| *at - self.t0)
    }

    /// Start + 180 Ringing, as most scenarios begin.
    pub(super) fn ringing(&mut self) {
        let st = self.ev(Event::Start);
        assert_eq!(st.acts.last(), Some(&Action::SendCarrierInvite));
        self.at(100).ev(Event::CarrierProvisional {
            code: 100,
            has_sdp: false,
        });
        assert_eq!(self.m.state(), CallState::Dialing);
        self.at(300).ev(Event::CarrierProvisional {
            code: 180,
            has_sdp: false,
        });
        assert_eq!(self.m.state(), CallState::Ringing);
    }

    /// Ringing, then 200 OK at 5 s; returns what the answer produced.
    pub(super) fn answered(&mut self) -> Step {
        self.ringing();
        let s = self.at(5_000).ev(Event::CarrierAnswered { sdp_ok: true });
        assert_eq!(self.m.state(), CallState::Answered);
        s
    }

    /// Answered, then the bot answers at 5.2 s.
    pub(super) fn connected(&mut self) -> Step {
        self.answered();
        let s = self.at(5_200).ev(Event::BotAnswered);
        assert_eq!(self.m.state(), CallState::Connected);
        s
    }

    pub(super) fn assert_ignores(&mut self, e: Event) {
        let before = self.m.ignored_events();
        let s = self.ev(e);
        assert!(s.acts.is_empty() && s.terminal.is_none(), "{s:?}");
        assert_eq!(self.m.ignored_events(), before + 1);
    }
}

pub(super) fn failed(code: Option<u16>, kind: FailureKind, reason: &str) -> Event {
    let reason = reason.to_owned();
    Event::CarrierFailed { code, kind, reason }
}

pub(super) fn bot_failed(code: Option<u16>, kind: FailureKind, reason: &str) -> Event {
    let reason = reason.to_owned();
    Event::BotFailed { code, kind, reason }
}

pub(super) fn amd(mode: AmdMode) -> MachineConfig {
    MachineConfig {
        machine_detection: mode,
        ..MachineConfig::default()
    }
}
