//! Stereo WAV recording (left = carrier/callee, right = bot), written by a
//! blocking task fed through a bounded queue, so disk I/O never touches the
//! forwarding path. Gaps (silence suppression, loss, hold) are filled with
//! silence by arrival time so the file is as long as the call.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

use tokio::sync::mpsc::{Receiver, Sender, channel};
use tokio::task::JoinHandle;

use super::MediaError;
use super::types::PcmFrame;

/// Frames queued towards the writer (about 2.5 s of both legs).
const QUEUE: usize = 256;
/// A channel lagging arrival time by more than this is padded with silence.
const TOLERANCE: u64 = 480; // 60 ms at 8 kHz

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    /// The WAV file.
    pub path: PathBuf,
    /// Samples per channel (duration × 8000).
    pub samples_per_channel: u64,
    /// 20 ms frames received from each leg (carrier, bot).
    pub frames: [u64; 2],
}

/// The running writer; [`finish`](Self::finish) waits for the file.
pub(crate) struct RecordingTask {
    handle: JoinHandle<Result<RecordingSummary, MediaError>>,
    paused: Arc<AtomicBool>,
}

impl RecordingTask {
    /// Pauses (or resumes) the recording: while paused, the writer drops the frames it gets,
    /// and the gap is filled with silence when recording resumes (or at the end), so the file
    /// stays as long as the call and its times match the call's timeline.
    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Relaxed);
    }

    pub(crate) async fn finish(self) -> Result<RecordingSummary, MediaError> {
        self.handle
            .await
            .map_err(|e| MediaError::Recording(format!("writer task: {e}")))?
    }
}

/// Creates the file and starts the writer.
pub(crate) fn spawn(
    path: &Path,
    start: Instant,
) -> Result<(Sender<PcmFrame>, RecordingTask), MediaError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| MediaError::Recording(format!("{}: {e}", dir.display())))?;
    }
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let writer = hound::WavWriter::create(path, spec)
        .map_err(|e| MediaError::Recording(format!("{}: {e}", path.display())))?;
    let (tx, rx) = channel(QUEUE);
    let path = path.to_path_buf();
    let paused = Arc::new(AtomicBool::new(false));
    let flag = paused.clone();
    let handle = tokio::task::spawn_blocking(move || write_loop(writer, rx, start, path, flag));
    Ok((tx, RecordingTask { handle, paused }))
}

struct Mixer {
    pos: [u64; 2],
    bufs: [VecDeque<i16>; 2],
    frames: [u64; 2],
}

impl Mixer {
    fn pad(&mut self, ch: usize, to: u64) {
        while self.pos[ch] < to {
            self.bufs[ch].push_back(0);
            self.pos[ch] += 1;
        }
    }

    fn push(&mut self, f: &PcmFrame) {
        let ch = f.leg.idx();
        let end = f.at_ms * 8;
        let start = end.saturating_sub(160);
        if self.pos[ch] + TOLERANCE < start {
            self.pad(ch, start);
        }
        self.bufs[ch].extend(f.samples.iter());
        self.pos[ch] += 160;
        self.frames[ch] += 1;
        // keep a silent other leg moving so buffers stay bounded
        let other = 1 - ch;
        if self.pos[other] + TOLERANCE < end.saturating_sub(TOLERANCE) {
            self.pad(other, end.saturating_sub(TOLERANCE));
        }
    }

    fn flush<W: std::io::Write + std::io::Seek>(
        &mut self,
        w: &mut hound::WavWriter<W>,
    ) -> Result<(), hound::Error> {
        let n = self.bufs[0].len().min(self.bufs[1].len());
        for _ in 0..n {
            let l = self.bufs[0].pop_front().unwrap_or(0);
            let r = self.bufs[1].pop_front().unwrap_or(0);
            w.write_sample(l)?;
            w.write_sample(r)?;
        }
        Ok(())
    }
}

fn write_loop(
    mut w: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    mut rx: Receiver<PcmFrame>,
    start: Instant,
    path: PathBuf,
    paused: Arc<AtomicBool>,
) -> Result<RecordingSummary, MediaError> {
    let err = |e: hound::Error| MediaError::Recording(format!("{}: {e}", path.display()));
    let mut m = Mixer {
        pos: [0; 2],
        bufs: [VecDeque::new(), VecDeque::new()],
        frames: [0; 2],
    };
    while let Some(f) = rx.blocking_recv() {
        if paused.load(Relaxed) {
            // Not written: the mixer pads the gap with silence by arrival time.
            continue;
        }
        m.push(&f);
        m.flush(&mut w).map_err(err)?;
    }
    // The call's length: elapsed time, or what was received if that is longer.
    let total = (start.elapsed().as_millis() as u64 * 8)
        .max(m.pos[0])
        .max(m.pos[1]);
    m.pad(0, total);
    m.pad(1, total);
    m.flush(&mut w).map_err(err)?;
    w.finalize().map_err(err)?;
    Ok(RecordingSummary {
        path,
        samples_per_channel: total,
        frames: m.frames,
    })
}
