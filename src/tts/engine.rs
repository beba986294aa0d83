//! The shared synthesis engine: the voice (loaded once), its worker pool and the sentence cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use serde_json::json;

use super::cache::AudioCache;
use super::piper::PiperVoice;
use super::pool::{self, Job, Shared};
use super::resample::Resampler;
use super::sentences::{split_first, split_sentences};
use super::stream::{SpeechChunk, SpeechStream, channel};
use super::{OUTPUT_RATE, TtsConfig, TtsError, Voice, normalize};

/// Whether synthesis is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TtsStatus {
    /// Voice loaded, workers running.
    Ready {
        /// Voice name.
        voice: String,
        /// The voice's native rate, Hz (output is always 8 kHz).
        sample_rate: u32,
        /// Time to load the voice and open every worker's session, ms.
        load_ms: u64,
    },
    /// No synthesis: text bots cannot speak.
    Unavailable {
        /// What is missing and what to run.
        reason: String,
    },
}

/// Counters (monotonic unless noted) for the status endpoint and metrics.
#[derive(Debug, Default)]
pub struct TtsStats {
    /// Utterances accepted by `speak`.
    pub utterances: AtomicU64,
    /// Utterances refused because the queue was full.
    pub jobs_refused: AtomicU64,
    /// Jobs waiting for a worker (gauge).
    pub queued: AtomicU64,
    /// Sentences synthesised (cache misses).
    pub sentences: AtomicU64,
    /// Sentences that failed.
    pub failures: AtomicU64,
    /// Jobs stopped early because their listener cancelled.
    pub cancelled: AtomicU64,
    /// Total synthesis time (phonemes + model + resampling), µs.
    pub synthesis_us: AtomicU64,
    /// Total CPU time of the synthesis threads for it, µs.
    pub synthesis_cpu_us: AtomicU64,
    /// Total audio synthesised, ms.
    pub audio_ms: AtomicU64,
}

struct Inner {
    cfg: TtsConfig,
    status: TtsStatus,
    jobs: Option<SyncSender<Job>>,
    cache: Arc<AudioCache>,
    stats: Arc<TtsStats>,
}

/// The shared speech-synthesis engine (cheap to clone).
#[derive(Clone)]
pub struct TtsEngine {
    inner: Arc<Inner>,
}

/// A worker's synthesiser, run once: the model's first run allocates and is several times
/// slower than the next, which must not be a caller's first sentence. Also proves it works.
fn warmed_up(voice: &dyn Voice) -> Result<Box<dyn super::Synthesizer>, TtsError> {
    let mut synth = voice.synthesizer()?;
    synth.synthesize("Hello.")?;
    Ok(synth)
}

impl TtsEngine {
    /// Load the configured Piper voice and start the workers. A missing or broken installation
    /// gives an engine whose status is `Unavailable` with the reason (never an error). Blocks
    /// while the model loads (seconds): call it at startup or in `spawn_blocking`.
    pub fn new(cfg: TtsConfig) -> TtsEngine {
        let t0 = Instant::now();
        match PiperVoice::load(&cfg) {
            Ok(voice) => Self::with_voice(cfg, Arc::new(voice), t0),
            Err(e) => Self::unavailable(cfg, e),
        }
    }

    /// An engine around any [`Voice`] (another engine or voice; tests).
    pub fn with_voice(cfg: TtsConfig, voice: Arc<dyn Voice>, t0: Instant) -> TtsEngine {
        let stats = Arc::new(TtsStats::default());
        let cache = Arc::new(AudioCache::new(cfg.cache_bytes));
        let synths: Result<Vec<_>, _> = (0..cfg.workers.max(1))
            .map(|_| warmed_up(voice.as_ref()))
            .collect();
        let shared = Arc::new(Shared {
            cache: cache.clone(),
            stats: stats.clone(),
            resampler: Resampler::new(voice.sample_rate(), OUTPUT_RATE),
        });
        let jobs = synths.and_then(|s| pool::start(s, cfg.queue_bound, shared));
        match jobs {
            Ok(tx) => {
                let load_ms = t0.elapsed().as_millis() as u64;
                tracing::info!(
                    voice = voice.name(),
                    load_ms,
                    workers = cfg.workers,
                    "tts ready"
                );
                TtsEngine {
                    inner: Arc::new(Inner {
                        status: TtsStatus::Ready {
                            voice: voice.name().to_owned(),
                            sample_rate: voice.sample_rate(),
                            load_ms,
                        },
                        cfg,
                        jobs: Some(tx),
                        cache,
                        stats,
                    }),
                }
            }
            Err(e) => Self::unavailable(cfg, e),
        }
    }

    /// An engine that cannot speak, saying why (`TtsStatus::Unavailable`).
    pub(crate) fn unavailable(cfg: TtsConfig, e: TtsError) -> TtsEngine {
        let reason = match e {
            TtsError::Unavailable(r) => r,
            other => other.to_string(),
        };
        tracing::warn!(%reason, "tts unavailable");
        TtsEngine {
            inner: Arc::new(Inner {
                status: TtsStatus::Unavailable { reason },
                cache: Arc::new(AudioCache::new(0)),
                cfg,
                jobs: None,
                stats: Arc::new(TtsStats::default()),
            }),
        }
    }

    /// For `dialgate check`: is everything a text bot needs installed? Checks the voice files,
    /// ONNX Runtime and espeak-ng without starting workers. The error names what to run.
    pub fn check(cfg: &TtsConfig) -> Result<String, TtsError> {
        let voice = PiperVoice::load(cfg)?;
        Ok(format!(
            "speech synthesis: voice {} ({} Hz), ONNX Runtime {}",
            voice.name(),
            voice.sample_rate(),
            cfg.runtime_file().display()
        ))
    }

    /// Ready or unavailable (with the reason).
    pub fn status(&self) -> TtsStatus {
        self.inner.status.clone()
    }

    /// The engine's state for `GET /api/v1/status` (`synthesis` field).
    pub fn status_json(&self) -> serde_json::Value {
        let st = &self.inner.stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        match &self.inner.status {
            TtsStatus::Unavailable { reason } => json!({"available": false, "reason": reason}),
            TtsStatus::Ready {
                voice,
                sample_rate,
                load_ms,
            } => {
                let (entries, bytes, hits, misses) = self.inner.cache.usage();
                json!({
                    "available": true,
                    "engine": "piper",
                    "voice": voice,
                    "voiceSampleRate": sample_rate,
                    "loadMs": load_ms,
                    "workers": self.inner.cfg.workers.max(1),
                    "queued": load(&st.queued),
                    "queueBound": self.inner.cfg.queue_bound,
                    "utterances": load(&st.utterances),
                    "jobsRefused": load(&st.jobs_refused),
                    "sentences": load(&st.sentences),
                    "failures": load(&st.failures),
                    "cache": {"entries": entries, "bytes": bytes, "hits": hits, "misses": misses},
                })
            }
        }
    }

    /// Counters.
    pub fn stats(&self) -> &TtsStats {
        &self.inner.stats
    }

    /// The configuration.
    pub fn config(&self) -> &TtsConfig {
        &self.inner.cfg
    }

    /// Speak `text`: normalised, cut into sentences, synthesised in order on the pool; the
    /// stream yields each sentence's 8 kHz audio as soon as it is ready (cached sentences at
    /// once). Never blocks. Errors: `Unavailable`, `Empty` (nothing to say), `Capacity`
    /// (queue full, counted).
    pub fn speak(&self, text: &str) -> Result<SpeechStream, TtsError> {
        let started = Instant::now();
        let Some(jobs) = &self.inner.jobs else {
            return Err(self.unavailable_error());
        };
        let mut sentences = split_sentences(&normalize(text));
        if sentences.is_empty() {
            return Err(TtsError::Empty);
        }
        if let Some((head, tail)) = split_first(&sentences[0], self.inner.cfg.first_piece_words) {
            sentences.splice(0..1, [head, tail]);
        }
        let (out, stream) = channel(sentences.len(), started);
        let mut rest = sentences.into_iter().enumerate().peekable();
        // Leading sentences already in the cache are delivered now, without the queue.
        while let Some(pcm) = rest.peek().and_then(|(_, s)| self.inner.cache.get(s)) {
            let Some((index, text)) = rest.next() else {
                break;
            };
            out.send(Ok(SpeechChunk {
                index,
                text,
                pcm,
                cached: true,
                ready_after: started.elapsed(),
                cpu: std::time::Duration::ZERO,
            }));
        }
        let rest: Vec<(usize, String)> = rest.collect();
        if !rest.is_empty() {
            let job = Job {
                sentences: rest,
                out,
            };
            pool::submit(jobs, job, &self.inner.stats, self.inner.cfg.queue_bound)?;
        }
        self.inner.stats.utterances.fetch_add(1, Ordering::Relaxed);
        Ok(stream)
    }

    fn unavailable_error(&self) -> TtsError {
        match &self.inner.status {
            TtsStatus::Unavailable { reason } => TtsError::Unavailable(reason.clone()),
            TtsStatus::Ready { .. } => TtsError::Unavailable("no synthesis workers".into()),
        }
    }
}
