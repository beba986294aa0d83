//! Utterance segmentation by voice activity (sans-IO, deterministic, per 20 ms frame).
//!
//! An energy detector with an adaptive noise floor: a frame is voiced when its level is
//! `snr_db` above the floor and above `min_level_dbfs`. Speech starts after `start_ms` of voiced
//! frames (a pre-roll is kept); a `pause_ms` silence triggers a speculative recognition; an
//! `end_ms` silence ends the utterance. Bursts shorter than `min_speech_ms` are dropped as noise.

use serde::Deserialize;

/// Segmentation settings (ms are multiples of 20).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SegmenterConfig {
    /// Voiced time needed to start an utterance. Default 60.
    pub start_ms: u32,
    /// Silence after which a speculative recognition runs. Default 120 (with `final_pause_ms`
    /// 260: p50 latency 260–285 ms on the real-prompt set; 200 gave 418 ms).
    pub pause_ms: u32,
    /// Silence that ends the utterance. Default 500.
    pub end_ms: u32,
    /// Silence before a sentence-final speculative result is delivered. Default 260: a pause
    /// at a comma ("Hello, … who is this?") is often 200–250 ms, and delivering "Hello?" there
    /// would cut the phrase in two (its rest, recognised alone, comes out worse).
    pub final_pause_ms: u32,
    /// Utterances with less voiced time are dropped. Default 120.
    pub min_speech_ms: u32,
    /// Utterances are cut at this length. Default 15000.
    pub max_utterance_ms: u32,
    /// Audio kept before the detected start. Default 200.
    pub preroll_ms: u32,
    /// Level above the noise floor that counts as voice. Default 12 dB.
    pub snr_db: f32,
    /// Absolute level below which nothing is voice. Default -48 dBFS.
    pub min_level_dbfs: f32,
}

impl Default for SegmenterConfig {
    fn default() -> Self {
        Self {
            start_ms: 60,
            pause_ms: 120,
            end_ms: 500,
            final_pause_ms: 260,
            min_speech_ms: 120,
            max_utterance_ms: 15_000,
            preroll_ms: 200,
            snr_db: 12.0,
            min_level_dbfs: -48.0,
        }
    }
}

/// What a frame caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegEvent {
    /// Nothing noteworthy.
    None,
    /// An utterance started at `start_ms`.
    Started {
        /// Start (incl. pre-roll), ms since the first frame.
        start_ms: u64,
    },
    /// `pause_ms` of silence after speech: recognise speculatively.
    Paused {
        /// Last voiced frame's end.
        speech_end_ms: u64,
    },
    /// Voice came back after a pause: the speculative recognition is stale.
    Resumed,
    /// The utterance ended (end silence or max length).
    Ended {
        /// Last voiced frame's end.
        speech_end_ms: u64,
    },
    /// The utterance was too short: dropped as noise.
    Discarded,
}

/// The segmenter's state.
#[derive(Debug, Clone)]
pub struct Segmenter {
    cfg: SegmenterConfig,
    frames: u64,
    floor_db: f32,
    in_speech: bool,
    voiced_run: u32,
    silence_run: u32,
    voiced_total: u32,
    utt_frames: u32,
    paused: bool,
    last_voiced_end_ms: u64,
}

/// Level of a frame in dBFS.
pub fn frame_dbfs(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return -100.0;
    }
    let e: f64 = frame.iter().map(|s| (*s as f64) * (*s as f64)).sum::<f64>() / frame.len() as f64;
    (10.0 * (e / (32768.0 * 32768.0) + 1e-10).log10()) as f32
}

impl Segmenter {
    /// A new segmenter.
    pub fn new(cfg: SegmenterConfig) -> Self {
        Self {
            cfg,
            frames: 0,
            floor_db: -70.0,
            in_speech: false,
            voiced_run: 0,
            silence_run: 0,
            voiced_total: 0,
            utt_frames: 0,
            paused: false,
            last_voiced_end_ms: 0,
        }
    }

    /// True while inside an utterance.
    pub fn in_speech(&self) -> bool {
        self.in_speech
    }

    /// Frames of pre-roll to keep before a start.
    pub fn preroll_frames(&self) -> usize {
        (self.cfg.preroll_ms / 20) as usize
    }

    /// Frames of voice needed to start (they belong to the utterance).
    pub fn start_frames(&self) -> usize {
        (self.cfg.start_ms / 20).max(1) as usize
    }

    /// Frames seen so far (the segmenter's own clock).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Reset to silence (e.g. on set_active(false)).
    pub fn reset(&mut self) {
        self.in_speech = false;
        self.voiced_run = 0;
        self.silence_run = 0;
        self.voiced_total = 0;
        self.utt_frames = 0;
        self.paused = false;
    }

    /// Feed one frame.
    pub fn push(&mut self, frame: &[i16]) -> SegEvent {
        let db = frame_dbfs(frame);
        self.frames += 1;
        let now_ms = self.frames * 20;
        // Noise floor: falls fast, rises slowly (0.05 dB per frame = 2.5 dB/s) so steady noise
        // becomes floor within seconds while speech (which varies) does not.
        if db < self.floor_db {
            self.floor_db = 0.7 * self.floor_db + 0.3 * db;
        } else {
            self.floor_db += 0.05;
        }
        if self.frames <= 5 {
            // Learn the line's level quickly at the start.
            self.floor_db = if self.frames == 1 {
                db
            } else {
                self.floor_db.min(db)
            };
        }
        let voiced = db > self.floor_db + self.cfg.snr_db && db > self.cfg.min_level_dbfs;
        if !self.in_speech {
            if voiced {
                self.voiced_run += 1;
                if self.voiced_run * 20 >= self.cfg.start_ms {
                    self.in_speech = true;
                    self.voiced_total = self.voiced_run;
                    self.utt_frames = self.voiced_run;
                    self.silence_run = 0;
                    self.paused = false;
                    self.last_voiced_end_ms = now_ms;
                    let start = now_ms
                        .saturating_sub((self.voiced_run + self.cfg.preroll_ms / 20) as u64 * 20);
                    return SegEvent::Started { start_ms: start };
                }
            } else {
                self.voiced_run = 0;
            }
            return SegEvent::None;
        }
        self.utt_frames += 1;
        if voiced {
            self.voiced_total += 1;
            self.silence_run = 0;
            self.last_voiced_end_ms = now_ms;
            if self.paused {
                self.paused = false;
                return SegEvent::Resumed;
            }
        } else {
            self.silence_run += 1;
        }
        let too_long = self.utt_frames * 20 >= self.cfg.max_utterance_ms;
        if self.silence_run * 20 >= self.cfg.end_ms || too_long {
            let enough = self.voiced_total * 20 >= self.cfg.min_speech_ms;
            let end = self.last_voiced_end_ms;
            self.reset();
            return if enough {
                SegEvent::Ended { speech_end_ms: end }
            } else {
                SegEvent::Discarded
            };
        }
        if !self.paused && self.silence_run * 20 >= self.cfg.pause_ms {
            self.paused = true;
            if self.voiced_total * 20 >= self.cfg.min_speech_ms {
                return SegEvent::Paused {
                    speech_end_ms: self.last_voiced_end_ms,
                };
            }
        }
        SegEvent::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amp: f64) -> Vec<i16> {
        (0..160)
            .map(|n| (amp * (n as f64 * 0.3).sin()) as i16)
            .collect()
    }

    #[test]
    fn speech_burst_starts_pauses_and_ends() {
        // 1. 0.5 s silence, 0.6 s voice, 1 s silence.
        let mut s = Segmenter::new(SegmenterConfig::default());
        let mut ev = Vec::new();
        for _ in 0..25 {
            ev.push(s.push(&[0; 160]));
        }
        for _ in 0..30 {
            ev.push(s.push(&tone(8000.0)));
        }
        for _ in 0..50 {
            ev.push(s.push(&[0; 160]));
        }
        let ev: Vec<SegEvent> = ev.into_iter().filter(|e| *e != SegEvent::None).collect();
        // 2. Started, Paused after 200 ms, Ended after 500 ms, speech end at 1.1 s.
        assert!(matches!(ev[0], SegEvent::Started { .. }));
        assert_eq!(
            ev[1],
            SegEvent::Paused {
                speech_end_ms: 1100
            }
        );
        assert_eq!(
            ev[2],
            SegEvent::Ended {
                speech_end_ms: 1100
            }
        );
        assert_eq!(ev.len(), 3);
    }

    #[test]
    fn click_is_discarded_and_steady_noise_never_starts() {
        // 1. A 60 ms click: starts but is too short.
        let mut s = Segmenter::new(SegmenterConfig::default());
        for _ in 0..10 {
            s.push(&[0; 160]);
        }
        let mut ev = Vec::new();
        for _ in 0..3 {
            ev.push(s.push(&tone(8000.0)));
        }
        for _ in 0..30 {
            ev.push(s.push(&[0; 160]));
        }
        assert!(ev.contains(&SegEvent::Discarded));
        // 2. Steady noise from the first frame is learnt as floor: no start.
        let mut s = Segmenter::new(SegmenterConfig::default());
        for _ in 0..200 {
            assert_eq!(s.push(&tone(3000.0)), SegEvent::None);
        }
    }
}
