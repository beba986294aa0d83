//! Every tunable of the detector, with documented defaults.
//!
//! Times are in milliseconds of audio (the detector counts 20 ms frames; values are rounded
//! up to whole frames). Levels are in dB. The defaults were chosen from the physics of the
//! signals and from Asterisk's `app_amd` baseline, with margins on both sides of the measured
//! dev-corpus distributions (see HANDOFF / README for the rationale of each).

use serde::{Deserialize, Serialize};

/// Parameters of [`crate::amd::Detector`]. `Default` gives the documented defaults; in YAML/JSON
/// every field is optional and unknown fields are rejected.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmdParams {
    // ---- voice activity -------------------------------------------------------------------
    /// Window of the minimum-statistics noise floor. Longer = steadier floor, slower to follow
    /// a rise of the line noise. Default 1500 ms.
    pub noise_window_ms: u32,
    /// A frame is speech when it is this many dB above the noise floor (onset). Default 10 dB.
    pub vad_threshold_db: f32,
    /// Once in speech, the margin drops by this much so fading word ends stay speech. Default 3 dB.
    pub vad_hysteresis_db: f32,
    /// Frames quieter than this are never speech, whatever the floor (digital silence,
    /// comfort noise). Default -60 dBFS.
    pub vad_min_level_dbfs: f32,
    /// Shortest run of speech frames that counts as a word (shorter = click/noise). Default 60 ms.
    pub min_word_ms: u32,
    /// Silence that separates two words. Default 80 ms.
    pub between_words_silence_ms: u32,

    // ---- greeting analysis ----------------------------------------------------------------
    /// Silence after a (short) greeting that decides `human`: a person says "Hello?" and waits.
    /// Must exceed the pauses between sentences of a recorded greeting (dev corpus: <= 0.56 s in
    /// the first 2.5 s, <= 1.0 s later) and stay under the pause before a person's second
    /// "Hello?" (>= 2.1 s). Default 1200 ms.
    pub after_greeting_silence_ms: u32,
    /// A greeting (first speech onset to now, pauses shorter than `after_greeting_silence_ms`
    /// included) this long decides `machine`. People answer in 0.3-2 s; recorded greetings
    /// run 2.6-11 s (most >= 3.5 s; a short one is still caught by its beep). Default 2500 ms.
    pub max_greeting_ms: u32,
    /// Number of words in the greeting that decides `machine`; 0 disables the rule (word counts
    /// from energy alone are noisy, the length rule is more reliable). Default 0.
    pub max_words: u32,
    /// No speech and no tone for this long after answer: `unknown` (dead air is not a person,
    /// nor evidence of a machine). Default 5000 ms.
    pub no_speech_timeout_ms: u32,
    /// Give up with `unknown` if nothing has been decided after this long. Default 8000 ms.
    pub max_analysis_ms: u32,

    // ---- tones ----------------------------------------------------------------------------
    /// Minimum share of a frame's energy at its strongest frequency for the frame to count as
    /// a tone (pure sine = 1.0; speech mostly < 0.5, a few voiced frames up to ~0.9, which
    /// the steadiness tests below then reject). Default 0.7.
    pub tone_purity_min: f32,
    /// A tone frame must be this far above the noise floor. Default 10 dB.
    pub tone_snr_db: f32,
    /// Frame-to-frame frequency drift allowed within one tone. Default 25 Hz.
    pub tone_freq_tolerance_hz: f32,
    /// A tone's per-frame frequency may wander by at most this standard deviation. Generated
    /// and recorded beeps, SIT and fax tones measure <= 0.5 Hz; voiced speech whose harmonic
    /// looks like a tone for 100-250 ms wanders by >= 2.3 Hz. Default 1.5 Hz.
    pub tone_max_freq_std_hz: f32,
    /// Mean purity a beep / SIT / fax tone must reach over its length (pure tones in line noise
    /// measure >= 0.97, speech harmonics <= 0.94). Default 0.85.
    pub tone_mean_purity_min: f32,
    /// Frames inside a tone that may fail the tone test without ending it (phase reversals,
    /// codec glitches). Default 40 ms.
    pub tone_max_dropout_ms: u32,
    /// Shortest steady tone considered at all. Default 100 ms.
    pub min_tone_ms: u32,
    /// Tones that follow each other within this gap form one sequence (SIT, multi-tone
    /// beeps); the sequence is judged when it ends. Default 60 ms.
    pub tone_chain_gap_ms: u32,
    /// Lowest frequency of a voicemail beep. Default 380 Hz.
    pub beep_min_hz: f32,
    /// Highest frequency of a voicemail beep. Default 2050 Hz.
    pub beep_max_hz: f32,
    /// Shortest voicemail beep. Default 150 ms.
    pub beep_min_ms: u32,
    /// Longest voicemail beep (longer steady tones are something else). Default 3000 ms.
    pub beep_max_ms: u32,
    /// After a `machine` decision, keep listening for the beep this long, then stop. Default
    /// 20000 ms.
    pub beep_timeout_ms: u32,
    /// Frequency tolerance for the SIT tones (913.8/985.2, 1370.6/1428.5, 1776.7 Hz), in
    /// percent. Default 2.5 %.
    pub sit_tolerance_pct: f32,
    /// Gap allowed between two SIT segments. Default 400 ms.
    pub sit_max_gap_ms: u32,

    // ---- fax ------------------------------------------------------------------------------
    /// Answer tone (CED / ANS / ANSam) frequency. Default 2100 Hz.
    pub ced_freq_hz: f32,
    /// Tolerance on the CED frequency (ITU: +/-15 Hz, plus estimation error). Default 40 Hz.
    pub ced_tolerance_hz: f32,
    /// CED lasting this long decides `fax` (CED is 2.6-4 s). Default 500 ms.
    pub ced_min_ms: u32,
    /// Calling tone (CNG) frequency. Default 1100 Hz.
    pub cng_freq_hz: f32,
    /// Tolerance on the CNG frequency (ITU: +/-38 Hz). Default 40 Hz.
    pub cng_tolerance_hz: f32,
    /// CNG burst (0.5 s nominal) lasting this long decides `fax`, if no speech came before.
    /// Default 380 ms.
    pub cng_min_ms: u32,
    /// V.21 channel-2 FSK (1650/1850 Hz) lasting this long decides `fax`. Default 300 ms.
    pub v21_min_ms: u32,
    /// Minimum share of the frame energy in the two V.21 bands for an FSK frame (each band
    /// must also hold at least a tenth of it). Default 0.6.
    pub v21_band_share_min: f32,

    // ---- transcript (optional input) ------------------------------------------------------
    /// Phrases (lower case, whole words) that mark a recorded greeting in the transcript.
    pub machine_phrases: Vec<String>,
    /// Phrases that only a live person says when answering. Decide `human` from a transcript.
    pub human_phrases: Vec<String>,
    /// Transcript word count that decides `machine` (people answer in a few words; a business
    /// greeting runs 10-14); 0 disables. Default 15.
    pub transcript_machine_words: u32,
    /// When a recogniser feeds the detector (dialgate runs one for machine detection whenever
    /// the speech model is installed), hold a `machine` decision from the long-greeting rule
    /// this long for a transcript cue (a long business greeting "…how can I help you?" is a
    /// person). A beep, SIT or machine phrase still decides at once; without a cue the hold
    /// ends in `machine`. 0 = never hold. Default 3000 (measured on the dev corpus: 1000 and
    /// 2000 end before the transcript of a 4 s greeting arrives; 4000 lets 3 of 20 beeps pass
    /// before the machine decision).
    pub transcript_hold_ms: u32,
}

impl Default for AmdParams {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
        Self {
            noise_window_ms: 1500,
            vad_threshold_db: 10.0,
            vad_hysteresis_db: 3.0,
            vad_min_level_dbfs: -60.0,
            min_word_ms: 60,
            between_words_silence_ms: 80,
            after_greeting_silence_ms: 1200,
            max_greeting_ms: 2500,
            max_words: 0,
            no_speech_timeout_ms: 5000,
            max_analysis_ms: 8000,
            tone_purity_min: 0.7,
            tone_snr_db: 10.0,
            tone_freq_tolerance_hz: 25.0,
            tone_max_freq_std_hz: 1.5,
            tone_mean_purity_min: 0.85,
            tone_max_dropout_ms: 40,
            min_tone_ms: 100,
            tone_chain_gap_ms: 60,
            beep_min_hz: 380.0,
            beep_max_hz: 2050.0,
            beep_min_ms: 150,
            beep_max_ms: 3000,
            beep_timeout_ms: 20000,
            sit_tolerance_pct: 2.5,
            sit_max_gap_ms: 400,
            ced_freq_hz: 2100.0,
            ced_tolerance_hz: 40.0,
            ced_min_ms: 500,
            cng_freq_hz: 1100.0,
            cng_tolerance_hz: 40.0,
            cng_min_ms: 380,
            v21_min_ms: 300,
            v21_band_share_min: 0.6,
            machine_phrases: s(&[
                "leave a message",
                "leave your message",
                "leave me a message",
                "leave us a message",
                "leave your name",
                "leave a detailed message",
                "record your message",
                "after the tone",
                "after the beep",
                "at the tone",
                "not available",
                "unavailable",
                "can't come to the phone",
                "cannot come to the phone",
                "voicemail",
                "voice mail",
                "voice message",
                "mailbox",
                "you have reached",
                "you've reached",
                "is not answering",
                "cannot be completed",
                "can't be completed",
                "please try again later",
                "try your call again",
                "call you back",
                "get back to you",
                "not in service",
                "no longer in service",
                "has been disconnected",
                "the number you have dialed",
                "press the pound key",
            ]),
            human_phrases: s(&[
                "who's calling",
                "who is calling",
                "who is this",
                "can you hear me",
                "anyone there",
                "anybody there",
                "how can i help",
            ]),
            transcript_machine_words: 15,
            transcript_hold_ms: 3000,
        }
    }
}

/// Milliseconds to whole frames (rounded up, at least 1).
pub(crate) fn frames(ms: u32) -> u64 {
    u64::from(ms.div_ceil(super::dsp::FRAME_MS)).max(1)
}
