//! The detector: a sans-IO state machine fed 20 ms frames from the moment of answer.
//!
//! Order of evidence per frame: fax tones (CED, CNG, V.21) first, because they are
//! unambiguous; then finished tone sequences (SIT = carrier intercept = machine, beep =
//! machine); then the greeting rules (long continuous greeting = machine; short greeting
//! followed by silence = human); then the time-outs (no speech = unknown). A transcript, when
//! recognition runs, can decide earlier.

use serde::{Deserialize, Serialize};

use super::dsp::{FRAME_MS, analyse};
use super::params::{AmdParams, frames};
use super::tones::{ToneTracker, ToneVerdict};
use super::transcript::{self, TranscriptCue};
use super::vad::Vad;

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmdResult {
    /// A person.
    Human,
    /// An answering machine, voicemail or carrier announcement / intercept.
    Machine,
    /// A fax machine.
    Fax,
    /// Nothing to go on (silence) or no decision in time.
    Unknown,
}

impl AmdResult {
    /// The wire value: `human`, `machine`, `fax` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            AmdResult::Human => "human",
            AmdResult::Machine => "machine",
            AmdResult::Fax => "fax",
            AmdResult::Unknown => "unknown",
        }
    }

    /// All results, in report order.
    pub const ALL: [AmdResult; 4] = [
        AmdResult::Human,
        AmdResult::Machine,
        AmdResult::Fax,
        AmdResult::Unknown,
    ];
}

impl std::fmt::Display for AmdResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The (single, final) decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// What answered.
    pub result: AmdResult,
    /// Milliseconds of audio since answer when decided (end of the deciding frame).
    pub at_ms: u64,
    /// Why, in a few words (e.g. "long greeting 2.3 s", "CED 2100 Hz").
    pub cause: String,
}

/// Something the detector reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AmdEvent {
    /// The decision; emitted exactly once.
    Decision(Decision),
    /// After a `machine` decision: the voicemail beep ended at `at_ms`, the bot may speak.
    /// Emitted at most once, a few frames after the beep ends.
    Beep {
        /// End of the beep tone, ms since answer.
        at_ms: u64,
        /// Measured beep frequency.
        freq_hz: f32,
    },
}

/// Answering-machine detector for one call. Deterministic: the same frames give the same
/// events; time is the number of frames pushed.
#[derive(Debug, Clone)]
pub struct Detector {
    p: AmdParams,
    frame: u64,
    vad: Vad,
    tones: ToneTracker,
    // greeting state
    speech_run: u64,
    silence_run: u64,
    in_word: bool,
    words: u32,
    greeting_start: Option<u64>,
    last_speech: Option<u64>,
    quiet: u64,
    // V.21 state
    fsk_len: u64,
    fsk_misses: u64,
    // outcome
    decision: Option<Decision>,
    decided_frame: u64,
    beep_done: bool,
    transcript: String,
    /// Long-greeting machine decision waiting for a transcript cue: (deadline frame, cause).
    held: Option<(u64, String)>,
    /// A recogniser feeds this detector (see [`Detector::expect_transcripts`]).
    transcripts_expected: bool,
    // frame counts derived from params
    f_min_word: u64,
    f_between_words: u64,
    f_after_greeting: u64,
    f_max_greeting: u64,
    f_no_speech: u64,
    f_max_analysis: u64,
    f_ced: u64,
    f_cng: u64,
    f_v21: u64,
    f_beep_timeout: u64,
}

fn ms(frames: u64) -> u64 {
    frames * u64::from(FRAME_MS)
}

fn secs(frames: u64) -> f64 {
    ms(frames) as f64 / 1000.0
}

impl Detector {
    /// A detector for a call answered at frame 0.
    pub fn new(params: AmdParams) -> Self {
        let p = params;
        Self {
            vad: Vad::new(
                frames(p.noise_window_ms) as usize,
                p.vad_threshold_db,
                p.vad_hysteresis_db,
                p.vad_min_level_dbfs,
            ),
            tones: ToneTracker::new(&p),
            frame: 0,
            speech_run: 0,
            silence_run: 0,
            in_word: false,
            words: 0,
            greeting_start: None,
            last_speech: None,
            quiet: 0,
            fsk_len: 0,
            fsk_misses: 0,
            decision: None,
            decided_frame: 0,
            beep_done: false,
            transcript: String::new(),
            held: None,
            transcripts_expected: false,
            f_min_word: frames(p.min_word_ms),
            f_between_words: frames(p.between_words_silence_ms),
            f_after_greeting: frames(p.after_greeting_silence_ms),
            f_max_greeting: frames(p.max_greeting_ms),
            f_no_speech: frames(p.no_speech_timeout_ms),
            f_max_analysis: frames(p.max_analysis_ms),
            f_ced: frames(p.ced_min_ms),
            f_cng: frames(p.cng_min_ms),
            f_v21: frames(p.v21_min_ms),
            f_beep_timeout: frames(p.beep_timeout_ms),
            p,
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &AmdParams {
        &self.p
    }

    /// The decision, once made.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// Milliseconds of audio processed so far.
    pub fn elapsed_ms(&self) -> u64 {
        ms(self.frame)
    }

    /// True when nothing more will be reported: decided, and (after `machine`) the beep was
    /// found or the beep wait ran out. Further frames are then ignored cheaply.
    pub fn is_done(&self) -> bool {
        match &self.decision {
            None => false,
            Some(d) if d.result == AmdResult::Machine => {
                self.beep_done || self.frame >= self.decided_frame + self.f_beep_timeout
            }
            Some(_) => true,
        }
    }

    /// Feeds recognised text (partial or final; it accumulates). May decide at the current
    /// time. Optional: the detector works without it.
    /// Says that a recogniser will feed [`push_transcript`](Self::push_transcript): only then
    /// does a long-greeting `machine` decision wait `transcript_hold_ms` for a cue (without a
    /// recogniser, waiting would only delay the decision).
    pub fn expect_transcripts(&mut self) {
        self.transcripts_expected = true;
    }

    pub fn push_transcript(&mut self, text: &str) -> Vec<AmdEvent> {
        let mut out = Vec::new();
        if self.decision.is_some() {
            return out;
        }
        self.transcript.push_str(&transcript::normalise(text));
        let norm = transcript::normalise(&self.transcript);
        match transcript::judge(&norm, &self.p) {
            Some(TranscriptCue::MachinePhrase(ph)) => {
                self.decide(&mut out, AmdResult::Machine, format!("transcript \"{ph}\""))
            }
            Some(TranscriptCue::ManyWords(n)) => self.decide(
                &mut out,
                AmdResult::Machine,
                format!("transcript {n} words"),
            ),
            Some(TranscriptCue::HumanPhrase(ph)) => {
                self.decide(&mut out, AmdResult::Human, format!("transcript \"{ph}\""))
            }
            None => {}
        }
        out
    }

    /// Feeds the next 20 ms frame (160 samples at 8 kHz; other lengths are analysed as they
    /// come but still count as one frame). Returns what was decided or found at this frame.
    ///
    /// The rules run in order of precedence; the first that decides ends the frame: after a
    /// machine decision only the beep matters, then fax tones, finished tone sequences (SIT,
    /// beep), the greeting's shape, and the overall time limit.
    pub fn push_frame(&mut self, samples: &[i16]) -> Vec<AmdEvent> {
        let mut out = Vec::new();
        if self.is_done() {
            self.frame += 1;
            return out;
        }
        let idx = self.frame;
        self.frame += 1;
        let verdict = self.classify(idx, samples);
        if self.decision.is_some() {
            self.beep_after_machine(verdict, &mut out);
            return out;
        }
        if let Some(cause) = self.fax_rule() {
            self.decide(&mut out, AmdResult::Fax, cause);
        } else if let Some((cause, beep)) = self.tone_rule(verdict) {
            self.decide(&mut out, AmdResult::Machine, cause);
            if let Some(beep) = beep {
                self.beep_done = true;
                out.push(beep);
            }
        } else if self.held.is_some() {
            self.held_rule(idx, &mut out);
        } else if let Some((result, cause)) = self.greeting_rule(idx) {
            self.decide(&mut out, result, cause);
        } else if self.held.is_none() && idx + 1 >= self.f_max_analysis {
            // (A decision held by the greeting rule at this frame waits for its deadline.)
            let cause = format!("no decision in {:.1} s", secs(idx + 1));
            self.decide(&mut out, AmdResult::Unknown, cause);
        }
        out
    }

    /// Frame features: classifies the frame as tone, FSK or speech and updates the tone,
    /// FSK and greeting trackers. Returns a tone sequence that ended at this frame.
    fn classify(&mut self, idx: u64, samples: &[i16]) -> Option<ToneVerdict> {
        let f = analyse(samples);
        // Before any non-tone frame has set a noise floor (a tone right from the answer), a
        // tone only needs to be above the absolute minimum level; otherwise the tone itself
        // would become the floor and hide itself.
        let loud_tone = match self.vad.floor_dbfs() {
            Some(_) => self.vad.is_above_floor(f.level_dbfs, self.p.tone_snr_db),
            None => f.level_dbfs >= self.p.vad_min_level_dbfs + self.p.tone_snr_db,
        };
        let fsk_share = f.fsk_mark + f.fsk_space;
        let fsk = loud_tone
            && fsk_share >= self.p.v21_band_share_min
            && f.fsk_mark.min(f.fsk_space) >= 0.1 * fsk_share;
        let tonal = loud_tone && !fsk && f.purity >= self.p.tone_purity_min;
        let speech = self.vad.push(f.level_dbfs, tonal || fsk);
        let verdict = self.tones.push(idx, tonal.then_some((f.peak_hz, f.purity)));
        self.track_fsk(fsk);
        self.track_greeting(idx, speech, tonal || fsk);
        verdict
    }

    /// After a `machine` decision: the voicemail's beep, once.
    fn beep_after_machine(&mut self, verdict: Option<ToneVerdict>, out: &mut Vec<AmdEvent>) {
        if let Some(d) = &self.decision
            && d.result == AmdResult::Machine
            && let Some(ToneVerdict::Beep(b)) = verdict
        {
            self.beep_done = true;
            out.push(AmdEvent::Beep {
                at_ms: ms(b.end_frame),
                freq_hz: b.freq_hz,
            });
        }
    }

    /// Fax: a CED answer tone, a CNG calling tone before any greeting, or V.21 FSK.
    fn fax_rule(&self) -> Option<String> {
        if let Some((hz, len, _)) = self.tones.current() {
            if (hz - self.p.ced_freq_hz).abs() <= self.p.ced_tolerance_hz && len >= self.f_ced {
                return Some(format!("CED {hz:.0} Hz tone"));
            }
            if (hz - self.p.cng_freq_hz).abs() <= self.p.cng_tolerance_hz
                && len >= self.f_cng
                && self.greeting_start.is_none()
            {
                return Some(format!("CNG {hz:.0} Hz tone"));
            }
        }
        (self.fsk_len >= self.f_v21).then(|| "V.21 FSK 1650/1850 Hz".to_owned())
    }

    /// A finished tone sequence that means a machine: SIT tones, or a beep (with its event,
    /// reported after the decision).
    fn tone_rule(&self, verdict: Option<ToneVerdict>) -> Option<(String, Option<AmdEvent>)> {
        match verdict? {
            ToneVerdict::Sit(segs) => {
                let list: Vec<String> = segs.iter().map(|s| format!("{:.0}", s.freq_hz)).collect();
                Some((format!("SIT tones {} Hz", list.join("/")), None))
            }
            ToneVerdict::Beep(b) => {
                let beep = AmdEvent::Beep {
                    at_ms: ms(b.end_frame),
                    freq_hz: b.freq_hz,
                };
                let cause = match self.greeting_start {
                    Some(g) => format!(
                        "beep {:.0} Hz after {:.1} s greeting",
                        b.freq_hz,
                        secs(self.last_speech.unwrap_or(g).saturating_sub(g) + 1)
                    ),
                    None => format!("beep {:.0} Hz without greeting", b.freq_hz),
                };
                Some((cause, Some(beep)))
            }
            ToneVerdict::Other(_) => None,
        }
    }

    /// A held long-greeting decision only waits for its deadline (or a transcript cue).
    fn held_rule(&mut self, idx: u64, out: &mut Vec<AmdEvent>) {
        if let Some((deadline, cause)) = &self.held
            && idx + 1 >= *deadline
        {
            let cause = format!("{cause}, no transcript cue");
            self.decide(out, AmdResult::Machine, cause);
        }
    }

    /// The greeting's shape: too long or too many words → machine (or held for a transcript
    /// cue), short then quiet → human, no speech at all → unknown.
    fn greeting_rule(&mut self, idx: u64) -> Option<(AmdResult, String)> {
        let Some(g) = self.greeting_start else {
            return (idx + 1 >= self.f_no_speech && !self.tones.busy()).then(|| {
                let cause = format!("no speech in {:.1} s", secs(idx + 1));
                (AmdResult::Unknown, cause)
            });
        };
        let span = idx + 1 - g;
        if self.in_word && span >= self.f_max_greeting {
            let cause = format!("long greeting {:.1} s", secs(span));
            if self.transcripts_expected && self.p.transcript_hold_ms > 0 {
                self.held = Some((idx + 1 + frames(self.p.transcript_hold_ms), cause));
                return None;
            }
            return Some((AmdResult::Machine, cause));
        }
        let words = self.words + u32::from(self.in_word);
        if self.p.max_words > 0 && words >= self.p.max_words {
            return Some((AmdResult::Machine, format!("{words} words in greeting")));
        }
        if self.quiet >= self.f_after_greeting && !self.tones.busy() {
            let len = self.last_speech.unwrap_or(g) + 1 - g;
            let cause = format!(
                "short greeting {:.1} s, then {:.1} s silence",
                secs(len),
                secs(self.quiet)
            );
            return Some((AmdResult::Human, cause));
        }
        None
    }

    fn decide(&mut self, out: &mut Vec<AmdEvent>, result: AmdResult, cause: String) {
        if self.decision.is_some() {
            return;
        }
        let d = Decision {
            result,
            at_ms: ms(self.frame),
            cause,
        };
        self.decided_frame = self.frame;
        self.decision = Some(d.clone());
        out.push(AmdEvent::Decision(d));
    }

    fn track_fsk(&mut self, fsk: bool) {
        let max_miss = u64::from(self.p.tone_max_dropout_ms / FRAME_MS);
        if fsk {
            self.fsk_len += 1 + self.fsk_misses;
            self.fsk_misses = 0;
        } else if self.fsk_len > 0 {
            self.fsk_misses += 1;
            if self.fsk_misses > max_miss {
                self.fsk_len = 0;
                self.fsk_misses = 0;
            }
        }
    }

    /// Words and greeting span from frame-level speech flags. `tone` frames (tones, FSK) are
    /// neither speech nor silence: they reset the silence count, because a person waiting for an
    /// answer is silent, not beeping.
    fn track_greeting(&mut self, idx: u64, speech: bool, tone: bool) {
        if speech {
            self.speech_run += 1;
            self.silence_run = 0;
            if !self.in_word && self.speech_run >= self.f_min_word {
                self.in_word = true;
                if self.greeting_start.is_none() {
                    self.greeting_start = Some(idx + 1 - self.speech_run);
                }
            }
        } else {
            self.speech_run = 0;
            self.silence_run += 1;
            if self.in_word && self.silence_run >= self.f_between_words {
                self.in_word = false;
                self.words += 1;
            }
        }
        if speech && self.in_word {
            self.last_speech = Some(idx);
            self.quiet = 0;
        } else if tone {
            self.quiet = 0;
        } else if self.greeting_start.is_some() {
            self.quiet += 1;
        }
    }
}
