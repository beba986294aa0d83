//! Steady-tone tracking: turns per-frame tone estimates into tone segments, groups segments
//! that follow each other closely into sequences, and judges a finished sequence as SIT,
//! voicemail beep or something else.
//!
//! Why sequences: the three SIT tones (913.8 / 1370.6 / 1776.7 Hz, ~276-380 ms each) are each a
//! perfectly good "beep" on their own; only their succession tells them apart. So no segment is
//! judged until nothing follows it for `tone_chain_gap_ms` (or `sit_max_gap_ms` when it could be
//! the start of a SIT).

use super::dsp::FRAME_MS;
use super::params::{AmdParams, frames};

/// A finished steady tone. Frames are counted from the answer; `end_frame` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToneSegment {
    /// First frame of the tone.
    pub start_frame: u64,
    /// Frame after the last tone frame.
    pub end_frame: u64,
    /// Mean frequency over the tone.
    pub freq_hz: f32,
    /// Standard deviation of the per-frame frequency (a generated beep: ~1 Hz; a sung vowel's
    /// harmonic drifts by tens of Hz).
    pub freq_std_hz: f32,
    /// Mean per-frame purity (share of energy at the tone frequency).
    pub purity: f32,
}

impl ToneSegment {
    /// Length in milliseconds.
    pub fn duration_ms(&self) -> u64 {
        (self.end_frame - self.start_frame) * u64::from(FRAME_MS)
    }
}

/// What a finished tone sequence was.
#[derive(Debug, Clone, PartialEq)]
pub enum ToneVerdict {
    /// Special Information Tones (carrier intercept): the segments matched.
    Sit(Vec<ToneSegment>),
    /// A voicemail beep (the last segment of the sequence).
    Beep(ToneSegment),
    /// A tone that is neither (too short, too long, out of band).
    Other(ToneSegment),
}

#[derive(Debug, Clone)]
struct Run {
    start: u64,
    last: u64,
    freq_sum: f64,
    freq_sq: f64,
    purity_sum: f64,
    n: u32,
    misses: u64,
}

impl Run {
    fn new(idx: u64, f: f32, purity: f32) -> Self {
        let f = f64::from(f);
        Self {
            start: idx,
            last: idx,
            freq_sum: f,
            freq_sq: f * f,
            purity_sum: f64::from(purity),
            n: 1,
            misses: 0,
        }
    }

    fn add(&mut self, idx: u64, f: f32, purity: f32) {
        let f = f64::from(f);
        self.last = idx;
        self.freq_sum += f;
        self.freq_sq += f * f;
        self.purity_sum += f64::from(purity);
        self.n += 1;
        self.misses = 0;
    }

    fn mean(&self) -> f32 {
        (self.freq_sum / f64::from(self.n.max(1))) as f32
    }

    fn std(&self) -> f32 {
        let n = f64::from(self.n.max(1));
        let m = self.freq_sum / n;
        ((self.freq_sq / n - m * m).max(0.0)).sqrt() as f32
    }

    fn purity(&self) -> f32 {
        (self.purity_sum / f64::from(self.n.max(1))) as f32
    }
}

/// The state of tone tracking.
#[derive(Debug, Clone)]
pub struct ToneTracker {
    run: Option<Run>,
    chain: Vec<ToneSegment>,
    tol_hz: f32,
    max_dropout: u64,
    min_tone: u64,
    chain_gap: u64,
    max_std: f32,
    min_purity: f32,
    sit_gap: u64,
    sit_tol: f32,
    beep_min_hz: f32,
    beep_max_hz: f32,
    beep_min: u64,
    beep_max: u64,
}

const SIT_1: [f32; 2] = [913.8, 985.2];
const SIT_2: [f32; 2] = [1370.6, 1428.5];
const SIT_3: [f32; 1] = [1776.7];

impl ToneTracker {
    /// A tracker configured from `p`.
    pub fn new(p: &AmdParams) -> Self {
        Self {
            run: None,
            chain: Vec::new(),
            tol_hz: p.tone_freq_tolerance_hz,
            max_dropout: u64::from(p.tone_max_dropout_ms / FRAME_MS),
            min_tone: frames(p.min_tone_ms),
            chain_gap: frames(p.tone_chain_gap_ms),
            max_std: p.tone_max_freq_std_hz,
            min_purity: p.tone_mean_purity_min,
            sit_gap: frames(p.sit_max_gap_ms),
            sit_tol: p.sit_tolerance_pct / 100.0,
            beep_min_hz: p.beep_min_hz,
            beep_max_hz: p.beep_max_hz,
            beep_min: frames(p.beep_min_ms),
            beep_max: frames(p.beep_max_ms),
        }
    }

    /// The tone in progress, if it is steady and pure so far: (mean frequency, frames so far,
    /// first frame).
    pub fn current(&self) -> Option<(f32, u64, u64)> {
        self.run
            .as_ref()
            .filter(|r| r.std() <= self.max_std && r.purity() >= self.min_purity)
            .map(|r| (r.mean(), r.last + 1 - r.start, r.start))
    }

    /// Steady and pure enough to be a generated tone rather than a voiced sound.
    fn clean(&self, s: &ToneSegment) -> bool {
        s.freq_std_hz <= self.max_std && s.purity >= self.min_purity
    }

    /// True while a tone is sounding or a sequence is still open (not yet judged).
    pub fn busy(&self) -> bool {
        self.run.is_some() || !self.chain.is_empty()
    }

    /// Feeds frame `idx`: `Some((freq, purity))` if the frame is a tone frame. Returns the
    /// verdict on a sequence that finished with this frame.
    pub fn push(&mut self, idx: u64, tone: Option<(f32, f32)>) -> Option<ToneVerdict> {
        match (tone, self.run.as_mut()) {
            (Some((f, pu)), Some(r)) if (f - r.mean()).abs() <= self.tol_hz => r.add(idx, f, pu),
            (Some((f, pu)), _) => {
                self.close_run();
                self.run = Some(Run::new(idx, f, pu));
            }
            (None, Some(r)) => {
                r.misses += 1;
                if r.misses > self.max_dropout {
                    self.close_run();
                }
            }
            (None, None) => {}
        }
        if self.run.is_some() {
            return None;
        }
        let last = *self.chain.last()?;
        let wait = if self.could_continue_sit(&last) {
            self.sit_gap
        } else {
            self.chain_gap
        };
        if idx + 1 >= last.end_frame + wait {
            let chain = std::mem::take(&mut self.chain);
            return Some(self.judge(chain));
        }
        None
    }

    fn close_run(&mut self) {
        if let Some(r) = self.run.take() {
            let seg = ToneSegment {
                start_frame: r.start,
                end_frame: r.last + 1,
                freq_hz: r.mean(),
                freq_std_hz: r.std(),
                purity: r.purity(),
            };
            // Voiced speech can look like a tone for a few frames; such segments are dropped
            // here so they neither form sequences nor hold up the greeting rules.
            if seg.end_frame - seg.start_frame >= self.min_tone && self.clean(&seg) {
                self.chain.push(seg);
            }
        }
    }

    fn near(&self, f: f32, set: &[f32]) -> bool {
        set.iter().any(|&c| (f - c).abs() <= c * self.sit_tol)
    }

    /// A segment that is SIT tone 1 or 2 might be followed by the next SIT tone.
    fn could_continue_sit(&self, s: &ToneSegment) -> bool {
        let short = s.end_frame - s.start_frame <= frames(600);
        short && (self.near(s.freq_hz, &SIT_1) || self.near(s.freq_hz, &SIT_2))
    }

    fn judge(&self, chain: Vec<ToneSegment>) -> ToneVerdict {
        let sit_pair = chain.windows(2).any(|w| {
            (self.near(w[0].freq_hz, &SIT_1) && self.near(w[1].freq_hz, &SIT_2))
                || (self.near(w[0].freq_hz, &SIT_2) && self.near(w[1].freq_hz, &SIT_3))
        });
        if sit_pair {
            return ToneVerdict::Sit(chain);
        }
        let Some(&last) = chain.last() else {
            return ToneVerdict::Sit(chain); // unreachable: only non-empty sequences are judged
        };
        let len = last.end_frame - last.start_frame;
        let in_band = last.freq_hz >= self.beep_min_hz && last.freq_hz <= self.beep_max_hz;
        if in_band && len >= self.beep_min && len <= self.beep_max {
            ToneVerdict::Beep(last)
        } else {
            ToneVerdict::Other(last)
        }
    }
}
