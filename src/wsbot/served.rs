//! A `ws://` bot's socket served by the relay thread ([`ServedLeg`]), once the call has media.
//!
//! Why: a WebSocket call costs, per 20 ms, a message each way. With the socket on the
//! session's task that was also two hand-overs between the relay thread and the task (the
//! person's audio one way, the bot's frame the other), each waking a thread, plus the task's
//! runtime around every wake-up: the benchmark measured a WebSocket call at about 3× the CPU
//! of a SIP-bot call, and a single thread doing the same work over raw epoll at 1.3×
//! (README, "WebSocket bots", benchmark). Here the relay thread that already holds the call's
//! RTP sockets polls the bot's socket too: the person's packet becomes the bot's message on
//! arrival, the bot's message is decoded into the playout buffer as it is read, and the
//! playout clock (`pacer.rs`) runs on the relay's ticks. The session's task wakes only for
//! what the call must see (events) and for the call's commands.
//!
//! The protocol stays in the core (`shared_core.rs`), run here under its lock; frames the
//! task makes meanwhile are written before any made here. When the socket fails the leg says
//! so to the task (which resumes on a new socket, then hands it over again) and the relay
//! drops it; at hang-up the task queues the goodbye and the leg writes it and closes. The
//! task's end of all this is `served_link.rs`.

use super::prompts::PromptFrames;
use super::protocol::Output;
use super::shared_core::CoreCell;
use super::task::Shared;
use super::wire::{self, WireMsg, WireReader};
use crate::media::g711;
use crate::media::{DIRECT_FRAME, ServedLeg};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::served_link::{FromRelay, Returned, ServedLink};

use super::pacer::{Pacer, Step};

/// Messages handed to the task and not yet taken, at most, before the socket is no longer
/// read (the bot is slowed down; nothing it said is lost).
const MAX_OUTSTANDING: usize = 256;

/// Bytes owed to the bot at most (about 10 s of 24 kHz audio); past them the bot is not
/// reading and the socket is dropped.
const MAX_OWED: usize = 1 << 20;

/// The leg the relay serves.
pub(crate) struct ServedBot {
    sock: std::net::TcpStream,
    reader: WireReader,
    /// Bytes for the bot not yet written.
    owed: Vec<u8>,
    /// Since when the socket has not taken everything owed.
    blocked_since: Option<Instant>,
    core: Arc<CoreCell>,
    shared: Arc<Shared>,
    prompts: Option<Arc<PromptFrames>>,
    pacer: Pacer,
    /// When the pacer must be asked again even if no new audio came.
    next_check: tokio::time::Instant,
    /// The bot's audio arrived since the pacer was last asked.
    fresh: bool,
    to_task: mpsc::UnboundedSender<FromRelay>,
    outstanding: Arc<AtomicUsize>,
    max_message: usize,
    write_timeout: Duration,
    span: tracing::Span,
    alive: bool,
    /// Closing: the goodbye is queued; the socket closes once it is written.
    closing: bool,
    /// The close frame is queued.
    close_sent: bool,
    /// The reader may hold whole messages read before the hand-over (taken at the first tick).
    unread: bool,
    out: Vec<Output>,
}

/// The parts a served leg is made of.
pub(crate) struct ServedParts {
    pub sock: std::net::TcpStream,
    pub reader: WireReader,
    /// Bytes the session still owed the bot (part of a pong), written first.
    pub owed: Vec<u8>,
    pub core: Arc<CoreCell>,
    pub shared: Arc<Shared>,
    pub prompts: Option<Arc<PromptFrames>>,
    pub max_message: usize,
    pub write_timeout: Duration,
}

impl ServedBot {
    /// A leg over `parts.sock`, and the task's end of it. The core is marked served: the
    /// task's frames go to the relay from now on.
    pub fn new(parts: ServedParts) -> (ServedBot, ServedLink) {
        let (tx, outstanding, link) = ServedLink::channel();
        parts.core.start_serving();
        let mut owed = parts.owed;
        owed.reserve(4096);
        let now = tokio::time::Instant::now();
        let bot = ServedBot {
            sock: parts.sock,
            reader: parts.reader,
            owed,
            blocked_since: None,
            core: parts.core,
            shared: parts.shared,
            prompts: parts.prompts,
            pacer: Pacer::new(now),
            next_check: now,
            fresh: true,
            to_task: tx,
            outstanding,
            max_message: parts.max_message,
            write_timeout: parts.write_timeout,
            span: tracing::Span::current(),
            alive: true,
            closing: false,
            close_sent: false,
            unread: true,
            out: Vec::new(),
        };
        (bot, link)
    }

    /// The socket failed: the task is told; the task's frames not yet written stay in the
    /// core for it (sent after the resume), and its frames from now on are its own again.
    fn fail(&mut self, reason: String) {
        if !self.alive {
            return;
        }
        self.alive = false;
        self.core.lock().served = false;
        if !self.closing {
            let _e = self.span.enter();
            tracing::warn!(%reason, "WebSocket bot socket failed (served by the media relay)");
            let _ = self.to_task.send(FromRelay::Dropped(reason));
        }
    }

    /// Appends the task's queued frames (in the core's order, before anything made now).
    fn take_queued(st: &mut super::shared_core::CoreState, owed: &mut Vec<u8>) {
        for frame in st.outq.drain(..) {
            wire::encode_text(&frame, owed);
        }
    }

    /// Carries out the outputs of a core call made here: frames written, audio to the
    /// playout buffer, the rest to the task.
    fn apply(&mut self) {
        let mut for_task = Vec::new();
        for o in self.out.drain(..) {
            match o {
                Output::Send(frame) => wire::encode_text(&frame, &mut self.owed),
                Output::Play(pcm) => {
                    self.shared.player().push(&pcm);
                    self.fresh = true;
                }
                Output::PlayEnd => {
                    self.shared.player().flush();
                    self.fresh = true;
                }
                Output::Clear => self.shared.player().clear(),
                Output::Mark(name) => self.shared.player().mark(name),
                other => for_task.push(other),
            }
        }
        if !for_task.is_empty() {
            self.outstanding.fetch_add(1, Relaxed);
            let _ = self.to_task.send(FromRelay::Outputs(for_task));
        }
    }

    /// One message from the bot.
    fn on_message(&mut self, msg: WireMsg) {
        match msg {
            WireMsg::Text(text) if text.len() > self.max_message => {
                self.bad_frame(&super::error::FrameError::Oversized {
                    size: text.len(),
                    limit: self.max_message,
                });
            }
            WireMsg::Text(text) => {
                if let Some(Err(e)) = self.through_core(|proto, out| proto.on_text(&text, out)) {
                    self.bad_frame(&e);
                }
                self.echo_marks();
            }
            WireMsg::Binary(n) => self.bad_frame(&super::error::FrameError::Binary(n)),
            WireMsg::Ping(payload) => wire::encode_pong(&payload, &mut self.owed),
            WireMsg::Pong => {}
            WireMsg::Close => {
                wire::encode_close(&mut self.owed);
                self.flush();
                self.fail("the bot closed the connection".into());
            }
        }
    }

    fn bad_frame(&self, e: &super::error::FrameError) {
        let _e = self.span.enter();
        self.shared.counters.bad_frame(e);
    }

    /// Echoes marks whose audio has played (media stream).
    fn echo_marks(&mut self) {
        let due = self.shared.player().take_due_marks();
        if due.is_empty() {
            return;
        }
        self.through_core(|proto, out| proto.marks_played(due, out));
    }

    /// Runs `f` on the protocol core under its lock — first taking the frames the task queued
    /// there, so they go out before what `f` makes — then carries out its outputs. `None`
    /// (and `f` not run) once the task's goodbye is queued: nothing may follow it (a media
    /// stream's `media` after its `stop`).
    fn through_core<R>(
        &mut self,
        f: impl FnOnce(&mut dyn super::protocol::Protocol, &mut Vec<Output>) -> R,
    ) -> Option<R> {
        let mut out = std::mem::take(&mut self.out);
        let result = {
            let mut st = self.core.lock();
            Self::take_queued(&mut st, &mut self.owed);
            if st.close {
                self.closing = true;
                None
            } else {
                Some(f(st.proto.as_mut(), &mut out))
            }
        };
        self.out = out;
        self.apply();
        result
    }

    /// Reads what the socket has (one read: the relay's epoll is level-triggered) and takes
    /// every whole message in it.
    fn read(&mut self) {
        match self.sock.read(self.reader.spare()) {
            Ok(0) => {
                self.reader.filled(0);
                return self.fail("the bot closed the connection".into());
            }
            Ok(n) => self.reader.filled(n),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                self.reader.filled(0);
                return;
            }
            Err(e) => {
                self.reader.filled(0);
                return self.fail(e.to_string());
            }
        }
        self.take_messages();
    }

    /// Takes every whole message the reader holds.
    fn take_messages(&mut self) {
        while self.alive {
            match self.reader.next() {
                Ok(Some(msg)) => self.on_message(msg),
                Ok(None) => break,
                Err(e) => return self.fail(e.to_string()),
            }
        }
    }

    /// Fails the leg if the bot closed the connection or the socket has an error, without
    /// taking any data waiting. Called when the socket woke the relay while it is not read:
    /// with nothing owed either (no interest at all) only a hang-up or an error wakes it, and
    /// that must end the leg even with data waiting (a reset), or the level-triggered set
    /// would report it again on every pass.
    fn check_hangup(&mut self) {
        if let Ok(Some(e)) = self.sock.take_error() {
            return self.fail(e.to_string());
        }
        match self.sock.peek(&mut [0u8; 1]) {
            Ok(0) => self.fail("the bot closed the connection".into()),
            Ok(_) if self.owed.is_empty() => self.fail("the bot's connection was reset".into()),
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Writes what is owed, as far as the socket takes it now.
    fn flush(&mut self) {
        let mut written = 0;
        while written < self.owed.len() {
            match self.sock.write(&self.owed[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.owed.clear();
                    return self.fail(e.to_string());
                }
            }
        }
        self.owed.drain(..written);
        if self.owed.is_empty() {
            self.blocked_since = None;
        } else if self.owed.len() > MAX_OWED {
            self.fail("the bot stopped reading (too much audio owed)".into());
        } else {
            self.blocked_since.get_or_insert_with(Instant::now);
        }
    }

    /// The bot's frames that are due now (after a stall, the missed ones) go to `out`.
    fn pace(&mut self, now: Instant, out: &mut Vec<[u8; DIRECT_FRAME]>) {
        let now = tokio::time::Instant::from_std(now);
        let prompt = self.prompts.as_ref().is_some_and(|p| p.has_frame());
        if !self.fresh && !prompt && now < self.next_check {
            return;
        }
        self.fresh = false;
        let mut marks_due = false;
        loop {
            let mut player = self.shared.player();
            let ready =
                player.frame_ready() || self.prompts.as_ref().is_some_and(|p| p.has_frame());
            match self.pacer.poll(now, ready) {
                Step::Wait(at) => {
                    // A frame arriving sooner sets `fresh`; without one, `at` is the silence's time.
                    self.next_check = at;
                    break;
                }
                Step::Send => {
                    let mut frame = player.next_frame();
                    marks_due |= player.has_due_marks();
                    drop(player);
                    if let Some(p) = &self.prompts {
                        p.mix_into(&mut frame);
                    }
                    let mut pcmu = [0u8; DIRECT_FRAME];
                    for (b, s) in pcmu.iter_mut().zip(frame) {
                        *b = g711::linear_to_ulaw(s);
                    }
                    out.push(pcmu);
                }
            }
        }
        if marks_due {
            self.echo_marks();
        }
    }

    /// The task's queued frames, and its request to close.
    fn take_task_frames(&mut self) {
        if !self.core.take_attention() {
            return;
        }
        let mut st = self.core.lock();
        Self::take_queued(&mut st, &mut self.owed);
        if st.close {
            self.closing = true;
        }
    }

    /// While closing: the close frame follows the goodbye, and the socket closes once both
    /// are written (a bot that stops reading meanwhile is dropped by the write timeout).
    fn close_when_written(&mut self) {
        if !self.closing || !self.alive {
            return;
        }
        if !self.close_sent {
            self.close_sent = true;
            wire::encode_close(&mut self.owed);
        }
        self.flush();
        if self.owed.is_empty() {
            self.shut();
        }
    }

    /// Closes the socket for writing and ends the leg (the relay drops it, closing it).
    fn shut(&mut self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
        self.alive = false;
        self.core.lock().served = false;
    }
}

impl Drop for ServedBot {
    fn drop(&mut self) {
        // Dropped while alive — it panicked, or the relay thread stopped — without `fail` or
        // `finish`: the task's frames are its own again (its link reports the socket dropped).
        if self.alive {
            self.core.lock().served = false;
        }
    }
}

impl ServedLeg for ServedBot {
    fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    fn interest(&self) -> (bool, bool) {
        let read = self.outstanding.load(Relaxed) < MAX_OUTSTANDING;
        (read, !self.owed.is_empty())
    }

    fn on_socket(&mut self, now: Instant, out: &mut Vec<[u8; DIRECT_FRAME]>) {
        if !self.alive {
            return;
        }
        if self.outstanding.load(Relaxed) < MAX_OUTSTANDING {
            self.read();
        } else {
            // Not reading (the task is behind), yet the socket woke the relay: a hang-up or an
            // error, which epoll reports whatever the interest, must not go unseen (it would
            // wake the relay again and again).
            self.check_hangup();
        }
        if self.alive {
            self.pace(now, out);
            self.flush();
            self.close_when_written();
        }
    }

    fn on_person(&mut self, pcmu: &[u8]) {
        if !self.alive || self.closing {
            return;
        }
        self.through_core(|proto, out| proto.on_person_pcmu(pcmu, out));
        self.flush();
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<[u8; DIRECT_FRAME]>) {
        if !self.alive {
            return;
        }
        self.take_task_frames();
        if self.unread {
            // Messages read with the handshake or before the hand-over: the bot may be waiting
            // for an answer to them, and will not write again to wake the socket.
            self.unread = false;
            self.take_messages();
        }
        self.pace(now, out);
        if !self.owed.is_empty() {
            self.flush();
        }
        if let Some(since) = self.blocked_since
            && now.saturating_duration_since(since) > self.write_timeout
        {
            return self.fail("the bot stopped reading (write timed out)".into());
        }
        self.close_when_written();
    }

    fn next_tick(&self) -> Instant {
        if self.unread || self.core.wants_attention() {
            // The task's frames or goodbye wait.
            return Instant::now();
        }
        let at = self.next_check.into_std();
        match self.blocked_since {
            Some(since) => at.min(since + self.write_timeout),
            None => at,
        }
    }

    fn alive(&self) -> bool {
        self.alive
    }

    fn finish(&mut self) {
        if !self.alive {
            return;
        }
        // Decided under the lock the task's goodbye is queued under: either it is queued
        // (it is written here) or the task will find the socket released and say it itself.
        let mut st = self.core.lock();
        self.core.take_attention();
        Self::take_queued(&mut st, &mut self.owed);
        if self.closing || st.close {
            // The goodbye is queued: one try at writing it, without waiting.
            drop(st);
            self.closing = true;
            self.close_when_written();
            if self.alive {
                self.shut();
            }
            return;
        }
        // The session still has to say goodbye: the socket goes back to it, with what the
        // core queued so far; what it queues until the task takes the socket waits in the
        // core (`released`), and the task's goodbye waits for the socket.
        st.released = true;
        drop(st);
        self.alive = false;
        let owed = std::mem::take(&mut self.owed);
        let reader = std::mem::replace(&mut self.reader, WireReader::new(Vec::new(), 0));
        match self.sock.try_clone() {
            Ok(sock) => {
                let back = Returned { sock, reader, owed };
                let _ = self.to_task.send(FromRelay::Returned(Box::new(back)));
            }
            Err(e) => {
                let _ = self.to_task.send(FromRelay::Dropped(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::doorbell::Doorbell;
    use crate::wsbot::jitter::JitterBuffer;
    use crate::wsbot::media_stream::MediaStreamCore;
    use crate::wsbot::protocol::Command;
    use crate::wsbot::types::CallInfo;
    use crate::wsbot::types::Counters;
    use std::sync::Mutex;

    /// A served media-stream leg over a real loopback socket, and the bot's end of it.
    fn leg() -> (ServedBot, ServedLink, Arc<CoreCell>, std::net::TcpStream) {
        leg_with(Vec::new())
    }

    /// The same, its reader holding `leftover` (bytes read before the hand-over).
    fn leg_with(leftover: Vec<u8>) -> (ServedBot, ServedLink, Arc<CoreCell>, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let sock =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (bot_end, _) = listener.accept().expect("accept");
        sock.set_nonblocking(true).expect("nonblocking");
        let counters = Arc::new(Counters::default());
        let call = CallInfo {
            conversation_id: "c".into(),
            caller: "a".into(),
            callee: "b".into(),
            metadata: serde_json::Value::Null,
        };
        let core = Arc::new(CoreCell::new(Box::new(MediaStreamCore::new(
            call,
            counters.clone(),
        ))));
        let shared = Arc::new(Shared {
            player: Mutex::new(JitterBuffer::new(1000)),
            marks_due: Doorbell::new(),
            counters,
        });
        let (bot, link) = ServedBot::new(ServedParts {
            owed: Vec::new(),
            sock,
            reader: WireReader::new(leftover, 1 << 20),
            core: core.clone(),
            shared,
            prompts: None,
            max_message: 1 << 16,
            write_timeout: Duration::from_secs(5),
        });
        (bot, link, core, bot_end)
    }

    /// Every message the bot's end has received so far (dialgate's frames are masked).
    fn received(bot_end: &mut std::net::TcpStream) -> Vec<serde_json::Value> {
        bot_end
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut reader = WireReader::new(Vec::new(), 1 << 20);
        let mut got = Vec::new();
        loop {
            match bot_end.read(reader.spare()) {
                Ok(n) if n > 0 => reader.filled(n),
                _ => {
                    reader.filled(0);
                    break;
                }
            }
        }
        while let Ok(Some(WireMsg::Text(t))) = reader.next() {
            got.push(serde_json::from_str(&t).expect("json"));
        }
        got
    }

    /// A media message from the bot (20 ms of µ-law byte `b`), framed as a server sends it.
    fn media_frame(b: u8) -> Vec<u8> {
        let payload = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [b; 160]);
        let text = serde_json::json!({"event": "media", "media": {"payload": payload}}).to_string();
        let mut bytes = vec![0x81, 126];
        bytes.extend_from_slice(&(text.len() as u16).to_be_bytes());
        bytes.extend_from_slice(text.as_bytes());
        bytes
    }

    fn poll_link(link: &mut ServedLink) -> std::task::Poll<FromRelay> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        link.poll_next(&mut cx)
    }

    #[test]
    fn messages_read_before_the_hand_over_are_taken_at_the_first_tick() {
        // 1. The session had read a whole media message past the last one it took; the bot
        //    writes nothing more (the socket will not wake the relay).
        let (mut bot, _link, _core, _bot_end) = leg_with(media_frame(0x10));
        assert!(
            bot.next_tick() <= Instant::now(),
            "the leg asks for a tick at once"
        );
        // 2. The first tick plays it.
        let mut out = Vec::new();
        bot.on_tick(Instant::now(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][0], g711::linear_to_ulaw(g711::ulaw_to_linear(0x10)));
    }

    #[test]
    fn a_goodbye_queued_first_is_written_here_and_nothing_follows_it() {
        // 1. The task queues its goodbye (`stop`) while the relay serves the socket.
        let (mut bot, mut link, core, mut bot_end) = leg();
        assert!(core.close_served(|p| p.closing("x", "y")).is_ok());
        // 2. The person's audio arriving now makes no `media` after the `stop`.
        bot.on_person(&[0xff; 160]);
        // 3. The call's media ends: the relay writes the goodbye and a close frame and keeps
        //    the socket (nothing handed back).
        bot.finish();
        assert!(!bot.alive());
        let got = received(&mut bot_end);
        let events: Vec<&str> = got.iter().filter_map(|m| m["event"].as_str()).collect();
        assert_eq!(events, ["stop"]);
        assert!(poll_link(&mut link).is_pending());
    }

    #[test]
    fn a_socket_handed_back_first_leaves_the_goodbye_to_the_task() {
        // 1. The call's media ends before the goodbye: the socket goes back to the task.
        let (mut bot, mut link, core, _bot_end) = leg();
        bot.finish();
        assert!(matches!(
            poll_link(&mut link),
            std::task::Poll::Ready(FromRelay::Returned(_))
        ));
        // 2. The task's goodbye is refused here (it says it itself on the returned socket).
        let frames = core
            .close_served(|p| p.closing("x", "y"))
            .expect_err("released");
        assert!(frames.iter().any(|f| f.contains("\"stop\"")), "{frames:?}");
    }

    #[test]
    fn a_failed_socket_leaves_the_tasks_unwritten_frames_to_it() {
        // 1. The task's key press is queued for the relay; the bot closes before it is written.
        let (mut bot, _link, core, bot_end) = leg();
        assert!(
            core.run(|c, out| c.on_command(Command::Dtmf('7'), out))
                .is_empty()
        );
        drop(bot_end);
        std::thread::sleep(Duration::from_millis(50));
        // 2. The relay finds the socket closed: the frame is the task's again, for the resume.
        bot.on_socket(Instant::now(), &mut Vec::new());
        assert!(!bot.alive());
        let back = core.take_back();
        assert_eq!(back.len(), 1, "{back:?}");
        assert!(back[0].contains("\"dtmf\""), "{back:?}");
    }

    #[test]
    fn a_reset_while_not_reading_ends_the_leg() {
        // 1. The task is behind: the relay stops reading the socket (no interest at all).
        let (mut bot, mut link, _core, bot_end) = leg();
        bot.outstanding.store(MAX_OUTSTANDING, Relaxed);
        assert_eq!(bot.interest(), (false, false));
        // 2. The bot writes, then resets the connection: data waits, and the reset with it.
        let mut bot_end = bot_end;
        bot_end.write_all(&media_frame(0x20)).expect("write");
        socket2::SockRef::from(&bot_end)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(bot_end);
        std::thread::sleep(Duration::from_millis(50));
        // 3. The wake-up (a hang-up, reported whatever the interest) ends the leg.
        bot.on_socket(Instant::now(), &mut Vec::new());
        assert!(!bot.alive());
        assert!(matches!(
            poll_link(&mut link),
            std::task::Poll::Ready(FromRelay::Dropped(_))
        ));
    }

    #[test]
    fn the_tasks_frames_go_before_the_relays_in_the_cores_order() {
        // 1. A served leg; the task sends a key press through the core (queued, not written).
        let (mut bot, _link, core, mut bot_end) = leg();
        let rest = core.run(|c, out| c.on_command(Command::Dtmf('5'), out));
        assert!(rest.is_empty(), "{rest:?}");
        // 2. The person's 20 ms then reaches the relay: the key press goes first.
        bot.on_person(&[0xff; 160]);
        let got = received(&mut bot_end);
        let events: Vec<&str> = got.iter().filter_map(|m| m["event"].as_str()).collect();
        assert_eq!(events, ["dtmf", "media"]);
        // 3. Sequence numbers rise on the wire, whoever made the frame.
        let seqs: Vec<u64> = got
            .iter()
            .filter_map(|m| m["sequenceNumber"].as_str()?.parse().ok())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }

    #[test]
    fn the_bots_audio_is_paced_and_a_closed_socket_is_reported() {
        // 1. A served leg; the bot sends 60 ms of audio at once.
        let (mut bot, mut link, _core, mut bot_end) = leg();
        let media = |b: u8| {
            let payload =
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [b; 160]);
            serde_json::json!({"event": "media", "media": {"payload": payload}}).to_string()
        };
        let mut bytes = Vec::new();
        for b in [0x10u8, 0x20, 0x30] {
            let text = media(b);
            bytes.push(0x81);
            bytes.push(126);
            bytes.extend_from_slice(&(text.len() as u16).to_be_bytes());
            bytes.extend_from_slice(text.as_bytes());
        }
        bot_end.write_all(&bytes).expect("write");
        std::thread::sleep(Duration::from_millis(50));
        // 2. Read at once: the first frame leaves now; the floors then trail it by the pacer's
        //    slack (10 ms) and step by 20 ms: never faster than real time.
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut out = Vec::new();
        bot.on_socket(t0, &mut out);
        assert_eq!(out.len(), 1);
        for (at, frames) in [(9, 1), (10, 2), (29, 2), (30, 3), (49, 3)] {
            bot.on_tick(ms(at), &mut out);
            assert_eq!(out.len(), frames, "at {at} ms");
        }
        assert_eq!(out[2][0], g711::linear_to_ulaw(g711::ulaw_to_linear(0x30)));
        // 3. Then silence, one frame per 20 ms (one hold late).
        bot.on_tick(ms(200), &mut out);
        assert!(
            (8..=10).contains(&out.len()),
            "{} frames by 200 ms",
            out.len()
        );
        let silent = g711::linear_to_ulaw(0);
        assert!(out[3..].iter().all(|f| f.iter().all(|&b| b == silent)));
        // 4. The bot closes: the leg ends and tells the task.
        drop(bot_end);
        std::thread::sleep(Duration::from_millis(50));
        bot.on_socket(Instant::now(), &mut out);
        assert!(!bot.alive());
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(matches!(
            link.poll_next(&mut cx),
            std::task::Poll::Ready(FromRelay::Dropped(_))
        ));
    }
}
