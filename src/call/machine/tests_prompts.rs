//! Prompts on a simulated clock: `sendDtmf`, `playUrl` and `message` for SIP bots, failed
//! prompts, `abortPrompts` and barge-in.

use super::tests::Sim;
use super::*;
use crate::core::activity::parse;
use serde_json::json;

fn act(v: serde_json::Value) -> Input {
    Input::BotActivity(parse(&v))
}

fn dtmf(digits: &str) -> Input {
    act(json!({"type": "event", "name": "sendDtmf", "activityParams": {"dtmfDigits": digits}}))
}

fn play(url: &str) -> Input {
    act(json!({"type": "event", "name": "playUrl", "activityParams": {"playUrlUrl": url}}))
}

fn sip_bot(speak_messages: bool, barge_in: bool) -> Sim {
    let mut s = Sim::new(MachineConfig {
        speak_messages,
        barge_in,
        ..MachineConfig::default()
    });
    s.connected();
    s.at(6_000);
    s
}

#[test]
fn send_dtmf_goes_to_the_player_and_bad_strings_are_refused_with_a_reason() {
    let mut s = sip_bot(false, false);
    // 1. A good string (pauses, letters) is played as key presses.
    let st = s.ev(dtmf("12w#A"));
    assert_eq!(st.acts, vec![Output::Play(Prompt::Dtmf("12w#A".into()))]);
    // 2. Bad strings: a timeline line that says why, nothing played — every time.
    for (bad, why) in [
        ("12x", "`x`"),
        ("", "no digit"),
        (&"1".repeat(21)[..], "at most 20"),
    ] {
        let st = s.ev(dtmf(bad));
        assert!(
            matches!(&st.acts[..], [Output::Timeline { kind: "dtmf", note }]
                if note.contains("refused") && note.contains(why)),
            "{bad}: {st:?}"
        );
    }
    // 3. Key presses alone owe the bot no playFinished.
    s.assert_ignores(Input::PlaybackDone);
}

#[test]
fn send_dtmf_before_the_answer_waits_for_the_connection() {
    let mut s = Sim::new(MachineConfig {
        dialout_initiated_event: true,
        ..MachineConfig::default()
    });
    s.ev(Input::Start);
    // 1. Asked before anyone answered: held.
    assert!(s.ev(dtmf("5")).acts.is_empty());
    s.ev(Input::BotSessionOpened { expires: None });
    s.at(2_000).ev(Input::CarrierAnswered { sdp_ok: true });
    // 2. Sent once the bot's side is connected.
    let st = s.at(2_010).ev(Input::BotAnswered);
    assert_eq!(
        st.acts.last(),
        Some(&Output::Play(Prompt::Dtmf("5".into())))
    );
}

#[test]
fn a_sip_bots_play_url_is_played_and_its_format_kept() {
    let mut s = sip_bot(false, false);
    // 1. Without and with playUrlMediaFormat.
    assert_eq!(
        s.ev(play("https://x.test/a.wav")).acts,
        vec![Output::Play(Prompt::Url("https://x.test/a.wav".into()))]
    );
    let st = s.ev(act(
        json!({"type": "event", "name": "playUrl", "activityParams":
        {"playUrlUrl": "https://x.test/b.raw", "playUrlMediaFormat": "raw/lpcm16"}}),
    ));
    assert_eq!(
        st.acts,
        vec![Output::Play(Prompt::UrlAs {
            url: "https://x.test/b.raw".into(),
            format: "raw/lpcm16".into()
        })]
    );
    // 2. Drained: playFinished.
    assert_eq!(
        s.ev(Input::PlaybackDone).acts,
        vec![Output::BotEvent(BotEvent::PlayFinished)]
    );
}

#[test]
fn a_sip_bots_messages_are_spoken_only_when_it_opted_in() {
    // 1. Opted in: spoken.
    let mut s = sip_bot(true, false);
    assert_eq!(
        s.ev(act(json!({"type": "message", "text": "Hello"}))).acts,
        vec![Output::Play(Prompt::Speak("Hello".into()))]
    );
    // 2. Not opted in: noted once, ignored.
    let mut s = sip_bot(false, false);
    let st = s.ev(act(json!({"type": "message", "text": "Hello"})));
    assert!(
        matches!(&st.acts[..], [Output::Timeline { note, .. }] if note.contains("speak_messages"))
    );
    assert!(
        s.ev(act(json!({"type": "message", "text": "Again"})))
            .acts
            .is_empty()
    );
}

#[test]
fn a_prompt_that_cannot_be_played_tells_the_bot_and_the_call_goes_on() {
    let mut s = sip_bot(false, false);
    s.ev(play("https://x.test/missing.wav"));
    let st = s.ev(Input::PromptFailed {
        url: "https://x.test/missing.wav".into(),
        reason: "answered 404".into(),
    });
    assert!(matches!(&st.acts[0], Output::Timeline { note, .. } if note.contains("404")));
    assert_eq!(
        st.acts[1],
        Output::BotEvent(BotEvent::PlayUrlFailed {
            url: "https://x.test/missing.wav".into(),
            reason: "answered 404".into()
        })
    );
    assert!(st.terminal.is_none());
    assert_eq!(s.m.state(), CallState::Connected);
}

#[test]
fn abort_prompts_gives_an_interrupted_play_finished() {
    let mut s = sip_bot(false, false);
    s.ev(play("file:a.wav"));
    // 1. Cut: the player is told; its drain means playFinished interrupted.
    assert_eq!(
        s.ev(act(json!({"type": "event", "name": "abortPrompts"})))
            .acts,
        vec![Output::AbortPrompts]
    );
    assert_eq!(
        s.ev(Input::PlaybackDone).acts,
        vec![Output::BotEvent(BotEvent::PlayInterrupted)]
    );
    // 2. The next prompt that plays to its end is not "interrupted".
    s.ev(play("file:b.wav"));
    assert_eq!(
        s.ev(Input::PlaybackDone).acts,
        vec![Output::BotEvent(BotEvent::PlayFinished)]
    );
    // 3. Nothing in the player: abortPrompts does nothing.
    assert!(
        s.ev(act(json!({"type": "event", "name": "abortPrompts"})))
            .acts
            .is_empty()
    );
}

#[test]
fn barge_in_cuts_a_prompt_only_when_on_and_a_prompt_plays() {
    // 1. Off (the default): speaking changes nothing.
    let mut s = sip_bot(false, false);
    s.ev(play("file:a.wav"));
    assert!(s.ev(Input::SpeechStarted).acts.is_empty());
    // 2. Turned on during the call (the config activity): the prompt is cut.
    s.m.set_barge_in(true);
    let st = s.ev(Input::SpeechStarted);
    assert!(matches!(&st.acts[0], Output::Timeline { note, .. } if note.contains("barge-in")));
    assert_eq!(st.acts[1], Output::AbortPrompts);
    assert_eq!(
        s.ev(Input::PlaybackDone).acts,
        vec![Output::BotEvent(BotEvent::PlayInterrupted)]
    );
    // 3. Nothing plays: speaking cuts nothing.
    assert!(s.ev(Input::SpeechStarted).acts.is_empty());
    // 4. Key presses alone are not cut by speech.
    s.ev(dtmf("1"));
    assert!(s.ev(Input::SpeechStarted).acts.is_empty());
}

#[test]
fn barge_in_from_the_configuration_and_turned_off_by_the_bot() {
    let mut s = sip_bot(false, true);
    assert!(s.m.barge_in());
    s.ev(play("file:a.wav"));
    // 1. The bot turns it off: speech no longer cuts.
    s.m.set_barge_in(false);
    assert!(s.ev(Input::SpeechStarted).acts.is_empty());
    // 2. On again: cut, and held prompts are dropped too.
    s.m.set_barge_in(true);
    s.ev(play("file:b.wav"));
    let st = s.ev(Input::SpeechStarted);
    assert!(st.acts.contains(&Output::AbortPrompts));
}
