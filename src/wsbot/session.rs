//! The handle a call holds on its WebSocket bot session. The socket belongs to the session's
//! task (`task.rs`), or to the media relay thread once it serves it (`served.rs`); all policy
//! is in the protocol cores.

use super::ac::AcCore;
use super::config::{MediaFormat, WebSocketBot, WsProtocol};
use super::error::WsBotError;
use super::io;
use super::jitter::{FRAME_SAMPLES, JitterBuffer};
use super::media_side::MediaSide;
use super::media_stream::MediaStreamCore;
use super::protocol::{Command, Protocol};
use super::task::{CLOSE_BOUND, Shared, Task, ToTask};
use super::types::{CallInfo, Counters, WsBotEvent, WsBotOptions, WsBotStats};
use crate::media::doorbell::Doorbell;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// One call's WebSocket bot: send the person's audio and activities, read events, pull the
/// bot's audio one 20 ms frame at a time. Dropping it ends the session (`session.end` /
/// `stop` with reason `dropped`) and closes the socket.
pub struct WsBot {
    commands: mpsc::Sender<ToTask>,
    events: mpsc::Receiver<WsBotEvent>,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
    media_format: MediaFormat,
}

impl WsBot {
    /// Connects to the bot and opens the session for `call`: in AC mode `session.initiate` is
    /// answered with `session.accepted` (or the call fails: [`WsBotError::is_bot_unreachable`]);
    /// in media-stream mode `connected` and `start` are sent.
    pub async fn connect(
        bot: &WebSocketBot,
        call: CallInfo,
        opts: WsBotOptions,
    ) -> Result<WsBot, WsBotError> {
        let span = tracing::info_span!("wsbot", conversation_id = %call.conversation_id, protocol = ?bot.protocol);
        let counters = Arc::new(Counters::default());
        let (core, format): (Box<dyn Protocol>, MediaFormat) = match bot.protocol {
            WsProtocol::AcBotApi => {
                let core = AcCore::new(call, bot.media_format, &opts, counters.clone());
                (Box::new(core), bot.media_format)
            }
            WsProtocol::MediaStream => (
                Box::new(MediaStreamCore::new(call, counters.clone())),
                MediaFormat::Mulaw,
            ),
        };
        let shared = Arc::new(Shared {
            player: Mutex::new(JitterBuffer::new(opts.jitter_capacity_ms)),
            marks_due: Doorbell::new(),
            counters,
        });
        let capacity = opts.channel_capacity.max(1);
        let (cmd_tx, cmd_rx) = mpsc::channel(capacity);
        let (ev_tx, ev_rx) = mpsc::channel(capacity);
        // The socket is opened where the session will run (see `io.rs`).
        let io = if opts.io_threads { io::next() } else { None };
        let mut task = Task::new(core, bot.clone(), opts, shared.clone(), ev_tx, cmd_rx);
        let opening = async move {
            let link = task.open_session(false).await?;
            let format = task.agreed_format(format);
            Ok::<_, WsBotError>((task, link, format))
        }
        .instrument(span.clone());
        let (task, link, format) = match &io {
            Some(rt) => {
                let mut opening = io::AbortOnDrop(rt.spawn(opening));
                (&mut opening.0).await.map_err(|e| WsBotError::Connect {
                    url: bot.url.to_string(),
                    detail: format!("the session's I/O task failed: {e}"),
                })??
            }
            None => opening.await?,
        };
        tracing::info!(parent: &span, %format, "WebSocket bot session open");
        let running = task.run(link).instrument(span);
        let handle = match &io {
            Some(rt) => rt.spawn(running),
            None => tokio::spawn(running),
        };
        Ok(WsBot {
            commands: cmd_tx,
            events: ev_rx,
            shared,
            task: Some(handle),
            media_format: format,
        })
    }

    /// The audio format on the socket (`session.accepted`'s `mediaFormat`; µ-law for media streams).
    pub fn media_format(&self) -> MediaFormat {
        self.media_format
    }

    /// Queues the person's audio (8 kHz PCM, any length; 20 ms frames are usual). Never waits:
    /// when the session cannot keep up the frame is dropped and counted (in the session's
    /// `audio_dropped` and in `dialgate_queue_full_total{queue="wsbot_audio"}`): it would
    /// reach the bot late. In AC mode audio is sent only while the user stream is started.
    pub fn send_audio(&self, pcm8k: &[i16]) {
        match self
            .commands
            .try_send(ToTask::Core(Command::Audio(pcm8k.to_vec())))
        {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                Counters::bump(&self.shared.counters.audio_dropped);
                crate::overflow::dropped(
                    crate::overflow::Queue::WsBotAudio,
                    "the person's audio for a WebSocket bot",
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Counters::bump(&self.shared.counters.audio_dropped)
            }
        }
    }

    async fn command(&self, cmd: Command) -> Result<(), WsBotError> {
        self.commands
            .send(ToTask::Core(cmd))
            .await
            .map_err(|_| WsBotError::Ended)
    }

    /// Hands the call's media side to the session: from now on the session's own task hands
    /// the bot's audio to the relay every 20 ms and gives the bot the person's audio the relay
    /// queues ([`WsBot::next_frame`] and [`WsBot::send_audio`] are then not needed).
    pub async fn start_media(&self, side: MediaSide) -> Result<(), WsBotError> {
        self.commands
            .send(ToTask::Media(side))
            .await
            .map_err(|_| WsBotError::Ended)
    }

    /// Sends activities to the bot (AC mode; ignored by media streams).
    pub async fn send_activities(
        &self,
        activities: Vec<serde_json::Value>,
    ) -> Result<(), WsBotError> {
        self.command(Command::Activities(activities)).await
    }

    /// Starts streaming the person's audio (`userStream.start`; AC mode).
    pub async fn start_user_stream(&self) -> Result<(), WsBotError> {
        self.command(Command::StartUserStream).await
    }

    /// Stops streaming the person's audio (`userStream.stop`; AC mode).
    pub async fn stop_user_stream(&self) -> Result<(), WsBotError> {
        self.command(Command::StopUserStream).await
    }

    /// Tells the bot a key was pressed (AC: a `DTMF` event activity; media stream: `dtmf`).
    pub async fn send_dtmf(&self, digit: char) -> Result<(), WsBotError> {
        self.command(Command::Dtmf(digit)).await
    }

    /// The next 20 ms of the bot's audio (8 kHz PCM); silence when none is queued. Never waits;
    /// the caller calls it once per 20 ms of real time (unless the session has a media side:
    /// [`WsBot::start_media`]).
    pub fn next_frame(&self) -> [i16; FRAME_SAMPLES] {
        let mut player = self.shared.player();
        let frame = player.next_frame();
        let marks_due = player.has_due_marks();
        drop(player);
        if marks_due {
            self.shared.marks_due.ring();
        }
        frame
    }

    /// Drops the bot's queued audio (barge-in on `userStream.speech.started`, `abortPrompts`).
    pub fn clear_playback(&self) {
        self.shared.player().clear();
        self.shared.marks_due.ring();
    }

    /// The next event; `None` once the session has ended and every event was read.
    pub async fn next_event(&mut self) -> Option<WsBotEvent> {
        self.events.recv().await
    }

    /// Counters for metrics.
    pub fn stats(&self) -> WsBotStats {
        let jitter = self.shared.player().stats();
        self.shared.counters.snapshot(jitter)
    }

    /// Ends the session (`session.end` with the reason / `stop`) and waits, bounded, until the
    /// socket is closed. Returns false if the session task did not finish within the bound and
    /// was aborted (the socket is closed either way).
    pub async fn hangup(mut self, reason_code: &str, reason: &str) -> bool {
        let cmd = ToTask::Core(Command::Hangup {
            reason_code: reason_code.to_string(),
            reason: reason.to_string(),
        });
        // A full channel holds audio the bot will never hear: wait for room, bounded.
        let _ = tokio::time::timeout(CLOSE_BOUND, self.commands.send(cmd)).await;
        let Some(task) = self.task.take() else {
            return true;
        };
        let abort = task.abort_handle();
        if tokio::time::timeout(CLOSE_BOUND * 2, task).await.is_err() {
            abort.abort();
            return false;
        }
        true
    }
}

impl Drop for WsBot {
    fn drop(&mut self) {
        // The command channel closes with the handle: the task says goodbye and closes the
        // socket on its own (bounded). Nothing to do unless the runtime is gone.
        if let Some(task) = &self.task
            && tokio::runtime::Handle::try_current().is_err()
        {
            task.abort();
        }
    }
}
