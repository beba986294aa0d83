//! Rational-ratio resampling with a polyphase Kaiser-windowed sinc filter: the voice's 22.05 kHz
//! down to the telephone's 8 kHz (160/441), or a prompt file's rate to 8 kHz.
//!
//! The low-pass passes up to 0.4 × the lower rate (3.2 kHz at 8 kHz: the telephone band) and
//! stops from 0.5 × (4 kHz) with ≥ 70 dB attenuation, so nothing above the new Nyquist folds
//! back into the band as aliasing.

/// Stop-band attenuation of the filter, dB.
const ATTENUATION_DB: f64 = 70.0;

/// A resampler from one fixed rate to another. Build once, reuse for every buffer.
#[derive(Debug, Clone)]
pub struct Resampler {
    /// Interpolation factor L (output rate / gcd).
    up: usize,
    /// Decimation factor M (input rate / gcd).
    down: usize,
    /// Taps per phase.
    width: usize,
    /// `up` phases × `width` taps, phase-major.
    taps: Vec<f32>,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Modified Bessel function of the first kind, order 0 (power series; converges fast for the
/// β values used here).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term) = (1.0, 1.0);
    for k in 1..64 {
        term *= (x / (2.0 * k as f64)).powi(2);
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// A resampler from `from_hz` to `to_hz` (both > 0).
    pub fn new(from_hz: u32, to_hz: u32) -> Resampler {
        let (from, to) = (u64::from(from_hz.max(1)), u64::from(to_hz.max(1)));
        let g = gcd(from, to);
        let (up, down) = ((to / g) as usize, (from / g) as usize);
        let low = from.min(to) as f64;
        // Cut-off and transition in cycles per input sample.
        let cutoff = 0.45 * low / from as f64;
        let transition = 0.1 * low / from as f64;
        let beta = 0.1102 * (ATTENUATION_DB - 8.7);
        let order = ((ATTENUATION_DB - 7.95) / (14.36 * transition)).ceil() as usize;
        let half = (order / 2).max(2);
        let width = 2 * half;
        let mut taps = vec![0f32; up * width];
        for p in 0..up {
            let frac = p as f64 / up as f64;
            let row = &mut taps[p * width..(p + 1) * width];
            for (j, tap) in row.iter_mut().enumerate() {
                // Tap j multiplies input sample n0 + j + 1 - half; its distance from the output
                // instant (n0 + frac) is t.
                let t = j as f64 + 1.0 - half as f64 - frac;
                let x = 2.0 * cutoff * t;
                let sinc = if x.abs() < 1e-12 {
                    1.0
                } else {
                    (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
                };
                let r = t / half as f64;
                let window = if r.abs() >= 1.0 {
                    0.0
                } else {
                    bessel_i0(beta * (1.0 - r * r).sqrt()) / bessel_i0(beta)
                };
                *tap = (2.0 * cutoff * sinc * window) as f32;
            }
            // Unity gain at DC for every phase.
            let sum: f32 = row.iter().sum();
            if sum.abs() > 1e-9 {
                row.iter_mut().for_each(|v| *v /= sum);
            }
        }
        Resampler {
            up,
            down,
            width,
            taps,
        }
    }

    /// Output length for `n` input samples.
    pub fn output_len(&self, n: usize) -> usize {
        (n * self.up).div_ceil(self.down)
    }

    /// Resample a whole buffer (samples beyond its ends count as silence).
    pub fn process(&self, input: &[f32]) -> Vec<f32> {
        if self.up == self.down {
            return input.to_vec();
        }
        let half = self.width / 2;
        let n_out = self.output_len(input.len());
        let mut out = Vec::with_capacity(n_out);
        for m in 0..n_out {
            let pos = m * self.down;
            let (n0, phase) = (pos / self.up, pos % self.up);
            let row = &self.taps[phase * self.width..(phase + 1) * self.width];
            let first = n0 as isize + 1 - half as isize;
            let mut acc = 0f32;
            for (j, tap) in row.iter().enumerate() {
                let i = first + j as isize;
                if i >= 0
                    && let Some(x) = input.get(i as usize)
                {
                    acc += tap * x;
                }
            }
            out.push(acc);
        }
        out
    }
}

/// f32 in [-1, 1] to i16 with saturation.
pub fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples
        .iter()
        .map(|s| (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: f64, n: usize, amp: f64) -> Vec<f32> {
        (0..n)
            .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate).sin()) as f32)
            .collect()
    }

    fn rms(x: &[f32]) -> f64 {
        (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt()
    }

    #[test]
    fn a_1khz_tone_survives_22050_to_8000() {
        // 1. One second of 1 kHz at 22.05 kHz, resampled to 8 kHz.
        let r = Resampler::new(22050, 8000);
        let out = r.process(&tone(1000.0, 22050.0, 22050, 0.5));
        assert_eq!(out.len(), 8000);
        // 2. Away from the edges it is the same tone sampled at 8 kHz.
        let want = tone(1000.0, 8000.0, 8000, 0.5);
        let err: f64 = out[200..7800]
            .iter()
            .zip(&want[200..7800])
            .map(|(a, b)| (*a as f64 - *b as f64).abs())
            .fold(0.0, f64::max);
        assert!(err < 0.01, "max error {err}");
    }

    #[test]
    fn tones_above_the_new_nyquist_are_removed() {
        // 1. A 5 kHz and a 7 kHz tone would fold to 3 kHz and 1 kHz without the filter.
        let r = Resampler::new(22050, 8000);
        for f in [4500.0, 5000.0, 7000.0, 10000.0] {
            let out = r.process(&tone(f, 22050.0, 22050, 0.5));
            // 2. What is left is at least 60 dB down (0.5 → < 0.0005 rms).
            let level = rms(&out[200..7800]);
            assert!(level < 0.5 / 1000.0, "{f} Hz leaks at rms {level}");
        }
        // 3. The telephone band passes within 0.1 dB.
        for f in [300.0, 2000.0, 3000.0] {
            let out = r.process(&tone(f, 22050.0, 22050, 0.5));
            let ratio = rms(&out[200..7800]) / (0.5 / 2f64.sqrt());
            assert!((ratio - 1.0).abs() < 0.012, "{f} Hz gain {ratio}");
        }
    }

    #[test]
    fn other_rates_and_identity() {
        assert_eq!(Resampler::new(16000, 8000).output_len(16000), 8000);
        assert_eq!(Resampler::new(44100, 8000).output_len(44100), 8000);
        let x = tone(440.0, 8000.0, 100, 0.3);
        assert_eq!(Resampler::new(8000, 8000).process(&x), x);
        assert_eq!(to_i16(&[1.5, -1.5, 0.5]), vec![32767, -32768, 16384]);
    }
}
