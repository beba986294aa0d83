//! The bot's audio on its way to the person: a bounded buffer of 8 kHz samples read one
//! 20 ms frame at a time by the caller's real-time clock.
//!
//! However fast the bot sends, the buffer never holds more than its capacity (the excess is
//! dropped and counted), and reading never waits: an empty buffer gives silence and counts an
//! underrun. Media-stream `mark`s are kept at their position in the audio and reported once the
//! audio queued before them has been played (or dropped by `clear`).

use std::collections::VecDeque;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// Pending marks kept at most; more are dropped (and counted) rather than growing without bound.
const MAX_MARKS: usize = 1024;

/// Counters of one buffer's life.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JitterStats {
    /// Frames returned by [`JitterBuffer::next_frame`].
    pub frames: u64,
    /// Frames that were (wholly or partly) silence because the buffer was empty.
    pub underruns: u64,
    /// Pushes that did not fit entirely.
    pub overflows: u64,
    /// Samples dropped because the buffer was full.
    pub overflow_samples: u64,
    /// Samples dropped by `clear`.
    pub cleared_samples: u64,
    /// Marks dropped because too many were pending.
    pub marks_dropped: u64,
}

/// A bounded playout buffer (sans-IO: no clock, no locks; the shell shares it behind a mutex).
#[derive(Debug)]
pub struct JitterBuffer {
    samples: VecDeque<i16>,
    capacity: usize,
    /// Samples ever accepted; a mark's position is measured in these.
    written: u64,
    /// Samples ever played or cleared.
    consumed: u64,
    marks: VecDeque<(u64, String)>,
    /// The bot said its current stream ended: a last partial frame may be padded and played.
    flushed: bool,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer holding at most `capacity_ms` of audio (at least one frame).
    pub fn new(capacity_ms: u32) -> JitterBuffer {
        let capacity = (capacity_ms as usize * 8).max(FRAME_SAMPLES);
        JitterBuffer {
            samples: VecDeque::new(),
            capacity,
            written: 0,
            consumed: 0,
            marks: VecDeque::new(),
            flushed: false,
            stats: JitterStats::default(),
        }
    }

    /// Queues 8 kHz samples; what does not fit is dropped and counted.
    pub fn push(&mut self, pcm: &[i16]) {
        let room = self.capacity - self.samples.len();
        let take = pcm.len().min(room);
        self.samples.extend(&pcm[..take]);
        self.written += take as u64;
        self.flushed = false;
        if take < pcm.len() {
            self.stats.overflows += 1;
            self.stats.overflow_samples += (pcm.len() - take) as u64;
        }
    }

    /// The bot ended a stream: a trailing partial frame is played (padded) instead of waiting.
    pub fn flush(&mut self) {
        self.flushed = true;
    }

    /// Places a mark after the audio queued so far.
    pub fn mark(&mut self, name: String) {
        if self.marks.len() >= MAX_MARKS {
            self.stats.marks_dropped += 1;
            return;
        }
        self.marks.push_back((self.written, name));
    }

    /// Drops all queued audio (barge-in); pending marks become due.
    pub fn clear(&mut self) {
        self.stats.cleared_samples += self.samples.len() as u64;
        self.consumed += self.samples.len() as u64;
        self.samples.clear();
        self.flushed = false;
    }

    /// The next 20 ms frame; silence when nothing (or only part of a frame of an unfinished
    /// stream) is queued.
    pub fn next_frame(&mut self) -> [i16; FRAME_SAMPLES] {
        let mut frame = [0i16; FRAME_SAMPLES];
        self.stats.frames += 1;
        let have = self.samples.len();
        if self.frame_ready() {
            let n = have.min(FRAME_SAMPLES);
            for (dst, src) in frame.iter_mut().zip(self.samples.drain(..n)) {
                *dst = src;
            }
            self.consumed += n as u64;
            if n < FRAME_SAMPLES {
                self.stats.underruns += 1;
            }
        } else {
            self.stats.underruns += 1;
        }
        frame
    }

    /// Whether [`JitterBuffer::next_frame`] would give audio now: a whole frame, or the tail
    /// of a finished stream (the playout clock sends a ready frame without waiting for a tick).
    pub fn frame_ready(&self) -> bool {
        let have = self.samples.len();
        have >= FRAME_SAMPLES || (self.flushed && have > 0)
    }

    /// Marks whose audio has been played (or cleared), oldest first.
    pub fn take_due_marks(&mut self) -> Vec<String> {
        let mut due = Vec::new();
        while self
            .marks
            .front()
            .is_some_and(|(pos, _)| *pos <= self.consumed)
        {
            if let Some((_, name)) = self.marks.pop_front() {
                due.push(name);
            }
        }
        due
    }

    /// Whether a mark's audio has been played and its echo is still to be taken.
    pub fn has_due_marks(&self) -> bool {
        self.marks
            .front()
            .is_some_and(|(pos, _)| *pos <= self.consumed)
    }

    /// Whether any mark waits for its audio to be played.
    pub fn has_marks(&self) -> bool {
        !self.marks.is_empty()
    }

    /// Samples queued now.
    pub fn queued_samples(&self) -> usize {
        self.samples.len()
    }

    /// Counters so far.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_out_in_order_and_an_empty_buffer_gives_counted_silence() {
        // 1. 50 ms queued: two whole frames, then a partial one waits.
        let mut jb = JitterBuffer::new(1000);
        let pcm: Vec<i16> = (0..400).map(|i| i as i16 + 1).collect();
        jb.push(&pcm);
        assert_eq!(jb.next_frame()[0], 1);
        assert_eq!(jb.next_frame()[0], 161);
        assert_eq!(jb.next_frame(), [0; FRAME_SAMPLES]);
        // 2. Once the stream is flushed the tail plays, padded.
        jb.flush();
        let f = jb.next_frame();
        assert_eq!((f[0], f[79], f[80]), (321, 400, 0));
        assert_eq!(jb.next_frame(), [0; FRAME_SAMPLES]);
        assert_eq!(jb.stats().underruns, 3);
        assert_eq!(jb.stats().frames, 5);
    }

    #[test]
    fn a_flood_is_bounded_and_counted() {
        let mut jb = JitterBuffer::new(100); // 800 samples
        for _ in 0..10 {
            jb.push(&[7; 160]);
        }
        assert_eq!(jb.queued_samples(), 800);
        assert_eq!(jb.stats().overflow_samples, 800);
        assert_eq!(jb.stats().overflows, 5);
    }

    #[test]
    fn marks_are_due_after_their_audio_played_or_was_cleared() {
        // 1. mark a after 1 frame, mark b after 3 frames.
        let mut jb = JitterBuffer::new(1000);
        jb.push(&[1; 160]);
        jb.mark("a".into());
        jb.push(&[2; 320]);
        jb.mark("b".into());
        assert!(jb.take_due_marks().is_empty());
        // 2. Playing one frame makes a due.
        jb.next_frame();
        assert_eq!(jb.take_due_marks(), vec!["a".to_string()]);
        // 3. Clearing the rest makes b due without playing it.
        jb.clear();
        assert_eq!(jb.take_due_marks(), vec!["b".to_string()]);
        assert_eq!(jb.next_frame(), [0; FRAME_SAMPLES]);
        assert_eq!(jb.stats().cleared_samples, 320);
    }
}
