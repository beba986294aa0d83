//! 8 kHz → 16 kHz upsampling for Whisper (which expects 16 kHz f32 in [-1, 1]).

use serde::Deserialize;

/// Upsampler choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Resampler {
    /// Linear interpolation (cheap; leaves images above 4 kHz).
    Linear,
    /// Hann-windowed sinc half-band interpolator, 16 taps each side.
    #[default]
    Sinc,
}

const HALF_TAPS: usize = 16;

fn sinc_taps() -> [f32; 2 * HALF_TAPS] {
    // Taps for the point half-way between input samples: offsets ±0.5, ±1.5, ...
    let mut t = [0f32; 2 * HALF_TAPS];
    for (i, tap) in t.iter_mut().enumerate() {
        let x = i as f64 - HALF_TAPS as f64 + 0.5;
        let sinc = (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x);
        let w = 0.5 + 0.5 * (std::f64::consts::PI * x / (HALF_TAPS as f64 + 0.5)).cos();
        *tap = (sinc * w) as f32;
    }
    let sum: f32 = t.iter().sum();
    t.iter_mut().for_each(|v| *v /= sum);
    t
}

impl Resampler {
    /// Upsample 8 kHz i16 to 16 kHz f32 in [-1, 1].
    pub fn upsample(self, input: &[i16]) -> Vec<f32> {
        let x: Vec<f32> = input.iter().map(|s| *s as f32 / 32768.0).collect();
        let mut out = Vec::with_capacity(x.len() * 2);
        match self {
            Resampler::Linear => {
                for i in 0..x.len() {
                    let next = x.get(i + 1).copied().unwrap_or(0.0);
                    out.push(x[i]);
                    out.push(0.5 * (x[i] + next));
                }
            }
            Resampler::Sinc => {
                let taps = sinc_taps();
                for i in 0..x.len() {
                    out.push(x[i]);
                    let mut acc = 0f32;
                    for (k, tap) in taps.iter().enumerate() {
                        let j = i as isize + k as isize - HALF_TAPS as isize + 1;
                        if j >= 0 && (j as usize) < x.len() {
                            acc += tap * x[j as usize];
                        }
                    }
                    out.push(acc);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinc_reproduces_a_1khz_tone() {
        // 1. A 1 kHz tone at 8 kHz, upsampled.
        let inp: Vec<i16> = (0..800)
            .map(|n| {
                (10000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 8000.0).sin()) as i16
            })
            .collect();
        let out = Resampler::Sinc.upsample(&inp);
        assert_eq!(out.len(), 1600);
        // 2. Away from the edges, it matches the tone sampled at 16 kHz.
        for (n, v) in out.iter().enumerate().take(1500).skip(100) {
            let want = 10000.0 / 32768.0
                * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / 16000.0).sin();
            assert!((*v as f64 - want).abs() < 0.01, "n={n} {v} vs {want}");
        }
    }
}
