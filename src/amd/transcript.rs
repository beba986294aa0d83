//! Transcript cues: what recognised text says about who answered.
//!
//! Text is normalised to lower-case words (apostrophes kept, typographic ones folded) and
//! phrases match on whole words, so "unavailable" does not match inside "unavailableness" and
//! "message" in a person's sentence is not enough on its own.

use super::params::AmdParams;

/// What the transcript so far says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptCue {
    /// A machine phrase was heard.
    MachinePhrase(String),
    /// Too many words for someone answering the phone.
    ManyWords(usize),
    /// A phrase only a live person says.
    HumanPhrase(String),
}

/// Lower-case words separated by single spaces, with a leading and trailing space so that
/// `" phrase "` matching is whole-word.
pub fn normalise(text: &str) -> String {
    let mut out = String::from(" ");
    for w in text
        .chars()
        .map(|c| match c {
            '\u{2019}' | '\u{2018}' | '`' => '\'',
            c if c.is_alphanumeric() || c == '\'' => c,
            _ => ' ',
        })
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .split_whitespace()
    {
        out.push_str(w);
        out.push(' ');
    }
    out
}

/// Judges the accumulated (already normalised) transcript: machine phrase, else human phrase,
/// else word count.
pub fn judge(norm: &str, p: &AmdParams) -> Option<TranscriptCue> {
    let has = |phrase: &str| {
        let ph = normalise(phrase);
        !ph.trim().is_empty() && norm.contains(&ph)
    };
    if let Some(ph) = p.machine_phrases.iter().find(|ph| has(ph)) {
        return Some(TranscriptCue::MachinePhrase(ph.clone()));
    }
    // A person's phrase outranks the word count: a receptionist's greeting is long, but ends
    // in "how can I help you?".
    if let Some(ph) = p.human_phrases.iter().find(|ph| has(ph)) {
        return Some(TranscriptCue::HumanPhrase(ph.clone()));
    }
    let words = norm.split_whitespace().count();
    (p.transcript_machine_words > 0 && words >= p.transcript_machine_words as usize)
        .then_some(TranscriptCue::ManyWords(words))
}
