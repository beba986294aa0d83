//! Randomised event sequences (deterministic xorshift seed) checked against invariants that must
//! hold whatever the order of events: at most one terminal, a terminal once everything is over,
//! no action to a leg that was never started, no bot INVITE before the carrier answered (or,
//! with `early_media_to_bot`, before early media).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::*;
use crate::core::activity::BotActivity;
use serde_json::json;

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

/// Shadow model of what the shell has seen, used to check each output as it comes out.
struct Checker {
    m: CallMachine,
    now: Instant,
    fed_carrier_answer: bool,
    fed_bot_answer: bool,
    fed_session_open: bool,
    carrier_invites: u32,
    carrier_cancels: u32,
    bot_invites: u32,
    conversation_opened: bool,
    start_sent: bool,
    answered: u32,
    media_started: bool,
    terminal: Option<TerminalReport>,
    agent_invites: u32,
    fed_agent_answer: bool,
}

impl Checker {
    fn new(cfg: MachineConfig) -> Checker {
        Checker {
            m: CallMachine::new(cfg),
            now: Instant::now(),
            fed_carrier_answer: false,
            fed_bot_answer: false,
            fed_session_open: false,
            carrier_invites: 0,
            carrier_cancels: 0,
            bot_invites: 0,
            conversation_opened: false,
            start_sent: false,
            answered: 0,
            media_started: false,
            terminal: None,
            agent_invites: 0,
            fed_agent_answer: false,
        }
    }

    fn feed(&mut self, ev: Input) {
        match &ev {
            Input::CarrierAnswered { .. } => self.fed_carrier_answer = true,
            Input::BotAnswered => self.fed_bot_answer = true,
            Input::BotSessionOpened { .. } => self.fed_session_open = true,
            Input::Transfer(TransferInput::AgentAnswered { .. }) => self.fed_agent_answer = true,
            _ => {}
        }
        self.m.handle(self.now, ev);
        self.drain();
    }

    fn drain(&mut self) {
        let ended_before = self.terminal.is_some();
        let mut outs = Vec::new();
        while let Some(o) = self.m.poll_output() {
            outs.push(o);
        }
        if ended_before {
            assert!(outs.is_empty(), "outputs after Terminal: {outs:?}");
        }
        let n = outs.len();
        for (i, a) in outs.into_iter().enumerate() {
            self.check(a, i + 1 == n);
        }
    }

    fn check(&mut self, a: Output, last: bool) {
        match a {
            Output::SendCarrierInvite => {
                self.carrier_invites += 1;
                assert_eq!(self.carrier_invites, 1);
                if self.m.config().dialout_initiated_event && self.m.config().bot_api {
                    assert!(
                        self.fed_session_open,
                        "person called before the bot was there"
                    );
                }
            }
            Output::CancelCarrier => {
                assert_eq!(self.carrier_invites, 1, "CANCEL to a carrier never invited");
                self.carrier_cancels += 1;
                assert_eq!(self.carrier_cancels, 1);
            }
            Output::ByeCarrier => {
                assert!(
                    self.fed_carrier_answer,
                    "BYE to a carrier leg that never answered"
                );
            }
            Output::SendBotInvite => {
                assert!(
                    self.fed_carrier_answer
                        || (self.m.config().early_media_to_bot && self.media_started),
                    "bot INVITE before the carrier answered"
                );
                self.bot_invites += 1;
                assert_eq!(self.bot_invites, 1);
            }
            Output::CancelBot => assert_eq!(self.bot_invites, 1, "CANCEL to a bot never invited"),
            Output::ByeBot | Output::BridgeMedia => {
                assert_eq!(self.bot_invites, 1);
                assert!(self.fed_bot_answer, "bot leg never answered");
            }
            Output::OpenBotConversation => {
                assert!(!self.conversation_opened);
                self.conversation_opened = true;
            }
            Output::RefreshBotSession => {
                assert!(self.conversation_opened && self.fed_session_open)
            }
            Output::BotEvent(ev) => {
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
                    BotEvent::MachineDetection { .. }
                    | BotEvent::Beep
                    | BotEvent::Message { .. }
                    | BotEvent::PlayFinished
                    | BotEvent::PlayInterrupted
                    | BotEvent::PlayUrlFailed { .. }
                    | BotEvent::Dtmf { .. } => {
                        assert!(self.start_sent, "event before start")
                    }
                    BotEvent::TransferStatus { answered, .. } => {
                        assert!(!answered || self.start_sent, "transferred before start")
                    }
                }
            }
            Output::BotDisconnect { .. } => assert!(self.conversation_opened),
            Output::NotifyAnswered => {
                self.answered += 1;
                assert_eq!(self.answered, 1);
            }
            Output::Terminal(r) => {
                assert!(last, "Terminal must be the last output");
                assert!(self.terminal.is_none(), "second Terminal");
                let expect = if self.answered == 1 {
                    CallStatus::Completed
                } else {
                    CallStatus::Failed
                };
                assert_eq!(r.status, expect);
                assert!(
                    self.m.poll_timeout().is_none(),
                    "timers left armed at the end"
                );
                self.terminal = Some(r);
            }
            Output::StartMedia => self.media_started = true,
            Output::StartAmd { .. }
            | Output::StartRecognition { .. }
            | Output::RecognitionToBot(_)
            | Output::StopRecognition => assert!(self.media_started, "recognition without media"),
            Output::AnswerReInvite { accept, .. } => {
                if accept {
                    assert!(self.fed_carrier_answer && self.terminal.is_none());
                }
            }
            Output::Play(p) => {
                // playUrl and sendDtmf play for every bot kind; a SIP bot's text only with
                // speak_messages.
                assert!(
                    !matches!(p, super::Prompt::Speak(_))
                        || self.m.config().text_bot
                        || self.m.config().speak_messages,
                    "a SIP bot's message spoken without speak_messages"
                );
                assert!(
                    self.fed_bot_answer,
                    "played before the bot side was connected"
                );
                assert!(self.terminal.is_none());
            }
            Output::AbortPrompts => assert!(self.terminal.is_none() || self.media_started),
            Output::StopMedia | Output::Timeline { .. } => {}
            Output::Transfer(t) => match t {
                TransferOutput::InviteAgent { .. } | TransferOutput::SendRefer { .. } => {
                    assert!(
                        self.start_sent || !self.m.config().bot_api,
                        "transfer before start"
                    );
                    assert!(self.terminal.is_none());
                    self.agent_invites += 1;
                }
                TransferOutput::CancelAgent | TransferOutput::ByeAgent => {
                    assert!(self.agent_invites > 0, "agent leg never invited")
                }
                TransferOutput::BridgeAgent => {
                    assert!(
                        self.fed_agent_answer,
                        "bridged to an agent that never answered"
                    )
                }
                TransferOutput::StopDetection => assert!(self.media_started),
            },
            Output::StartEarlyMedia => {
                // (An answer fed before `Start` was ignored: what counts is none announced.)
                assert!(self.answered == 0 && self.terminal.is_none());
                self.media_started = true;
            }
            Output::RefreshCarrierSession | Output::RefreshBotLegSession => {
                assert!(self.fed_carrier_answer && self.terminal.is_none())
            }
            Output::CarrierInfo { .. } => {
                assert!(self.fed_carrier_answer && self.terminal.is_none());
            }
            Output::Recording(_) => {
                assert!(self.media_started, "recording without media");
                assert!(self.terminal.is_none());
            }
            Output::BotHearsEarlyMedia => {
                assert!(self.m.config().early_media_to_bot && self.media_started);
                assert!(self.fed_bot_answer && self.bot_invites == 1);
                assert!(self.answered == 0 && self.terminal.is_none());
            }
        }
    }

    /// Lets time run to the earliest armed timer and handles it.
    fn fire_earliest(&mut self) -> bool {
        let Some(at) = self.m.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(at);
        self.m.handle_timeout(self.now);
        self.drain();
        true
    }
}

fn random_activity(rng: &mut XorShift) -> BotActivity {
    let v = match rng.below(17) {
        9 | 10 | 12 | 13 => json!({"type": "event", "name": "transfer",
            "activityParams": {"transferTarget": "tel:+15551230002"}}),
        11 => {
            json!({"type": "event", "name": "transfer", "activityParams": {"transferTarget": "x"}})
        }
        6 => {
            json!({"type": "event", "name": "playUrl", "activityParams": {"playUrlUrl": "file:a.wav"}})
        }
        7 => json!({"type": "event", "name": "abortPrompts"}),
        8 => json!({"type": "message", "text": "Hi there"}),
        0 => json!({"type": "Event", "name": "hangup"}),
        1 => json!({"type": "event", "name": "startRecognition"}),
        2 => json!({"type": "event", "name": "stopRecognition"}),
        3 => json!({"type": "event", "name": "hangup", "delay": 1500}),
        4 => json!({"type": "message", "text": "Hello"}),
        5 => json!({"type": "event", "name": "dance"}),
        _ => control_activity(rng),
    };
    crate::core::activity::parse(&v)
}

/// `config`, the recording activities and `sendMetaData`, in every phase.
fn control_activity(rng: &mut XorShift) -> serde_json::Value {
    match rng.below(7) {
        0 => json!({"type": "event", "name": "config",
            "sessionParams": {"recognition": true, "bargeIn": true, "sendEventsToBot": ["DTMF"]}}),
        1 => json!({"type": "event", "name": "config", "sessionParams": {"recognition": false}}),
        2 => json!({"type": "event", "name": "startCallRecording"}),
        3 => json!({"type": "event", "name": "pauseCallRecording"}),
        4 => json!({"type": "event", "name": "resumeCallRecording"}),
        5 => json!({"type": "event", "name": "stopCallRecording"}),
        _ => json!({"type": "event", "name": "sendMetaData", "value": {"k": 1}}),
    }
}

fn random_event(rng: &mut XorShift, c: &mut Checker) -> Option<Input> {
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
    let side = [LegSide::Carrier, LegSide::Bot][rng.below(2) as usize];
    Some(match rng.below(34) {
        26 | 30 | 31 => Input::Transfer(TransferInput::AgentAnswered {
            sdp_ok: rng.below(5) != 0,
        }),
        27 => Input::Transfer(match rng.below(3) {
            0 => TransferInput::AgentFailed {
                code: codes[rng.below(6) as usize],
                kind: kind[rng.below(3) as usize],
                reason: String::new(),
            },
            1 => TransferInput::AgentBye,
            _ => TransferInput::AgentProvisional { code: 180 },
        }),
        28 => Input::Transfer(TransferInput::ReferAnswered {
            code: [None, Some(202), Some(403)][rng.below(3) as usize],
            reason: String::new(),
        }),
        29 | 32 | 33 => Input::Transfer(TransferInput::ReferNotify {
            code: [100, 200, 486][rng.below(3) as usize],
        }),
        0 => Input::Start,
        1 => {
            let code = [100, 180, 183][rng.below(3) as usize];
            // A 183 carries early media (and, with `early_media_to_bot`, places the bot).
            Input::CarrierProvisional {
                code,
                has_sdp: code == 183,
            }
        }
        2 | 3 => Input::CarrierAnswered {
            sdp_ok: rng.below(5) != 0,
        },
        4 => Input::CarrierFailed {
            code: codes[rng.below(6) as usize],
            kind: kind[rng.below(3) as usize],
            reason: String::new(),
        },
        5 => Input::CarrierBye,
        6 => Input::BotAnswered,
        7 => Input::BotFailed {
            code: codes[rng.below(6) as usize],
            kind: kind[rng.below(3) as usize],
            reason: String::new(),
        },
        8 => Input::BotBye,
        9 => Input::Hangup {
            source: HangupSource::Api,
        },
        10 => Input::BotActivity(random_activity(rng)),
        11 => Input::AmdDecision {
            result: amd[rng.below(4) as usize],
            at_ms: 1000,
        },
        12 => Input::AmdBeep { at_ms: 2000 },
        13 => Input::MediaTimeout,
        22 => Input::Dtmf('5'),
        23 => Input::PlaybackDone,
        14 | 15 => {
            // Fire a live timer (the shell's normal behaviour).
            c.fire_earliest();
            return None;
        }
        16 => Input::BotSessionOpened {
            expires: Some(Duration::from_secs(rng.below(8))),
        },
        17 => Input::BotUnreachable {
            reason: "the bot answered 401".into(),
        },
        18 => Input::LegGone(side),
        19 => Input::ReInvite(side),
        20 => Input::Recognised {
            text: "hello".into(),
            confidence: 0.9,
        },
        21 => Input::RecognitionFailed {
            reason: "no model".into(),
        },
        _ => {
            // Time passes; whatever fell due is handled (nothing stale can fire).
            c.now += Duration::from_millis(rng.below(20_000));
            c.m.handle_timeout(c.now);
            c.drain();
            return None;
        }
    })
}

#[test]
fn random_sequences_keep_the_invariants() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let modes = [AmdMode::Disabled, AmdMode::Detect, AmdMode::Disconnect];
    let mut terminals_by_code: HashMap<ReasonCode, u32> = HashMap::new();
    let mut total_invites = 0;
    for run in 0..5_000 {
        let cfg = MachineConfig {
            dialout_initiated_event: rng.below(2) == 0,
            machine_detection: modes[rng.below(3) as usize],
            start_recognition_on_connect: rng.below(2) == 0,
            recognizer_available: rng.below(2) == 0,
            bot_api: rng.below(4) != 0,
            text_bot: rng.below(2) == 0,
            recording: rng.below(2) == 0,
            send_metadata_info: rng.below(2) == 0,
            // Not drawn from the generator, so the other settings' sequence stays as it was.
            early_media_to_bot: run % 3 == 0,
            // Short, so that a wind-down by timers alone ends within a bounded number of rounds.
            max_duration: Some(Duration::from_secs(60)),
            transfer: [TransferMethod::Bridge, TransferMethod::Refer][rng.below(2) as usize],
            ..MachineConfig::default()
        };
        let mut c = Checker::new(cfg);
        // 1. Start most runs properly, then feed 0..40 random events at random times.
        if rng.below(10) != 0 {
            c.feed(Input::Start);
        }
        if rng.below(3) == 0 {
            // A third of the runs start from a connected call (where activities such as
            // `transfer` act), reached the usual way.
            c.feed(Input::BotSessionOpened { expires: None });
            c.feed(Input::CarrierAnswered { sdp_ok: true });
            c.feed(Input::BotAnswered);
        }
        for _ in 0..rng.below(40) {
            c.now += Duration::from_millis(rng.below(3_000));
            if let Some(ev) = random_event(&mut rng, &mut c) {
                c.feed(ev);
            }
        }
        // 2. Wind down: either the legs report their end, or only timers fire.
        if run % 2 == 0 || c.m.state() == CallState::Initiating {
            // (A call still opening its bot conversation ends by the hang-up alone.)
            c.feed(Input::Hangup {
                source: HangupSource::Api,
            });
            c.feed(Input::CarrierFailed {
                code: Some(487),
                kind: FailureKind::Response,
                reason: String::new(),
            });
            c.feed(Input::BotFailed {
                code: Some(487),
                kind: FailureKind::Response,
                reason: String::new(),
            });
            c.feed(Input::Transfer(TransferInput::AgentFailed {
                code: Some(487),
                kind: FailureKind::Response,
                reason: String::new(),
            }));
        }
        let mut rounds = 0;
        while c.terminal.is_none() && c.fire_earliest() {
            rounds += 1;
            // The Bot API refresh re-arms itself; everything else ends the call.
            assert!(rounds < 1_000, "timers keep firing without an end");
        }
        // 3. Exactly one terminal, and the machine is Ended.
        let r = c
            .terminal
            .take()
            .unwrap_or_else(|| panic!("run {run}: no terminal in {:?}", c.m.state()));
        assert_eq!(c.m.state(), CallState::Ended);
        *terminals_by_code.entry(r.reason_code).or_default() += 1;
        total_invites += c.agent_invites;
        // 4. Still nothing after the end.
        c.terminal = Some(r);
        c.feed(Input::CarrierBye);
        c.feed(Input::Hangup {
            source: HangupSource::Api,
        });
    }
    // 5. The walk reached every reason code (so the test can fail usefully).
    assert!(total_invites > 20, "transfers started: {total_invites}");
    assert_eq!(terminals_by_code.len(), 12, "{terminals_by_code:?}");
}
