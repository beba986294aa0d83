//! The task that owns a WebSocket bot session's socket: relays commands and frames through
//! the protocol core, applies its outputs, says goodbye at hang-up and resumes after a drop.
//! Once the call has media it also owns the media side (`media_side.rs`, the relay's bot leg
//! served in process): the person's audio goes through the core to the socket and the playout
//! clock (`pacer.rs`) hands the bot's audio to the relay, each frame as soon as it is due (on
//! arrival for a bot streaming in real time), all in this one task: a second task per call for
//! the media side meant a channel send, a lock and a task wake-up per 20 ms frame between the
//! two (and a queue of up to 256 frames in which the person's audio aged when the machine was
//! busy).
//!
//! For a `ws://` bot (and `WsBotOptions::relay_served`, the default) the media side goes
//! further: at media start the task hands the socket itself to the relay thread (`serve`,
//! `served.rs`), which then does all of the above per frame; the task keeps the call's
//! commands (their frames queued in the shared core, in order), the bot's events, the prompts'
//! socket, and the resume and the goodbye — the relay hands the socket back, or reports it
//! dropped.
//!
//! The task never waits for its event queue: an event that does not fit waits in a short
//! backlog here, and while the backlog is full the socket is not read (the bot is slowed down,
//! nothing it said is lost) — the media side keeps its pace and the person's audio keeps flowing
//! either way. Awaiting each event send stalled the whole task, audio included, whenever the
//! call was slow to read its events.

use super::config::{MediaFormat, WebSocketBot};
use super::error::WsBotError;
use super::jitter::JitterBuffer;
use super::link::{self, Incoming, Link};
use super::media_side::{self, MediaSide, Playout};
use super::pacer::{FRAME, Step};
use super::protocol::{Command, Output};
use super::served::{ServedBot, ServedParts};
use super::served_link::ServedLink;
use super::shared_core::CoreCell;
use super::types::{Counters, WsBotEvent, WsBotOptions};
use super::wakeups::{self, Wakeups};
use crate::media::doorbell::Doorbell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// How long a hang-up waits for the goodbye frames and the close handshake.
pub(crate) const CLOSE_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// What the task shares with the handle.
pub(crate) struct Shared {
    pub player: Mutex<JitterBuffer>,
    /// Rung by `next_frame` when marks became due, so the task echoes them.
    pub marks_due: Doorbell,
    pub counters: Arc<Counters>,
}

impl Shared {
    pub fn player(&self) -> MutexGuard<'_, JitterBuffer> {
        // A panic elsewhere while holding the lock leaves plain sample data: keep using it.
        self.player.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the handle sends the task.
pub(crate) enum ToTask {
    /// For the protocol core.
    Core(Command),
    /// The call's media side: from now on this task paces the bot's audio to it and takes the
    /// person's from it.
    Media(MediaSide),
}

/// How a connected stretch of the session ended.
enum Stretch {
    /// Hang-up (or the handle dropped): done.
    Ended,
    /// The socket failed: reconnect if the protocol can.
    Dropped(String),
}

/// The task owning the socket.
pub(crate) struct Task {
    core: Arc<CoreCell>,
    bot: WebSocketBot,
    opts: WsBotOptions,
    shared: Arc<Shared>,
    events: mpsc::Sender<WsBotEvent>,
    commands: mpsc::Receiver<ToTask>,
    /// Frames produced while reconnecting, sent after the resume (bounded).
    pending: Vec<String>,
    /// The media side and its playout clock, once the call has media.
    media: Option<MediaSide>,
    play: Option<Playout>,
    /// One datagram from dialgate's prompt player.
    datagram: Box<[u8; 2048]>,
    /// Events the event queue had no room for, oldest first (see the module doc).
    backlog: VecDeque<WsBotEvent>,
    /// The connected loop's wait for room in the event queue, while the backlog holds events.
    room: Option<RoomWait>,
    /// Which of the channel and the socket woke the connected loop.
    wakeups: Wakeups,
}

/// Frames kept at most while reconnecting.
const MAX_PENDING: usize = 256;

/// Events held back at most before the socket stops being read (one bot message gives at
/// most a few events, so the backlog stays near this bound).
const MAX_BACKLOG: usize = 64;

impl Task {
    /// A task for one session; nothing happens until [`Task::open_session`].
    pub(crate) fn new(
        core: Box<dyn super::protocol::Protocol>,
        bot: WebSocketBot,
        opts: WsBotOptions,
        shared: Arc<Shared>,
        events: mpsc::Sender<WsBotEvent>,
        commands: mpsc::Receiver<ToTask>,
    ) -> Task {
        Task {
            core: Arc::new(CoreCell::new(core)),
            bot,
            opts,
            shared,
            events,
            commands,
            pending: Vec::new(),
            media: None,
            play: None,
            datagram: Box::new([0; 2048]),
            backlog: VecDeque::new(),
            room: None,
            wakeups: Wakeups::new(),
        }
    }

    /// Hands an event to the call without waiting: into the queue if it has room and nothing
    /// is held back, else behind the backlog (sent by [`Task::flush_backlog`]).
    fn emit(&mut self, event: WsBotEvent) {
        if !self.backlog.is_empty() {
            self.backlog.push_back(event);
            return;
        }
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => self.backlog.push_back(event),
            // The handle is gone: nobody reads events any more.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Moves held-back events into the queue while it has room (`open` false: the handle is
    /// gone and the backlog is dropped).
    fn flush_backlog(&mut self, open: bool) {
        if !open {
            self.backlog.clear();
            return;
        }
        crate::overflow::forward_held(&self.events, &mut self.backlog);
    }

    /// Whether the socket may be read: the backlog has room for what a message may give.
    fn may_read(&self) -> bool {
        self.backlog.len() < MAX_BACKLOG
    }

    /// Takes the call's media side and starts the playout clock. With `io_threads` the session
    /// may run on another runtime than the call that made the prompts' socket: it is moved onto
    /// this task's runtime first. Otherwise both run on the same one and it is used as it is.
    fn attach(&mut self, side: MediaSide) {
        let side = if self.opts.io_threads {
            side.rehome()
        } else {
            Ok(side)
        };
        match side {
            Ok(side) => {
                // One wake-up per message to the bot: its chunk of the person's audio (PCMU is
                // 8 bytes per ms); the core could send nothing with less.
                side.set_wake_bytes(8 * self.opts.whole_chunk_ms() as usize);
                self.media = Some(side);
            }
            Err(e) => {
                tracing::error!(error = %e, "the WebSocket bot's prompts socket cannot be used");
                return;
            }
        }
        self.play.get_or_insert_with(Playout::new);
    }

    /// Hands a `ws://` socket to the relay thread once the call has media (`served.rs`): from
    /// then on the relay reads, paces and writes the audio, and this task hears only what the
    /// call must see. The person's audio queued so far goes on the socket first.
    async fn serve(&mut self, link: &mut Link) -> Result<(), String> {
        if !self.opts.relay_served || self.media.is_none() || !matches!(link, Link::Plain(_)) {
            return Ok(());
        }
        self.person_audio(link).await?;
        let Link::Plain(plain) = std::mem::replace(link, Link::Served(ServedLink::detached()))
        else {
            return Ok(());
        };
        let (sock, reader, owed) = plain.into_parts().map_err(|e| e.to_string())?;
        let Some(side) = &self.media else {
            return Ok(());
        };
        let (bot, served) = ServedBot::new(ServedParts {
            sock,
            reader,
            owed,
            core: self.core.clone(),
            shared: self.shared.clone(),
            prompts: side.prompt_frames(),
            max_message: self.opts.max_message_bytes,
            write_timeout: self.opts.write_timeout,
        });
        side.serve(Box::new(bot));
        Counters::bump(&self.shared.counters.served);
        *link = Link::Served(served);
        // Nothing has polled the new link yet, so no waker of its would ring: poll it once.
        self.wakeups.again(wakeups::LINK);
        // The relay's clock plays the bot's audio from now on.
        self.play = None;
        Ok(())
    }

    /// The relay handed the socket back: the frames the core queued meanwhile go first, then
    /// the person's audio the relay no longer takes.
    async fn take_back(&mut self, link: &mut Link) -> Result<(), String> {
        for frame in self.core.take_back() {
            self.write(link, frame).await?;
        }
        self.person_audio(link).await
    }

    /// Sends the bot's frames that are due now (none, one, or after a stall the missed ones)
    /// and sets the clock's next wake-up. Called on every wake of the task, so a frame that
    /// arrived leaves at once when its time has come. Marks whose audio has now played are
    /// echoed over `link` (none while the socket is down).
    async fn pace(&mut self, link: Option<&mut Link>) -> Result<(), String> {
        let (Some(play), Some(side)) = (&mut self.play, &mut self.media) else {
            return Ok(());
        };
        let now = tokio::time::Instant::now();
        let mut marks_due = false;
        let mut ahead = false;
        loop {
            let (frame, due) = {
                let mut player = self.shared.player();
                let ready = player.frame_ready() || side.has_prompt();
                match play.pacer.poll(now, ready) {
                    // A ready frame due within one frame's time, when no mark waits for it
                    // (its echo would come early): handed to the relay now with its time, so
                    // that the task is not woken again for it — a bot sending 40 ms chunks
                    // would otherwise wake it 20 ms after each. One frame ahead at most.
                    Step::Wait(at)
                        if ready && !ahead && !player.has_marks() && at <= now + FRAME =>
                    {
                        ahead = true;
                        let _ = play.pacer.poll(at, true);
                        (player.next_frame(), Some(at))
                    }
                    Step::Wait(at) => {
                        play.arm(at);
                        break;
                    }
                    Step::Send => {
                        let frame = player.next_frame();
                        marks_due |= player.has_due_marks();
                        (frame, None)
                    }
                }
            };
            side.send(frame, due);
        }
        match link {
            Some(link) if marks_due => self.echo_marks(link).await,
            _ => Ok(()),
        }
    }

    /// The person's audio the relay queued: all of it goes through the core to the bot (as the
    /// call's PCMU bytes: a µ-law bot gets them as they came). Not while the relay serves the
    /// socket: it takes what is queued when it adopts the leg, and a chunk taken here at the
    /// same time could reach the core after a later one.
    async fn person_audio(&mut self, link: &mut Link) -> Result<(), String> {
        if matches!(link, Link::Served(_)) {
            return Ok(());
        }
        let Some(side) = self.media.as_mut() else {
            return Ok(());
        };
        let (pcmu, dropped) = side.take_person();
        count_dropped(&self.shared.counters, dropped);
        let Some(pcmu) = pcmu else {
            return Ok(());
        };
        let out = self.core.run(|core, out| core.on_person_pcmu(pcmu, out));
        self.apply_all(link, out).await
    }

    /// Drops the person's audio waiting (the socket is down), counted in 20 ms frames as the
    /// relay's own drops, with what the relay dropped meanwhile.
    fn drop_person(&mut self) {
        let Some(side) = self.media.as_mut() else {
            return;
        };
        let (pcmu, dropped) = side.take_person();
        let frames = pcmu.map_or(0, |b| b.len().div_ceil(super::jitter::FRAME_SAMPLES) as u64);
        count_dropped(&self.shared.counters, dropped + frames);
    }

    /// One datagram from dialgate's prompt player (AC mode): kept to be mixed in.
    fn prompt(&mut self, got: std::io::Result<(usize, std::net::SocketAddr)>) {
        if let (Ok((n, from)), Some(p)) = (got, self.media.as_mut().and_then(|m| m.prompts_mut())) {
            p.receive(&self.datagram[..n], from);
        }
    }

    /// The format agreed with the bot (the configured one until the bot says otherwise).
    pub(crate) fn agreed_format(&self, configured: MediaFormat) -> MediaFormat {
        self.core.lock().proto.format().unwrap_or(configured)
    }

    /// Opens a socket and starts (or resumes) the session on it.
    pub(crate) async fn open_session(&mut self, resume: bool) -> Result<Link, WsBotError> {
        let mut link = link::open(&self.bot, &self.opts).await?;
        Counters::bump(&self.shared.counters.connections);
        let hello = {
            let mut st = self.core.lock();
            if resume {
                st.proto.resume().into_iter().collect()
            } else {
                st.proto.opening()
            }
        };
        for frame in hello {
            self.write(&mut link, frame)
                .await
                .map_err(|detail| WsBotError::Connect {
                    url: self.bot.url.to_string(),
                    detail,
                })?;
        }
        let needs_accept = self.core.lock().proto.needs_accept();
        if needs_accept {
            self.await_accept(&mut link).await?;
        }
        Ok(link)
    }

    /// Reads until `session.accepted`, bounded by the handshake timeout as a whole (events
    /// the bot sends before accepting wait in the bounded event channel inside that bound).
    async fn await_accept(&mut self, link: &mut Link) -> Result<(), WsBotError> {
        let bound = self.opts.handshake_timeout;
        match tokio::time::timeout(bound, self.read_until_accepted(link)).await {
            Ok(result) => result,
            Err(_) => Err(WsBotError::Timeout {
                url: self.bot.url.to_string(),
                stage: "session.accepted",
                ms: bound.as_millis() as u64,
            }),
        }
    }

    async fn read_until_accepted(&mut self, link: &mut Link) -> Result<(), WsBotError> {
        let url = self.bot.url.to_string();
        loop {
            let outputs = match link.next().await {
                Some(Ok(msg)) => self.incoming(msg),
                None | Some(Err(_)) => None,
            };
            let Some(outputs) = outputs else {
                return Err(WsBotError::ClosedDuringHandshake { url });
            };
            let mut accepted = false;
            for o in outputs {
                match o {
                    Output::Accepted => accepted = true,
                    Output::Rejected(reason) => return Err(WsBotError::Rejected { reason }),
                    other => {
                        if let Err(detail) = self.apply(link, other).await {
                            return Err(WsBotError::Connect { url, detail });
                        }
                    }
                }
            }
            if accepted {
                return Ok(());
            }
        }
    }

    /// Parses one incoming message; `None` when the bot closed the socket.
    fn incoming(&mut self, msg: Incoming) -> Option<Vec<Output>> {
        let mut out = Vec::new();
        let result = match msg {
            Incoming::Text(text) if text.len() > self.opts.max_message_bytes => {
                Err(super::error::FrameError::Oversized {
                    size: text.len(),
                    limit: self.opts.max_message_bytes,
                })
            }
            Incoming::Text(text) => {
                let mut result = Ok(());
                out = self.core.run(|core, out| result = core.on_text(&text, out));
                result
            }
            Incoming::Binary(n) => Err(super::error::FrameError::Binary(n)),
            Incoming::Close => return None,
            // (`Returned` is taken in `connected` and `goodbye`, which hold the link.)
            Incoming::Control | Incoming::Returned => Ok(()),
            // Read and run through the core by the relay thread already.
            Incoming::Outputs(outputs) => return Some(outputs),
        };
        if let Err(e) = result {
            self.shared.counters.bad_frame(&e);
        }
        Some(out)
    }

    async fn write(&self, link: &mut Link, frame: String) -> Result<(), String> {
        match tokio::time::timeout(self.opts.write_timeout, link.send_text(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the bot stopped reading (write timed out)".into()),
        }
    }

    /// Carries out one output; `Err` when the socket failed.
    async fn apply(&mut self, link: &mut Link, output: Output) -> Result<(), String> {
        match output {
            // The core gives a frame back while the link is served only once the relay let go
            // of a failed socket (its word is on the way): the frame waits for the resume.
            Output::Send(frame) if matches!(link, Link::Served(_)) => self.keep_for_resume(frame),
            Output::Send(frame) => self.write(link, frame).await?,
            // Never waits (see the module doc).
            Output::Event(e) => self.emit(e),
            Output::Play(pcm) => self.shared.player().push(&pcm),
            Output::PlayEnd => self.shared.player().flush(),
            Output::Clear => self.shared.player().clear(),
            Output::Mark(name) => self.shared.player().mark(name),
            // Outside the handshake these only repeat what is known (a resume's answer).
            Output::Accepted | Output::Rejected(_) => {}
        }
        Ok(())
    }

    async fn apply_all(&mut self, link: &mut Link, outputs: Vec<Output>) -> Result<(), String> {
        for o in outputs {
            self.apply(link, o).await?;
        }
        self.echo_marks(link).await
    }

    /// Sends the echoes of marks whose audio has played.
    async fn echo_marks(&mut self, link: &mut Link) -> Result<(), String> {
        let due = self.shared.player().take_due_marks();
        if due.is_empty() {
            return Ok(());
        }
        let out = self.core.run(|core, out| core.marks_played(due, out));
        for o in out {
            self.apply(link, o).await?;
        }
        Ok(())
    }

    /// Keeps a frame for the bot until the session resumes (bounded: past [`MAX_PENDING`] it
    /// is dropped and said so).
    fn keep_for_resume(&mut self, frame: String) {
        if self.pending.len() < MAX_PENDING {
            self.pending.push(frame);
        } else {
            tracing::warn!("frame for the bot dropped while reconnecting");
        }
    }

    /// Relays until hang-up or until the bot is gone for good.
    pub(crate) async fn run(mut self, mut link: Link) {
        loop {
            match self.connected(&mut link).await {
                Stretch::Ended => return,
                Stretch::Dropped(reason) => {
                    tracing::warn!(%reason, "WebSocket bot socket dropped");
                    // The frames a served socket had not written yet go after the resume.
                    let mut unsent = self.core.take_back();
                    unsent.append(&mut self.pending);
                    self.pending = Vec::new();
                    for frame in unsent {
                        self.keep_for_resume(frame);
                    }
                    // A served socket's clock stopped with it: this task plays the bot's
                    // queued audio (and silence) again until the next socket is served.
                    if self.media.is_some() && self.play.is_none() {
                        self.play = Some(Playout::new());
                    }
                    match self.reconnect(&reason).await {
                        Ok(Some(new_link)) => link = new_link,
                        Ok(None) => return,
                        Err(()) => {
                            // The session is over (no audio left to pace): the backlog and the
                            // last word may wait for room.
                            for event in std::mem::take(&mut self.backlog) {
                                let _ = self.events.send(event).await;
                            }
                            let _ = self.events.send(WsBotEvent::Disconnected { reason }).await;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Relays until hang-up or until the socket fails.
    async fn connected(&mut self, link: &mut Link) -> Stretch {
        let pending = std::mem::take(&mut self.pending);
        for frame in pending {
            if let Err(e) = self.write(link, frame).await {
                return Stretch::Dropped(e);
            }
        }
        if let Err(e) = self.serve(link).await {
            return Stretch::Dropped(e);
        }
        // A new socket (or the first): poll every source once.
        self.wakeups.again(wakeups::ALL);
        loop {
            // One poll of persistent state per wake-up (see `Wake`), then the wake's work.
            let wake = std::future::poll_fn(|cx| self.poll_wake(cx, link)).await;
            let mut result = match wake {
                Wake::Command(None) => {
                    return self
                        .goodbye(link, "dropped", "the call released its bot session")
                        .await;
                }
                Wake::Command(Some(ToTask::Core(Command::Hangup {
                    reason_code,
                    reason,
                }))) => return self.goodbye(link, &reason_code, &reason).await,
                Wake::Command(Some(ToTask::Core(cmd))) => {
                    let out = self.core.run(|core, out| core.on_command(cmd, out));
                    self.apply_all(link, out).await
                }
                Wake::Command(Some(ToTask::Media(side))) => {
                    self.attach(side);
                    self.serve(link).await
                }
                // The clock's own wake-up; frames are paced below, on every wake.
                Wake::Clock => Ok(()),
                Wake::Person => self.person_audio(link).await,
                Wake::Prompt(got) => {
                    self.prompt(got);
                    Ok(())
                }
                Wake::Marks => self.echo_marks(link).await,
                Wake::Room(open) => {
                    self.flush_backlog(open);
                    Ok(())
                }
                Wake::Bot(None) => Err("the bot closed the connection".to_string()),
                Wake::Bot(Some(Err(e))) => Err(e),
                Wake::Bot(Some(Ok(Incoming::Returned))) => self.take_back(link).await,
                Wake::Bot(Some(Ok(msg))) => match self.incoming(msg) {
                    None => Err("the bot closed the connection".to_string()),
                    Some(out) => self.apply_all(link, out).await,
                },
            };
            if result.is_ok() {
                result = self.pace(Some(link)).await;
            }
            if let Err(reason) = result {
                return Stretch::Dropped(reason);
            }
        }
    }

    /// What woke the connected loop, polled in priority order (commands first, the bot's
    /// socket last). Every source is persistent state polled in place — the channel, the
    /// clock's timer, two doorbells, the prompts' socket only when there is one, the socket —
    /// so a wake-up registers nothing new: a `select!` over fresh futures re-registered (and
    /// on drop deregistered) two `Notify` waiters per wake-up, twice per 20 ms frame.
    ///
    /// The command channel and the socket, the costlier two, are polled only when their own
    /// wakers rang (`wakeups.rs`); a source polled ready is polled again next time, and the
    /// socket's bit is kept while it may not be read.
    fn poll_wake(&mut self, cx: &mut Context<'_>, link: &mut Link) -> Poll<Wake> {
        let rang = self.wakeups.take(cx);
        if rang & wakeups::COMMANDS != 0 {
            let mut own = Context::from_waker(self.wakeups.waker(wakeups::COMMANDS));
            if let Poll::Ready(cmd) = self.commands.poll_recv(&mut own) {
                self.wakeups.again(rang);
                return Poll::Ready(Wake::Command(cmd));
            }
        }
        // From here on the socket's bit, if it rang, waits for its turn below.
        let link_rang = rang & wakeups::LINK;
        if let Some(play) = &mut self.play
            && play.poll_wake(cx).is_ready()
        {
            self.wakeups.again(link_rang);
            return Poll::Ready(Wake::Clock);
        }
        if let Some(side) = &self.media {
            if side.poll_person(cx).is_ready() {
                self.wakeups.again(link_rang);
                return Poll::Ready(Wake::Person);
            }
            if let Poll::Ready(got) = side.poll_prompt(cx, &mut self.datagram[..]) {
                self.wakeups.again(link_rang);
                return Poll::Ready(Wake::Prompt(got));
            }
        }
        if self.shared.marks_due.poll_rung(cx).is_ready() {
            self.wakeups.again(link_rang);
            return Poll::Ready(Wake::Marks);
        }
        if !self.backlog.is_empty() {
            let events = &self.events;
            let room = self
                .room
                .get_or_insert_with(|| Box::pin(room(events.clone())));
            if let Poll::Ready(open) = room.as_mut().poll(cx) {
                self.room = None;
                self.wakeups.again(link_rang);
                return Poll::Ready(Wake::Room(open));
            }
        }
        if link_rang != 0 {
            if !self.may_read() {
                // Read once the backlog has room (the room wait wakes the task).
                self.wakeups.again(link_rang);
            } else {
                let mut own = Context::from_waker(self.wakeups.waker(wakeups::LINK));
                if let Poll::Ready(msg) = link.poll_next(&mut own) {
                    self.wakeups.again(link_rang);
                    return Poll::Ready(Wake::Bot(msg));
                }
            }
        }
        Poll::Pending
    }

    /// Says goodbye and closes the socket, bounded.
    async fn goodbye(&mut self, link: &mut Link, reason_code: &str, reason: &str) -> Stretch {
        let frames = if let Link::Served(_) = link {
            // The relay writes the goodbye after everything queued, then closes the socket
            // (the person's last audio went to the core as it came).
            match self
                .core
                .close_served(|proto| proto.closing(reason_code, reason))
            {
                Ok(()) => return Stretch::Ended,
                Err(frames) => {
                    // The relay let go of the socket meanwhile: take it back, bounded.
                    let back = tokio::time::timeout(CLOSE_BOUND, async {
                        while let Link::Served(_) = link {
                            if !matches!(link.next().await, Some(Ok(_))) {
                                break;
                            }
                        }
                    });
                    let _ = back.await;
                    if let Link::Served(_) = link {
                        return Stretch::Ended;
                    }
                    let _ = self.take_back(link).await;
                    frames
                }
            }
        } else {
            // The person's last audio, short of a whole chunk, goes before the goodbye.
            let _ = self.person_audio(link).await;
            self.core.lock().proto.closing(reason_code, reason)
        };
        let _ = tokio::time::timeout(CLOSE_BOUND, async {
            for frame in frames {
                if self.write(link, frame).await.is_err() {
                    break;
                }
            }
            link.close().await;
        })
        .await;
        Stretch::Ended
    }

    /// Tries to resume within the bound. `Ok(Some)`: resumed; `Ok(None)`: hung up meanwhile;
    /// `Err`: gave up.
    async fn reconnect(&mut self, reason: &str) -> Result<Option<Link>, ()> {
        if self.core.lock().proto.resume().is_none() {
            return Err(());
        }
        let mut backoff = self.opts.resume_backoff;
        for attempt in 1..=self.opts.resume_attempts {
            self.emit(WsBotEvent::Reconnecting {
                attempt,
                reason: reason.to_string(),
            });
            if self.wait_offline(backoff).await {
                return Ok(None);
            }
            backoff = backoff.saturating_mul(2);
            Counters::bump(&self.shared.counters.reconnects);
            match self.open_session(true).await {
                Ok(link) => {
                    let mut frames = self.core.lock().proto.resumed();
                    frames.append(&mut self.pending);
                    self.pending = frames;
                    self.emit(WsBotEvent::Resumed);
                    tracing::info!(attempt, "WebSocket bot session resumed");
                    return Ok(Some(link));
                }
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "resuming the WebSocket bot session failed")
                }
            }
        }
        Err(())
    }

    /// Waits `pause` while the socket is down, still taking commands and playing what the
    /// bot sent before (the person's audio is dropped and counted); `true` on hang-up.
    async fn wait_offline(&mut self, pause: std::time::Duration) -> bool {
        let until = tokio::time::Instant::now() + pause;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return false,
                open = room(self.events.clone()), if !self.backlog.is_empty() => self.flush_backlog(open),
                () = media_side::wake_opt(&mut self.play) => {
                    let _ = self.pace(None).await;
                }
                () = media_side::person_opt(&self.media) => self.drop_person(),
                got = media_side::prompt_opt(&self.media, &mut self.datagram[..]) => {
                    self.prompt(got);
                    // A prompt frame may have come: it plays without waiting for the bot.
                    let _ = self.pace(None).await;
                }
                cmd = self.commands.recv() => match cmd {
                    None | Some(ToTask::Core(Command::Hangup { .. })) => return true,
                    Some(ToTask::Media(side)) => self.attach(side),
                    Some(ToTask::Core(Command::Audio(_))) => Counters::bump(&self.shared.counters.audio_dropped),
                    Some(ToTask::Core(cmd)) => {
                        let out = self.core.run(|core, out| core.on_command(cmd, out));
                        for o in out {
                            if let Output::Send(frame) = o {
                                self.keep_for_resume(frame);
                            }
                        }
                    }
                },
            }
        }
    }
}

/// Counts the person's audio packets dropped.
fn count_dropped(counters: &Counters, dropped: u64) {
    if dropped > 0 {
        let c = &counters.audio_dropped;
        c.fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Waits until the event queue has room; `false` when the handle is gone. (The room is not
/// kept: the permit is dropped at once; the task is the only sender that sends, so the room
/// is still there when [`Task::flush_backlog`] uses it.) Owns a clone of the sender so that the
/// connected loop can keep the wait between wake-ups.
async fn room(events: mpsc::Sender<WsBotEvent>) -> bool {
    events.reserve_owned().await.is_ok()
}

/// A wait for room in the event queue, kept across wake-ups.
type RoomWait = Pin<Box<dyn Future<Output = bool> + Send + Sync>>;

/// What woke the connected loop (see [`Task::poll_wake`]).
enum Wake {
    /// A command from the handle (`None`: the handle is gone).
    Command(Option<ToTask>),
    /// The playout clock's timer.
    Clock,
    /// The person's audio arrived.
    Person,
    /// A datagram from dialgate's prompt player.
    Prompt(std::io::Result<(usize, std::net::SocketAddr)>),
    /// Marks became due (rung by the handle's `next_frame` / `clear_playback`).
    Marks,
    /// The event queue has room again (`false`: the handle is gone).
    Room(bool),
    /// The bot's socket: a message, an error, or the end.
    Bot(Option<Result<Incoming, String>>),
}
