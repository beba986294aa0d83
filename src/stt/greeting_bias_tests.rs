use super::*;

#[test]
fn pick_up_phrases_are_greetings() {
    let g = GreetingGrammar::default();
    for t in [
        "Hello?",
        " Hello, hello?",
        "Hi.",
        "Yes, this is Dana.",
        "Sarah speaking.",
        "Hello, Mike speaking.",
        "Hi, who's calling, please?",
        "Good afternoon.",
        "Hello, can I help you?",
        "Yes hello",
        "Hi, this is Priya.",
    ] {
        assert!(g.accepts(t), "{t:?} should be a greeting");
    }
}

#[test]
fn other_text_is_no_greeting() {
    let g = GreetingGrammar::default();
    for t in [
        "",
        "Thank you.",
        "A.",
        "Here's Colleen.",
        "Hello, this is not.",
        "Wrong number.",
        "5",
        "Hello, who, is this?",
        "This is Hello.",
        "Hello, Mike's speaking?",
        "There's here.",
        "Hello hello hello hello hello",
    ] {
        assert!(!g.accepts(t), "{t:?} should not be a greeting");
    }
    // A loop of greetings is greeting language (cut to the voice elsewhere), not a greeting
    // the search may produce.
    assert!(g.is_greeting_language("Hello? Hello? Hello? Hello? Hello"));
    assert!(!g.is_greeting_language("Hello? Thank you."));
    // Cut by the token bound mid-clause.
    assert!(g.is_greeting_language("Hello Mike speaking. Hello Mike speaking. Hello Mike"));
    assert!(!g.is_greeting_language("Thank"));
}

#[test]
fn prefixes_grow_into_greetings() {
    let g = GreetingGrammar::default();
    // 1. A cut word or clause can still become a greeting.
    for t in [
        "",
        " Hel",
        " Hello,",
        " Hello, wh",
        " Hello, who",
        " Sar",
        " This is M",
    ] {
        assert!(g.accepts_prefix(t), "{t:?} should be a prefix");
    }
    // 2. Words outside the grammar, digits, punctuation inside a clause cannot (" Thank"
    //    alone still can: any capitalised word may start "<Name> speaking").
    for t in [
        " Thank you",
        " thank",
        " 5",
        " Hello, this is not",
        " who, is",
    ] {
        assert!(!g.accepts_prefix(t), "{t:?} should not be a prefix");
    }
}

/// A toy model: a fixed vocabulary, and a preferred continuation per text so far.
struct Toy {
    vocab: Vec<&'static str>,
    /// (text so far, token, log-probability); anything else gets `floor`.
    table: Vec<(&'static str, usize, f32)>,
    floor: f32,
    calls: usize,
}

impl Toy {
    fn text(&self, tokens: &[i32]) -> String {
        tokens
            .iter()
            .filter_map(|&t| self.vocab.get(t as usize).copied())
            .collect()
    }
}

impl TokenScorer for Toy {
    fn next_logprobs(&mut self, tokens: &[i32], n_past: usize) -> Result<Vec<f32>, SttError> {
        assert!(n_past < tokens.len(), "each call evaluates new tokens");
        self.calls += 1;
        // The prefix is token 0 (a stand-in for sot); text is what follows.
        let text = self.text(&tokens[1..]);
        let mut lp = vec![self.floor; self.vocab.len() + 1];
        for &(at, tok, l) in &self.table {
            if at == text {
                lp[tok] = l;
            }
        }
        Ok(lp)
    }
    fn token_text(&self, id: i32) -> Option<String> {
        (id > 0).then(|| self.vocab.get(id as usize).map(|s| (*s).to_owned()))?
    }
    fn eot(&self) -> i32 {
        self.vocab.len() as i32
    }
}

/// Tokens: 1 " Thank", 2 " you", 3 ".", 4 " Sar", 5 "ah", 6 " speaking", 7 " Hey", 8 " A"; 9 = eot.
fn toy(table: Vec<(&'static str, usize, f32)>) -> Toy {
    Toy {
        vocab: vec![
            "<sot>",
            " Thank",
            " you",
            ".",
            " Sar",
            "ah",
            " speaking",
            " Hey",
            " A",
        ],
        table,
        floor: -30.0,
        calls: 0,
    }
}

#[test]
fn the_best_greeting_path_is_found_and_compared_with_the_free_text() {
    // 1. The model prefers "Thank you." but "Sarah speaking." is close behind.
    let mut lm = toy(vec![
        ("", 1, -0.4),
        ("", 4, -1.2),
        (" Thank", 2, -0.1),
        (" Thank you", 3, -0.2),
        (" Thank you.", 9, -0.1),
        (" Sar", 5, -0.1),
        (" Sarah", 6, -0.3),
        (" Sarah speaking", 3, -0.2),
        (" Sarah speaking.", 9, -0.1),
    ]);
    // 2. Score the free text, search the grammar.
    let free = score(&mut lm, &[0], &[1, 2, 3]).unwrap();
    assert_eq!(free.text, " Thank you.");
    let biased = search(&GreetingGrammar::default(), &mut lm, &[0], 10)
        .unwrap()
        .unwrap();
    assert_eq!(biased.text, " Sarah speaking.");
    assert_eq!(biased.tokens, vec![4, 5, 6, 3]);
    // 3. Within a margin of 1 nat per token the greeting wins; with a tight margin it does not.
    assert!(prefer_biased(&free, &biased, 1.0));
    assert!(!prefer_biased(&free, &biased, 0.05));
}

#[test]
fn no_greeting_path_within_the_token_bound_gives_none() {
    // 1. Nothing in the grammar is likely; the only greeting word needs 3 tokens.
    let mut lm = toy(vec![("", 4, -1.0), (" Sar", 5, -1.0), (" Sarah", 6, -1.0)]);
    // 2. A bound of 2 text tokens cannot hold "Sarah speaking".
    let found = search(&GreetingGrammar::default(), &mut lm, &[0], 2).unwrap();
    assert_eq!(found, None);
}

#[test]
fn a_likely_free_text_keeps_its_place() {
    // 1. "Thank you." is far likelier than any greeting ("Hey." at −6 a token).
    let mut lm = toy(vec![
        ("", 1, -0.1),
        (" Thank", 2, -0.1),
        (" Thank you", 3, -0.1),
        (" Thank you.", 9, -0.1),
        ("", 7, -6.0),
        (" Hey", 3, -6.0),
        (" Hey.", 9, -6.0),
    ]);
    let free = score(&mut lm, &[0], &[1, 2, 3]).unwrap();
    let biased = search(&GreetingGrammar::default(), &mut lm, &[0], 10)
        .unwrap()
        .unwrap();
    assert_eq!(biased.text, " Hey.");
    // 2. The margin keeps the free text.
    assert!(!prefer_biased(&free, &biased, 1.0));
}
