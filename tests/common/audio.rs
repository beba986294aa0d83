//! Audio checks for recordings made by the peers: read a WAV, find where a known clip appears in
//! a recording (normalised cross-correlation), measure level and tone power.

use std::path::Path;

/// Samples of a mono 16-bit WAV and its sample rate.
pub fn read_wav(path: &Path) -> Result<(u32, Vec<i16>), hound::Error> {
    let mut r = hound::WavReader::open(path)?;
    let spec = r.spec();
    let samples: Result<Vec<i16>, _> = r.samples::<i16>().collect();
    let mut samples = samples?;
    if spec.channels > 1 {
        // Keep the first channel: the peers only ever write mono, this is just defensive.
        samples = samples
            .into_iter()
            .step_by(spec.channels as usize)
            .collect();
    }
    Ok((spec.sample_rate, samples))
}

/// Where `reference` best lines up with `recorded`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// Normalised cross-correlation over the overlap, -1..1 (1 = same waveform).
    pub corr: f64,
    /// `recorded[i] ≈ reference[i - lag]`: positive when the recording starts earlier than the
    /// clip (silence, then the clip), negative when the recording missed the clip's start.
    pub lag: i64,
}

fn ncc(reference: &[f64], recorded: &[f64], lag: i64, min_overlap: usize) -> Option<f64> {
    // Overlap of recorded[j] with reference[j - lag].
    let start = lag.max(0) as usize;
    let end = (reference.len() as i64 + lag).min(recorded.len() as i64);
    if end <= start as i64 || (end as usize - start) < min_overlap {
        return None;
    }
    let (mut dot, mut ea, mut eb) = (0.0, 0.0, 0.0);
    for j in start..end as usize {
        let a = recorded[j];
        let b = reference[(j as i64 - lag) as usize];
        dot += a * b;
        ea += a * a;
        eb += b * b;
    }
    if ea == 0.0 || eb == 0.0 {
        return None;
    }
    Some(dot / (ea.sqrt() * eb.sqrt()))
}

fn decimate(x: &[i16], k: usize) -> Vec<f64> {
    x.chunks(k)
        .map(|c| c.iter().map(|&s| f64::from(s)).sum::<f64>() / c.len() as f64)
        .collect()
}

/// Best alignment of `reference` inside `recorded` for lags within ±`max_lag` samples, with at
/// least `min_overlap` overlapping samples. A coarse search on 4× decimated signals finds the
/// region, then full resolution refines it (keeps debug-build tests fast).
pub fn best_alignment(
    reference: &[i16],
    recorded: &[i16],
    max_lag: usize,
    min_overlap: usize,
) -> Option<Alignment> {
    const K: usize = 4;
    let (rd, cd) = (decimate(reference, K), decimate(recorded, K));
    let max_c = (max_lag / K) as i64;
    let mut coarse: Option<(f64, i64)> = None;
    for lag in -max_c..=max_c {
        if let Some(c) = ncc(&rd, &cd, lag, min_overlap / K)
            && coarse.is_none_or(|(best, _)| c > best)
        {
            coarse = Some((c, lag));
        }
    }
    let (_, lag_c) = coarse?;
    let rf: Vec<f64> = reference.iter().map(|&s| f64::from(s)).collect();
    let cf: Vec<f64> = recorded.iter().map(|&s| f64::from(s)).collect();
    let mut best: Option<Alignment> = None;
    for lag in (lag_c * K as i64 - 2 * K as i64)..=(lag_c * K as i64 + 2 * K as i64) {
        if lag.unsigned_abs() as usize > max_lag {
            continue;
        }
        if let Some(c) = ncc(&rf, &cf, lag, min_overlap)
            && best.is_none_or(|b| c > b.corr)
        {
            best = Some(Alignment { corr: c, lag });
        }
    }
    best
}

/// How well a recording reproduces `reference`, tolerant of what a real RTP path does to
/// timing: after the global alignment, each 160 ms window of the clip's speech gets its own best
/// lag within ±30 ms of the previous window's (jitter buffers drop or repeat frames under load,
/// which shifts the rest of the waveform and ruins one global correlation). Returns the energy-weighted mean window
/// correlation (≈1.0 for the same clip, low for another one) and the global lag.
pub fn clip_similarity(reference: &[i16], recorded: &[i16], max_lag: usize) -> Option<Alignment> {
    const WIN: usize = 1280;
    const LOCAL: i64 = 240;
    let global = best_alignment(reference, recorded, max_lag, WIN)?;
    let rf: Vec<f64> = reference.iter().map(|&s| f64::from(s)).collect();
    let cf: Vec<f64> = recorded.iter().map(|&s| f64::from(s)).collect();
    let (mut num, mut den) = (0.0, 0.0);
    let mut track = global.lag;
    for start in (0..rf.len().saturating_sub(WIN - 1)).step_by(WIN) {
        let win = &rf[start..start + WIN];
        let energy: f64 = win.iter().map(|x| x * x).sum();
        // Skip pauses: below -50 dBFS RMS there is nothing to recognise.
        if energy / (WIN as f64) < (32768.0f64 * 32768.0) * 1e-5 {
            continue;
        }
        let (mut best, mut best_lag) = (0.0f64, track);
        for d in -LOCAL..=LOCAL {
            // recorded[j] ≈ win[j - (start + lag)]: the window placed at start + lag.
            let lag = start as i64 + track + d;
            if lag < 0 || lag as usize + WIN > cf.len() {
                continue;
            }
            if let Some(c) = ncc(win, &cf, lag, WIN)
                && c > best
            {
                (best, best_lag) = (c, track + d);
            }
        }
        // Follow the slips: they accumulate over the clip.
        if best > 0.5 {
            track = best_lag;
        }
        num += best * energy;
        den += energy;
    }
    (den > 0.0).then(|| Alignment {
        corr: num / den,
        lag: global.lag,
    })
}

/// RMS level in dBFS (−inf for digital silence).
pub fn rms_dbfs(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    let ms = samples
        .iter()
        .map(|&s| f64::from(s) * f64::from(s))
        .sum::<f64>()
        / samples.len() as f64;
    10.0 * (ms / (32768.0 * 32768.0)).log10()
}

/// Share (0..1) of the signal's energy at `freq` Hz (Goertzel over the whole slice): near 1 for
/// a pure tone at that frequency, near 0 for speech or noise.
pub fn tone_share(samples: &[i16], rate: u32, freq: f64) -> f64 {
    let n = samples.len();
    if n == 0 {
        return 0.0;
    }
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    let mut energy = 0.0;
    for &x in samples {
        let x = f64::from(x);
        energy += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    if energy == 0.0 {
        return 0.0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    // A full-scale sinusoid of N samples gives power ≈ (N·A/2)² and energy ≈ N·A²/2.
    (2.0 * power / (n as f64 * energy)).min(1.0)
}

/// Early media of a number not in service (8 kHz PCM): a second of US ringback (440+480 Hz),
/// 0.5 s silence, the three SIT tones (913.8 / 1370.6 / 1776.7 Hz, 330 ms each), then 8 s of
/// silence.
pub fn ringback_then_sit() -> Vec<i16> {
    let tone = |freqs: &[f32], ms: u32| -> Vec<i16> {
        (0..ms * 8)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let v: f32 = freqs
                    .iter()
                    .map(|f| (2.0 * std::f32::consts::PI * f * t).sin())
                    .sum();
                (v * 8000.0 / freqs.len() as f32) as i16
            })
            .collect()
    };
    let mut pcm = tone(&[440.0, 480.0], 1000);
    pcm.extend(vec![0i16; 4000]);
    for f in [913.8, 1370.6, 1776.7] {
        pcm.extend(tone(&[f], 330));
    }
    pcm.extend(vec![0i16; 64000]);
    pcm
}
