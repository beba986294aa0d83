//! Unit tests of each stage on generated signals. Time is simulated (frame counts).
//! This file holds the signal generators; `stages` tests DSP, VAD, tones and labels,
//! `detector` tests whole calls, transcripts and parameters.

mod detector;
mod stages;

use super::dsp::FRAME_SAMPLES;
use super::*;

pub(super) const FS: f32 = 8000.0;

/// Deterministic noise source (LCG + sum of uniforms ~ Gaussian).
pub(super) struct Rng(pub(super) u64);
impl Rng {
    pub(super) fn uniform(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
    pub(super) fn gauss(&mut self) -> f32 {
        (0..12).map(|_| self.uniform()).sum::<f32>() - 6.0
    }
}

/// Linear amplitude for an RMS level in dBFS (our dBFS reference: full-scale square wave).
pub(super) fn amp(dbfs: f32) -> f32 {
    32768.0 * 10f32.powf(dbfs / 20.0)
}

/// A signal under construction, as f32 samples.
#[derive(Default)]
pub(super) struct Sig(pub(super) Vec<f32>);
impl Sig {
    pub(super) fn noise(mut self, secs: f32, dbfs: f32, rng: &mut Rng) -> Self {
        let a = amp(dbfs);
        self.0
            .extend((0..(secs * FS) as usize).map(|_| a * rng.gauss()));
        self
    }
    /// A pure tone of `secs`, RMS `dbfs`.
    pub(super) fn tone(mut self, hz: f32, secs: f32, dbfs: f32) -> Self {
        let a = amp(dbfs) * std::f32::consts::SQRT_2;
        let n0 = self.0.len();
        self.0.extend(
            (0..(secs * FS) as usize)
                .map(|i| a * (2.0 * std::f32::consts::PI * hz * (n0 + i) as f32 / FS).sin()),
        );
        self
    }
    /// Speech-like sound: a harmonic complex (gliding pitch, two formant-like humps),
    /// amplitude-modulated by 4-5 Hz syllables, `words` words separated by 120 ms gaps.
    pub(super) fn speech(mut self, secs: f32, dbfs: f32, rng: &mut Rng) -> Self {
        let n = (secs * FS) as usize;
        let a = amp(dbfs) * 0.6;
        let mut phase = [0f32; 30];
        for i in 0..n {
            let t = i as f32 / FS;
            // pitch glides between 105 and 160 Hz with a little jitter
            let f0 =
                130.0 + 25.0 * (2.0 * std::f32::consts::PI * 0.7 * t).sin() + 2.0 * rng.gauss();
            let syll = (std::f32::consts::PI * 4.5 * t).sin().powi(2);
            // a 120 ms pause every 0.8 s (word boundary)
            let pause = if t % 0.8 > 0.68 { 0.0 } else { 1.0 };
            let mut v = 0.0;
            for (h, ph) in phase.iter_mut().enumerate().skip(2) {
                let fh = f0 * h as f32;
                if fh > 3400.0 {
                    break;
                }
                *ph += 2.0 * std::f32::consts::PI * fh / FS;
                let formant = (-((fh - 600.0) / 300.0).powi(2)).exp()
                    + 0.6 * (-((fh - 1700.0) / 400.0).powi(2)).exp()
                    + 0.1;
                v += formant * ph.sin();
            }
            self.0.push(a * syll * pause * v);
        }
        self
    }
    /// Adds noise on top of what is there.
    pub(super) fn plus_noise(mut self, dbfs: f32, rng: &mut Rng) -> Self {
        let a = amp(dbfs);
        for v in &mut self.0 {
            *v += a * rng.gauss();
        }
        self
    }
    pub(super) fn extend(mut self, other: Vec<f32>) -> Self {
        self.0.extend(other);
        self
    }
    pub(super) fn pcm(&self) -> Vec<i16> {
        self.0
            .iter()
            .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
            .collect()
    }
}

/// Runs a detector over `pcm`, returning all events with the frame count at which each came.
pub(super) fn run(pcm: &[i16], p: AmdParams) -> (Vec<AmdEvent>, Detector) {
    let mut d = Detector::new(p);
    let mut evs = Vec::new();
    for f in pcm.chunks_exact(FRAME_SAMPLES) {
        evs.extend(d.push_frame(f));
    }
    (evs, d)
}

pub(super) fn decision(evs: &[AmdEvent]) -> Decision {
    let ds: Vec<&Decision> = evs
        .iter()
        .filter_map(|e| match e {
            AmdEvent::Decision(d) => Some(d),
            AmdEvent::Beep { .. } => None,
        })
        .collect();
    assert_eq!(ds.len(), 1, "exactly one decision expected, got {evs:?}");
    ds[0].clone()
}

pub(super) fn beeps(evs: &[AmdEvent]) -> Vec<(u64, f32)> {
    evs.iter()
        .filter_map(|e| match e {
            AmdEvent::Beep { at_ms, freq_hz } => Some((*at_ms, *freq_hz)),
            AmdEvent::Decision(_) => None,
        })
        .collect()
}
