//! A phrase cut at a pause after its first part was delivered ("Hi," … "who's calling,
//! please?"): when that first part was short, the rest is recognised *together with it* and only
//! the words after the delivered ones are passed on. Recognised alone, the rest of a phrase came
//! out worse ("who's calling, please?" → "Please."; "who is this?" → "This is this."), and the
//! encoder's minimum window (5.1 s) makes the extra second of audio almost free.

use super::filter::simple_norm;

/// Normalised words of `text` (lower case, letters/digits/apostrophes).
fn words(text: &str) -> Vec<String> {
    simple_norm(text)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// The part of `text` (the whole phrase, recognised again) after the words already delivered
/// (`said`), first letter capitalised; `None` when nothing is left. The cut is where the
/// recognised words best match the delivered ones (one word more or fewer than delivered, in
/// case the model heard the first part a little differently in context).
pub fn after_said(text: &str, said: &str) -> Option<String> {
    let said = words(said);
    // Whitespace tokens with their normalised words ("Hi," → ["hi"], "—" → []).
    let tokens: Vec<(&str, Vec<String>)> = text.split_whitespace().map(|t| (t, words(t))).collect();
    let all: Vec<String> = tokens.iter().flat_map(|(_, w)| w.clone()).collect();
    let n = said.len();
    let cut = [n, n.saturating_sub(1), n + 1]
        .into_iter()
        .filter(|k| *k <= all.len())
        .min_by_key(|k| super::eval::word_errors(&all[..*k], &said))?;
    // Skip the tokens holding the first `cut` words.
    let mut seen = 0;
    let mut rest = Vec::new();
    for (tok, w) in &tokens {
        if seen >= cut {
            rest.push(*tok);
        }
        seen += w.len();
    }
    let rest = rest.join(" ");
    let rest = rest.trim_start_matches(|c: char| !c.is_alphanumeric());
    if words(rest).is_empty() {
        return None;
    }
    let mut chars = rest.chars();
    let first = chars.next()?;
    Some(first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delivered_words_are_cut_off() {
        // 1. The model hears the first part as delivered: the rest is passed on.
        assert_eq!(
            after_said("Hi, who's calling, please?", "Hi.").as_deref(),
            Some("Who's calling, please?")
        );
        assert_eq!(
            after_said("Hello, who is this?", "Hello?").as_deref(),
            Some("Who is this?")
        );
        // 2. It hears it a little differently in context: still cut after it.
        assert_eq!(
            after_said("Hey, who's calling?", "Hi.").as_deref(),
            Some("Who's calling?")
        );
        assert_eq!(
            after_said("Yes, hello, who is it?", "Yes?").as_deref(),
            Some("Hello, who is it?")
        );
    }

    #[test]
    fn nothing_after_the_delivered_words_gives_none() {
        assert_eq!(after_said("Hello.", "Hello?"), None);
        assert_eq!(after_said("Hello, ...", "Hello?"), None);
        assert_eq!(after_said("", "Hello?"), None);
    }
}
