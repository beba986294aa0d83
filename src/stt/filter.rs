//! Drops what Whisper invents from silence or noise: bracketed tags (`[BLANK_AUDIO]`, `(music)`),
//! known silence hallucinations ("Thank you.") when not confidently heard and the audio has no
//! voiced sound, low confidence, and high no-speech probability. Collapses decoding loops while
//! keeping a phrase a person really said twice ("Hello, hello?").

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

/// Silence phrases that are also plausible things to say on the phone: kept when the audio had
/// voiced sound (a lone "Hi." misheard as "Bye." must still reach the bot as something said).
const PLAUSIBLE_PHRASES: &[&str] = &["bye", "thank you"];

/// Voiced time (ms) from which the audio counts as having a voice in it (a short "Hi" has
/// 100–200 ms of voiced frames, 100 ms under line noise; line noise and clicks have none).
pub const VOICE_MS: u32 = 80;

/// Less voiced time than this (ms) and nothing was said: the segmenter let a noise burst
/// through, and any text is invented (tiny.en made "Yeah." of the line noise after a greeting).
pub const MIN_VOICED_MS: u32 = 40;

/// Words per second of audio above which several copies of one phrase cannot have been said:
/// they are a decoding loop (fast speech is ~4 words/s).
const MAX_WORDS_PER_SEC: f32 = 4.5;

/// What the recogniser and the audio say about one utterance, for [`judge`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Mean probability of the text tokens.
    pub confidence: f32,
    /// Whisper's no-speech probability.
    pub no_speech: f32,
    /// Voiced (periodic, loud enough) time in the utterance, ms ([`voiced_ms`]).
    pub voiced_ms: u32,
    /// Length of the utterance's audio, seconds.
    pub audio_secs: f32,
}

/// The limits [`judge`] applies (from the engine configuration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Results with a lower mean token probability are dropped.
    pub min_confidence: f32,
    /// Results with a higher no-speech probability are dropped.
    pub max_no_speech: f32,
}

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

/// How `norm` (normalised words) repeats with `period`: `Some((whole copies, cut-off tail
/// words))` when every word after the first copy repeats it (the last may be cut inside a word).
fn repetition(norm: &[String], period: usize) -> Option<(usize, usize)> {
    let last = norm.len() - 1;
    let repeats = norm.iter().enumerate().skip(period).all(|(i, w)| {
        *w == norm[i % period] || (i == last && norm[i % period].starts_with(w.as_str()))
    });
    let cut_word = norm[last] != norm[last % period];
    let whole = norm.len() / period - usize::from(cut_word && norm.len().is_multiple_of(period));
    repeats.then_some((whole, norm.len() - whole * period))
}

/// Keeps one copy of a phrase Whisper looped on ("Hello? Hello? Hello? Hel"), but not of a
/// phrase a person said twice ("Hello, hello?", "Yes, yes."). A loop shows itself by:
/// - a cut-off copy at the end: the token limit stopped the loop ("Yes, speaking. Yes,
///   speaking. Yes"; "Nobody is available … at the moment. Nobody is available … at the" — a
///   partial copy counts when it is at least three words or ends inside a word);
/// - whole copies of a phrase of two or more words;
/// - whole copies of one word packed faster than anyone speaks (`audio_secs`, when known;
///   without it three copies are taken as a loop).
///
/// One word said twice (or three times, at a speaking pace) is kept: that is "hello, hello".
pub fn collapse_repeats(text: &str, audio_secs: Option<f32>) -> String {
    let all: Vec<&str> = text.split_whitespace().collect();
    // Punctuation standing alone ("Hello -") is no word of a copy.
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| !simple_norm(w).is_empty())
        .collect();
    let norm: Vec<String> = words.iter().map(|w| simple_norm(w)).collect();
    for period in 1..words.len() {
        let Some((whole, tail)) = repetition(&norm, period) else {
            continue;
        };
        let cut_inside_word = tail > 0 && norm[norm.len() - 1] != norm[(norm.len() - 1) % period];
        let partial_loop = tail > 0 && (tail >= 3 || cut_inside_word || whole >= 2);
        let too_fast = match audio_secs {
            Some(s) => words.len() as f32 > s * MAX_WORDS_PER_SEC,
            None => whole >= 3,
        };
        // Whole copies: a word said twice is "hello, hello"; a sentence said twice over in one
        // breath is what tiny.en does to a short greeting ("Hello? Who was this? Hello? Who was
        // this?"), and collapsing a real one loses no meaning.
        let many_loop = tail == 0 && whole >= 2 && (period >= 2 || too_fast);
        if partial_loop || many_loop {
            return words[..period].join(" ");
        }
    }
    // A loop after a first phrase ("Hello, good evening. Good evening. Good evening. Good
    // evening", tiny.en on a noisy greeting): a phrase of two or more words copied three times
    // or more (or twice and cut off) is a loop wherever it starts; nobody says that.
    for start in 1..norm.len() {
        for period in 2..(norm.len() - start) {
            if let Some((whole, tail)) = repetition(&norm[start..], period)
                && (whole >= 3 || (whole >= 2 && tail > 0))
            {
                return words[..start + period].join(" ");
            }
        }
    }
    all.join(" ")
}

/// Voiced time in 8 kHz audio, ms: 20 ms frames that, after pre-emphasis, are louder than
/// -45 dBFS and whose normalised autocorrelation peaks above 0.5 at a pitch lag (2.5–12.5 ms,
/// 80–400 Hz). Vowels are periodic; hiss, line noise and clicks are not. Pre-emphasis
/// (x[n] − 0.95·x[n−1]) whitens pink and brown noise, whose low-frequency energy otherwise
/// correlates at pitch lags (measured on the greeting set: 700 ms of 700 ms of noise counted as
/// voiced without it, 0 with it; the spoken words keep 100–700 ms).
pub fn voiced_ms(samples: &[i16]) -> u32 {
    voiced_frames(samples).iter().filter(|v| **v).count() as u32 * 20
}

/// Which 20 ms frames of 8 kHz audio are voiced (see [`voiced_ms`] for the test).
pub fn voiced_frames(samples: &[i16]) -> Vec<bool> {
    const N: usize = 160;
    const MIN_ENERGY: f64 = 160.0 * 183.0 * 183.0; // -45 dBFS mean square over a frame
    let mut prev = 0.0;
    let emphasised: Vec<f64> = samples
        .iter()
        .map(|&s| {
            let v = f64::from(s);
            let out = v - 0.95 * prev;
            prev = v;
            out
        })
        .collect();
    let mut voiced = Vec::with_capacity(emphasised.len() / N);
    for x in emphasised.chunks_exact(N) {
        let e0: f64 = x.iter().map(|v| v * v).sum();
        if e0 < MIN_ENERGY {
            voiced.push(false);
            continue;
        }
        let best = (20..=100)
            .map(|lag| {
                let (a, b) = (&x[..N - lag], &x[lag..]);
                let num: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
                let ea: f64 = a.iter().map(|v| v * v).sum();
                let eb: f64 = b.iter().map(|v| v * v).sum();
                num / (ea * eb).sqrt().max(1.0)
            })
            .fold(f64::MIN, f64::max);
        voiced.push(best > 0.5);
    }
    voiced
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
    /// The audio had (almost) no voiced sound: noise, whatever the text.
    Unvoiced,
}

/// Keep (Ok(cleaned text)) or drop a recognition.
pub fn judge(text: &str, ev: Evidence, limits: Limits) -> Result<String, DropReason> {
    let cleaned = collapse_repeats(&strip_tags(text), Some(ev.audio_secs));
    let norm = simple_norm(&cleaned);
    if norm.is_empty() {
        return Err(DropReason::Empty);
    }
    if ev.no_speech > limits.max_no_speech {
        return Err(DropReason::NoSpeech);
    }
    if ev.voiced_ms < MIN_VOICED_MS {
        return Err(DropReason::Unvoiced);
    }
    if ev.confidence < limits.min_confidence {
        return Err(DropReason::LowConfidence);
    }
    let doubtful = ev.confidence < 0.75 || ev.no_speech > 0.2;
    let voiced = ev.voiced_ms >= VOICE_MS && PLAUSIBLE_PHRASES.contains(&norm.as_str());
    if SILENCE_PHRASES.contains(&norm.as_str()) && doubtful && !voiced {
        return Err(DropReason::Hallucination);
    }
    Ok(cleaned)
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
