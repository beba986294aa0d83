//! Public types of a WebSocket bot session: what the call gives, what it gets back, options.

use super::jitter::JitterStats;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The call a session is opened for (the Live Hub start parameters).
#[derive(Debug, Clone, PartialEq)]
pub struct CallInfo {
    /// dialgate's conversation ID (`conversationId`; media-stream `callSid`).
    pub conversation_id: String,
    /// Calling number / user.
    pub caller: String,
    /// Called number / user.
    pub callee: String,
    /// The dialout's metadata (a JSON object; media-stream `customParameters`).
    pub metadata: Value,
}

/// What the bot did, in order. The lead maps these onto the call.
#[derive(Debug, Clone, PartialEq)]
pub enum WsBotEvent {
    /// `activities` from the bot, each as received (typed by the lead's activity parser).
    Activities(Vec<Value>),
    /// `userStream.started`: the bot is ready for the person's audio.
    UserStreamStarted,
    /// `userStream.stopped`.
    UserStreamStopped,
    /// `userStream.speech.started`: the person started speaking (a barge-in signal).
    SpeechStarted,
    /// `userStream.speech.stopped`.
    SpeechStopped,
    /// `userStream.speech.committed`.
    SpeechCommitted,
    /// `userStream.speech.hypothesis` with its `alternatives` (null if absent).
    SpeechHypothesis(Value),
    /// `userStream.speech.recognition` with its `alternatives` (null if absent).
    SpeechRecognition(Value),
    /// `playStream.start`: the bot starts speaking.
    PlayStarted {
        /// The bot's `streamId` (empty if absent).
        stream_id: String,
    },
    /// `playStream.stop`: the bot sent all of a stream's audio (it may still be playing).
    PlayStopped {
        /// The bot's `streamId` (empty if absent).
        stream_id: String,
    },
    /// Media-stream `clear`: the bot dropped its queued audio (already applied to the buffer).
    PlaybackCleared,
    /// The socket dropped; reconnect attempt `attempt` (1-based) follows.
    Reconnecting {
        /// Attempt number.
        attempt: u32,
        /// Why the socket dropped.
        reason: String,
    },
    /// `session.resume` was accepted; the session goes on.
    Resumed,
    /// The bot is gone for good (socket dropped and not resumed, or it closed a media stream):
    /// the lead ends the call `completed/bot-disconnected`.
    Disconnected {
        /// Why.
        reason: String,
    },
}

/// Bounds and knobs of one session. Defaults suit production; tests shorten the timeouts.
#[derive(Debug, Clone)]
pub struct WsBotOptions {
    /// Bound on connecting (TCP + TLS + upgrade) and on waiting for `session.accepted`, each.
    pub handshake_timeout: Duration,
    /// Bound on one socket write; a bot that stops reading is treated as a dropped socket.
    pub write_timeout: Duration,
    /// Reconnect attempts with `session.resume` after the socket drops (AC mode); 0 disables.
    pub resume_attempts: u32,
    /// Wait before the first reconnect; doubled after each failed attempt.
    pub resume_backoff: Duration,
    /// Bot audio held at most, in ms; a bot sending faster than real time beyond this loses the
    /// excess (counted as overflow).
    pub jitter_capacity_ms: u32,
    /// Incoming messages larger than this are dropped (logged, counted); the session goes on.
    pub max_message_bytes: usize,
    /// Person's audio per `userStream.chunk`, in ms (20..=100, multiple of 20).
    pub chunk_ms: u32,
    /// Person's audio buffered while waiting for `userStream.started`, in ms.
    pub pre_start_audio_ms: u32,
    /// `expectAudioMessages` in `session.initiate`.
    pub expect_audio_messages: bool,
    /// TLS client configuration for `wss://`; `None` uses the Web PKI roots.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// Capacity of the command and event channels.
    pub channel_capacity: usize,
    /// Run the session's sockets on dialgate's WebSocket bot I/O threads (`wsbot-io-N`, one
    /// single-threaded runtime each) rather than on the caller's runtime (the default). An
    /// experiment the call benchmark compares: on the loaded development machine it saved no
    /// CPU per frame and fell further behind when the OS preempted a thread (its sessions
    /// cannot move to another worker), so it stays off until measured on a quiet machine.
    pub io_threads: bool,
    /// Once the call has media, hand a `ws://` bot's socket to the media relay thread that
    /// holds the call's RTP sockets, which then reads, paces and writes the audio itself
    /// (`served.rs`; the default). Off: the session's task keeps the socket, as `wss://`
    /// sockets always do.
    pub relay_served: bool,
}

impl WsBotOptions {
    /// [`WsBotOptions::chunk_ms`] as the session uses it: whole 20 ms frames, 20 to 100.
    pub(crate) fn whole_chunk_ms(&self) -> u32 {
        self.chunk_ms.clamp(20, 100) / 20 * 20
    }
}

impl Default for WsBotOptions {
    fn default() -> Self {
        WsBotOptions {
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            resume_attempts: 3,
            resume_backoff: Duration::from_millis(250),
            jitter_capacity_ms: 20_000,
            max_message_bytes: 1 << 20,
            chunk_ms: super::config::DEFAULT_CHUNK_MS,
            pre_start_audio_ms: 1_000,
            expect_audio_messages: true,
            tls: None,
            channel_capacity: 256,
            io_threads: false,
            relay_served: true,
        }
    }
}

/// Counters shared by a session's task and its handle.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub connections: AtomicU64,
    pub reconnects: AtomicU64,
    pub chunks_sent: AtomicU64,
    pub chunks_received: AtomicU64,
    pub bad_frames: AtomicU64,
    pub audio_dropped: AtomicU64,
    pub served: AtomicU64,
}

impl Counters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A frame from the bot that is ignored: counted and logged (whoever read it, the
    /// session's task or the relay thread serving its socket).
    pub fn bad_frame(&self, e: &super::error::FrameError) {
        Self::bump(&self.bad_frames);
        tracing::warn!(error = %e, "ignored a frame from the WebSocket bot");
    }
}

/// A snapshot of one session's counters (for metrics per bot kind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WsBotStats {
    /// Sockets opened (1 + successful reconnects).
    pub connections: u64,
    /// Reconnect attempts.
    pub reconnects: u64,
    /// Audio messages sent to the bot (`userStream.chunk` / `media`).
    pub chunks_sent: u64,
    /// Audio messages received from the bot (`playStream.chunk` / `media`).
    pub chunks_received: u64,
    /// Incoming frames ignored (invalid JSON, bad base64, unknown type, oversized, binary).
    pub bad_frames: u64,
    /// Person's audio frames not sent (channel full, socket down, pre-start buffer full).
    pub audio_dropped: u64,
    /// Sockets handed to the media relay thread to serve (`WsBotOptions::relay_served`).
    pub served: u64,
    /// The playout buffer's counters.
    pub jitter: JitterStats,
}

impl Counters {
    pub fn snapshot(&self, jitter: JitterStats) -> WsBotStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WsBotStats {
            connections: get(&self.connections),
            reconnects: get(&self.reconnects),
            chunks_sent: get(&self.chunks_sent),
            chunks_received: get(&self.chunks_received),
            served: get(&self.served),
            bad_frames: get(&self.bad_frames),
            audio_dropped: get(&self.audio_dropped),
            jitter,
        }
    }
}
