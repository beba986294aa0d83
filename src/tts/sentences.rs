//! Splitting normalised text into sentences (each synthesised on its own, so the first can play
//! while the rest are synthesised) and sentences into clauses (each phonemised on its own, its
//! punctuation kept as Piper's voices were trained).

/// Sentences of `text`: cut after `.`, `!` or `?` (and any closing quote or bracket) followed by
/// white space, and at line breaks. Trimmed, never empty.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut current = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            current.push(c);
            if matches!(c, '.' | '!' | '?') {
                while let Some(&q) = chars.peek() {
                    if matches!(q, '.' | '!' | '?' | '"' | '\'' | ')' | '”' | '’') {
                        current.push(q);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if chars.peek().is_none_or(|n| n.is_whitespace()) {
                    push_trimmed(&mut out, &current);
                    current.clear();
                }
            }
        }
        push_trimmed(&mut out, &current);
    }
    out
}

fn push_trimmed(out: &mut Vec<String>, s: &str) {
    let t = s.trim();
    if t.chars().any(char::is_alphanumeric) {
        out.push(t.to_owned());
    }
}

/// One clause: its text without the final punctuation, and that punctuation (`,` `;` `:` `.`
/// `?` `!`, or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// Words of the clause.
    pub text: String,
    /// Its terminating punctuation mark, if any.
    pub terminator: Option<char>,
}

/// Clauses of one sentence: cut at `, ; : . ? !` followed by white space or the end.
pub fn split_clauses(sentence: &str) -> Vec<Clause> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = sentence.chars().peekable();
    while let Some(c) = chars.next() {
        let ends = matches!(c, ',' | ';' | ':' | '.' | '?' | '!')
            && chars.peek().is_none_or(|n| {
                n.is_whitespace() || is_closing(*n) || matches!(n, '.' | '?' | '!')
            });
        if ends {
            // "?!" or "..." end one clause: keep the strongest (first sentence-final) mark.
            let mut mark = c;
            while let Some(&n) = chars.peek() {
                if matches!(n, '.' | '?' | '!') || is_closing(n) {
                    if matches!(n, '?' | '!') && mark == '.' {
                        mark = n;
                    }
                    chars.next();
                } else {
                    break;
                }
            }
            push_clause(&mut out, &current, Some(mark));
            current.clear();
        } else {
            current.push(c);
        }
    }
    push_clause(&mut out, &current, None);
    out
}

fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | '”' | '’')
}

fn push_clause(out: &mut Vec<Clause>, text: &str, terminator: Option<char>) {
    let t = text.trim();
    if t.chars().any(char::is_alphanumeric) {
        out.push(Clause {
            text: t.to_owned(),
            terminator,
        });
    } else if let (Some(last), Some(_)) = (out.last_mut(), terminator) {
        // A stray mark ("Hello , world") belongs to the clause before it.
        last.terminator = last.terminator.or(terminator);
    }
}

/// Words after which a phrase may end: a cut before one of these sounds like a pause between
/// phrases, not a broken word group.
const PHRASE_STARTS: [&str; 22] = [
    "and", "but", "or", "so", "to", "for", "from", "with", "about", "at", "on", "in", "of", "by",
    "because", "that", "which", "who", "when", "if", "is", "are",
];

/// Cut a long first sentence so its first piece is short: synthesis time grows with the audio,
/// and the person waits for the whole first piece. Cuts at a clause mark within the first
/// `max_words` words if there is one, else before a phrase-starting word, else after
/// `max_words` words; the first piece ends in a comma so it is spoken as a continuing phrase.
/// `None` when the sentence is short enough (at most `max_words` + 2 words) or `max_words` is 0.
pub fn split_first(sentence: &str, max_words: usize) -> Option<(String, String)> {
    let words: Vec<&str> = sentence.split_whitespace().collect();
    if max_words == 0 || words.len() <= max_words + 2 {
        return None;
    }
    let min = 2.min(max_words);
    let at_mark = (min..=max_words).find(|&n| words[n - 1].ends_with([',', ';', ':']));
    let before_phrase = || {
        (min..=max_words)
            .rev()
            .find(|&n| PHRASE_STARTS.contains(&words[n].to_lowercase().as_str()))
    };
    let n = at_mark.or_else(before_phrase).unwrap_or(max_words);
    let mut head = words[..n].join(" ");
    if !head.ends_with([',', ';', ':']) {
        head.push(',');
    }
    Some((head, words[n..].join(" ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences() {
        assert_eq!(
            split_sentences("Hi there. We are calling from Acme! Is now a good time?"),
            vec![
                "Hi there.",
                "We are calling from Acme!",
                "Is now a good time?"
            ]
        );
        assert_eq!(
            split_sentences("He said \"yes.\" Then left...  Fine"),
            vec!["He said \"yes.\"", "Then left...", "Fine"]
        );
        assert_eq!(split_sentences("one\ntwo"), vec!["one", "two"]);
        assert_eq!(
            split_sentences("version 2.5 is out"),
            vec!["version 2.5 is out"]
        );
        assert!(split_sentences("  . ! ").is_empty());
    }

    #[test]
    fn clauses() {
        let c = split_clauses("Hello, world; how are you?");
        assert_eq!(
            c,
            vec![
                Clause {
                    text: "Hello".into(),
                    terminator: Some(',')
                },
                Clause {
                    text: "world".into(),
                    terminator: Some(';')
                },
                Clause {
                    text: "how are you".into(),
                    terminator: Some('?')
                },
            ]
        );
        assert_eq!(
            split_clauses("Really?!"),
            vec![Clause {
                text: "Really".into(),
                terminator: Some('?')
            }]
        );
        assert_eq!(
            split_clauses("no mark"),
            vec![Clause {
                text: "no mark".into(),
                terminator: None
            }]
        );
        assert_eq!(split_clauses("a,b")[0].text, "a,b");
    }

    #[test]
    fn first_piece_of_a_long_sentence() {
        // 1. A clause mark early on is the natural cut.
        assert_eq!(
            split_first("Hi there, we are calling from Acme about your order.", 5),
            Some((
                "Hi there,".into(),
                "we are calling from Acme about your order.".into()
            ))
        );
        // 2. Else before the last phrase start within the limit ("about" is past it: "from").
        assert_eq!(
            split_first(
                "We will deliver the package from Boston tomorrow morning.",
                5
            ),
            Some((
                "We will deliver the package,".into(),
                "from Boston tomorrow morning.".into()
            ))
        );
        // 3. Else after the limit.
        assert_eq!(
            split_first("Seven eight nine ten eleven twelve thirteen fourteen", 5),
            Some((
                "Seven eight nine ten eleven,".into(),
                "twelve thirteen fourteen".into()
            ))
        );
        // 4. Short sentences and a zero limit are left whole.
        assert_eq!(split_first("Is now a good time to talk?", 5), None);
        assert_eq!(
            split_first("One two three four five six seven eight", 0),
            None
        );
    }
}
