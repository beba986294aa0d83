//! The `config` activity on a simulated clock: recognition on/off, barge-in, and which optional
//! events reach the bot.

use super::tests::Sim;
use super::*;
use crate::core::activity::parse;
use serde_json::json;

fn config(params: serde_json::Value) -> Input {
    Input::BotActivity(parse(
        &json!({"type": "event", "name": "config", "sessionParams": params}),
    ))
}

fn timeline_notes(acts: &[Output]) -> Vec<&str> {
    acts.iter()
        .filter_map(|a| match a {
            Output::Timeline { note, .. } => Some(note.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn send_events_to_bot_chooses_the_optional_events_and_keeps_the_others() {
    let mut s = Sim::new(MachineConfig {
        machine_detection: AmdMode::Detect,
        ..MachineConfig::default()
    });
    s.connected();
    // 1. By default a key press reaches the bot (as it always did).
    let st = s.at(6_000).ev(Input::Dtmf('1'));
    assert_eq!(
        st.acts,
        vec![Output::BotEvent(BotEvent::Dtmf { digit: '1' })]
    );
    // 2. The bot asks for playFinished only: one timeline line, then no more DTMF events.
    let st = s
        .at(6_100)
        .ev(config(json!({"sendEventsToBot": ["playFinished"]})));
    assert_eq!(
        timeline_notes(&st.acts),
        ["config activity: sendEventsToBot playFinished"]
    );
    let before = s.m.ignored_events();
    assert!(s.at(6_200).ev(Input::Dtmf('2')).acts.is_empty());
    assert_eq!(
        s.m.ignored_events(),
        before,
        "filtered, not ignored as out of place"
    );
    // 3. Events every bot gets are not optional: the AMD decision still arrives.
    let st = s.ev(Input::AmdDecision {
        result: AmdResult::Human,
        at_ms: 800,
    });
    assert!(
        st.acts
            .contains(&Output::BotEvent(BotEvent::MachineDetection {
                value: AmdResult::Human
            }))
    );
    // 4. DTMF back on (names in any case).
    s.at(7_000).ev(config(json!({"sendEventsToBot": ["dtmf"]})));
    let st = s.ev(Input::Dtmf('3'));
    assert_eq!(
        st.acts,
        vec![Output::BotEvent(BotEvent::Dtmf { digit: '3' })]
    );
}

#[test]
fn events_switched_off_before_start_are_not_held_for_it() {
    let mut s = Sim::new(MachineConfig::default());
    s.answered();
    // 1. Before the bot leg answers, the bot switches off every optional event.
    s.at(5_050).ev(config(json!({"sendEventsToBot": []})));
    // 2. A key pressed now is not held for `start`.
    assert!(s.at(5_100).ev(Input::Dtmf('9')).acts.is_empty());
    let st = s.at(5_200).ev(Input::BotAnswered);
    assert!(
        !st.acts
            .iter()
            .any(|a| matches!(a, Output::BotEvent(BotEvent::Dtmf { .. }))),
        "{:?}",
        st.acts
    );
    assert!(st.acts.contains(&Output::BotEvent(BotEvent::Start)));
}

#[test]
fn play_finished_can_be_switched_off_for_a_text_bot() {
    let mut s = Sim::new(MachineConfig {
        text_bot: true,
        ..MachineConfig::default()
    });
    s.connected();
    s.at(6_000).ev(config(json!({"sendEventsToBot": ["DTMF"]})));
    let st = s.ev(Input::BotActivity(parse(
        &json!({"type": "message", "text": "Hello"}),
    )));
    assert_eq!(st.acts, vec![Output::Play(Prompt::Speak("Hello".into()))]);
    // The prompt ends: no playFinished for this bot.
    assert!(s.at(7_000).ev(Input::PlaybackDone).acts.is_empty());
}

#[test]
fn recognition_in_config_works_as_start_and_stop_recognition() {
    let mut s = Sim::new(MachineConfig {
        recognizer_available: true,
        ..MachineConfig::default()
    });
    s.connected();
    // 1. recognition on: a session for the bot starts.
    let st = s.at(6_000).ev(config(json!({"recognition": true})));
    assert!(st.acts.contains(&Output::StartRecognition { to_bot: true }));
    let st = s.ev(Input::Recognised {
        text: "Yes".into(),
        confidence: 0.9,
    });
    assert_eq!(st.acts.len(), 1);
    // 2. recognition off: the text no longer reaches the bot.
    let st = s.at(7_000).ev(config(json!({"recognition": false})));
    assert!(st.acts.contains(&Output::RecognitionToBot(false)));
    s.assert_ignores(Input::Recognised {
        text: "No".into(),
        confidence: 0.9,
    });
}

#[test]
fn barge_in_starts_from_the_bot_config_and_follows_the_config_activity() {
    let mut s = Sim::new(MachineConfig::default());
    assert!(!s.m.barge_in());
    s.connected();
    s.at(6_000).ev(config(json!({"bargeIn": true})));
    assert!(s.m.barge_in());
    // A value of the wrong type changes nothing and the timeline says so.
    let st = s
        .at(6_100)
        .ev(config(json!({"bargeIn": "off", "voice": "x"})));
    assert!(s.m.barge_in());
    let notes = timeline_notes(&st.acts);
    assert!(
        notes[0].contains("bargeIn: must be true or false") && notes[0].contains("voice"),
        "{notes:?}"
    );
    let mut s = Sim::new(MachineConfig {
        barge_in: true,
        ..MachineConfig::default()
    });
    assert!(s.m.barge_in());
    s.connected();
    s.at(6_000).ev(config(json!({"bargeIn": false})));
    assert!(!s.m.barge_in());
}
