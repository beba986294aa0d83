//! Text → phoneme IDs the way Piper's espeak voices were trained:
//! espeak-ng IPA per clause (Debian's `libespeak-ng.so.1`, opened at run time), language-switch
//! flags like `(fr)` removed, the clause's punctuation appended (plus a space after `, ; :`),
//! decomposed into Unicode code points (NFD), each mapped through the voice's `phoneme_id_map`,
//! framed as `^ _ p₁ _ p₂ _ … _ $` (BOS, a pad after every phoneme, EOS).
//!
//! Piper itself uses a patched espeak-ng that reports each clause's punctuation; the stock
//! library drops it, so dialgate cuts the clauses itself ([`split_clauses`]) and appends the
//! mark, which gives the same sequence for ordinary text.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::{Mutex, OnceLock};

use icu_normalizer::DecomposingNormalizerBorrowed;

use super::TtsError;
use super::sentences::split_clauses;

/// Where the stock espeak-ng library is looked for (Debian `libespeak-ng1`).
pub const ESPEAK_LIBRARY: &str = "libespeak-ng.so.1";

const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// espeak must return errors, not exit the process.
const INITIALIZE_DONT_EXIT: c_int = 0x8000;
const CHARS_UTF8: c_int = 1;
const PHONEMES_IPA: c_int = 0x02;

type InitializeFn = unsafe extern "C" fn(c_int, c_int, *const c_char, c_int) -> c_int;
type SetVoiceFn = unsafe extern "C" fn(*const c_char) -> c_int;
type TextToPhonemesFn = unsafe extern "C" fn(*mut *const c_void, c_int, c_int) -> *const c_char;

/// The espeak-ng library: process-global state inside, so one instance behind a mutex.
struct Espeak {
    _lib: libloading::Library,
    set_voice: SetVoiceFn,
    text_to_phonemes: TextToPhonemesFn,
    voice: Option<String>,
}

// SAFETY: espeak's global state is only touched through `ESPEAK`'s mutex.
unsafe impl Send for Espeak {}

static ESPEAK: OnceLock<Result<Mutex<Espeak>, String>> = OnceLock::new();

impl Espeak {
    fn open() -> Result<Espeak, String> {
        let missing = |e: &dyn std::fmt::Display| {
            format!(
                "cannot use {ESPEAK_LIBRARY} ({e}): install Debian's espeak-ng (scripts/setup-model does)"
            )
        };
        // SAFETY: loading a C library; its initialisers are espeak-ng's own.
        let lib = unsafe { libloading::Library::new(ESPEAK_LIBRARY) }.map_err(|e| missing(&e))?;
        // SAFETY: the symbol types are those of espeak-ng's speak_lib.h.
        let (init, set_voice, text_to_phonemes) = unsafe {
            let init: InitializeFn = *lib.get(b"espeak_Initialize").map_err(|e| missing(&e))?;
            let set_voice: SetVoiceFn =
                *lib.get(b"espeak_SetVoiceByName").map_err(|e| missing(&e))?;
            let ttp: TextToPhonemesFn =
                *lib.get(b"espeak_TextToPhonemes").map_err(|e| missing(&e))?;
            (init, set_voice, ttp)
        };
        // SAFETY: a null path selects the installed espeak-ng-data.
        let rate = unsafe {
            init(
                AUDIO_OUTPUT_SYNCHRONOUS,
                0,
                std::ptr::null(),
                INITIALIZE_DONT_EXIT,
            )
        };
        if rate <= 0 {
            return Err(format!(
                "espeak-ng failed to initialise ({rate}): is espeak-ng-data installed?"
            ));
        }
        Ok(Espeak {
            _lib: lib,
            set_voice,
            text_to_phonemes,
            voice: None,
        })
    }

    fn select_voice(&mut self, voice: &str) -> Result<(), TtsError> {
        if self.voice.as_deref() == Some(voice) {
            return Ok(());
        }
        let name = CString::new(voice)
            .map_err(|_| TtsError::BadVoice(format!("espeak voice name {voice:?}")))?;
        // SAFETY: a valid C string; espeak copies what it needs.
        let rc = unsafe { (self.set_voice)(name.as_ptr()) };
        if rc != 0 {
            return Err(TtsError::BadVoice(format!(
                "espeak-ng has no voice {voice:?} (error {rc})"
            )));
        }
        self.voice = Some(voice.to_owned());
        Ok(())
    }

    /// IPA of one clause (espeak may cut it further; its pieces are joined with spaces).
    fn ipa(&mut self, text: &str) -> Result<String, TtsError> {
        let c = CString::new(text.replace('\0', " "))
            .map_err(|_| TtsError::Phonemes("text holds a NUL".into()))?;
        let mut ptr: *const c_void = c.as_ptr().cast();
        let mut out = String::new();
        // espeak advances `ptr` by at least one character per call, or sets it to null.
        for _ in 0..=text.len() {
            if ptr.is_null() {
                break;
            }
            // SAFETY: `ptr` points into `c`, which outlives the loop; the result is a
            // NUL-terminated buffer owned by espeak, copied before the next call.
            let piece = unsafe { (self.text_to_phonemes)(&mut ptr, CHARS_UTF8, PHONEMES_IPA) };
            if piece.is_null() {
                break;
            }
            // SAFETY: see above.
            let piece = unsafe { CStr::from_ptr(piece) }.to_string_lossy();
            let piece = piece.trim();
            if !piece.is_empty() {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(piece);
            }
        }
        Ok(out)
    }
}

fn with_espeak<T>(f: impl FnOnce(&mut Espeak) -> Result<T, TtsError>) -> Result<T, TtsError> {
    let espeak = ESPEAK
        .get_or_init(|| Espeak::open().map(Mutex::new))
        .as_ref()
        .map_err(|e| TtsError::Unavailable(e.clone()))?;
    // A poisoned lock means a panic mid-call; espeak's state is still usable.
    let mut guard = espeak.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard)
}

/// Check that espeak-ng can be opened and knows `voice` (for the engine's status).
pub fn check_espeak(voice: &str) -> Result<(), TtsError> {
    with_espeak(|e| e.select_voice(voice))
}

/// Drop `(xx)` language-switch flags espeak puts around foreign words.
fn strip_language_flags(ipa: &str) -> String {
    let mut out = String::with_capacity(ipa.len());
    let mut depth = 0usize;
    for c in ipa.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// The phonemes of one sentence as Piper strings them: clauses' IPA with their punctuation.
pub fn sentence_phonemes(voice: &str, sentence: &str) -> Result<String, TtsError> {
    let clauses = split_clauses(sentence);
    with_espeak(|e| {
        e.select_voice(voice)?;
        let mut out = String::new();
        for clause in &clauses {
            out.push_str(&strip_language_flags(&e.ipa(&clause.text)?));
            if let Some(mark) = clause.terminator {
                out.push(mark);
                if matches!(mark, ',' | ';' | ':') {
                    out.push(' ');
                }
            }
        }
        Ok(out.trim_end().to_owned())
    })
}

/// The voice's phoneme → ID table and its framing symbols.
#[derive(Debug, Clone)]
pub struct PhonemeMap {
    map: HashMap<char, Vec<i64>>,
    bos: Vec<i64>,
    eos: Vec<i64>,
    pad: Vec<i64>,
}

impl PhonemeMap {
    /// From a voice's `phoneme_id_map` (single code points as keys; longer keys are not used
    /// by espeak voices and are ignored).
    pub fn new(raw: &HashMap<String, Vec<i64>>) -> Result<PhonemeMap, TtsError> {
        let mut map = HashMap::new();
        for (k, v) in raw {
            let mut chars = k.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                map.insert(c, v.clone());
            }
        }
        let get = |c: char| {
            map.get(&c)
                .cloned()
                .ok_or_else(|| TtsError::BadVoice(format!("phoneme_id_map has no {c:?}")))
        };
        Ok(PhonemeMap {
            bos: get('^')?,
            eos: get('$')?,
            pad: get('_')?,
            map,
        })
    }

    /// IDs for a phoneme string: `^ _ p _ p _ … $`. Returns the IDs and how many code points
    /// the voice does not know (skipped, as Piper does).
    pub fn ids(&self, phonemes: &str) -> (Vec<i64>, usize) {
        let decomposed = DecomposingNormalizerBorrowed::new_nfd().normalize(phonemes);
        let mut ids = Vec::with_capacity(2 * decomposed.len() + 3);
        ids.extend(&self.bos);
        ids.extend(&self.pad);
        let mut unknown = 0;
        for c in decomposed.chars() {
            match self.map.get(&c) {
                Some(v) => {
                    ids.extend(v);
                    ids.extend(&self.pad);
                }
                None => unknown += 1,
            }
        }
        ids.extend(&self.eos);
        (ids, unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_map() -> PhonemeMap {
        let raw: HashMap<String, Vec<i64>> = [
            ("_", 0),
            ("^", 1),
            ("$", 2),
            (" ", 3),
            (",", 8),
            ("h", 20),
            ("i", 21),
            ("c", 16),
            ("\u{327}", 140),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), vec![v]))
        .collect();
        PhonemeMap::new(&raw).expect("map")
    }

    #[test]
    fn ids_are_framed_and_padded() {
        let (ids, unknown) = small_map().ids("hi, hi");
        assert_eq!(ids, vec![1, 0, 20, 0, 21, 0, 8, 0, 3, 0, 20, 0, 21, 0, 2]);
        assert_eq!(unknown, 0);
    }

    #[test]
    fn precomposed_characters_are_decomposed_and_unknown_ones_skipped() {
        // ç = c + combining cedilla (both in the map); ʒ is not in this map.
        let (ids, unknown) = small_map().ids("çʒ");
        assert_eq!(ids, vec![1, 0, 16, 0, 140, 0, 2]);
        assert_eq!(unknown, 1);
    }

    #[test]
    fn language_flags_are_removed() {
        assert_eq!(strip_language_flags("(fr)bõʒuʁ(en) hi"), "bõʒuʁ hi");
    }

    #[test]
    fn espeak_phonemes_keep_punctuation() {
        // Debian's espeak-ng is part of the synthesis engine's installation.
        match sentence_phonemes("en-us", "Hello, world. Bye") {
            Ok(p) => {
                assert!(p.contains(", "), "{p}");
                assert!(p.contains('.'), "{p}");
                assert!(p.contains('w'), "{p}");
            }
            Err(TtsError::Unavailable(reason)) => {
                eprintln!("SKIPPED: espeak-ng not installed: {reason}")
            }
            Err(e) => panic!("{e}"),
        }
    }
}
