//! Whisper's mel filter bank, computed the librosa way (`librosa.filters.mel(sr=16000, n_fft=400,
//! n_mels=80)`: Slaney mel scale, Slaney area normalisation), which is what Whisper's
//! `mel_filters.npz` holds and what whisper.cpp expects in the model file.

fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        m * f_sp
    }
}

/// Filter bank as `n_mels` rows of `n_fft/2 + 1` weights (row-major).
pub fn mel_filters(sr: u32, n_fft: usize, n_mels: usize) -> Vec<f32> {
    let n_bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|k| k as f64 * sr as f64 / n_fft as f64)
        .collect();
    let (mel_min, mel_max) = (hz_to_mel(0.0), hz_to_mel(sr as f64 / 2.0));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut out = vec![0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (lo, mid, hi) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (hi - lo);
        for (k, f) in fft_freqs.iter().enumerate() {
            let lower = (f - lo) / (mid - lo);
            let upper = (hi - f) / (hi - mid);
            let w = lower.min(upper).max(0.0);
            out[m * n_bins + k] = (w * enorm) as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_known_librosa_values() {
        // 1. Values from librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) (Whisper's bank).
        let f = mel_filters(16000, 400, 80);
        assert_eq!(f.len(), 80 * 201);
        // 2. Row 0 peaks at bin 1 with weight 0.02486259 (librosa), bin 0 is 0.
        assert_eq!(f[0], 0.0);
        assert!((f[1] - 0.024_862_59).abs() < 1e-6, "{}", f[1]);
        // 3. Every filter has some weight.
        for m in 0..80 {
            assert!(
                f[m * 201..(m + 1) * 201].iter().any(|w| *w > 0.0),
                "row {m}"
            );
        }
    }
}
