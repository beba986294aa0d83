//! The audio of one utterance as it becomes available, sentence by sentence.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::TtsError;

/// One sentence's audio, 8 kHz mono.
#[derive(Debug, Clone)]
pub struct SpeechChunk {
    /// Position of the sentence in the utterance (0-based).
    pub index: usize,
    /// The sentence, normalised, as spoken.
    pub text: String,
    /// 8 kHz samples.
    pub pcm: Arc<[i16]>,
    /// Served from the cache.
    pub cached: bool,
    /// Time from `speak` to this chunk being ready.
    pub ready_after: Duration,
    /// CPU time the worker thread spent synthesising it (zero when cached): what it takes on an
    /// idle core, whatever else the machine is doing.
    pub cpu: Duration,
}

/// What [`SpeechStream::try_next`] found.
#[derive(Debug)]
pub enum TryNext {
    /// The next sentence's audio.
    Chunk(SpeechChunk),
    /// Synthesis failed; the utterance ends here.
    Failed(TtsError),
    /// Not synthesised yet.
    Pending,
    /// Every sentence has been delivered.
    Done,
}

/// Receives an utterance's sentences in order. Dropping it (or [`SpeechStream::cancel`]) stops
/// the synthesis of sentences not yet started.
#[derive(Debug)]
pub struct SpeechStream {
    rx: mpsc::Receiver<Result<SpeechChunk, TtsError>>,
    cancel: Arc<AtomicBool>,
    sentences: usize,
    started: Instant,
}

/// The worker's side of a stream.
#[derive(Debug, Clone)]
pub(crate) struct StreamSender {
    tx: mpsc::Sender<Result<SpeechChunk, TtsError>>,
    cancel: Arc<AtomicBool>,
    started: Instant,
}

impl StreamSender {
    /// True when the listener is gone or cancelled: stop working for it.
    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.tx.is_closed()
    }
    /// Deliver a chunk (never blocks: the channel holds every sentence of the utterance).
    pub(crate) fn send(&self, chunk: Result<SpeechChunk, TtsError>) -> bool {
        self.tx.try_send(chunk).is_ok()
    }
    /// Time since `speak`.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// A stream for `sentences` sentences and its sender.
pub(crate) fn channel(sentences: usize, started: Instant) -> (StreamSender, SpeechStream) {
    let (tx, rx) = mpsc::channel(sentences.max(1) + 1);
    let cancel = Arc::new(AtomicBool::new(false));
    (
        StreamSender {
            tx,
            cancel: cancel.clone(),
            started,
        },
        SpeechStream {
            rx,
            cancel,
            sentences,
            started,
        },
    )
}

impl SpeechStream {
    /// Number of sentences in the utterance.
    pub fn sentences(&self) -> usize {
        self.sentences
    }

    /// When `speak` was called.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The next sentence's audio (async); `None` when all were delivered.
    pub async fn next(&mut self) -> Option<Result<SpeechChunk, TtsError>> {
        self.rx.recv().await
    }

    /// The next sentence's audio if it is ready (never waits).
    pub fn try_next(&mut self) -> TryNext {
        match self.rx.try_recv() {
            Ok(Ok(c)) => TryNext::Chunk(c),
            Ok(Err(e)) => TryNext::Failed(e),
            Err(mpsc::error::TryRecvError::Empty) => TryNext::Pending,
            Err(mpsc::error::TryRecvError::Disconnected) => TryNext::Done,
        }
    }

    /// The next sentence's audio, waiting at most `timeout` (for threads outside the runtime).
    pub fn next_blocking(&mut self, timeout: Duration) -> TryNext {
        let deadline = Instant::now() + timeout;
        loop {
            match self.try_next() {
                TryNext::Pending if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                other => return other,
            }
        }
    }

    /// Stop synthesising what has not started yet.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

impl Drop for SpeechStream {
    fn drop(&mut self) {
        self.cancel();
    }
}
