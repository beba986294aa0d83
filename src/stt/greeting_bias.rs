//! Greeting bias: a session's first short utterance that tiny.en decoded freely into something
//! that is not telephone pick-up language ("Sarah speaking." → "Thank you.", "Hey." → "A.") is
//! decoded again, constrained to a generic pick-up grammar ("hello", "yes", "<Name> speaking",
//! "this is <Name>", "who's calling", "good morning", … up to four clauses), over the encoder
//! output the free decode left in the state (no second encoding). The constrained text replaces
//! the free one only when the model scores it nearly as well: its mean token log-probability is
//! at most `margin` below the free text's, both scored alike (teacher-forced, log-softmax over
//! the text tokens and end-of-text). So a clear non-greeting ("Wrong number.") is kept, and the
//! bias never runs on text that is already a greeting, on empty text, or on audio Whisper takes
//! for no speech (it must never turn line noise into "Hello").
//!
//! The grammar is generic pick-up language, not a copy of any test set: a name slot takes any
//! capitalised word, so "Hi, this is Priya." needs no name list.

use super::SttError;

/// Clauses people say on picking up; `<name>` is any capitalised word. A greeting is one to
/// [`MAX_CLAUSES`] clauses, with any punctuation between and after them.
const CLAUSES: &[&str] = &[
    "hello",
    "hello there",
    "hi",
    "hi there",
    "hey",
    "hey there",
    "yes",
    "yeah",
    "yep",
    "yup",
    "speaking",
    "please",
    "<name> speaking",
    "<name> here",
    "this is <name>",
    "it's <name>",
    "who is this",
    "who's this",
    "who is it",
    "who is calling",
    "who's calling",
    "who is speaking",
    "who's speaking",
    "can i help you",
    "how can i help you",
    "may i help you",
    "good morning",
    "good afternoon",
    "good evening",
];

/// Most clauses in one greeting ("Hi, who's calling, please?" is three).
const MAX_CLAUSES: usize = 4;

/// Log-probabilities this far below the best are never candidates (e^-10 a token is far
/// beyond any margin).
const CANDIDATE_SPAN: f32 = 10.0;

/// Candidate tokens tried per step, best first, before the step gives up: a greeting the model
/// does not rank among its 200 likeliest tokens would not be taken anyway, and each try
/// matches the grammar once (the bound keeps a step to about a millisecond).
const MAX_TRIED: usize = 200;

/// First tokens whose greedy continuations are compared ("Hi" / "Hey" / "Hello" differ there,
/// and any capitalised token may start a name).
/// Six: capitalised name prefixes (" G", " Th") take some of the places. Four, with paths given
/// up early, lost the two greetings the bias had found on each set.
const FIRST_ALTERNATIVES: usize = 6;

/// Longest name, characters (a name slot must not swallow a whole sentence).
const MAX_NAME_CHARS: usize = 12;

/// One element of a clause.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    /// A word, lower case.
    Word(String),
    /// Any capitalised word (a person's or a company's name).
    Name,
}

/// The pick-up grammar, parsed once.
#[derive(Debug, Clone)]
pub struct GreetingGrammar {
    clauses: Vec<Vec<Item>>,
    /// Every grammar word, lower case (none of them is a name).
    keywords: std::collections::HashSet<String>,
}

impl Default for GreetingGrammar {
    fn default() -> Self {
        let clauses = CLAUSES
            .iter()
            .map(|c| {
                c.split(' ')
                    .map(|w| {
                        if w == "<name>" {
                            Item::Name
                        } else {
                            Item::Word(w.to_owned())
                        }
                    })
                    .collect()
            })
            .collect::<Vec<Vec<Item>>>();
        let keywords = clauses
            .iter()
            .flatten()
            .filter_map(|i| match i {
                Item::Word(s) => Some(s.clone()),
                Item::Name => None,
            })
            .collect();
        Self { clauses, keywords }
    }
}

/// Where a match can be: between clauses (`n` done) or inside clause `c` before item `i`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pos {
    Between(usize),
    Inside { c: usize, i: usize, n: usize },
}

/// Text split for matching: complete words, and a last word that may still grow.
struct Split<'a> {
    words: Vec<&'a str>,
    partial: Option<&'a str>,
}

/// Words of letters and apostrophes, separated by spaces and punctuation (`,.?!`); `None` when
/// the text holds anything else (digits, symbols: no greeting).
fn split(text: &str) -> Option<Split<'_>> {
    let is_word = |c: char| c.is_alphabetic() || c == '\'';
    if text
        .chars()
        .any(|c| !(is_word(c) || c.is_whitespace() || ",.?!".contains(c)))
    {
        return None;
    }
    let mut words: Vec<&str> = text.split(|c: char| !is_word(c)).collect();
    let last = words.pop().filter(|w| !w.is_empty());
    words.retain(|w| !w.is_empty());
    Some(Split {
        words,
        partial: last,
    })
}

/// A name as Whisper writes one: a capital, then letters (no apostrophe: "Mike's speaking" and
/// "There's here" are no names).
fn is_name(w: &str, prefix: bool) -> bool {
    let mut chars = w.chars();
    let Some(first) = chars.next() else {
        return prefix;
    };
    first.is_uppercase()
        && chars.all(char::is_alphabetic)
        && (prefix || w.len() > 1)
        && w.chars().count() <= MAX_NAME_CHARS
}

impl GreetingGrammar {
    /// Does `item` accept the word `w` (whole, or as a prefix when `prefix`)?
    fn item_accepts(&self, item: &Item, w: &str, prefix: bool) -> bool {
        match item {
            Item::Name => is_name(w, prefix) && (prefix || !self.is_keyword(w)),
            Item::Word(s) => {
                if prefix {
                    s.len() >= w.len()
                        && s.is_char_boundary(w.len())
                        && s[..w.len()].eq_ignore_ascii_case(w)
                } else {
                    s.eq_ignore_ascii_case(w)
                }
            }
        }
    }

    /// A grammar word: not a name ("This is Hello" is no greeting).
    fn is_keyword(&self, w: &str) -> bool {
        self.keywords.contains(&w.to_lowercase())
    }

    /// Positions after consuming one complete word from `from`.
    fn step(&self, from: &[Pos], w: &str, max_clauses: usize) -> Vec<Pos> {
        let mut out = Vec::new();
        for &p in from {
            let (c_range, i, n): (Vec<usize>, usize, usize) = match p {
                Pos::Between(n) if n < max_clauses => ((0..self.clauses.len()).collect(), 0, n),
                Pos::Between(_) => continue,
                Pos::Inside { c, i, n } => (vec![c], i, n),
            };
            for c in c_range {
                if self.item_accepts(&self.clauses[c][i], w, false) {
                    let next = if i + 1 == self.clauses[c].len() {
                        Pos::Between(n + 1)
                    } else {
                        Pos::Inside { c, i: i + 1, n }
                    };
                    if !out.contains(&next) {
                        out.push(next);
                    }
                }
            }
        }
        out
    }

    /// Positions after the complete words of `s`, or `None` if they leave the grammar.
    /// Punctuation counts only between clauses: "Hello, who" yes, "who, is this" no.
    fn run(&self, text: &str, s: &Split<'_>, max_clauses: usize) -> Option<Vec<Pos>> {
        let mut pos = vec![Pos::Between(0)];
        // Words and the separators after them, to check where punctuation falls.
        let mut rest = text;
        for w in &s.words {
            let at = rest.find(w)?;
            let before = &rest[..at];
            if before.chars().any(|c| ",.?!".contains(c)) {
                pos.retain(|p| matches!(p, Pos::Between(n) if *n > 0));
            }
            rest = &rest[at + w.len()..];
            pos = self.step(&pos, w, max_clauses);
            if pos.is_empty() {
                return None;
            }
        }
        if s.partial.is_none() && rest.chars().any(|c| ",.?!".contains(c)) {
            pos.retain(|p| matches!(p, Pos::Between(n) if *n > 0));
        } else if let Some(p) = s.partial {
            let before = rest.find(p).map_or("", |at| &rest[..at]);
            if before.chars().any(|c| ",.?!".contains(c)) {
                pos.retain(|p| matches!(p, Pos::Between(n) if *n > 0));
            }
        }
        (!pos.is_empty()).then_some(pos)
    }

    /// Whether `text` is a whole greeting of this grammar ("Hello, who's this?"), of at most
    /// [`MAX_CLAUSES`] clauses.
    pub fn accepts(&self, text: &str) -> bool {
        self.accepts_up_to(text, MAX_CLAUSES)
    }

    /// Whether `text` is greeting language however many clauses it has: tiny.en's loops of a
    /// greeting ("Hello? Hello? Hello? Hello? Hello") are cut to the voice later
    /// ([`super::copies`]), not steered here.
    /// A loop cut by the token bound mid-clause ("… Hello Mike") counts too.
    pub fn is_greeting_language(&self, text: &str) -> bool {
        self.accepts_up_to(text, usize::MAX)
            || self.prefix_positions(text, usize::MAX).is_some_and(|pos| {
                pos.iter().any(|p| match *p {
                    Pos::Between(n) | Pos::Inside { n, .. } => n > 0,
                })
            })
    }

    fn accepts_up_to(&self, text: &str, max_clauses: usize) -> bool {
        let text = text.trim();
        let Some(mut s) = split(text) else {
            return false;
        };
        // The last word is complete: the text ends here.
        if let Some(p) = s.partial.take() {
            s.words.push(p);
        }
        self.run(text, &s, max_clauses)
            .is_some_and(|pos| pos.iter().any(|p| matches!(p, Pos::Between(n) if *n > 0)))
    }

    /// Whether `text` can still grow into a greeting (its last word may be cut: "Hello, wh").
    pub fn accepts_prefix(&self, text: &str) -> bool {
        self.prefix_positions(text, MAX_CLAUSES).is_some()
    }

    /// The positions `text` (its last word possibly cut) can be at, before that last word;
    /// `None` when it cannot grow into a greeting of at most `max_clauses` clauses.
    fn prefix_positions(&self, text: &str, max_clauses: usize) -> Option<Vec<Pos>> {
        let text = text.trim_start();
        let s = split(text)?;
        let pos = self.run(text, &s, max_clauses)?;
        let Some(p) = s.partial else {
            return Some(pos);
        };
        let grows = pos.iter().any(|&q| match q {
            Pos::Between(n) if n < max_clauses => self
                .clauses
                .iter()
                .any(|c| self.item_accepts(&c[0], p, true)),
            Pos::Between(_) => false,
            Pos::Inside { c, i, .. } => self.item_accepts(&self.clauses[c][i], p, true),
        });
        grows.then_some(pos)
    }
}

/// The model as the bias needs it: next-token log-probabilities after a token sequence.
pub trait TokenScorer {
    /// Log-probabilities over the vocabulary (text tokens and end-of-text; others −∞) after
    /// `tokens`, of which the first `n_past` were evaluated by the previous call.
    fn next_logprobs(&mut self, tokens: &[i32], n_past: usize) -> Result<Vec<f32>, SttError>;
    /// The text of a text token; `None` for special tokens.
    fn token_text(&self, id: i32) -> Option<String>;
    /// The end-of-text token.
    fn eot(&self) -> i32;
}

/// A scored token sequence (without the prefix; end-of-text scored but not included).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Text tokens.
    pub tokens: Vec<i32>,
    /// Their text.
    pub text: String,
    /// Sum of log-probabilities, end-of-text included.
    pub logp: f32,
    /// Mean probability of the text tokens (the transcript's confidence).
    pub confidence: f32,
}

impl Scored {
    /// Mean log-probability per token, end-of-text included.
    pub fn mean_logp(&self) -> f32 {
        self.logp / (self.tokens.len() + 1) as f32
    }
}

/// Teacher-forced score of `tokens` (then end-of-text) after `prefix`.
pub fn score(lm: &mut dyn TokenScorer, prefix: &[i32], tokens: &[i32]) -> Result<Scored, SttError> {
    let mut seq = prefix.to_vec();
    let (mut logp, mut psum, mut text) = (0f32, 0f32, String::new());
    let eot = lm.eot();
    let mut n_past = 0;
    for &t in tokens.iter().chain(std::iter::once(&eot)) {
        let lp = lm.next_logprobs(&seq, n_past)?;
        let l = lp.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY);
        logp += l;
        if t != eot {
            psum += l.exp();
            text.push_str(&lm.token_text(t).unwrap_or_default());
        }
        n_past = seq.len();
        seq.push(t);
    }
    Ok(Scored {
        tokens: tokens.to_vec(),
        text,
        logp,
        confidence: if tokens.is_empty() {
            0.0
        } else {
            psum / tokens.len() as f32
        },
    })
}

/// Valid next tokens after `text`, best first (at most `k`): end-of-text when `text` is a whole
/// greeting, text tokens that keep it a greeting prefix.
fn best_valid(
    g: &GreetingGrammar,
    lm: &dyn TokenScorer,
    lp: &[f32],
    text: &str,
    k: usize,
) -> Vec<(i32, f32)> {
    let max = lp.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut cand: Vec<(usize, f32)> = lp
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, l)| l > max - CANDIDATE_SPAN)
        .collect();
    cand.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
    let eot = lm.eot();
    let mut out = Vec::new();
    for &(id, l) in cand.iter().take(MAX_TRIED) {
        let id = id as i32;
        let ok = if id == eot {
            g.accepts(text)
        } else {
            lm.token_text(id)
                .is_some_and(|t| g.accepts_prefix(&format!("{text}{t}")))
        };
        if ok {
            out.push((id, l));
            if out.len() == k {
                break;
            }
        }
    }
    out
}

/// The best greeting path the model finds after `prefix`: greedy within the grammar, from each
/// of the [`FIRST_ALTERNATIVES`] best first tokens; at most `max_tokens` text tokens. `None`
/// when no path ends within the bound.
pub fn search(
    g: &GreetingGrammar,
    lm: &mut dyn TokenScorer,
    prefix: &[i32],
    max_tokens: usize,
) -> Result<Option<Scored>, SttError> {
    let eot = lm.eot();
    let lp0 = lm.next_logprobs(prefix, 0)?;
    let firsts = best_valid(g, lm, &lp0, "", FIRST_ALTERNATIVES);
    let mut best: Option<Scored> = None;
    for (first, l0) in firsts {
        if first == eot {
            continue;
        }
        let mut seq = prefix.to_vec();
        seq.push(first);
        let mut text = lm.token_text(first).unwrap_or_default();
        let (mut logp, mut psum, mut toks) = (l0, l0.exp(), vec![first]);
        let mut ended = false;
        // The KV cache holds the prefix only: the first token is evaluated anew.
        let mut n_past = prefix.len();
        while toks.len() <= max_tokens {
            let lp = lm.next_logprobs(&seq, n_past)?;
            n_past = seq.len();
            let Some(&(t, l)) = best_valid(g, lm, &lp, &text, 1).first() else {
                break;
            };
            logp += l;
            if t == eot {
                ended = true;
                break;
            }
            psum += l.exp();
            text.push_str(&lm.token_text(t).unwrap_or_default());
            toks.push(t);
            seq.push(t);
        }
        if !ended || toks.len() > max_tokens {
            continue;
        }
        let cand = Scored {
            confidence: psum / toks.len() as f32,
            tokens: toks,
            text,
            logp,
        };
        if best
            .as_ref()
            .is_none_or(|b| cand.mean_logp() > b.mean_logp())
        {
            best = Some(cand);
        }
    }
    Ok(best)
}

/// Whether the biased path replaces the free one: it scores at most `margin` (mean
/// log-probability per token) below it.
pub fn prefer_biased(free: &Scored, biased: &Scored, margin: f32) -> bool {
    biased.mean_logp() >= free.mean_logp() - margin
}

#[cfg(test)]
#[path = "greeting_bias_tests.rs"]
mod tests;
