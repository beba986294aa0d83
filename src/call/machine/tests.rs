//! Test harness: a simulated clock around a `CallMachine`.

use std::time::{Duration, Instant};

use super::*;

/// Drives a machine with a simulated clock.
pub(super) struct Sim {
    pub(super) m: CallMachine,
    pub(super) t0: Instant,
    pub(super) now: Instant,
    pub(super) terminals: usize,
}

/// What one input produced: the outputs, and the terminal report split off.
#[derive(Debug)]
pub(super) struct Step {
    pub(super) acts: Vec<Output>,
    pub(super) terminal: Option<TerminalReport>,
}

impl Sim {
    pub(super) fn new(cfg: MachineConfig) -> Sim {
        let t0 = Instant::now();
        Sim {
            m: CallMachine::new(cfg),
            t0,
            now: t0,
            terminals: 0,
        }
    }

    pub(super) fn at(&mut self, ms: u64) -> &mut Sim {
        let t = self.t0 + Duration::from_millis(ms);
        assert!(t >= self.now, "simulated time runs forward");
        self.now = t;
        self
    }

    pub(super) fn ev(&mut self, e: Input) -> Step {
        self.m.handle(self.now, e);
        self.drain()
    }

    /// Takes every pending output.
    pub(super) fn drain(&mut self) -> Step {
        let mut acts = Vec::new();
        let mut terminal = None;
        while let Some(a) = self.m.poll_output() {
            assert!(terminal.is_none(), "Terminal must be the last output");
            match a {
                Output::Terminal(r) => {
                    self.terminals += 1;
                    terminal = Some(r);
                }
                other => acts.push(other),
            }
        }
        assert!(self.terminals <= 1, "more than one Terminal");
        Step { acts, terminal }
    }

    /// Jumps to the deadline of the armed `kind` timer and lets the machine handle it.
    pub(super) fn fire(&mut self, kind: TimerKind) -> Step {
        let at = self.m.timer_deadline(kind).expect("timer armed");
        assert_eq!(
            self.m.poll_timeout(),
            Some(at),
            "{kind:?} is the earliest timer"
        );
        self.now = self.now.max(at);
        self.m.handle_timeout(self.now);
        self.drain()
    }

    /// Lets time pass to `ms` and handles whatever timers fell due.
    pub(super) fn tick(&mut self, ms: u64) -> Step {
        self.at(ms);
        self.m.handle_timeout(self.now);
        self.drain()
    }

    pub(super) fn armed(&self, kind: TimerKind) -> Option<Duration> {
        self.m.timer_deadline(kind).map(|at| at - self.t0)
    }

    /// Asserts each timer's deadline, in ms after the call's start (`None`: not armed).
    pub(super) fn assert_armed(&self, want: &[(TimerKind, Option<u64>)]) {
        for (kind, ms) in want {
            assert_eq!(
                self.armed(*kind),
                ms.map(Duration::from_millis),
                "{kind:?} at {:?}",
                self.now - self.t0
            );
        }
    }

    /// Start + 180 Ringing, as most scenarios begin.
    pub(super) fn ringing(&mut self) {
        let st = self.ev(Input::Start);
        if self.m.config().dialout_initiated_event && self.m.config().bot_api {
            // dialoutInitiated first; the person is called once the bot's conversation is open.
            assert_eq!(
                st.acts,
                vec![
                    Output::OpenBotConversation,
                    Output::BotEvent(BotEvent::DialoutInitiated)
                ]
            );
            let st = self.ev(Input::BotSessionOpened { expires: None });
            assert_eq!(st.acts, vec![Output::SendCarrierInvite]);
        } else {
            assert_eq!(st.acts.last(), Some(&Output::SendCarrierInvite));
        }
        self.at(100).ev(Input::CarrierProvisional {
            code: 100,
            has_sdp: false,
        });
        assert_eq!(self.m.state(), CallState::Dialing);
        self.at(300).ev(Input::CarrierProvisional {
            code: 180,
            has_sdp: false,
        });
        assert_eq!(self.m.state(), CallState::Ringing);
    }

    /// Ringing, then 200 OK at 5 s; returns what the answer produced.
    pub(super) fn answered(&mut self) -> Step {
        self.ringing();
        let s = self.at(5_000).ev(Input::CarrierAnswered { sdp_ok: true });
        assert_eq!(self.m.state(), CallState::Answered);
        s
    }

    /// Answered, then the bot answers at 5.2 s.
    pub(super) fn connected(&mut self) -> Step {
        self.answered();
        let s = self.at(5_200).ev(Input::BotAnswered);
        assert_eq!(self.m.state(), CallState::Connected);
        s
    }

    pub(super) fn assert_ignores(&mut self, e: Input) {
        let before = self.m.ignored_events();
        let s = self.ev(e);
        assert!(s.acts.is_empty() && s.terminal.is_none(), "{s:?}");
        assert_eq!(self.m.ignored_events(), before + 1);
    }
}

pub(super) fn failed(code: Option<u16>, kind: FailureKind, reason: &str) -> Input {
    let reason = reason.to_owned();
    Input::CarrierFailed { code, kind, reason }
}

pub(super) fn bot_failed(code: Option<u16>, kind: FailureKind, reason: &str) -> Input {
    let reason = reason.to_owned();
    Input::BotFailed { code, kind, reason }
}

pub(super) fn amd(mode: AmdMode) -> MachineConfig {
    MachineConfig {
        machine_detection: mode,
        ..MachineConfig::default()
    }
}
