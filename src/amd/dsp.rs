//! Per-frame signal analysis: level, the purest tone in the frame (Goertzel bank plus
//! refinement) and the V.21 FSK band shares.
//!
//! All spectral shares are fractions of the frame's energy (Parseval), so they do not depend
//! on the signal level: a pure tone scores ~1.0 at any level, speech and noise much less.

/// Samples per second of the input (G.711 narrowband).
pub const SAMPLE_RATE_HZ: f32 = 8000.0;
/// Samples in one 20 ms frame.
pub const FRAME_SAMPLES: usize = 160;
/// Duration of one frame in milliseconds; the detector's only notion of time.
pub const FRAME_MS: u32 = 20;

/// DFT bin spacing for a 160-sample frame (8000 / 160).
const BIN_HZ: f32 = SAMPLE_RATE_HZ / FRAME_SAMPLES as f32;
/// Lowest and highest coarse bin searched for a tone (300 Hz .. 2250 Hz): covers beeps, SIT,
/// CNG, CED and V.21 with a bin of margin.
const TONE_BIN_LO: usize = 6;
const TONE_BIN_HI: usize = 45;

/// What one frame looks like.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameFeatures {
    /// RMS level in dBFS (full-scale square wave = 0 dBFS); -120 for digital silence.
    pub level_dbfs: f32,
    /// Frequency of the strongest narrow component between 300 and 2250 Hz (refined to ~2 Hz).
    pub peak_hz: f32,
    /// Share of the frame energy at `peak_hz` (1.0 = a pure tone, speech ~0.1..0.5).
    pub purity: f32,
    /// Share of the energy in 1600..1700 Hz (V.21 channel 2 "mark").
    pub fsk_mark: f32,
    /// Share of the energy in 1800..1900 Hz (V.21 channel 2 "space").
    pub fsk_space: f32,
}

/// Energy share of `freq_hz` in `x` given the frame's total energy `energy` (sum of squares).
/// For a sinusoid exactly at `freq_hz` spanning the frame this is 1.0.
pub fn goertzel_share(x: &[f32], freq_hz: f32, energy: f32) -> f32 {
    if energy <= 0.0 || x.is_empty() {
        return 0.0;
    }
    let w = 2.0 * std::f32::consts::PI * freq_hz / SAMPLE_RATE_HZ;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    for &v in x {
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0);
    2.0 * power / (x.len() as f32 * energy)
}

/// Analyses one frame. Frames of any length work; the detector always passes 160 samples.
pub fn analyse(frame: &[i16]) -> FrameFeatures {
    let x: Vec<f32> = frame.iter().map(|&s| f32::from(s)).collect();
    let energy: f32 = x.iter().map(|v| v * v).sum();
    let n = x.len().max(1) as f32;
    let rms = (energy / n).sqrt();
    let level_dbfs = if rms < 0.5 {
        -120.0
    } else {
        20.0 * (rms / 32768.0).log10()
    };
    if energy <= 0.0 {
        return FrameFeatures {
            level_dbfs,
            peak_hz: 0.0,
            purity: 0.0,
            fsk_mark: 0.0,
            fsk_space: 0.0,
        };
    }
    // Coarse bank at the DFT bins (orthogonal for a 160-sample frame, so shares add up).
    let mut bins = [0.0f32; TONE_BIN_HI + 1];
    let mut best_k = TONE_BIN_LO;
    for k in TONE_BIN_LO..=TONE_BIN_HI {
        bins[k] = goertzel_share(&x, k as f32 * BIN_HZ, energy);
        if bins[k] > bins[best_k] {
            best_k = k;
        }
    }
    let fsk_mark = bins[32] + bins[33] + bins[34];
    let fsk_space = bins[36] + bins[37] + bins[38];
    // Refine around the coarse peak in 5 Hz steps, then a parabola through the best three.
    let centre = best_k as f32 * BIN_HZ;
    let mut fine = [0.0f32; 11];
    let mut best_i = 5;
    for i in 0..fine.len() {
        let f = centre + (i as f32 - 5.0) * 5.0;
        fine[i] = goertzel_share(&x, f, energy);
        if fine[i] > fine[best_i] {
            best_i = i;
        }
    }
    let mut peak_hz = centre + (best_i as f32 - 5.0) * 5.0;
    if best_i > 0 && best_i < 10 {
        let (a, b, c) = (fine[best_i - 1], fine[best_i], fine[best_i + 1]);
        let denom = a - 2.0 * b + c;
        if denom.abs() > 1e-9 {
            let delta = (0.5 * (a - c) / denom).clamp(-0.5, 0.5);
            peak_hz += delta * 5.0;
        }
    }
    FrameFeatures {
        level_dbfs,
        peak_hz,
        purity: fine[best_i].min(1.0),
        fsk_mark,
        fsk_space,
    }
}
