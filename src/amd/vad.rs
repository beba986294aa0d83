//! Energy voice-activity detection against an adaptive noise floor.
//!
//! The floor is the minimum frame level over a sliding window ("minimum statistics"): speech
//! always has short dips between syllables, so the minimum follows the line noise even during a
//! long greeting, and it follows a level change of the noise within one window. Frames that are
//! part of a steady tone are not fed to the floor, so a 3-second fax tone or beep does not raise
//! it. Onset needs `threshold_db` above the floor, continuation only `threshold_db - hysteresis`,
//! so a word is not chopped where it fades.

use std::collections::VecDeque;

/// Adaptive noise floor (minimum of recent non-tonal frame levels).
#[derive(Debug, Clone)]
pub struct NoiseFloor {
    window: VecDeque<f32>,
    capacity: usize,
}

impl NoiseFloor {
    /// A floor over the last `window_frames` frames (at least 1).
    pub fn new(window_frames: usize) -> Self {
        let capacity = window_frames.max(1);
        Self {
            window: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Feeds the level of a frame that is not a tone.
    pub fn push(&mut self, level_dbfs: f32) {
        if self.window.len() == self.capacity {
            self.window.pop_front();
        }
        self.window.push_back(level_dbfs);
    }

    /// Current floor in dBFS; `None` before the first frame.
    pub fn floor_dbfs(&self) -> Option<f32> {
        self.window.iter().copied().reduce(f32::min)
    }
}

/// Frame-level speech/non-speech decision with hysteresis.
#[derive(Debug, Clone)]
pub struct Vad {
    floor: NoiseFloor,
    threshold_db: f32,
    hysteresis_db: f32,
    min_level_dbfs: f32,
    active: bool,
}

impl Vad {
    /// See [`crate::amd::AmdParams`] for the meaning of the arguments.
    pub fn new(
        window_frames: usize,
        threshold_db: f32,
        hysteresis_db: f32,
        min_level_dbfs: f32,
    ) -> Self {
        Self {
            floor: NoiseFloor::new(window_frames),
            threshold_db,
            hysteresis_db: hysteresis_db.clamp(0.0, threshold_db.max(0.0)),
            min_level_dbfs,
            active: false,
        }
    }

    /// Current noise floor (dBFS), if known.
    pub fn floor_dbfs(&self) -> Option<f32> {
        self.floor.floor_dbfs()
    }

    /// Is `level_dbfs` loud enough to be speech/tone rather than line noise? Does not update state.
    pub fn is_above_floor(&self, level_dbfs: f32, margin_db: f32) -> bool {
        match self.floor.floor_dbfs() {
            Some(f) => level_dbfs >= f + margin_db && level_dbfs >= self.min_level_dbfs,
            None => false,
        }
    }

    /// Classifies one frame. `tonal` frames are never speech and do not move the floor.
    pub fn push(&mut self, level_dbfs: f32, tonal: bool) -> bool {
        if tonal {
            self.active = false;
            return false;
        }
        let margin = if self.active {
            self.threshold_db - self.hysteresis_db
        } else {
            self.threshold_db
        };
        // Decide against the floor *before* this frame joins it, so a loud onset is not
        // compared with itself.
        let speech = self.is_above_floor(level_dbfs, margin);
        self.floor.push(level_dbfs);
        self.active = speech;
        speech
    }
}
