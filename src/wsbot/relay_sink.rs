//! The person's audio sent to a plain-TCP bot from the relay thread (a [`PersonSink`], see
//! `media/direct.rs`): the protocol core turns it into the bot's message and the shared writer
//! (`writer.rs`) sends it, right where the RTP packet came in. The session's task is neither
//! woken nor involved; per 20 ms that saved its wake-up, the queue and the hop between threads.
//!
//! The core is shared with the task under one lock ([`SharedCore`]). The sink only tries it:
//! when the task holds it (it is handling a bot message or a command), the audio takes the
//! queue instead, as it does when earlier audio still waits there — the task drains the queue
//! under the same lock, so audio never overtakes audio that came before it. The task also
//! hands its own messages to the writer before releasing the lock, so a chunk the relay writes
//! next always follows them (an AC user stream's first chunks, a media stream's sequence numbers).

use super::protocol::{Output, Protocol};
use super::types::Counters;
use super::writer::{BotWriter, WriteRefused};
use crate::media::PersonSink;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// A session's protocol core, shared by its task and its relay sink.
pub(crate) type SharedCore = Arc<Mutex<Box<dyn Protocol>>>;

/// Locks the core (a panic elsewhere while holding it leaves the core as it was).
pub(crate) fn lock(core: &SharedCore) -> MutexGuard<'_, Box<dyn Protocol>> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `f` on the core. With a plain socket's `writer`, the messages it gives are sent before
/// the core is released (see the module doc) and the other outputs are returned; without one,
/// everything is returned for the task to carry out. `Err`: the writer refused a message.
pub(crate) fn with_core(
    core: &SharedCore,
    writer: Option<&Arc<BotWriter>>,
    f: impl FnOnce(&mut dyn Protocol, &mut Vec<Output>),
) -> Result<Vec<Output>, String> {
    let mut core = lock(core);
    let mut out = Vec::new();
    f(core.as_mut(), &mut out);
    send_now(writer, out)
}

/// Sends the messages among `out` through `writer` (when there is one), in order; returns the
/// other outputs.
pub(crate) fn send_now(
    writer: Option<&Arc<BotWriter>>,
    out: Vec<Output>,
) -> Result<Vec<Output>, String> {
    let Some(writer) = writer else {
        return Ok(out);
    };
    let mut rest = Vec::new();
    for o in out {
        match o {
            Output::Send(text) => writer.send_text(&text).map_err(|e| e.to_string())?,
            other => rest.push(other),
        }
    }
    Ok(rest)
}

/// The relay thread's way to the bot (see the module doc).
pub(crate) struct RelaySink {
    pub core: SharedCore,
    pub writer: Arc<BotWriter>,
    pub counters: Arc<Counters>,
}

impl PersonSink for RelaySink {
    fn try_send(&self, pcmu: &[u8], queue_empty: &dyn Fn() -> bool) -> bool {
        let mut core = match self.core.try_lock() {
            Ok(core) => core,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        if !queue_empty() {
            return false;
        }
        let mut out = Vec::new();
        core.on_person_pcmu(pcmu, &mut out);
        for o in out {
            let Output::Send(text) = o else { continue };
            match self.writer.send_text(&text) {
                Ok(()) => {}
                // The bot does not read: this chunk is lost, like a full queue's.
                Err(WriteRefused::Full) => Counters::bump(&self.counters.audio_dropped),
                // The socket failed: the task finds out when it next reads or writes, and
                // drops what waits meanwhile (counted) while it reconnects.
                Err(WriteRefused::Failed(_)) => Counters::bump(&self.counters.audio_dropped),
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wsbot::media_stream::MediaStreamCore;
    use crate::wsbot::types::CallInfo;
    use crate::wsbot::writer::SplitTcp;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_relay_writes_only_when_nothing_waits_before_it_and_the_core_is_free() {
        // 1. A media-stream core and a plain socket's writer, the far end read here.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, server) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (_stream, writer) = SplitTcp::new(client.expect("connect"));
        let (mut server, _) = server.expect("accept");
        let call = CallInfo {
            conversation_id: "c".into(),
            caller: "a".into(),
            callee: "b".into(),
            metadata: serde_json::Value::Null,
        };
        let counters = Arc::new(Counters::default());
        let core: SharedCore = Arc::new(Mutex::new(Box::new(MediaStreamCore::new(
            call,
            counters.clone(),
        ))));
        let sink = RelaySink {
            core: core.clone(),
            writer,
            counters,
        };
        let frame = [0x55u8; 160];
        // 2. Earlier audio waits in the queue: declined (it must not overtake it).
        assert!(!sink.try_send(&frame, &|| false));
        // 3. The task holds the core: declined.
        {
            let _held = lock(&core);
            assert!(!sink.try_send(&frame, &|| true));
        }
        // 4. Free core, empty queue: one `media` message reaches the bot, framed and masked.
        assert!(sink.try_send(&frame, &|| true));
        let mut got = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), server.read(&mut got))
            .await
            .expect("in time")
            .expect("read");
        let mut cursor = std::io::Cursor::new(got[..n].to_vec());
        let (header, length) =
            tokio_tungstenite::tungstenite::protocol::frame::FrameHeader::parse(&mut cursor)
                .expect("parses")
                .expect("whole");
        let key = header.mask.expect("masked");
        let start = cursor.position() as usize;
        let text: Vec<u8> = got[start..start + length as usize]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i & 3])
            .collect();
        let msg: serde_json::Value = serde_json::from_slice(&text).expect("JSON");
        assert_eq!(msg["event"], "media", "{msg}");
    }
}
