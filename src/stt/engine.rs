//! The shared engine: the model (loaded once), a bounded job queue and a fixed pool of worker
//! threads, so recognition never runs on (or blocks) the relay and never takes more than the
//! configured cores.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::filter::{DropReason, Evidence, Limits, judge, voiced_ms};
use super::session::{Job, JobKind, SttSession};
use super::whisper::WhisperModel;
use super::{SttEngineConfig, SttError, SttSessionConfig};

/// Whether recognition is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SttStatus {
    /// Model loaded.
    Ready {
        /// Model kind, e.g. `tiny.en`.
        model: String,
        /// Load time in ms.
        load_ms: u64,
    },
    /// No recognition: calls go on without it.
    Unavailable {
        /// Why (missing model file, load failure).
        reason: String,
    },
}

/// Counters (monotonic) for logs and metrics.
#[derive(Debug, Default)]
pub struct SttStats {
    /// Sessions opened.
    pub sessions_started: AtomicU64,
    /// Sessions refused at capacity.
    pub sessions_refused: AtomicU64,
    /// Recognition jobs refused because the queue was full.
    pub jobs_refused: AtomicU64,
    /// Recognition jobs queued.
    pub jobs_submitted: AtomicU64,
    /// Queued jobs a worker has finished with (recognised, or skipped as stale).
    pub jobs_done: AtomicU64,
    /// Recognitions run.
    pub recognitions: AtomicU64,
    /// Speculative recognitions made stale by resumed speech.
    pub stale: AtomicU64,
    /// Final results delivered.
    pub finals: AtomicU64,
    /// Partial results delivered.
    pub partials: AtomicU64,
    /// Recognitions dropped as junk (empty/no-speech/low confidence/hallucination).
    pub dropped_junk: AtomicU64,
    /// Results lost because the session's channel was full or closed.
    pub dropped_channel: AtomicU64,
    /// Total inference time, ms.
    pub inference_ms: AtomicU64,
    /// Total audio recognised, ms.
    pub audio_ms: AtomicU64,
}

pub(crate) struct Inner {
    pub(crate) cfg: SttEngineConfig,
    pub(crate) status: SttStatus,
    pub(crate) jobs: Option<SyncSender<Job>>,
    pub(crate) stats: Arc<SttStats>,
    pub(crate) sessions: Arc<AtomicUsize>,
}

/// The shared speech-recognition engine (cheap to clone).
#[derive(Clone)]
pub struct SttEngine {
    pub(crate) inner: Arc<Inner>,
}

impl SttEngine {
    /// Load the model and start the workers. A missing or broken model gives an engine whose
    /// status is `Unavailable` (never an error): calls work without recognition.
    pub fn new(cfg: SttEngineConfig) -> Self {
        let path = cfg.model_file();
        let t0 = Instant::now();
        let stats = Arc::new(SttStats::default());
        let (status, jobs) = match WhisperModel::load(&path) {
            Ok(model) => {
                let load_ms = t0.elapsed().as_millis() as u64;
                let name = model.name.clone();
                match start_workers(Arc::new(model), &cfg, stats.clone()) {
                    Ok(tx) => {
                        tracing::info!(model = %name, load_ms, path = %path.display(), "stt ready");
                        (
                            SttStatus::Ready {
                                model: name,
                                load_ms,
                            },
                            Some(tx),
                        )
                    }
                    Err(e) => (
                        SttStatus::Unavailable {
                            reason: e.to_string(),
                        },
                        None,
                    ),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "stt unavailable");
                (
                    SttStatus::Unavailable {
                        reason: e.to_string(),
                    },
                    None,
                )
            }
        };
        Self {
            inner: Arc::new(Inner {
                cfg,
                status,
                jobs,
                stats,
                sessions: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// Ready or unavailable (with the reason).
    pub fn status(&self) -> SttStatus {
        self.inner.status.clone()
    }

    /// Counters.
    pub fn stats(&self) -> &SttStats {
        &self.inner.stats
    }

    /// The engine configuration.
    pub fn config(&self) -> &SttEngineConfig {
        &self.inner.cfg
    }

    /// Open a recognition session for one call leg. Errors: `Unavailable` (no model) and
    /// `Capacity` (counted, logged); neither is fatal for the call.
    pub fn session(&self, cfg: SttSessionConfig) -> Result<SttSession, SttError> {
        let Some(jobs) = self.inner.jobs.clone() else {
            let reason = match &self.inner.status {
                SttStatus::Unavailable { reason } => reason.clone(),
                SttStatus::Ready { .. } => "no workers".into(),
            };
            return Err(SttError::Unavailable(reason));
        };
        let max = self.inner.cfg.max_sessions;
        let prev = self.inner.sessions.fetch_add(1, Ordering::SeqCst);
        if prev >= max {
            self.inner.sessions.fetch_sub(1, Ordering::SeqCst);
            self.inner
                .stats
                .sessions_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(max, "stt session refused: at capacity");
            return Err(SttError::Capacity(max));
        }
        self.inner
            .stats
            .sessions_started
            .fetch_add(1, Ordering::Relaxed);
        Ok(SttSession::new(
            cfg,
            jobs,
            self.inner.stats.clone(),
            self.inner.sessions.clone(),
            self.inner.cfg.rejoin_ms,
        ))
    }
}

fn start_workers(
    model: Arc<WhisperModel>,
    cfg: &SttEngineConfig,
    stats: Arc<SttStats>,
) -> Result<SyncSender<Job>, SttError> {
    let (tx, rx) = sync_channel::<Job>(cfg.queue_bound.max(1));
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..cfg.workers.max(1) {
        let mut state = model.state()?;
        let (model, rx, stats, cfg) = (model.clone(), rx.clone(), stats.clone(), cfg.clone());
        std::thread::Builder::new()
            .name(format!("stt-worker-{i}"))
            .spawn(move || worker(model, &mut state, rx, stats, cfg))
            .map_err(|e| SttError::Engine(format!("spawn worker: {e}")))?;
    }
    Ok(tx)
}

fn next_job(rx: &Mutex<Receiver<Job>>) -> Option<Job> {
    // A poisoned lock only means another worker panicked; the receiver is still fine.
    let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
    guard.recv().ok()
}

fn worker(
    model: Arc<WhisperModel>,
    state: &mut whisper_rs::WhisperState,
    rx: Arc<Mutex<Receiver<Job>>>,
    stats: Arc<SttStats>,
    cfg: SttEngineConfig,
) {
    // Ends when every sender (engine + sessions) is gone.
    while let Some(job) = next_job(&rx) {
        if job.is_stale() {
            stats.stale.fetch_add(1, Ordering::Relaxed);
            stats.jobs_done.fetch_add(1, Ordering::Release);
            continue;
        }
        let audio = cfg.resampler.upsample(&job.audio);
        let t0 = Instant::now();
        let res = model.transcribe(state, &audio, &job.language, job.first, &cfg);
        let took = t0.elapsed().as_millis() as u64;
        stats.recognitions.fetch_add(1, Ordering::Relaxed);
        stats.inference_ms.fetch_add(took, Ordering::Relaxed);
        stats
            .audio_ms
            .fetch_add(job.audio.len() as u64 / 8, Ordering::Relaxed);
        let verdict = match res {
            Ok(t) => {
                let evidence = Evidence {
                    confidence: t.confidence,
                    no_speech: t.no_speech,
                    voiced_ms: voiced_ms(&job.audio),
                    audio_secs: job.audio.len() as f32 / 8000.0,
                };
                let limits = Limits {
                    min_confidence: cfg.min_confidence,
                    max_no_speech: cfg.max_no_speech,
                };
                // A loop of one word is cut to the bursts of voice the audio holds, before the
                // filter (which would otherwise take "Hello, hello?" looped for one "Hello?").
                let text = super::copies::trim_copies_beyond_voice(
                    &super::filter::strip_tags(&t.text),
                    super::copies::voiced_runs(&job.audio),
                );
                let v = judge(&text, evidence, limits);
                // A rejoined phrase: pass on only what follows the part already delivered.
                let v = match &job.said {
                    Some(said) => v.and_then(|text| {
                        super::rejoin::after_said(&text, said).ok_or(DropReason::Empty)
                    }),
                    None => v,
                };
                if std::env::var_os("STT_DEBUG").is_some() {
                    eprintln!(
                        "DBG {:?} conf={} ns={} voiced={} secs={} {:?} kind={:?}",
                        t.text,
                        t.confidence,
                        t.no_speech,
                        evidence.voiced_ms,
                        evidence.audio_secs,
                        v,
                        job.kind
                    );
                }
                tracing::debug!(text = %t.text, conf = t.confidence, no_speech = t.no_speech, ?v, took, "stt recognised");
                v.map(|text| (text, t.confidence))
            }
            Err(e) => {
                tracing::warn!(error = %e, "stt recognition failed");
                Err(DropReason::Empty)
            }
        };
        if verdict.is_err() {
            stats.dropped_junk.fetch_add(1, Ordering::Relaxed);
        }
        let is_final = matches!(job.kind, JobKind::Final);
        job.complete(verdict, is_final);
        stats.jobs_done.fetch_add(1, Ordering::Release);
    }
}

/// Try to queue a job; a full queue refuses it (counted and logged, never silent).
pub(crate) fn submit(tx: &SyncSender<Job>, job: Job, stats: &SttStats) -> bool {
    match tx.try_send(job) {
        Ok(()) => {
            stats.jobs_submitted.fetch_add(1, Ordering::Release);
            true
        }
        Err(TrySendError::Full(_)) => {
            stats.jobs_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("stt job refused: recognition queue full");
            false
        }
        Err(TrySendError::Disconnected(_)) => {
            stats.jobs_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("stt job refused: workers gone");
            false
        }
    }
}
