//! Copies of a word against the audio's bursts of voice: texts tiny.en produced on the greeting
//! set, and synthetic voiced bursts.

use super::*;

/// `ms` of a 180 Hz voice-like tone with harmonics at about -20 dBFS (periodic, like a vowel).
fn vowel(ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let w = std::f32::consts::TAU * 180.0 * t;
            ((w.sin() + 0.5 * (2.0 * w).sin() + 0.3 * (3.0 * w).sin()) * 1800.0) as i16
        })
        .collect()
}

fn silence(ms: usize) -> Vec<i16> {
    vec![0; ms * 8]
}

#[test]
fn bursts_of_voice_are_counted_across_pauses_not_inside_words() {
    // 1. One word: 400 ms of voice between silences is one burst.
    let one = [silence(500), vowel(400), silence(1000)].concat();
    assert_eq!(voiced_runs(&one), 1);
    // 2. A consonant inside a word (140 ms without voice) does not split it.
    let word = [
        silence(500),
        vowel(200),
        silence(140),
        vowel(200),
        silence(800),
    ]
    .concat();
    assert_eq!(voiced_runs(&word), 1);
    // 3. "Hello, hello?": a 260 ms comma pause separates two bursts.
    let two = [
        silence(500),
        vowel(400),
        silence(260),
        vowel(400),
        silence(800),
    ]
    .concat();
    assert_eq!(voiced_runs(&two), 2);
    // 4. A lone voiced frame of noise inside the pause does not join the two words.
    let bridged = [
        silence(500),
        vowel(400),
        silence(140),
        vowel(20),
        silence(100),
        vowel(400),
        silence(800),
    ]
    .concat();
    assert_eq!(voiced_runs(&bridged), 2);
    // 5. Silence alone has none; a 20 ms click of voice is no burst.
    assert_eq!(voiced_runs(&silence(2000)), 0);
    let click = [silence(500), vowel(20), silence(500)].concat();
    assert_eq!(voiced_runs(&click), 0);
}

#[test]
fn a_loop_of_one_word_keeps_the_copies_the_audio_holds() {
    // 1. One "Hello?" looped: one copy.
    assert_eq!(
        trim_copies_beyond_voice("Hello? Hello? Hello? Hello? Hello", 1),
        "Hello?"
    );
    assert_eq!(
        trim_copies_beyond_voice("speaking, speaking, speaking, speaking,", 1),
        "speaking,"
    );
    assert_eq!(trim_copies_beyond_voice("Yes. Yes.", 1), "Yes.");
    // 2. "Hello, hello?" looped by the model: the two copies said are kept.
    assert_eq!(
        trim_copies_beyond_voice("Hello? Hello? Hello? Hello? Hello? Hello", 2),
        "Hello? Hello?"
    );
    // 3. Cut off by the token limit inside the word: the piece goes.
    assert_eq!(
        trim_copies_beyond_voice("Hello? Hello? Hel", 2),
        "Hello? Hello?"
    );
    // 4. Copies after a phrase, with no voice left for them, are dropped.
    assert_eq!(
        trim_copies_beyond_voice("Hello? Can I help you? Hello? Hello?", 2),
        "Hello? Can I help you?"
    );
}

#[test]
fn words_said_twice_with_a_voice_for_each_are_kept() {
    // 1. Two bursts of voice: both copies stay.
    assert_eq!(
        trim_copies_beyond_voice("Hello, hello?", 2),
        "Hello, hello?"
    );
    assert_eq!(
        trim_copies_beyond_voice("Hello? Can I help you? Hello? Hello?", 4),
        "Hello? Can I help you? Hello? Hello?"
    );
    // 2. Copies not written as clauses ("yes yes" in one breath) are no loop of this kind.
    assert_eq!(
        trim_copies_beyond_voice("I said yes yes", 1),
        "I said yes yes"
    );
    assert_eq!(trim_copies_beyond_voice("Hello hello", 1), "Hello hello");
    // 3. No copies, or nothing at all: unchanged.
    assert_eq!(
        trim_copies_beyond_voice("Hi, this is Sarah.", 1),
        "Hi, this is Sarah."
    );
    assert_eq!(trim_copies_beyond_voice("", 0), "");
}
