//! Drops what Whisper invents from silence or noise: bracketed tags (`[BLANK_AUDIO]`, `(music)`),
//! known silence hallucinations ("Thank you.") when not confidently heard, low confidence, and
//! high no-speech probability.

/// Phrases Whisper is known to produce from silence/noise (normalised: lower case, no punctuation).
const SILENCE_PHRASES: &[&str] = &[
    "thank you",
    "thanks for watching",
    "thank you for watching",
    "you",
    "bye",
    "so",
    "please subscribe",
    "the end",
];

/// Remove bracketed/parenthesised/starred tags and trim.
pub fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0i32;
    let mut star = false;
    for c in text.chars() {
        match c {
            '[' | '(' | '{' => depth += 1,
            ']' | ')' | '}' => depth = (depth - 1).max(0),
            '*' => star = !star,
            _ if depth == 0 && !star => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Lower case, letters/digits/apostrophes and single spaces.
pub fn simple_norm(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whisper with a shortened window can loop ("Hello? Hello? Hello? ..."): keep one copy when the
/// text is a phrase repeated (the last copy may be cut off). The token limit often stops the loop
/// inside its first repeat ("Nobody is available … at the moment. Nobody is available … at the"),
/// so a partial second copy counts when it is at least three words long.
pub fn collapse_repeats(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let norm: Vec<String> = words.iter().map(|w| simple_norm(w)).collect();
    for period in 1..words.len() {
        let tail = words.len() - period;
        if tail < period && tail < 3 {
            continue;
        }
        let last = norm.len() - 1;
        let repeats = norm.iter().enumerate().skip(period).all(|(i, w)| {
            *w == norm[i % period] || (i == last && norm[i % period].starts_with(w.as_str()))
        });
        if repeats {
            return words[..period].join(" ");
        }
    }
    words.join(" ")
}

/// Why a recognition was dropped (for counters and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Nothing but tags/punctuation.
    Empty,
    /// no-speech probability above the limit.
    NoSpeech,
    /// Mean token probability below the limit.
    LowConfidence,
    /// A known silence hallucination, not confidently heard.
    Hallucination,
}

/// Keep (Ok(cleaned text)) or drop a recognition.
pub fn judge(
    text: &str,
    confidence: f32,
    no_speech: f32,
    min_conf: f32,
    max_no_speech: f32,
) -> Result<String, DropReason> {
    let cleaned = collapse_repeats(&strip_tags(text));
    let norm = simple_norm(&cleaned);
    if norm.is_empty() {
        return Err(DropReason::Empty);
    }
    if no_speech > max_no_speech {
        return Err(DropReason::NoSpeech);
    }
    if confidence < min_conf {
        return Err(DropReason::LowConfidence);
    }
    if SILENCE_PHRASES.contains(&norm.as_str()) && (confidence < 0.75 || no_speech > 0.2) {
        return Err(DropReason::Hallucination);
    }
    Ok(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_silence_phrases_are_dropped() {
        assert_eq!(
            judge("[BLANK_AUDIO]", 0.9, 0.0, 0.4, 0.6),
            Err(DropReason::Empty)
        );
        assert_eq!(
            judge(" (music) ", 0.9, 0.0, 0.4, 0.6),
            Err(DropReason::Empty)
        );
        assert_eq!(
            judge("Thank you.", 0.5, 0.1, 0.4, 0.6),
            Err(DropReason::Hallucination)
        );
        assert_eq!(
            judge("Hello?", 0.9, 0.7, 0.4, 0.6),
            Err(DropReason::NoSpeech)
        );
        assert_eq!(
            judge("Hello?", 0.2, 0.0, 0.4, 0.6),
            Err(DropReason::LowConfidence)
        );
        assert_eq!(
            judge(" Hello? [noise]", 0.9, 0.0, 0.4, 0.6),
            Ok("Hello?".into())
        );
        assert_eq!(
            judge("Thank you.", 0.9, 0.05, 0.4, 0.6),
            Ok("Thank you.".into())
        );
        assert_eq!(collapse_repeats("Hello? Hello? Hello? Hel"), "Hello?");
        assert_eq!(
            collapse_repeats("Yes, speaking. Yes, speaking. Yes"),
            "Yes, speaking."
        );
        assert_eq!(collapse_repeats("I said yes yes"), "I said yes yes");
        // Cut off inside the first repeat (a 10-word sentence, 9 words of its copy).
        assert_eq!(
            collapse_repeats(
                "Nobody is available to take your call at the moment. Nobody is available to take your call at the"
            ),
            "Nobody is available to take your call at the moment."
        );
        // A partial copy of one or two words is not enough evidence of a loop.
        assert_eq!(collapse_repeats("Who is this? Who"), "Who is this? Who");
        assert_eq!(collapse_repeats("Yes, I can. Yes, I"), "Yes, I can. Yes, I");
        assert_eq!(
            collapse_repeats("This is Mark, this is"),
            "This is Mark, this is"
        );
    }
}
