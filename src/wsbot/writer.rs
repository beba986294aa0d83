//! The write side of a bot's socket, shared by the session's task and the relay thread.
//!
//! Why: per 20 ms of the person's audio, handing it from the relay thread to the session's task
//! (a queue, a cross-thread wake-up, the worker leaving `epoll_wait`, the task's poll) cost
//! more than writing it. With a plain `ws://` bot the relay thread now writes the person's
//! `userStream.chunk` / `media` message itself (`relay_sink.rs`); the session writes its own
//! messages through the same [`BotWriter`], so the bytes of two messages never interleave:
//! each message is framed whole into the writer's buffer under its lock, and the buffer goes to
//! the socket in order.
//!
//! Nobody waits here: what the socket does not take at once stays in the buffer (bounded by
//! [`MAX_UNSENT`]) and goes with the next write, or when the session's task, polled for it,
//! finds the socket writable again. The session still bounds its own writes by the write
//! timeout (`Task::write`); the relay's messages beyond the bound are dropped and counted.

use std::io;
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// Bytes kept for a bot that does not read (≈ 10 s of 20 ms µ-law chunks); beyond it a write
/// is refused.
pub(crate) const MAX_UNSENT: usize = 256 * 1024;

/// Why a write was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum WriteRefused {
    /// More than [`MAX_UNSENT`] bytes wait: the bot does not read.
    #[error("the bot stopped reading ({MAX_UNSENT} bytes unsent)")]
    Full,
    /// The socket failed earlier.
    #[error("the socket to the bot failed: {0}")]
    Failed(String),
}

struct State {
    half: OwnedWriteHalf,
    /// Bytes written by callers, not yet taken by the socket (whole frames, in order).
    unsent: Vec<u8>,
    failed: Option<String>,
}

/// The socket's write half and the bytes it has not taken yet (see the module doc).
pub(crate) struct BotWriter {
    state: Mutex<State>,
}

impl std::fmt::Debug for BotWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BotWriter").finish_non_exhaustive()
    }
}

impl BotWriter {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain bytes: a panic elsewhere while holding the lock leaves them usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Frames `text` as one masked client text message and sends it, or as much of it as the
    /// socket takes now (the rest waits, in order). Never waits.
    pub(crate) fn send_text(&self, text: &str) -> Result<(), WriteRefused> {
        let mut st = self.lock();
        st.usable(text.len())?;
        frame_text(text.as_bytes(), &mut st.unsent);
        st.push_out();
        Ok(())
    }

    /// Whether bytes wait for the socket.
    pub(crate) fn has_unsent(&self) -> bool {
        !self.lock().unsent.is_empty()
    }

    /// Ready once every byte written so far went to the socket; otherwise the task of `cx` is
    /// woken when the socket can take more.
    pub(crate) fn poll_sent(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        while !st.unsent.is_empty() {
            let State { half, unsent, .. } = &mut *st;
            match Pin::new(half).poll_write(cx, unsent) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(st.fail(io::ErrorKind::WriteZero))),
                Poll::Ready(Ok(n)) => {
                    st.unsent.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(st.fail(e.kind()))),
            }
        }
        match &st.failed {
            Some(why) => Poll::Ready(Err(io::Error::other(why.clone()))),
            None => Poll::Ready(Ok(())),
        }
    }
}

impl State {
    fn usable(&self, adding: usize) -> Result<(), WriteRefused> {
        if let Some(why) = &self.failed {
            return Err(WriteRefused::Failed(why.clone()));
        }
        if self.unsent.len() + adding > MAX_UNSENT {
            return Err(WriteRefused::Full);
        }
        Ok(())
    }

    /// Sends what the socket takes now, without registering any waker (the relay thread
    /// calls this too: it never waits, and must not take the session's wake-up away).
    fn push_out(&mut self) {
        while !self.unsent.is_empty() {
            match self.half.try_write(&self.unsent) {
                Ok(0) => {
                    self.fail(io::ErrorKind::WriteZero);
                    return;
                }
                Ok(n) => {
                    self.unsent.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.fail(e.kind());
                    return;
                }
            }
        }
    }

    fn fail(&mut self, kind: io::ErrorKind) -> io::Error {
        let why = io::Error::from(kind).to_string();
        self.failed.get_or_insert(why.clone());
        self.unsent.clear();
        io::Error::other(why)
    }
}

/// Appends one final, masked text frame carrying `payload` (RFC 6455 § 5.3: a client masks
/// every frame, with a fresh key each time).
pub(crate) fn frame_text(payload: &[u8], out: &mut Vec<u8>) {
    let key: [u8; 4] = rand::random();
    let header = FrameHeader {
        is_final: true,
        opcode: OpCode::Data(Data::Text),
        mask: Some(key),
        ..FrameHeader::default()
    };
    // Writing into a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, b) in out[start..].iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The byte stream tungstenite runs the WebSocket over (directly, or under TLS): reads from the
/// socket's read half; writes go into the shared [`BotWriter`], accepted whole at once so that
/// tungstenite's frames (the handshake, pongs, the close frame, and everything under TLS) stay
/// whole between the session's and the relay's messages.
pub(crate) struct SplitTcp {
    read: OwnedReadHalf,
    writer: std::sync::Arc<BotWriter>,
}

impl SplitTcp {
    /// Splits a connected socket; the writer is also handed to whoever writes beside the session.
    pub(crate) fn new(sock: tokio::net::TcpStream) -> (SplitTcp, std::sync::Arc<BotWriter>) {
        let (read, half) = sock.into_split();
        let writer = std::sync::Arc::new(BotWriter {
            state: Mutex::new(State {
                half,
                unsent: Vec::new(),
                failed: None,
            }),
        });
        (
            SplitTcp {
                read,
                writer: writer.clone(),
            },
            writer,
        )
    }
}

impl AsyncRead for SplitTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.read).poll_read(cx, buf)
    }
}

impl AsyncWrite for SplitTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.writer.lock();
        if let Err(e) = st.usable(buf.len()) {
            return Poll::Ready(Err(io::Error::other(e)));
        }
        st.unsent.extend_from_slice(buf);
        st.push_out();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.poll_sent(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        std::task::ready!(self.writer.poll_sent(cx))?;
        let mut st = self.writer.lock();
        Pin::new(&mut st.half).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn a_text_frame_is_masked_and_parses_back() {
        // 1. Short, 16-bit and 64-bit lengths.
        for len in [0usize, 5, 125, 126, 300, 65_535, 65_536, 70_000] {
            let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
            let mut bytes = Vec::new();
            frame_text(text.as_bytes(), &mut bytes);
            // 2. A server's parser reads one final, masked text frame with the same text.
            let mut cursor = Cursor::new(bytes);
            let (header, length) = FrameHeader::parse(&mut cursor)
                .expect("parses")
                .expect("whole header");
            assert!(header.is_final && header.mask.is_some(), "{header:?}");
            assert_eq!(header.opcode, OpCode::Data(Data::Text));
            assert_eq!(length as usize, len);
            let start = cursor.position() as usize;
            let mut payload = cursor.into_inner()[start..].to_vec();
            let key = header.mask.expect("masked");
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i & 3];
            }
            assert_eq!(payload, text.as_bytes());
        }
    }

    #[tokio::test]
    async fn what_the_socket_does_not_take_waits_in_order_and_the_bound_refuses() {
        use tokio::io::AsyncReadExt;
        // 1. A connected pair whose reader does not read yet.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, server) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (_split, writer) = SplitTcp::new(client.expect("connect"));
        let (mut server, _) = server.expect("accept");
        // 2. Write until the kernel's buffers are full and the writer's bound refuses.
        let text = "x".repeat(8000);
        let mut sent = 0usize;
        let refused = loop {
            match writer.send_text(&text) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            }
            assert!(sent < 100_000, "never refused");
        };
        assert_eq!(refused, WriteRefused::Full);
        assert!(writer.has_unsent());
        // 3. The reader reads everything: the messages arrive whole, in order, and the
        //    writer's buffer drains as the socket takes it.
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let n = server.read(&mut buf).await.expect("read");
                if n == 0 {
                    return all;
                }
                all.extend_from_slice(&buf[..n]);
            }
        });
        std::future::poll_fn(|cx| writer.poll_sent(cx))
            .await
            .expect("sent");
        drop(_split);
        drop(writer);
        let all = reader.await.expect("reader");
        let mut cursor = Cursor::new(all);
        let mut frames = 0;
        while let Some((header, length)) = FrameHeader::parse(&mut cursor).expect("parses") {
            assert!(
                header.mask.is_some() && length == 8000,
                "{header:?} {length}"
            );
            frames += 1;
            let at = cursor.position() + length;
            cursor.set_position(at);
        }
        assert_eq!(frames, sent);
    }
}
