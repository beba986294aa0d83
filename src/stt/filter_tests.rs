//! The junk filter and the loop collapser, on texts Whisper produced in measurements.

use super::*;

const LIMITS: Limits = Limits {
    min_confidence: 0.4,
    max_no_speech: 0.6,
};

fn ev(confidence: f32, no_speech: f32, voiced_ms: u32) -> Evidence {
    Evidence {
        confidence,
        no_speech,
        voiced_ms,
        audio_secs: 1.5,
    }
}

/// 1 s of a 180 Hz voice-like tone with harmonics at -20 dBFS (periodic, like a vowel).
fn vowel() -> Vec<i16> {
    (0..8000)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let w = std::f32::consts::TAU * 180.0 * t;
            ((w.sin() + 0.5 * (2.0 * w).sin() + 0.3 * (3.0 * w).sin()) * 1800.0) as i16
        })
        .collect()
}

/// 1 s of white noise at about -15 dBFS (a deterministic LCG).
fn noise() -> Vec<i16> {
    let mut x: u32 = 12345;
    (0..8000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((x >> 16) as i16) / 6
        })
        .collect()
}

/// 1 s of brown noise (integrated white noise, leaky), like a line's low rumble.
fn brown_noise() -> Vec<i16> {
    let mut acc = 0.0f32;
    noise()
        .into_iter()
        .map(|w| {
            acc = 0.98 * acc + f32::from(w) * 0.2;
            acc.clamp(-32000.0, 32000.0) as i16
        })
        .collect()
}

#[test]
fn tags_and_confidence_limits_drop_junk() {
    // 1. Tags alone are empty.
    assert_eq!(
        judge("[BLANK_AUDIO]", ev(0.9, 0.0, 0), LIMITS),
        Err(DropReason::Empty)
    );
    assert_eq!(
        judge(" (music) ", ev(0.9, 0.0, 0), LIMITS),
        Err(DropReason::Empty)
    );
    // 2. Whisper's own no-speech probability and low confidence drop.
    assert_eq!(
        judge("Hello?", ev(0.9, 0.7, 400), LIMITS),
        Err(DropReason::NoSpeech)
    );
    assert_eq!(
        judge("Hello?", ev(0.2, 0.0, 400), LIMITS),
        Err(DropReason::LowConfidence)
    );
    // 3. Text from audio without a voiced frame is noise.
    assert_eq!(
        judge("Yeah.", ev(0.9, 0.0, 20), LIMITS),
        Err(DropReason::Unvoiced)
    );
    // 4. Tags around speech are stripped.
    assert_eq!(
        judge(" Hello? [noise]", ev(0.9, 0.0, 400), LIMITS),
        Ok("Hello?".into())
    );
}

#[test]
fn silence_phrases_are_dropped_from_noise_but_kept_from_a_voice() {
    // 1. "Thank you." from audio with hardly a voiced frame, not confidently heard: a hallucination.
    assert_eq!(
        judge("Thank you.", ev(0.5, 0.1, 60), LIMITS),
        Err(DropReason::Hallucination)
    );
    // 2. Confidently heard: kept.
    assert_eq!(
        judge("Thank you.", ev(0.9, 0.05, 60), LIMITS),
        Ok("Thank you.".into())
    );
    // 3. A lone "Bye." with hardly a voiced frame is dropped; from audio with a voice it reaches the bot.
    assert_eq!(
        judge("Bye.", ev(0.5, 0.3, 60), LIMITS),
        Err(DropReason::Hallucination)
    );
    assert_eq!(judge("Bye.", ev(0.5, 0.3, 240), LIMITS), Ok("Bye.".into()));
    // 4. "You" / "So" alone are no plausible answer: dropped even with a voice.
    assert_eq!(
        judge("You", ev(0.5, 0.3, 240), LIMITS),
        Err(DropReason::Hallucination)
    );
}

#[test]
fn voiced_time_tells_a_voice_from_noise() {
    assert!(voiced_ms(&vowel()) >= 900, "{}", voiced_ms(&vowel()));
    assert_eq!(voiced_ms(&noise()), 0);
    assert!(
        voiced_ms(&brown_noise()) <= 40,
        "{}",
        voiced_ms(&brown_noise())
    );
    assert_eq!(voiced_ms(&[0; 8000]), 0);
}

#[test]
fn a_phrase_said_twice_is_kept() {
    assert_eq!(
        collapse_repeats("Hello, hello?", Some(1.5)),
        "Hello, hello?"
    );
    assert_eq!(collapse_repeats("Hello, hello?", None), "Hello, hello?");
    assert_eq!(collapse_repeats("Yes, yes.", Some(1.0)), "Yes, yes.");
    assert_eq!(
        collapse_repeats("Hello? Hello?", Some(2.0)),
        "Hello? Hello?"
    );
    assert_eq!(
        collapse_repeats("I said yes yes", Some(1.5)),
        "I said yes yes"
    );
    // Three times in two seconds is still a person.
    assert_eq!(
        collapse_repeats("Hello, hello, hello?", Some(2.0)),
        "Hello, hello, hello?"
    );
}

#[test]
fn a_decoding_loop_is_collapsed() {
    // 1. Cut off inside a word by the token limit.
    assert_eq!(
        collapse_repeats("Hello? Hello? Hello? Hel", Some(1.0)),
        "Hello?"
    );
    // 2. Two copies and the start of a third.
    assert_eq!(
        collapse_repeats("Yes, speaking. Yes, speaking. Yes", Some(1.2)),
        "Yes, speaking."
    );
    // 3. Cut off inside the first repeat (a 10-word sentence, 9 words of its copy).
    assert_eq!(
        collapse_repeats(
            "Nobody is available to take your call at the moment. Nobody is available to take your call at the",
            Some(3.0)
        ),
        "Nobody is available to take your call at the moment."
    );
    // 4. More copies than the audio could hold.
    assert_eq!(
        collapse_repeats("Hello? Hello? Hello? Hello? Hello? Hello?", Some(1.0)),
        "Hello?"
    );
    assert_eq!(collapse_repeats("Hello hello hello", None), "Hello");
    // 5. A sentence twice over (tiny.en on a 1.5 s "Hello, who is this?").
    assert_eq!(
        collapse_repeats("Hello? Who was this? Hello? Who was this?", Some(1.7)),
        "Hello? Who was this?"
    );
}

#[test]
fn a_short_partial_copy_is_not_a_loop() {
    assert_eq!(
        collapse_repeats("Who is this? Who", Some(1.5)),
        "Who is this? Who"
    );
    assert_eq!(
        collapse_repeats("Yes, I can. Yes, I", Some(2.0)),
        "Yes, I can. Yes, I"
    );
    assert_eq!(
        collapse_repeats("This is Mark, this is", Some(2.0)),
        "This is Mark, this is"
    );
    // Punctuation standing alone is neither a copy nor lost.
    assert_eq!(
        collapse_repeats("Hello, hello -", Some(1.5)),
        "Hello, hello -"
    );
}

#[test]
fn a_loop_after_a_first_phrase_is_collapsed() {
    // 1. tiny.en on a noisy "Hello, good evening.": the greeting, then a loop of its end.
    assert_eq!(
        collapse_repeats(
            "Hello, good evening. Good evening. Good evening. Good evening",
            Some(2.0)
        ),
        "Hello, good evening."
    );
    // 2. Twice and cut off is a loop too.
    assert_eq!(
        collapse_repeats("Hi, this is Sarah. This is Sarah. This is", Some(2.0)),
        "Hi, this is Sarah."
    );
    // 3. A phrase said twice after another is kept (people do repeat themselves once).
    assert_eq!(
        collapse_repeats("Hello, this is Mark, this is Mark.", Some(3.0)),
        "Hello, this is Mark, this is Mark."
    );
}
