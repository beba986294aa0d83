//! Copies of one word that the audio cannot hold. On a short utterance in a short encoder window,
//! tiny.en loops: "Hello? Hello? Hello? Hello? Hello" for one "Hello?", "speaking, speaking,
//! speaking," for "Speaking.", "Hello? Can I help you? Hello? Hello?" for "Hello, can I help
//! you?". The text alone cannot tell such a loop from a person's "Hello, hello?" — the audio can:
//! each clause a person says is a burst of voice, and a repeated word said as its own clause
//! ("Hello? Hello?") is separated from the last by a pause. So copies of a word written as
//! separate clauses are kept only as far as the audio has bursts of voice ([`voiced_runs`]) for
//! them; the rest is the loop.
//!
//! Measured on the greeting set's voiced frames (see `filter::voiced_frames`, smoothed): the
//! pause between the two words of "Hello, hello?" is 220–280 ms in every voice; the unvoiced
//! stretches inside a word or a clause ("spea-k-ing", "can I help you") are at most 160 ms.

use super::filter::{simple_norm, voiced_frames};

/// Unvoiced time (20 ms frames) that separates two bursts of voice: 200 ms.
const RUN_GAP_FRAMES: usize = 10;

/// Voiced time (20 ms frames) a burst needs to count (shorter: a click or a stray frame).
const RUN_MIN_FRAMES: usize = 2;

/// Bursts of voice in 8 kHz audio: voiced stretches separated by at least 200 ms without voice.
/// The frames are smoothed first (each takes the majority of itself and its two neighbours): a
/// lone frame of line noise that looks periodic must not bridge the pause between two words
/// (Flite's slt under pink noise: one such frame in the 220 ms of "Hello, | hello?").
pub fn voiced_runs(samples: &[i16]) -> u32 {
    let raw = voiced_frames(samples);
    let smoothed = (0..raw.len()).map(|i| {
        let before = i.checked_sub(1).is_some_and(|j| raw[j]);
        let after = raw.get(i + 1).copied().unwrap_or(false);
        usize::from(before) + usize::from(raw[i]) + usize::from(after) >= 2
    });
    let mut runs = 0;
    let (mut voiced_in_run, mut gap) = (0usize, usize::MAX);
    for v in smoothed {
        if v {
            if gap >= RUN_GAP_FRAMES {
                if voiced_in_run >= RUN_MIN_FRAMES {
                    runs += 1;
                }
                voiced_in_run = 0;
            }
            voiced_in_run += 1;
            gap = 0;
        } else {
            gap = gap.saturating_add(1);
        }
    }
    if voiced_in_run >= RUN_MIN_FRAMES {
        runs += 1;
    }
    runs
}

/// True when a token ends a clause ("Hello?", "speaking,").
fn ends_clause(token: &str) -> bool {
    token
        .trim_end_matches(['"', '\'', ')'])
        .ends_with(['.', '?', '!', ',', ';', ':'])
}

/// Drops the copies of a word at the end of `text` beyond what the audio's `runs` bursts of voice
/// can hold. Applies only to two or more copies each written as its own clause (punctuated:
/// "Hello? Hello?"), the last possibly cut off by the token limit ("Hello? Hel"); "yes yes" in
/// one breath is left alone. When the whole text is copies, at least one is kept; after other
/// words ("Hello? Can I help you? Hello? Hello?"), the copies keep only the bursts of voice left
/// once each earlier clause has had one.
pub fn trim_copies_beyond_voice(text: &str, runs: u32) -> String {
    let tokens: Vec<&str> = text
        .split_whitespace()
        .filter(|t| !simple_norm(t).is_empty())
        .collect();
    let norm: Vec<String> = tokens.iter().map(|t| simple_norm(t)).collect();
    let Some(last) = norm.len().checked_sub(1) else {
        return text.to_owned();
    };
    // A copy cut off inside the word by the token limit ends the block.
    let cut = last > 0 && norm[last] != norm[last - 1] && norm[last - 1].starts_with(&norm[last]);
    let end = if cut { last } else { norm.len() };
    let Some(word) = end.checked_sub(1).map(|i| &norm[i]) else {
        return text.to_owned();
    };
    let mut start = end;
    while start > 0 && norm[start - 1] == *word && ends_clause(tokens[start - 1]) {
        start -= 1;
    }
    // A last copy without punctuation still belongs to the block ("Hello? Hello? Hello").
    if start == end && end > 0 && norm[end - 1] == *word {
        start -= 1;
        while start > 0 && norm[start - 1] == *word && ends_clause(tokens[start - 1]) {
            start -= 1;
        }
    }
    let copies = end - start;
    if copies + usize::from(cut) < 2 || (copies < 2 && !cut) {
        return text.to_owned();
    }
    let prefix_clauses = tokens[..start].iter().filter(|t| ends_clause(t)).count()
        + usize::from(start > 0 && !ends_clause(tokens[start - 1]));
    let room = (runs as usize).saturating_sub(prefix_clauses);
    let keep = if start == 0 {
        room.clamp(1, copies)
    } else {
        room.min(copies)
    };
    if keep == copies && !cut {
        return text.to_owned();
    }
    tokens[..start + keep].join(" ")
}

#[cfg(test)]
#[path = "copies_tests.rs"]
mod tests;
