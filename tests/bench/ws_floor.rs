//! The floor of any WebSocket-bot design, a reference for the call benchmark
//! (`WSBOT_BENCH_FLOOR=1`): the same packets and messages as a WebSocket bot call — per 20 ms a
//! datagram in from the person, a `userStream.chunk` out to the bot, a `playStream.chunk` in from
//! the bot, a datagram out to the person — served by one thread over one epoll set. No runtime,
//! no task wake-ups, no relay features (recording, taps, SRTP, sequence rewriting), no pacing and
//! no playout buffer: **not dialgate**, but what a design with the session's task out of the audio
//! path could at best cost on this machine, measured beside the SIP call in the same run.
//!
//! The socket is opened and the session started (`session.initiate` → `session.accepted`,
//! `userStream.start` → `userStream.started`) with tokio-tungstenite; then the thread takes a
//! duplicate of its descriptor and speaks the WebSocket framing itself (masked text frames out,
//! unmasked in). The echo bot sends nothing unasked after `userStream.started`, so no byte is
//! left in tungstenite's buffer when the thread takes over.

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One call as the floor thread serves it.
struct Call {
    conversation_id: String,
    /// Where the person's datagrams arrive and the bot's audio leaves.
    udp: UdpSocket,
    person: SocketAddr,
    tcp: TcpStream,
    /// Bytes read from the bot not yet parsed into whole frames.
    inbox: Vec<u8>,
    /// The frame being written (reused).
    out: Vec<u8>,
    mask_state: u32,
    seq: u16,
}

/// A running floor, of either kind; [`Floor::stop`] ends it.
pub struct Floor {
    /// Per call, where its person sends.
    pub addrs: Vec<SocketAddr>,
    /// Stops the floor's thread and waits for it (its sockets close with it).
    stop: Box<dyn FnOnce() + Send>,
}

impl Floor {
    /// The raw floor: opens one session per person at `url` (on `rt`) and starts the thread
    /// (`ws-floor`) serving them over one epoll set.
    pub fn raw(url: &str, persons: &[SocketAddr], rt: &tokio::runtime::Runtime) -> Floor {
        let mut calls = Vec::new();
        for (i, person) in persons.iter().enumerate() {
            let id = format!("call-{i}");
            let tcp = rt.block_on(open_session(url, &id));
            let udp = UdpSocket::bind("127.0.0.1:0").expect("udp");
            udp.set_nonblocking(true).expect("nonblocking");
            calls.push(Call {
                conversation_id: id,
                udp,
                person: *person,
                tcp,
                inbox: Vec::with_capacity(4096),
                out: Vec::with_capacity(512),
                mask_state: 0x9e37_79b9 ^ i as u32,
                seq: 0,
            });
        }
        let addrs = calls
            .iter()
            .map(|c| c.udp.local_addr().expect("addr"))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ws-floor".into())
            .spawn(move || serve(calls, &flag))
            .expect("thread");
        Floor {
            addrs,
            stop: Box::new(move || {
                stop.store(true, Ordering::Relaxed);
                let _ = thread.join();
            }),
        }
    }

    /// The same floor written with tokio and tokio-tungstenite: one single-threaded runtime on
    /// a thread of its own (`ws-floor-rt`), one task per call reading the person's socket and
    /// the bot's. What it costs beyond the raw floor is the runtime's and tungstenite's per
    /// message.
    pub fn tokio(url: &str, persons: &[SocketAddr]) -> Floor {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (url, n, persons) = (url.to_string(), persons.len(), persons.to_vec());
        let thread = std::thread::Builder::new()
            .name("ws-floor-rt".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    for (i, person) in persons.into_iter().enumerate() {
                        let id = format!("call-{i}");
                        let ws = open_tokio_session(&url, &id).await;
                        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
                            .await
                            .expect("udp");
                        let _ = addr_tx.send(udp.local_addr().expect("addr"));
                        tokio::spawn(tokio_call(ws, udp, person, id));
                    }
                    let _ = stop_rx.await;
                });
            })
            .expect("thread");
        let addrs = (0..n)
            .map(|_| addr_rx.recv().expect("floor call"))
            .collect();
        Floor {
            addrs,
            stop: Box::new(move || {
                let _ = stop_tx.send(());
                let _ = thread.join();
            }),
        }
    }

    /// Stops the floor (its thread, tasks and sockets).
    pub fn stop(self) {
        (self.stop)()
    }
}

/// Connects, starts the session and the user stream, and returns a blocking-free duplicate of
/// the socket (the tokio stream is dropped: deregistered from its runtime).
async fn open_session(url: &str, id: &str) -> TcpStream {
    let ws = open_tokio_session(url, id).await;
    let MaybeTlsStream::Plain(tcp) = ws.get_ref() else {
        panic!("the floor speaks ws:// only");
    };
    // SAFETY: dup of a live descriptor; the duplicate is owned by the returned stream alone.
    let fd = unsafe { libc::dup(tcp.as_raw_fd()) };
    assert!(fd >= 0, "dup failed");
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let dup = unsafe { TcpStream::from_raw_fd(fd) };
    dup.set_nonblocking(true).expect("nonblocking");
    dup
}

/// Reads until a message of type `kind`.
async fn wait_for(ws: &mut Ws, kind: &str) {
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(t) = msg
            && serde_json::from_str::<Value>(t.as_str()).is_ok_and(|v| v["type"] == kind)
        {
            return;
        }
    }
    panic!("the bot closed before {kind}");
}

/// The thread: one level-triggered epoll set, token 2i the person's socket of call i, 2i+1 its
/// bot socket.
fn serve(mut calls: Vec<Call>, stop: &AtomicBool) {
    // SAFETY: no preconditions.
    let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(epfd >= 0, "epoll_create1");
    for (i, c) in calls.iter().enumerate() {
        add(epfd, c.udp.as_raw_fd(), 2 * i as u64);
        add(epfd, c.tcp.as_raw_fd(), 2 * i as u64 + 1);
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `events` outlives the call and holds `len` entries.
        let n = unsafe { libc::epoll_wait(epfd, events.as_mut_ptr(), events.len() as i32, 100) };
        for ev in events.iter().take(n.max(0) as usize) {
            let token = ev.u64;
            let Some(call) = calls.get_mut((token / 2) as usize) else {
                continue;
            };
            if token % 2 == 0 {
                call.person_audio(&mut buf);
            } else {
                call.bot_audio(&mut buf);
            }
        }
    }
    // SAFETY: our descriptor, closed once.
    unsafe { libc::close(epfd) };
}

fn add(epfd: i32, fd: i32, token: u64) {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32,
        u64: token,
    };
    // SAFETY: valid descriptors and event.
    let r = unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert_eq!(r, 0, "epoll_ctl");
}

impl Call {
    /// One datagram from the person (level-triggered: one per wake is enough) → one
    /// `userStream.chunk`, µ-law as it came.
    fn person_audio(&mut self, buf: &mut [u8]) {
        let Ok((n, _)) = self.udp.recv_from(buf) else {
            return;
        };
        if n <= 12 {
            return;
        }
        let text = user_chunk(&self.conversation_id, &buf[12..n]);
        self.mask_state ^= self.mask_state << 13;
        self.mask_state ^= self.mask_state >> 17;
        self.mask_state ^= self.mask_state << 5;
        frame_masked(
            &mut self.out,
            text.as_bytes(),
            self.mask_state.to_be_bytes(),
        );
        // A short write would break the framing; on loopback at these rates it does not happen.
        let _ = (&self.tcp).write_all(&self.out);
    }

    /// What the bot sent: every whole frame; a `playStream.chunk` goes to the person as RTP.
    fn bot_audio(&mut self, buf: &mut [u8]) {
        match (&self.tcp).read(buf) {
            Ok(n) if n > 0 => self.inbox.extend_from_slice(&buf[..n]),
            _ => return,
        }
        let mut at = 0;
        while let Some((text, used)) = next_frame(&self.inbox[at..]) {
            if let Some(audio) = play_chunk(text) {
                let _ = self
                    .udp
                    .send_to(&rtp_packet(&mut self.seq, &audio), self.person);
            }
            at += used;
        }
        self.inbox.drain(..at);
    }
}

/// A masked text frame (a client's) of `payload` into `out`.
fn frame_masked(out: &mut Vec<u8>, payload: &[u8], key: [u8; 4]) {
    out.clear();
    out.push(0x81);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
}

/// The next whole (unmasked, server's) frame at the start of `bytes`: its payload if it is a
/// text frame (else empty) and its length in bytes.
fn next_frame(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let (&b0, &b1) = (bytes.first()?, bytes.get(1)?);
    let (len, header) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = bytes.get(header..header + len)?;
    Some((if b0 & 0x0f == 1 { payload } else { &[] }, header + len))
}

/// A `userStream.chunk` of `audio` (µ-law as it came).
fn user_chunk(conversation_id: &str, audio: &[u8]) -> String {
    format!(
        r#"{{"type":"userStream.chunk","conversationId":"{}","audioChunk":"{}"}}"#,
        conversation_id,
        B64.encode(audio)
    )
}

/// An RTP packet (PCMU) of the bot's `audio` for the person, numbered from `seq`.
fn rtp_packet(seq: &mut u16, audio: &[u8]) -> Vec<u8> {
    let mut pkt = Vec::with_capacity(12 + audio.len());
    pkt.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3]);
    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
    *seq = seq.wrapping_add(1);
    pkt.extend_from_slice(audio);
    pkt
}

/// The audio of a `playStream.chunk` message.
fn play_chunk(text: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Msg<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(rename = "audioChunk")]
        audio: Option<&'a str>,
    }
    let m: Msg = serde_json::from_slice(text).ok()?;
    if m.kind != "playStream.chunk" {
        return None;
    }
    B64.decode(m.audio?).ok()
}

type Ws = tokio_tungstenite::WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects and starts the session and the user stream (`session.initiate` → `session.accepted`
/// and `playStream.start`, `userStream.start` → `userStream.started`).
async fn open_tokio_session(url: &str, id: &str) -> Ws {
    // A 4 KiB read buffer, as dialgate's: tungstenite zero-fills its default 128 KiB one
    // before every read.
    let config =
        tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .expect("connect");
    if let MaybeTlsStream::Plain(tcp) = ws.get_ref() {
        tcp.set_nodelay(true).expect("nodelay");
    }
    let initiate = json!({"type": "session.initiate", "conversationId": id,
        "expectAudioMessages": true, "supportedMediaFormats": ["raw/mulaw"]});
    ws.send(Message::text(initiate.to_string()))
        .await
        .expect("initiate");
    wait_for(&mut ws, "playStream.start").await;
    let start = json!({"type": "userStream.start", "conversationId": id});
    ws.send(Message::text(start.to_string()))
        .await
        .expect("start");
    wait_for(&mut ws, "userStream.started").await;
    ws
}

/// One call: the person's datagrams to the bot as `userStream.chunk`s, the bot's
/// `playStream.chunk`s to the person as RTP.
async fn tokio_call(
    mut ws: Ws,
    udp: tokio::net::UdpSocket,
    person: SocketAddr,
    conversation_id: String,
) {
    let mut buf = vec![0u8; 2048];
    let mut seq = 0u16;
    loop {
        tokio::select! {
            got = udp.recv_from(&mut buf) => {
                let Ok((n, _)) = got else { return };
                if n <= 12 {
                    continue;
                }
                let text = user_chunk(&conversation_id, &buf[12..n]);
                if ws.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
            msg = ws.next() => {
                let Some(Ok(Message::Text(t))) = msg else { return };
                if let Some(audio) = play_chunk(t.as_bytes()) {
                    let _ = udp.send_to(&rtp_packet(&mut seq, &audio), person).await;
                }
            }
        }
    }
}
