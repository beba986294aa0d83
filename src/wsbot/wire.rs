//! WebSocket framing, the client's side (RFC 6455 §5), sans-IO: what dialgate's own `ws://`
//! link (`plain.rs`) and the relay thread serving a bot's socket (`served.rs`) read and write.
//!
//! Why not tungstenite here: the relay thread serves a bot's socket over its own epoll set
//! (no tokio, no task per call: see `served.rs`), and the socket is handed to it mid-session;
//! the bytes already read must go with it, and tungstenite keeps its read buffer private.
//! `wss://` bots still use tungstenite.

use thiserror::Error;

/// Opcodes (RFC 6455 §5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Bytes asked of the socket per read.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// One message from the bot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WireMsg {
    /// A text message (fragments joined).
    Text(String),
    /// A binary message, of this many bytes (dialgate's bots speak text only).
    Binary(usize),
    /// A ping, with its payload (answered with a pong carrying it).
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The bot closes the connection.
    Close,
}

/// Why the bot's byte stream cannot be read as WebSocket frames (the socket is then dropped).
#[derive(Debug, Error, PartialEq, Eq)]
pub(crate) enum WireError {
    /// A message or frame larger than the hard limit.
    #[error("a WebSocket message of {size} bytes is over the limit of {limit}")]
    TooLarge {
        /// Announced (or gathered) size.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// Not a valid frame sequence (reserved bits, unknown opcode, bad fragmentation...).
    #[error("invalid WebSocket frame: {0}")]
    Protocol(&'static str),
    /// A text message that is not UTF-8.
    #[error("a WebSocket text message is not valid UTF-8")]
    Utf8,
}

/// Reads frames from the bytes of the bot's stream, joined into messages.
#[derive(Debug)]
pub(crate) struct WireReader {
    /// Bytes read in `start..end`, not yet a whole frame; the rest of the buffer is room for
    /// the next read (zeroed once, when the buffer grows, not before every read).
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A fragmented message being gathered: its opcode and payload so far.
    partial: Option<(u8, Vec<u8>)>,
    /// Largest frame or message accepted.
    limit: usize,
}

impl WireReader {
    /// A reader starting with `leftover` (bytes already read past the HTTP upgrade), taking
    /// messages of up to `limit` bytes.
    pub fn new(leftover: Vec<u8>, limit: usize) -> WireReader {
        let end = leftover.len();
        WireReader {
            buf: leftover,
            start: 0,
            end,
            partial: None,
            limit,
        }
    }

    /// Room for the next read: at least [`READ_CHUNK`] bytes after what is buffered. The
    /// caller reads into it and reports the count with [`WireReader::filled`].
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 && self.buf.len() - self.end < READ_CHUNK {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK {
            self.buf.resize(self.end + READ_CHUNK, 0);
        }
        &mut self.buf[self.end..]
    }

    /// `n` bytes of the last [`WireReader::spare`] were filled.
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buf.len());
    }

    /// Adds bytes (tests).
    #[cfg(test)]
    pub fn push(&mut self, bytes: &[u8]) {
        let room = self.spare();
        room[..bytes.len()].copy_from_slice(bytes);
        self.filled(bytes.len());
    }

    /// The next whole message, `None` until more bytes come.
    pub fn next(&mut self) -> Result<Option<WireMsg>, WireError> {
        loop {
            let Some((fin, opcode, payload)) = self.frame()? else {
                return Ok(None);
            };
            if let Some(msg) = self.message(fin, opcode, payload)? {
                return Ok(Some(msg));
            }
        }
    }

    /// The next whole frame: FIN, opcode and the unmasked payload.
    fn frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, WireError> {
        let b = &self.buf[self.start..self.end];
        if b.len() < 2 {
            return Ok(None);
        }
        if b[0] & 0x70 != 0 {
            return Err(WireError::Protocol(
                "reserved bits set (no extension was agreed)",
            ));
        }
        let (fin, opcode) = (b[0] & 0x80 != 0, b[0] & 0x0f);
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() < 4 => return Ok(None),
            126 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() < 10 => return Ok(None),
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            n => (u64::from(n), 2),
        };
        if len > self.limit as u64 {
            return Err(WireError::TooLarge {
                size: len,
                limit: self.limit,
            });
        }
        let len = len as usize;
        let mask = if masked {
            if b.len() < at + 4 {
                return Ok(None);
            }
            let m = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        if b.len() < at + len {
            return Ok(None);
        }
        // A server's frames are unmasked; a masked one is unmasked rather than refused.
        let mut payload = b[at..at + len].to_vec();
        if let Some(m) = mask {
            apply_mask(&mut payload, m);
        }
        self.start += at + len;
        Ok(Some((fin, opcode, payload)))
    }

    /// A frame joined into its message: `None` while a fragmented message is incomplete.
    fn message(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    ) -> Result<Option<WireMsg>, WireError> {
        match opcode {
            CLOSE | PING | PONG if !fin || payload.len() > 125 => Err(WireError::Protocol(
                "a fragmented or oversized control frame",
            )),
            CLOSE => Ok(Some(WireMsg::Close)),
            PING => Ok(Some(WireMsg::Ping(payload))),
            PONG => Ok(Some(WireMsg::Pong)),
            TEXT | BINARY if self.partial.is_some() => {
                Err(WireError::Protocol("a new message inside a fragmented one"))
            }
            TEXT | BINARY if !fin => {
                self.partial = Some((opcode, payload));
                Ok(None)
            }
            TEXT | BINARY => whole(opcode, payload).map(Some),
            CONTINUATION => {
                let Some((first, mut gathered)) = self.partial.take() else {
                    return Err(WireError::Protocol("a continuation frame with no message"));
                };
                let size = gathered.len() + payload.len();
                if size > self.limit {
                    return Err(WireError::TooLarge {
                        size: size as u64,
                        limit: self.limit,
                    });
                }
                gathered.extend_from_slice(&payload);
                if fin {
                    return whole(first, gathered).map(Some);
                }
                self.partial = Some((first, gathered));
                Ok(None)
            }
            _ => Err(WireError::Protocol("an unknown opcode")),
        }
    }
}

/// A whole data message.
fn whole(opcode: u8, payload: Vec<u8>) -> Result<WireMsg, WireError> {
    if opcode == BINARY {
        return Ok(WireMsg::Binary(payload.len()));
    }
    String::from_utf8(payload)
        .map(WireMsg::Text)
        .map_err(|_| WireError::Utf8)
}

/// XORs `data` with the masking key (RFC 6455 §5.3), eight bytes at a time (every message
/// to the bot is masked, 50 a second per call).
fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The tail starts at a multiple of 8, so at key offset 0.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// Appends one whole frame from the client (FIN set, masked with a fresh random key).
fn encode(opcode: u8, payload: &[u8], out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask: [u8; 4] = rand::random();
    out.extend_from_slice(&mask);
    let at = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[at..], mask);
}

/// Appends a text message.
pub(crate) fn encode_text(text: &str, out: &mut Vec<u8>) {
    encode(TEXT, text.as_bytes(), out);
}

/// Appends the answer to a ping.
pub(crate) fn encode_pong(payload: &[u8], out: &mut Vec<u8>) {
    encode(PONG, &payload[..payload.len().min(125)], out);
}

/// Appends a close frame (status 1000, normal closure).
pub(crate) fn encode_close(out: &mut Vec<u8>) {
    encode(CLOSE, &1000u16.to_be_bytes(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server's frame (unmasked).
    fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n <= 0xffff => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn messages_come_whole_however_the_bytes_are_cut() {
        // 1. Three messages: short text, a 300-byte text (16-bit length), a ping.
        let long = "x".repeat(300);
        let mut bytes = server_frame(true, TEXT, b"hello");
        bytes.extend(server_frame(true, TEXT, long.as_bytes()));
        bytes.extend(server_frame(true, PING, b"p"));
        // 2. Fed one byte at a time, each message appears once its last byte came.
        let mut r = WireReader::new(Vec::new(), 1 << 20);
        let mut got = Vec::new();
        for b in &bytes {
            r.push(std::slice::from_ref(b));
            while let Some(m) = r.next().expect("valid") {
                got.push(m);
            }
        }
        assert_eq!(
            got,
            vec![
                WireMsg::Text("hello".into()),
                WireMsg::Text(long),
                WireMsg::Ping(b"p".to_vec())
            ]
        );
    }

    #[test]
    fn fragments_are_joined_and_control_frames_may_come_between() {
        let mut r = WireReader::new(server_frame(false, TEXT, b"ab"), 1 << 20);
        r.push(&server_frame(true, PING, b""));
        r.push(&server_frame(false, CONTINUATION, b"cd"));
        r.push(&server_frame(true, CONTINUATION, b"ef"));
        assert_eq!(r.next(), Ok(Some(WireMsg::Ping(Vec::new()))));
        assert_eq!(r.next(), Ok(Some(WireMsg::Text("abcdef".into()))));
        assert_eq!(r.next(), Ok(None));
    }

    #[test]
    fn bad_streams_are_refused_with_a_reason() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![0xC1, 0], "reserved bits"),
            (vec![0x83, 0], "unknown opcode"),
            (
                server_frame(true, CONTINUATION, b"x"),
                "continuation frame with no message",
            ),
            (
                server_frame(false, PING, b""),
                "fragmented or oversized control",
            ),
            (
                [
                    server_frame(false, TEXT, b"a"),
                    server_frame(true, TEXT, b"b"),
                ]
                .concat(),
                "new message inside",
            ),
        ];
        for (bytes, why) in cases {
            let mut r = WireReader::new(bytes, 1 << 20);
            let err = r.next().expect_err(why).to_string();
            assert!(err.contains(why), "{err} / {why}");
        }
        // Over the limit: refused from the header, before the payload came.
        let mut r = WireReader::new(vec![0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0], 1 << 20);
        assert!(matches!(r.next(), Err(WireError::TooLarge { .. })));
        let mut r = WireReader::new(server_frame(true, TEXT, &[0xff, 0xfe]), 1 << 20);
        assert_eq!(r.next(), Err(WireError::Utf8));
    }

    #[test]
    fn a_client_frame_is_masked_and_reads_back() {
        // 1. Sizes on both sides of the 7-bit and 16-bit length forms.
        for n in [0usize, 125, 126, 65535, 65536] {
            let text = "é".repeat(n / 2) + &"a".repeat(n % 2);
            let mut out = Vec::new();
            encode_text(&text, &mut out);
            // 2. The mask bit is set and the payload on the wire is not the text.
            assert_eq!(out[1] & 0x80, 0x80);
            // 3. A server reading it (masked frames are unmasked) gets the text back.
            let mut r = WireReader::new(out, 1 << 20);
            assert_eq!(r.next(), Ok(Some(WireMsg::Text(text))));
        }
    }

    #[test]
    fn masking_eight_bytes_at_a_time_is_the_bytewise_mask() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for n in 0..40 {
            let data: Vec<u8> = (0..n).map(|i| (i * 31 + 7) as u8).collect();
            let mut fast = data.clone();
            apply_mask(&mut fast, mask);
            let slow: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(fast, slow, "{n} bytes");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small fuzz: any byte stream ends in messages, `None` or an error, never a panic.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let len = (seed % 40) as usize;
            let mut bytes = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                bytes.push(seed as u8);
            }
            let mut r = WireReader::new(bytes, 64);
            for _ in 0..len + 1 {
                match r.next() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
