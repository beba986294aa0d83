//! Randomised event sequences (deterministic xorshift seed) checked against invariants that must
//! hold whatever the order of events: at most one terminal, a terminal once everything is over,
//! no action to a leg that was never started, no bot INVITE before the carrier answered.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Shadow model of what the shell has seen, used to check each action as it comes out.
struct Checker {
    m: CallMachine,
    now: Instant,
    armed: HashMap<TimerKind, (TimerId, Instant)>,
    history: Vec<TimerId>,
    fed_carrier_answer: bool,
    fed_bot_answer: bool,
    carrier_invites: u32,
    carrier_cancels: u32,
    bot_invites: u32,
    conversation_opened: bool,
    start_sent: bool,
    answered: u32,
    terminal: Option<TerminalReport>,
}

impl Checker {
    fn new(cfg: MachineConfig) -> Checker {
        Checker {
            m: CallMachine::new(cfg),
            now: Instant::now(),
            armed: HashMap::new(),
            history: Vec::new(),
            fed_carrier_answer: false,
            fed_bot_answer: false,
            carrier_invites: 0,
            carrier_cancels: 0,
            bot_invites: 0,
            conversation_opened: false,
            start_sent: false,
            answered: 0,
            terminal: None,
        }
    }

    fn feed(&mut self, ev: Event) {
        match &ev {
            Event::CarrierAnswered { .. } => self.fed_carrier_answer = true,
            Event::BotAnswered => self.fed_bot_answer = true,
            // A replayed id that is in fact the live arming expires it, as in a real shell.
            Event::Timer(id) if self.armed.get(&id.kind).map(|x| x.0) == Some(*id) => {
                self.armed.remove(&id.kind);
            }
            _ => {}
        }
        let ended_before = self.terminal.is_some();
        let acts = self.m.on_event(self.now, ev);
        if ended_before {
            assert!(acts.is_empty(), "actions after Terminal: {acts:?}");
        }
        let n = acts.len();
        for (i, a) in acts.into_iter().enumerate() {
            self.check(a, i + 1 == n);
        }
    }

    fn check(&mut self, a: Action, last: bool) {
        match a {
            Action::SendCarrierInvite => {
                self.carrier_invites += 1;
                assert_eq!(self.carrier_invites, 1);
            }
            Action::CancelCarrier => {
                assert_eq!(self.carrier_invites, 1, "CANCEL to a carrier never invited");
                self.carrier_cancels += 1;
                assert_eq!(self.carrier_cancels, 1);
            }
            Action::ByeCarrier => {
                assert!(
                    self.fed_carrier_answer,
                    "BYE to a carrier leg that never answered"
                );
            }
            Action::SendBotInvite => {
                assert!(
                    self.fed_carrier_answer,
                    "bot INVITE before the carrier answered"
                );
                self.bot_invites += 1;
                assert_eq!(self.bot_invites, 1);
            }
            Action::CancelBot => assert_eq!(self.bot_invites, 1, "CANCEL to a bot never invited"),
            Action::ByeBot | Action::BridgeMedia => {
                assert_eq!(self.bot_invites, 1);
                assert!(self.fed_bot_answer, "bot leg never answered");
            }
            Action::OpenBotConversation => {
                assert!(!self.conversation_opened);
                self.conversation_opened = true;
            }
            Action::BotEvent(ev) => {
                assert!(
                    self.conversation_opened,
                    "bot event before the conversation"
                );
                match ev {
                    BotEvent::DialoutInitiated => assert!(!self.start_sent),
                    BotEvent::Start => {
                        assert!(!self.start_sent);
                        self.start_sent = true;
                    }
                    BotEvent::MachineDetection { .. } | BotEvent::Beep => {
                        assert!(self.start_sent, "AMD event before start")
                    }
                }
            }
            Action::BotDisconnect { .. } => assert!(self.conversation_opened),
            Action::NotifyAnswered => {
                self.answered += 1;
                assert_eq!(self.answered, 1);
            }
            Action::SetTimer { id, at } => {
                assert!(at >= self.now);
                assert!(
                    !self.armed.contains_key(&id.kind),
                    "re-armed without cancel"
                );
                self.history.push(id);
                self.armed.insert(id.kind, (id, at));
            }
            Action::CancelTimer(id) => {
                assert_eq!(self.armed.remove(&id.kind).map(|x| x.0), Some(id));
            }
            Action::Terminal(r) => {
                assert!(last, "Terminal must be the last action");
                assert!(self.terminal.is_none(), "second Terminal");
                let expect = if self.answered == 1 {
                    CallStatus::Completed
                } else {
                    CallStatus::Failed
                };
                assert_eq!(r.status, expect);
                assert!(self.armed.is_empty(), "timers left armed at the end");
                self.terminal = Some(r);
            }
            Action::StartMedia | Action::StartAmd(_) | Action::StartStt | Action::StopMedia => {}
        }
    }

    fn fire_earliest(&mut self) -> bool {
        let Some((id, at)) = self.armed.values().min_by_key(|(_, at)| *at).copied() else {
            return false;
        };
        self.armed.remove(&id.kind);
        self.now = self.now.max(at);
        self.feed(Event::Timer(id));
        true
    }
}

fn random_event(rng: &mut XorShift, c: &mut Checker) -> Option<Event> {
    let kind = [
        FailureKind::Response,
        FailureKind::Timeout,
        FailureKind::Transport,
    ];
    let codes = [None, Some(408), Some(486), Some(487), Some(500), Some(603)];
    let amd = [
        AmdResult::Human,
        AmdResult::Machine,
        AmdResult::Fax,
        AmdResult::Unknown,
    ];
    Some(match rng.below(17) {
        0 => Event::Start,
        1 => Event::CarrierProvisional {
            code: [100, 180, 183][rng.below(3) as usize],
            has_sdp: false,
        },
        2 | 3 => Event::CarrierAnswered {
            sdp_ok: rng.below(5) != 0,
        },
        4 => Event::CarrierFailed {
            code: codes[rng.below(6) as usize],
            kind: kind[rng.below(3) as usize],
            reason: String::new(),
        },
        5 => Event::CarrierBye,
        6 => Event::BotAnswered,
        7 => Event::BotFailed {
            code: codes[rng.below(6) as usize],
            kind: kind[rng.below(3) as usize],
            reason: String::new(),
        },
        8 => Event::BotBye,
        9 => Event::Hangup {
            source: HangupSource::Api,
        },
        10 => Event::Hangup {
            source: HangupSource::BotActivity,
        },
        11 => Event::AmdDecision {
            result: amd[rng.below(4) as usize],
            at_ms: 1000,
        },
        12 => Event::AmdBeep { at_ms: 2000 },
        13 => Event::MediaTimeout,
        14 | 15 => {
            // Fire a live timer (the shell's normal behaviour).
            c.fire_earliest();
            return None;
        }
        _ => {
            // Replay an old, probably stale, timer id.
            if c.history.is_empty() {
                return None;
            }
            Event::Timer(c.history[rng.below(c.history.len() as u64) as usize])
        }
    })
}

#[test]
fn random_sequences_keep_the_invariants() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let modes = [AmdMode::Disabled, AmdMode::Detect, AmdMode::Disconnect];
    let mut terminals_by_code: HashMap<ReasonCode, u32> = HashMap::new();
    for run in 0..5_000 {
        let cfg = MachineConfig {
            dialout_initiated_event: rng.below(2) == 0,
            machine_detection: modes[rng.below(3) as usize],
            start_recognition_on_connect: rng.below(2) == 0,
            ..MachineConfig::default()
        };
        let mut c = Checker::new(cfg);
        // 1. Start most runs properly, then feed 0..40 random events at random times.
        if rng.below(10) != 0 {
            c.feed(Event::Start);
        }
        for _ in 0..rng.below(40) {
            c.now += Duration::from_millis(rng.below(3_000));
            if let Some(ev) = random_event(&mut rng, &mut c) {
                c.feed(ev);
            }
        }
        // 2. Wind down: either the legs report their end, or only timers fire.
        if run % 2 == 0 || c.m.state() == CallState::Initiating {
            c.feed(Event::Hangup {
                source: HangupSource::Api,
            });
            c.feed(Event::CarrierFailed {
                code: Some(487),
                kind: FailureKind::Response,
                reason: String::new(),
            });
            c.feed(Event::BotFailed {
                code: Some(487),
                kind: FailureKind::Response,
                reason: String::new(),
            });
        }
        let mut rounds = 0;
        while c.terminal.is_none() && c.fire_earliest() {
            rounds += 1;
            assert!(rounds < 10, "timers keep firing without an end");
        }
        // 3. Exactly one terminal, and the machine is Ended.
        let r = c
            .terminal
            .take()
            .unwrap_or_else(|| panic!("run {run}: no terminal in {:?}", c.m.state()));
        assert_eq!(c.m.state(), CallState::Ended);
        *terminals_by_code.entry(r.reason_code).or_default() += 1;
        // 4. Still nothing after the end.
        c.terminal = Some(r);
        c.feed(Event::CarrierBye);
        c.feed(Event::Hangup {
            source: HangupSource::Api,
        });
    }
    // 5. The walk reached every reason code (so the test can fail usefully).
    assert_eq!(terminals_by_code.len(), 11, "{terminals_by_code:?}");
}
