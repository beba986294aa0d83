//! The synthesis worker pool: a fixed number of threads, each with its own model session, fed
//! from a bounded queue of utterances. A full queue refuses new work (counted), so a burst of
//! calls can never pile up unbounded synthesis or touch the async runtime's threads.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cache::AudioCache;
use super::engine::TtsStats;
use super::resample::{Resampler, to_i16};
use super::stream::{SpeechChunk, StreamSender};
use super::{Synthesizer, TtsError};

/// One utterance's sentences still to synthesise.
pub(crate) struct Job {
    /// (index in the utterance, sentence).
    pub(crate) sentences: Vec<(usize, String)>,
    pub(crate) out: StreamSender,
}

/// Shared by the workers.
pub(crate) struct Shared {
    pub(crate) cache: Arc<AudioCache>,
    pub(crate) stats: Arc<TtsStats>,
    pub(crate) resampler: Resampler,
}

/// Start one thread per synthesiser; returns the queue's sending side.
pub(crate) fn start(
    synths: Vec<Box<dyn Synthesizer>>,
    queue_bound: usize,
    shared: Arc<Shared>,
) -> Result<SyncSender<Job>, TtsError> {
    let (tx, rx) = sync_channel::<Job>(queue_bound.max(1));
    let rx = Arc::new(Mutex::new(rx));
    for (i, mut synth) in synths.into_iter().enumerate() {
        let (rx, shared) = (rx.clone(), shared.clone());
        std::thread::Builder::new()
            .name(format!("tts-worker-{i}"))
            .spawn(move || {
                while let Some(job) = next_job(&rx) {
                    shared.stats.queued.fetch_sub(1, Ordering::Relaxed);
                    run_job(synth.as_mut(), job, &shared);
                }
            })
            .map_err(|e| TtsError::Engine(format!("spawn synthesis worker: {e}")))?;
    }
    Ok(tx)
}

fn next_job(rx: &Mutex<Receiver<Job>>) -> Option<Job> {
    // A poisoned lock only means another worker panicked; the receiver is still fine.
    let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
    guard.recv().ok()
}

/// Queue a job; a full queue refuses it (counted and logged, never silent).
pub(crate) fn submit(
    tx: &SyncSender<Job>,
    job: Job,
    stats: &TtsStats,
    bound: usize,
) -> Result<(), TtsError> {
    stats.queued.fetch_add(1, Ordering::Relaxed);
    match tx.try_send(job) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            stats.queued.fetch_sub(1, Ordering::Relaxed);
            stats.jobs_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(bound, "tts job refused: synthesis queue full");
            Err(TtsError::Capacity(bound))
        }
    }
}

fn run_job(synth: &mut dyn Synthesizer, job: Job, shared: &Shared) {
    for (index, sentence) in job.sentences {
        if job.out.cancelled() {
            shared.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let chunk = match shared.cache.get(&sentence) {
            Some(pcm) => Ok(SpeechChunk {
                index,
                text: sentence,
                pcm,
                cached: true,
                ready_after: job.out.elapsed(),
                cpu: Duration::ZERO,
            }),
            None => synthesize(synth, &sentence, shared).map(|(pcm, cpu)| {
                shared.cache.put(&sentence, pcm.clone());
                SpeechChunk {
                    index,
                    text: sentence,
                    pcm,
                    cached: false,
                    ready_after: job.out.elapsed(),
                    cpu,
                }
            }),
        };
        let failed = chunk.is_err();
        if let Err(e) = &chunk {
            tracing::warn!(error = %e, "tts sentence failed");
            shared.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        if !job.out.send(chunk) || failed {
            return;
        }
    }
}

/// CPU time of the calling thread (zero if the clock is unavailable).
pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec out-pointer and a clock every Linux has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// One sentence to 8 kHz PCM; also returns the CPU time it took.
fn synthesize(
    synth: &mut dyn Synthesizer,
    sentence: &str,
    shared: &Shared,
) -> Result<(Arc<[i16]>, Duration), TtsError> {
    let (t0, cpu0) = (Instant::now(), thread_cpu_time());
    let audio = synth.synthesize(sentence)?;
    let pcm: Arc<[i16]> = to_i16(&shared.resampler.process(&audio)).into();
    let cpu = thread_cpu_time().saturating_sub(cpu0);
    let st = &shared.stats;
    st.sentences.fetch_add(1, Ordering::Relaxed);
    st.synthesis_us
        .fetch_add(t0.elapsed().as_micros() as u64, Ordering::Relaxed);
    st.synthesis_cpu_us
        .fetch_add(cpu.as_micros() as u64, Ordering::Relaxed);
    st.audio_ms
        .fetch_add(pcm.len() as u64 / 8, Ordering::Relaxed);
    Ok((pcm, cpu))
}
