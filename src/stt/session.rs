//! One call leg's recognition session: inline VAD segmentation, jobs to the engine's pool, and
//! the rules that turn speculative recognitions into final results.
//!
//! Latency rule: at a short pause (`pause_ms`) the utterance is recognised speculatively. If the
//! text ends a sentence (`.`, `?`, `!`) it is final once the silence reaches `final_pause_ms`
//! (at once if it already has); otherwise it is held and confirmed at the end-of-speech silence
//! (`end_ms`). Speech resuming before that makes the speculation
//! stale. `latency_ms` = max(decision silence, pause silence + queue + inference), which in
//! real time is the wall time from the last voiced frame to the result.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use super::engine::{SttStats, submit};
use super::filter::DropReason;
use super::segmenter::{SegEvent, Segmenter};
use super::{FRAME_SAMPLES, Recognizer, SttResult, SttSessionConfig};

/// Speculative (at a pause) or final (at end of speech).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobKind {
    Speculative,
    Final,
}

/// A held speculative result.
#[derive(Debug, Clone)]
struct Held {
    text: String,
    confidence: f32,
    ready_latency_ms: u64,
    /// Ends a sentence: deliverable at `final_pause_ms` of silence, before `end_ms`.
    sentence_end: bool,
}

/// Session state shared with the workers.
struct Shared {
    tx: mpsc::Sender<SttResult>,
    stats: Arc<SttStats>,
    cancelled: HashSet<u64>,
    /// generation → audio ms at which end of speech was decided.
    ended: HashMap<u64, u64>,
    held: HashMap<u64, Held>,
    in_flight: HashSet<u64>,
    emitted: HashSet<u64>,
    /// generation → (start_ms, end_ms) of the utterance.
    span: HashMap<u64, (u64, u64)>,
    partials: bool,
    final_pause_ms: u64,
    simulated_clock: bool,
    /// The last final result: generation and text (what a rejoined phrase must not repeat).
    last_final: Option<(u64, String)>,
    /// Final results delivered so far.
    finals: u32,
}

impl Shared {
    fn send(&mut self, r: SttResult) {
        let counter = if r.is_final {
            &self.stats.finals
        } else {
            &self.stats.partials
        };
        match self.tx.try_send(r) {
            Ok(()) => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.dropped_channel.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "stt result dropped: channel full or closed");
            }
        }
    }

    fn emit_final(&mut self, generation: u64, text: String, confidence: f32, latency_ms: u64) {
        let (start_ms, end_ms) = self.span.get(&generation).copied().unwrap_or((0, 0));
        self.emitted.insert(generation);
        self.held.remove(&generation);
        self.last_final = Some((generation, text.clone()));
        self.finals += 1;
        self.send(SttResult {
            text,
            confidence,
            start_ms,
            end_ms,
            is_final: true,
            latency_ms,
        });
    }

    fn forget(&mut self, generation: u64) {
        self.ended.remove(&generation);
        self.held.remove(&generation);
        self.in_flight.remove(&generation);
        self.span.remove(&generation);
    }
}

/// Lock that survives a panicked holder (the data stays consistent enough to go on).
fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A recognition request for the worker pool.
pub(crate) struct Job {
    pub(crate) audio: Vec<i16>,
    pub(crate) language: String,
    /// Nothing was delivered in this session yet: this may be the person's greeting.
    pub(crate) first: bool,
    /// The audio starts with a part of the phrase already delivered as this text: only the
    /// words after it are passed on ([`super::rejoin`]).
    pub(crate) said: Option<String>,
    pub(crate) kind: JobKind,
    generation: u64,
    /// Silence already elapsed after the speech when the job was submitted (audio ms).
    silence_at_submit_ms: u64,
    submitted: Instant,
    shared: Arc<Mutex<Shared>>,
}

impl Job {
    pub(crate) fn is_stale(&self) -> bool {
        let s = lock(&self.shared);
        s.cancelled.contains(&self.generation) || s.emitted.contains(&self.generation)
    }

    /// Called by a worker with the filtered recognition.
    pub(crate) fn complete(self, verdict: Result<(String, f32), DropReason>, is_final_job: bool) {
        let latency = self.silence_at_submit_ms + self.submitted.elapsed().as_millis() as u64;
        let mut s = lock(&self.shared);
        s.in_flight.remove(&self.generation);
        if s.cancelled.contains(&self.generation) || s.emitted.contains(&self.generation) {
            s.stats.stale.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Ok((text, conf)) = verdict else {
            // Junk: nothing to say for this utterance (unless speech resumes: new generation).
            if is_final_job || s.ended.contains_key(&self.generation) {
                s.emitted.insert(self.generation);
                s.forget(self.generation);
            }
            return;
        };
        let sentence_end = text.ends_with(['.', '?', '!']);
        // Silence the delivery rules see: with the evaluation's simulated clock the feed
        // stopped while this ran, so no more audio time has passed than at submission.
        let seen = if s.simulated_clock {
            self.silence_at_submit_ms
        } else {
            latency
        };
        if let Some(decided) = s.ended.get(&self.generation).copied() {
            // A sentence-final speculation would have been delivered at `final_pause_ms`.
            let lat = if sentence_end {
                latency.max(s.final_pause_ms)
            } else {
                latency.max(decided)
            };
            s.emit_final(self.generation, text, conf, lat);
            s.forget(self.generation);
        } else if is_final_job || (sentence_end && seen >= s.final_pause_ms) {
            s.emit_final(self.generation, text, conf, latency);
        } else {
            if s.partials {
                let (start_ms, end_ms) = s.span.get(&self.generation).copied().unwrap_or((0, 0));
                let r = SttResult {
                    text: text.clone(),
                    confidence: conf,
                    start_ms,
                    end_ms,
                    is_final: false,
                    latency_ms: latency,
                };
                s.send(r);
            }
            s.held.insert(
                self.generation,
                Held {
                    text,
                    confidence: conf,
                    ready_latency_ms: latency,
                    sentence_end,
                },
            );
        }
    }
}

/// One call leg's recognition session (see the module docs). Dropping it ends recognition.
pub struct SttSession {
    cfg: SttSessionConfig,
    seg: Segmenter,
    jobs: SyncSender<Job>,
    stats: Arc<SttStats>,
    count: Arc<AtomicUsize>,
    shared: Arc<Mutex<Shared>>,
    rx: Option<mpsc::Receiver<SttResult>>,
    preroll: VecDeque<[i16; FRAME_SAMPLES]>,
    recent_voiced: VecDeque<[i16; FRAME_SAMPLES]>,
    utt: Vec<i16>,
    generation: u64,
    active: bool,
    frames: u64,
    /// End of speech (session ms) while paused inside an utterance.
    paused_since: Option<u64>,
    /// A delivered first part shorter than this (ms of audio) is recognised again with the
    /// rest of its phrase (0 = never): see [`super::rejoin`].
    rejoin_ms: u32,
    /// Text of the delivered first part that `utt` still holds, if rejoined.
    said: Option<String>,
}

impl SttSession {
    pub(crate) fn new(
        cfg: SttSessionConfig,
        jobs: SyncSender<Job>,
        stats: Arc<SttStats>,
        count: Arc<AtomicUsize>,
        rejoin_ms: u32,
    ) -> Self {
        let (tx, rx) = mpsc::channel(cfg.result_capacity.max(1));
        let shared = Shared {
            tx,
            stats: stats.clone(),
            cancelled: HashSet::new(),
            ended: HashMap::new(),
            held: HashMap::new(),
            in_flight: HashSet::new(),
            emitted: HashSet::new(),
            span: HashMap::new(),
            partials: cfg.partials,
            final_pause_ms: u64::from(cfg.segmenter.final_pause_ms),
            simulated_clock: cfg.simulated_clock,
            last_final: None,
            finals: 0,
        };
        Self {
            seg: Segmenter::new(cfg.segmenter.clone()),
            active: cfg.active,
            cfg,
            jobs,
            stats,
            count,
            shared: Arc::new(Mutex::new(shared)),
            rx: Some(rx),
            preroll: VecDeque::new(),
            recent_voiced: VecDeque::new(),
            utt: Vec::new(),
            generation: 0,
            frames: 0,
            paused_since: None,
            rejoin_ms,
            said: None,
        }
    }

    /// The result channel (taken once; `None` afterwards). It closes when the session is
    /// dropped and in-flight recognitions are done.
    pub fn results(&mut self) -> Option<mpsc::Receiver<SttResult>> {
        self.rx.take()
    }

    /// True while recognising (startRecognition / stopRecognition).
    pub fn is_active(&self) -> bool {
        self.active
    }

    fn job(&self, kind: JobKind, silence_ms: u64) -> Job {
        Job {
            audio: self.utt.clone(),
            language: self.cfg.language.clone(),
            first: lock(&self.shared).emitted.is_empty(),
            said: self.said.clone(),
            kind,
            generation: self.generation,
            silence_at_submit_ms: silence_ms,
            submitted: Instant::now(),
            shared: self.shared.clone(),
        }
    }

    fn send_job(&self, kind: JobKind, silence_ms: u64) {
        let job = self.job(kind, silence_ms);
        lock(&self.shared).in_flight.insert(self.generation);
        if !submit(&self.jobs, job, &self.stats) {
            let mut s = lock(&self.shared);
            s.in_flight.remove(&self.generation);
            s.emitted.insert(self.generation);
        }
    }

    /// Delivers a held sentence-final result once the pause is long enough.
    fn check_final_pause(&mut self, now_ms: u64) {
        let Some(end) = self.paused_since else {
            return;
        };
        let silence = now_ms.saturating_sub(end);
        let mut s = lock(&self.shared);
        if silence < s.final_pause_ms {
            return;
        }
        let generation = self.generation;
        if s.held.get(&generation).is_some_and(|h| h.sentence_end)
            && let Some(h) = s.held.remove(&generation)
        {
            s.emit_final(
                generation,
                h.text,
                h.confidence,
                h.ready_latency_ms.max(silence),
            );
        }
    }

    fn on_event(&mut self, ev: SegEvent, now_ms: u64) {
        self.paused_since = match ev {
            SegEvent::Paused { speech_end_ms } => Some(speech_end_ms),
            SegEvent::None => self.paused_since,
            _ => None,
        };
        match ev {
            SegEvent::None => {}
            SegEvent::Started { start_ms } => {
                self.generation += 1;
                self.said = None;
                lock(&self.shared)
                    .span
                    .insert(self.generation, (start_ms, now_ms));
            }
            SegEvent::Paused { speech_end_ms } => {
                let start = self.span_start();
                lock(&self.shared)
                    .span
                    .insert(self.generation, (start, speech_end_ms));
                self.send_job(JobKind::Speculative, now_ms - speech_end_ms);
            }
            SegEvent::Resumed => self.on_resumed(now_ms),
            SegEvent::Ended { speech_end_ms } => self.on_ended(speech_end_ms, now_ms),
            SegEvent::Discarded => {
                let mut s = lock(&self.shared);
                s.cancelled.insert(self.generation);
                s.forget(self.generation);
                drop(s);
                self.utt.clear();
                self.said = None;
            }
        }
    }

    /// Speech resumed before the pause became the end of the utterance: the speculative
    /// recognition of the first part is cancelled; what was already delivered of it is either
    /// kept as context (a short first part of the greeting) or cut off.
    fn on_resumed(&mut self, now_ms: u64) {
        let old = self.generation;
        let start = self.span_start();
        let (already_final, delivered) = {
            let mut s = lock(&self.shared);
            s.cancelled.insert(old);
            let e = s.emitted.contains(&old);
            s.forget(old);
            // Only the session's first words (the greeting) are rejoined, once: a
            // digit string read with pauses ("four … two … seven") rejoined part by
            // part came out as a loop of digits.
            let text = s
                .last_final
                .as_ref()
                .filter(|(g, _)| *g == old && s.finals == 1);
            (e, text.map(|(_, t)| t.clone()))
        };
        self.generation += 1;
        let short = self.utt.len() < self.rejoin_ms as usize * 8 && self.said.is_none();
        if let (true, true, Some(text)) = (already_final, short, delivered) {
            // A short first part ("Hi,") was delivered: keep its audio so the rest is
            // recognised in context; the words already delivered are cut off later.
            self.said = Some(text);
            lock(&self.shared)
                .span
                .insert(self.generation, (start, now_ms));
        } else if already_final {
            self.said = None;
            // The first part was delivered: the rest is a new utterance.
            let keep = (self.cfg.segmenter.pause_ms / 20 + 2) as usize * FRAME_SAMPLES;
            let cut = self.utt.len().saturating_sub(keep);
            self.utt.drain(..cut);
            lock(&self.shared).span.insert(
                self.generation,
                (now_ms.saturating_sub(keep as u64 / 8), now_ms),
            );
        } else {
            lock(&self.shared)
                .span
                .insert(self.generation, (start, now_ms));
        }
    }

    /// The utterance ended: its held or in-flight recognition becomes the final one, or a
    /// final recognition is queued.
    fn on_ended(&mut self, speech_end_ms: u64, now_ms: u64) {
        let generation = self.generation;
        let decided = now_ms - speech_end_ms;
        let start = self.span_start();
        let mut s = lock(&self.shared);
        s.span.insert(generation, (start, speech_end_ms));
        if s.emitted.contains(&generation) {
            s.forget(generation);
        } else if let Some(h) = s.held.remove(&generation) {
            s.emit_final(
                generation,
                h.text,
                h.confidence,
                h.ready_latency_ms.max(decided),
            );
            s.forget(generation);
        } else if s.in_flight.contains(&generation) {
            s.ended.insert(generation, decided);
        } else {
            drop(s);
            self.send_job(JobKind::Final, decided);
        }
        self.utt.clear();
        self.said = None;
    }

    fn span_start(&self) -> u64 {
        lock(&self.shared)
            .span
            .get(&self.generation)
            .map(|x| x.0)
            .unwrap_or(0)
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;

impl Recognizer for SttSession {
    fn push_frame(&mut self, frame: &[i16]) {
        self.frames += 1;
        if !self.active {
            return;
        }
        let mut f = [0i16; FRAME_SAMPLES];
        let n = frame.len().min(FRAME_SAMPLES);
        f[..n].copy_from_slice(&frame[..n]);
        let was_in_speech = self.seg.in_speech();
        let ev = self.seg.push(&f);
        let now_ms = self.frames * 20;
        // The segmenter only sees active frames; shift its times onto the session's clock.
        let off = (self.frames - self.seg.frames()) * 20;
        let ev = match ev {
            SegEvent::Started { start_ms } => SegEvent::Started {
                start_ms: start_ms + off,
            },
            SegEvent::Paused { speech_end_ms } => SegEvent::Paused {
                speech_end_ms: speech_end_ms + off,
            },
            SegEvent::Ended { speech_end_ms } => SegEvent::Ended {
                speech_end_ms: speech_end_ms + off,
            },
            other => other,
        };
        if let SegEvent::Started { .. } = ev {
            // Pre-roll, then the voiced frames that started the utterance.
            self.utt.clear();
            for p in self.preroll.iter().chain(self.recent_voiced.iter()) {
                self.utt.extend_from_slice(p);
            }
            self.utt.extend_from_slice(&f);
            self.preroll.clear();
            self.recent_voiced.clear();
        } else if was_in_speech {
            self.utt.extend_from_slice(&f);
        } else {
            // Outside speech: keep a pre-roll ring; candidate voiced frames are kept apart so
            // they are not lost when speech starts.
            self.recent_voiced.push_back(f);
            while self.recent_voiced.len() >= self.seg.start_frames() {
                if let Some(old) = self.recent_voiced.pop_front() {
                    self.preroll.push_back(old);
                }
            }
            while self.preroll.len() > self.seg.preroll_frames() {
                self.preroll.pop_front();
            }
        }
        self.on_event(ev, now_ms);
        self.check_final_pause(now_ms);
    }

    fn set_active(&mut self, active: bool) {
        if self.active && !active {
            let mut s = lock(&self.shared);
            s.cancelled.insert(self.generation);
            let g = self.generation;
            s.forget(g);
            drop(s);
            self.seg.reset();
            self.utt.clear();
            self.said = None;
            self.generation += 1;
        }
        self.active = active;
    }

    fn try_result(&mut self) -> Option<SttResult> {
        self.rx.as_mut().and_then(|rx| rx.try_recv().ok())
    }
}

impl Drop for SttSession {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}
