//! The pre-answer detector: early media (a 183/180 with SDP) is listened to before anybody
//! answers, for the carrier telling us the call cannot be completed — Special Information Tones
//! (the same SIT sequence detection as machine detection, `tones.rs`) or an intercept
//! announcement's words. Plain ringback (dual 440+480 Hz, or a single 425 Hz cadence) is not a
//! SIT sequence and is ignored. Sans-IO and deterministic: 20 ms frames in, a verdict out.

use super::dsp::analyse;
use super::params::AmdParams;
use super::tones::{ToneTracker, ToneVerdict};

/// Phrases of carrier intercept announcements (lower case). "The number you have dialed is not
/// in service", "… has been disconnected", "… cannot be completed as dialed", …
const INTERCEPT_PHRASES: [&str; 8] = [
    "not in service",
    "no longer in service",
    "has been disconnected",
    "cannot be completed as dialed",
    "is not a working number",
    "check the number and dial again",
    "number you have dialed is not",
    "is not available",
];

/// Why the attempt should end: what was heard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EarlyVerdict {
    /// SIT tones (their frequencies, e.g. "SIT tones 914/1371/1777 Hz").
    Sit(String),
    /// An intercept announcement: the recognised text.
    Intercept(String),
}

/// Listens to early media. Feed frames with [`EarlyDetector::push_frame`] and recognised text
/// with [`EarlyDetector::push_transcript`]; the first verdict is final.
#[derive(Debug)]
pub struct EarlyDetector {
    tones: ToneTracker,
    p: AmdParams,
    frame: u64,
    done: bool,
}

impl EarlyDetector {
    /// A detector with the machine-detection tone parameters.
    pub fn new(p: AmdParams) -> Self {
        EarlyDetector {
            tones: ToneTracker::new(&p),
            p,
            frame: 0,
            done: false,
        }
    }

    /// One 20 ms frame of early media (8 kHz PCM).
    pub fn push_frame(&mut self, samples: &[i16]) -> Option<EarlyVerdict> {
        if self.done {
            return None;
        }
        let idx = self.frame;
        self.frame += 1;
        let f = analyse(samples);
        // No noise floor is learnt before answer (early media may start with the tone), so a
        // tone only needs to be loud enough in absolute terms and pure.
        let tonal = f.level_dbfs >= self.p.vad_min_level_dbfs + self.p.tone_snr_db
            && f.purity >= self.p.tone_purity_min;
        match self
            .tones
            .push(idx, tonal.then_some((f.peak_hz, f.purity)))?
        {
            ToneVerdict::Sit(segs) => {
                let list: Vec<String> = segs.iter().map(|s| format!("{:.0}", s.freq_hz)).collect();
                self.done = true;
                Some(EarlyVerdict::Sit(format!(
                    "SIT tones {} Hz",
                    list.join("/")
                )))
            }
            ToneVerdict::Beep(_) | ToneVerdict::Other(_) => None,
        }
    }

    /// Recognised text of the early media.
    pub fn push_transcript(&mut self, text: &str) -> Option<EarlyVerdict> {
        if self.done {
            return None;
        }
        let t = text.to_lowercase();
        INTERCEPT_PHRASES.iter().any(|p| t.contains(p)).then(|| {
            self.done = true;
            EarlyVerdict::Intercept(text.trim().to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freqs: &[f32], ms: u32, amp: f32) -> Vec<i16> {
        let n = (ms * 8) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let v: f32 = freqs
                    .iter()
                    .map(|f| (2.0 * std::f32::consts::PI * f * t).sin())
                    .sum();
                (v * amp / freqs.len() as f32) as i16
            })
            .collect()
    }

    fn feed(d: &mut EarlyDetector, pcm: &[i16]) -> Option<EarlyVerdict> {
        pcm.chunks(160).find_map(|c| d.push_frame(c))
    }

    /// SIT: 913.8, 1370.6, 1776.7 Hz, 330 ms each, then silence.
    pub(crate) fn sit() -> Vec<i16> {
        let mut v = tone(&[913.8], 330, 8000.0);
        v.extend(tone(&[1370.6], 330, 8000.0));
        v.extend(tone(&[1776.7], 330, 8000.0));
        v.extend(vec![0i16; 8000]);
        v
    }

    #[test]
    fn sit_tones_are_an_intercept() {
        let mut d = EarlyDetector::new(AmdParams::default());
        // A second of ringback first, then the SIT.
        let mut pcm = tone(&[440.0, 480.0], 1000, 6000.0);
        pcm.extend(vec![0i16; 4000]);
        pcm.extend(sit());
        match feed(&mut d, &pcm) {
            Some(EarlyVerdict::Sit(c)) => assert!(c.starts_with("SIT tones 914/1371/17"), "{c}"),
            other => panic!("{other:?}"),
        }
        // Final: nothing more.
        assert_eq!(feed(&mut d, &sit()), None);
    }

    #[test]
    fn ringback_is_ignored() {
        for freqs in [&[440.0, 480.0][..], &[425.0][..], &[400.0, 450.0][..]] {
            let mut d = EarlyDetector::new(AmdParams::default());
            let mut pcm = Vec::new();
            for _ in 0..4 {
                pcm.extend(tone(freqs, 2000, 6000.0));
                pcm.extend(vec![0i16; 32000]);
            }
            assert_eq!(feed(&mut d, &pcm), None, "{freqs:?}");
        }
    }

    #[test]
    fn intercept_words_are_an_intercept() {
        let mut d = EarlyDetector::new(AmdParams::default());
        assert_eq!(d.push_transcript("Please hold while we connect you"), None);
        assert_eq!(
            d.push_transcript(" The number you have dialed is not in service. "),
            Some(EarlyVerdict::Intercept(
                "The number you have dialed is not in service.".into()
            ))
        );
    }
}
