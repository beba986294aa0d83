//! Streaming integer-ratio resamplers between the call's 8 kHz and the bot's 16/24 kHz.
//!
//! Polyphase FIR with a Blackman-windowed sinc low-pass (cutoff 3.8 kHz, 32 taps per phase):
//! upsampling suppresses the spectral images above 4 kHz, downsampling removes what would alias
//! into the telephone band. State carries across calls, so chunk boundaries leave no clicks.
//! Integer ratios only (2 and 3), which is all the formats need; a general-ratio crate would
//! bring FFT dependencies for no gain here.

/// The prototype filter has `factor * TAPS_PER_PHASE + 1` taps: an odd, symmetric length whose
/// delay is exactly `TAPS_PER_PHASE / 2` samples at 8 kHz, so a round trip (up then down) delays
/// by a whole number of 8 kHz samples.
const TAPS_PER_PHASE: usize = 32;
/// Taps per polyphase branch after padding the prototype with zeros to a multiple of the factor.
const PHASE_LEN: usize = TAPS_PER_PHASE + 1;
/// Low-pass cutoff in Hz: above the 3.4 kHz telephone band, below the 4 kHz Nyquist of 8 kHz.
const CUTOFF_HZ: f64 = 3800.0;

/// Low-pass prototype at `8000 * factor` Hz, unity DC gain, zero-padded to `factor * PHASE_LEN`.
fn prototype(factor: usize) -> Vec<f32> {
    let n = factor * TAPS_PER_PHASE + 1;
    let fc = CUTOFF_HZ / (8000.0 * factor as f64); // cycles per sample
    let centre = (n - 1) as f64 / 2.0;
    let pi = std::f64::consts::PI;
    let mut h: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 - centre;
            let sinc = if t == 0.0 {
                2.0 * fc
            } else {
                (2.0 * pi * fc * t).sin() / (pi * t)
            };
            let w = 0.42 - 0.5 * (2.0 * pi * i as f64 / (n - 1) as f64).cos()
                + 0.08 * (4.0 * pi * i as f64 / (n - 1) as f64).cos();
            sinc * w
        })
        .collect();
    let sum: f64 = h.iter().sum();
    h.iter_mut().for_each(|v| *v /= sum);
    h.resize(factor * PHASE_LEN, 0.0);
    h.into_iter().map(|v| v as f32).collect()
}

fn saturate(v: f32) -> i16 {
    v.round().clamp(i16::MIN as f32, i16::MAX as f32) as i16
}

/// 8 kHz → `8000 * factor` Hz.
#[derive(Debug, Clone)]
pub struct Upsampler {
    factor: usize,
    /// `phases[p][k] = factor * h[p + k * factor]`.
    phases: Vec<Vec<f32>>,
    /// The last `PHASE_LEN - 1` input samples.
    history: Vec<f32>,
}

impl Upsampler {
    /// A resampler multiplying the rate by `factor` (≥ 1; 1 copies).
    pub fn new(factor: usize) -> Upsampler {
        let factor = factor.max(1);
        let h = prototype(factor);
        let phases = (0..factor)
            .map(|p| {
                (0..PHASE_LEN)
                    .map(|k| factor as f32 * h[p + k * factor])
                    .collect()
            })
            .collect();
        Upsampler {
            factor,
            phases,
            history: vec![0.0; PHASE_LEN - 1],
        }
    }

    /// Appends `input.len() * factor` samples to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.factor == 1 {
            out.extend_from_slice(input);
            return;
        }
        let mut x = std::mem::take(&mut self.history);
        x.extend(input.iter().map(|&s| s as f32));
        out.reserve(input.len() * self.factor);
        for n in (PHASE_LEN - 1)..x.len() {
            for phase in &self.phases {
                let acc: f32 = phase.iter().enumerate().map(|(k, h)| h * x[n - k]).sum();
                out.push(saturate(acc));
            }
        }
        self.history = x.split_off(x.len() - (PHASE_LEN - 1));
    }
}

/// `8000 * factor` Hz → 8 kHz.
#[derive(Debug, Clone)]
pub struct Downsampler {
    factor: usize,
    taps: Vec<f32>,
    /// The last `taps.len() - 1` input samples.
    history: Vec<f32>,
    /// Input samples still to skip before the next output sample.
    skip: usize,
}

impl Downsampler {
    /// A resampler dividing the rate by `factor` (≥ 1; 1 copies).
    pub fn new(factor: usize) -> Downsampler {
        let factor = factor.max(1);
        let taps = prototype(factor);
        let history = vec![0.0; taps.len() - 1];
        Downsampler {
            factor,
            taps,
            history,
            skip: 0,
        }
    }

    /// Appends about `input.len() / factor` samples to `out` (the remainder carries over).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.factor == 1 {
            out.extend_from_slice(input);
            return;
        }
        let n = self.taps.len();
        let mut x = std::mem::take(&mut self.history);
        x.extend(input.iter().map(|&s| s as f32));
        let mut i = n - 1 + self.skip;
        while i < x.len() {
            let acc: f32 = self
                .taps
                .iter()
                .enumerate()
                .map(|(j, h)| h * x[i - j])
                .sum();
            out.push(saturate(acc));
            i += self.factor;
        }
        self.skip = i - x.len();
        self.history = x.split_off(x.len() - (n - 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: f64, n: usize, amp: f64) -> Vec<i16> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as i16)
            .collect()
    }

    fn rms(x: &[i16]) -> f64 {
        (x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
    }

    #[test]
    fn upsampling_keeps_a_1khz_tone_and_its_level_across_chunk_boundaries() {
        for factor in [2usize, 3] {
            // 1. A 1 kHz tone at 8 kHz, fed in 20 ms chunks.
            let input = tone(1000.0, 8000.0, 1600, 10_000.0);
            let mut up = Upsampler::new(factor);
            let mut out = Vec::new();
            for chunk in input.chunks(160) {
                up.process(chunk, &mut out);
            }
            assert_eq!(out.len(), 1600 * factor);
            // 2. After the filter's delay it is the tone sampled at the higher rate.
            let rate = 8000.0 * factor as f64;
            let delay = (factor * TAPS_PER_PHASE) as f64 / 2.0;
            for (i, v) in out.iter().enumerate().skip(200 * factor) {
                let want = 10_000.0
                    * (2.0 * std::f64::consts::PI * 1000.0 * (i as f64 - delay) / rate).sin();
                assert!(
                    (*v as f64 - want).abs() < 150.0,
                    "factor {factor} i {i}: {v} vs {want}"
                );
            }
        }
    }

    #[test]
    fn downsampling_passes_the_band_and_removes_what_would_alias() {
        for factor in [2usize, 3] {
            let rate = 8000.0 * factor as f64;
            // 1. A 1 kHz tone passes at its level.
            let mut down = Downsampler::new(factor);
            let mut out = Vec::new();
            for chunk in tone(1000.0, rate, 4800 * factor, 10_000.0).chunks(7 * factor + 1) {
                down.process(chunk, &mut out);
            }
            assert_eq!(out.len(), 4800);
            let passed = rms(&out[400..]);
            assert!(
                (passed - 7071.0).abs() < 300.0,
                "factor {factor}: rms {passed}"
            );
            // 2. A 6 kHz tone (it would fold to 2 kHz) is attenuated by more than 40 dB.
            let mut down = Downsampler::new(factor);
            let mut out = Vec::new();
            down.process(&tone(6000.0, rate, 4800 * factor, 10_000.0), &mut out);
            let leaked = rms(&out[400..]);
            assert!(leaked < 71.0, "factor {factor}: leaked rms {leaked}");
        }
    }
}
