//! The player: dialgate's own media endpoint for a call's bot side when dialgate itself is the
//! bot (text bots). One UDP socket sends paced RTP — G.711 in the negotiated law, 20 ms frames,
//! never faster than real time, continuous sequence numbers and timestamps, silence between
//! prompts — to the relay's bot-side port. Prompts (synthesised speech or 8 kHz PCM, e.g. from
//! a WAV file) play in order; [`Player::abort`] cuts the current one and the queue; events say
//! when each starts and finishes and when the queue has drained.
//!
//! ```no_run
//! # async fn demo(engine: dialgate::tts::TtsEngine, relay_bot_port: std::net::SocketAddr) {
//! use dialgate::tts::{Player, PlayerConfig, Prompt};
//! let mut player = Player::start(PlayerConfig::new(relay_bot_port)).await.unwrap();
//! let mut events = player.take_events().unwrap();
//! let id = player.enqueue(Prompt::speech(engine.speak("Hi there!").unwrap())).unwrap();
//! while let Some(ev) = events.recv().await { /* PromptStarted, PromptFinished, QueueDrained */ }
//! # }
//! ```

mod core;

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use self::core::{
    FRAME, PlayerCore, PlayerCounters, PlayerError, PlayerEvent, PromptId, PromptSource,
};
use super::resample::{Resampler, to_i16};
use super::stream::SpeechStream;
use super::{OUTPUT_RATE, TtsEngine, TtsError};
use crate::media::AudioCodec;

/// Something to play.
#[derive(Debug)]
pub struct Prompt(PromptSource);

impl Prompt {
    /// Synthesised speech (from [`TtsEngine::speak`]); plays as its sentences arrive.
    pub fn speech(stream: SpeechStream) -> Prompt {
        Prompt(PromptSource::Speech(stream))
    }

    /// Key presses toward the person (`sendDtmf`): RFC 4733 telephone-events with the timing
    /// of [`crate::media::inject::dtmf_frames`]; a bad digit string is refused.
    pub fn dtmf(digits: &str) -> Result<Prompt, crate::media::inject::DtmfError> {
        let steps = crate::media::inject::dtmf_plan(digits)?;
        Ok(Prompt(PromptSource::Dtmf(
            crate::media::inject::dtmf_frames(&steps).into(),
        )))
    }

    /// 8 kHz mono PCM that arrives later (a `playUrl` being fetched): the prompt keeps its place
    /// in the queue; an `Err` ends it with that reason (`PromptFinished { error }`).
    pub fn later(rx: tokio::sync::oneshot::Receiver<Result<Arc<[i16]>, String>>) -> Prompt {
        Prompt(PromptSource::Later(rx))
    }

    /// 8 kHz mono PCM.
    pub fn pcm(samples: impl Into<Arc<[i16]>>) -> Prompt {
        Prompt(PromptSource::Pcm(samples.into()))
    }

    /// A WAV file (16-bit PCM, any rate, mono or stereo: mixed down and resampled to 8 kHz).
    pub fn from_wav(path: &Path) -> Result<Prompt, TtsError> {
        let bad =
            |e: &dyn std::fmt::Display| TtsError::BadAudio(format!("{}: {e}", path.display()));
        let reader = hound::WavReader::open(path).map_err(|e| bad(&e))?;
        Self::from_reader(reader).map_err(|e| bad(&e))
    }

    /// A WAV file's bytes (as fetched for `playUrl`), read as [`Prompt::from_wav`] reads a file.
    pub fn from_wav_bytes(bytes: &[u8]) -> Result<Prompt, TtsError> {
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
            .map_err(|e| TtsError::BadAudio(format!("not a WAV file: {e}")))?;
        Self::from_reader(reader).map_err(|e| TtsError::BadAudio(e.to_string()))
    }

    fn from_reader<R: std::io::Read>(reader: hound::WavReader<R>) -> Result<Prompt, String> {
        let bad = |e: &dyn std::fmt::Display| e.to_string();
        let spec = reader.spec();
        if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
            return Err(bad(&"only 16-bit PCM WAV files are played"));
        }
        let channels = usize::from(spec.channels.max(1));
        let samples: Vec<i16> = reader
            .into_samples::<i16>()
            .collect::<Result<_, _>>()
            .map_err(|e| bad(&e))?;
        let mono: Vec<f32> = samples
            .chunks(channels)
            .map(|c| c.iter().map(|s| f32::from(*s) / 32768.0).sum::<f32>() / c.len() as f32)
            .collect();
        let pcm = to_i16(&Resampler::new(spec.sample_rate, OUTPUT_RATE).process(&mono));
        Ok(Prompt::pcm(pcm))
    }
}

/// How a player is set up.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// Where the RTP goes (the relay's bot-side port).
    pub remote: SocketAddr,
    /// Local address to bind (port 0 = any free port). Default 127.0.0.1:0.
    pub bind: SocketAddr,
    /// Negotiated codec. Default PCMU.
    pub codec: AudioCodec,
    /// Send silence frames between prompts (keeps the stream and the relay's inactivity timer
    /// alive). Default true.
    pub silence_between_prompts: bool,
    /// Prompts that may wait in the queue. Default 32.
    pub max_queued: usize,
    /// For the logs: the call's conversation ID.
    pub conversation_id: Option<String>,
}

impl PlayerConfig {
    /// Defaults, sending to `remote`.
    pub fn new(remote: SocketAddr) -> PlayerConfig {
        PlayerConfig {
            remote,
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            codec: AudioCodec::PCMU,
            silence_between_prompts: true,
            max_queued: 32,
            conversation_id: None,
        }
    }
}

enum Command {
    Enqueue(PromptId, PromptSource),
    Abort,
    SetRemote(SocketAddr),
    SetCodec(AudioCodec),
}

/// A running player (one per call). Dropping it stops the sending task.
pub struct Player {
    commands: mpsc::Sender<Command>,
    events: Option<mpsc::Receiver<PlayerEvent>>,
    local: SocketAddr,
    next_id: AtomicU64,
    task: JoinHandle<PlayerCounters>,
    /// Cancelled when the player is dropped: stops the task even while it holds events for a
    /// reader that does not read (it takes no command then, so it would not see the drop).
    _dropped: tokio_util::sync::DropGuard,
}

/// Commands that may wait for the sending task (it takes them every 20 ms).
const COMMAND_BOUND: usize = 64;

impl Player {
    /// Events that may wait for the reader (the call's actor, which takes them at once). A
    /// prompt makes at most three (started, finished, queue drained), so this holds the events
    /// of every command the command queue can hold; beyond it they wait in the task (see `run`).
    pub const EVENT_BOUND: usize = 3 * COMMAND_BOUND;

    /// Bind the socket and start sending (silence until a prompt is queued, if configured).
    pub async fn start(cfg: PlayerConfig) -> Result<Player, PlayerError> {
        let socket = UdpSocket::bind(cfg.bind)
            .await
            .map_err(|e| PlayerError::Socket(format!("bind {}: {e}", cfg.bind)))?;
        let local = socket
            .local_addr()
            .map_err(|e| PlayerError::Socket(e.to_string()))?;
        let identity = (rand::random(), rand::random(), rand::random());
        let core = PlayerCore::new(
            tokio::time::Instant::now().into_std(),
            cfg.codec,
            identity,
            cfg.silence_between_prompts,
            cfg.max_queued,
        );
        let (commands, rx) = mpsc::channel(COMMAND_BOUND);
        let (ev_tx, events) = mpsc::channel(Self::EVENT_BOUND);
        let span = tracing::info_span!("tts_player", conversation_id = cfg.conversation_id.as_deref().unwrap_or(""), %local);
        let dropped = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(
            run(core, socket, cfg.remote, rx, ev_tx, dropped.clone()).instrument(span),
        );
        Ok(Player {
            commands,
            events: Some(events),
            local,
            next_id: AtomicU64::new(1),
            task,
            _dropped: dropped.drop_guard(),
        })
    }

    /// The socket's address (what the relay should expect the bot's RTP from).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The event receiver (once). Read it: while [`Player::EVENT_BOUND`] events wait unread the player
    /// takes no command (enqueues then fail with [`PlayerError::QueueFull`]); audio goes on.
    pub fn take_events(&mut self) -> Option<mpsc::Receiver<PlayerEvent>> {
        self.events.take()
    }

    fn send(&self, c: Command) -> Result<(), PlayerError> {
        self.commands.try_send(c).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PlayerError::QueueFull(COMMAND_BOUND),
            mpsc::error::TrySendError::Closed(_) => PlayerError::Stopped,
        })
    }

    /// Queue a prompt; it plays after those queued before it. A full queue is reported in the
    /// prompt's `PromptFinished` with an error (the id is valid either way).
    pub fn enqueue(&self, prompt: Prompt) -> Result<PromptId, PlayerError> {
        let id = PromptId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.send(Command::Enqueue(id, prompt.0))?;
        Ok(id)
    }

    /// Speak `text` with `engine` (synthesis starts now, playback when the queue reaches it).
    pub fn say(&self, engine: &TtsEngine, text: &str) -> Result<PromptId, SayError> {
        let stream = engine.speak(text)?;
        Ok(self.enqueue(Prompt::speech(stream))?)
    }

    /// Cut the current prompt and everything queued.
    pub fn abort(&self) -> Result<(), PlayerError> {
        self.send(Command::Abort)
    }

    /// Send to another address from now on (re-negotiated media).
    pub fn set_remote(&self, remote: SocketAddr) -> Result<(), PlayerError> {
        self.send(Command::SetRemote(remote))
    }

    /// Change the codec (re-negotiated media); sequence and timing continue.
    pub fn set_codec(&self, codec: AudioCodec) -> Result<(), PlayerError> {
        self.send(Command::SetCodec(codec))
    }

    /// Stop sending; returns the counters.
    pub async fn stop(self) -> PlayerCounters {
        let Player { commands, task, .. } = self;
        drop(commands);
        task.await.unwrap_or_default()
    }
}

/// Why [`Player::say`] failed.
#[derive(Debug, thiserror::Error)]
pub enum SayError {
    /// Synthesis refused the text (unavailable, capacity, nothing to say).
    #[error(transparent)]
    Tts(#[from] TtsError),
    /// The player refused the prompt.
    #[error(transparent)]
    Player(#[from] PlayerError),
}

/// The sending task: sleep until the core's deadline, send what it gives, apply commands,
/// forward events; ends when every handle is dropped.
///
/// Events are never dropped (the call's machine waits for `PromptFinished`) and the sending
/// never waits for the event reader (RTP must keep its 20 ms pace). So an event that does not
/// fit the channel waits in `backlog`, and no command is taken while anything waits there: a
/// reader that stops reading makes the handle's commands fail with `QueueFull` (the prompt's
/// owner is told) instead of growing a queue. The backlog itself is bounded by what the
/// queued prompts can still emit (start, finish and drained per prompt, at most `max_queued`
/// prompts plus the one playing).
async fn run(
    mut core: PlayerCore,
    socket: UdpSocket,
    mut remote: SocketAddr,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<PlayerEvent>,
    dropped: tokio_util::sync::CancellationToken,
) -> PlayerCounters {
    let mut drain = [0u8; 2048];
    let mut send_errors = 0u64;
    let mut backlog: VecDeque<PlayerEvent> = VecDeque::new();
    loop {
        let deadline = tokio::time::Instant::from_std(core.poll_timeout());
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                let now = tokio::time::Instant::now().into_std();
                while let Some(packet) = core.on_tick(now) {
                    if let Err(e) = socket.send_to(&packet, remote).await {
                        send_errors += 1;
                        if send_errors == 1 || send_errors.is_power_of_two() {
                            tracing::warn!(error = %e, %remote, send_errors, "player send failed");
                        }
                    }
                }
            }
            cmd = commands.recv(), if backlog.is_empty() => match cmd {
                Some(Command::Enqueue(id, source)) => {
                    if let Err(e) = core.enqueue(id, source) {
                        backlog.push_back(PlayerEvent::PromptFinished { id, interrupted: false, error: Some(e.to_string()) });
                    }
                }
                Some(Command::Abort) => core.abort(),
                Some(Command::SetRemote(r)) => remote = r,
                Some(Command::SetCodec(c)) => core.set_codec(c),
                None => break,
            },
            _ = dropped.cancelled(), if !backlog.is_empty() => break,
            // Room for the oldest waiting event (the reader took one).
            permit = events.reserve(), if !backlog.is_empty() => match (permit, backlog.pop_front()) {
                (Ok(p), Some(ev)) => p.send(ev),
                // Nobody listens any more: nothing to keep.
                _ => backlog.clear(),
            },
            // What the relay forwards towards the bot (the person's audio) is not used here.
            r = socket.recv_from(&mut drain) => {
                if r.is_err() {
                    // Never spin on a failing socket: the next send is at most a frame away.
                    tokio::time::sleep(FRAME).await;
                }
            }
        }
        while let Some(ev) = core.poll_event() {
            tracing::debug!(?ev, "player event");
            backlog.push_back(ev);
        }
        crate::overflow::forward_held(&events, &mut backlog);
    }
    core.counters()
}
