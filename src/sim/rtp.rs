//! The sim's media: one UDP socket per call, a sender paced at 20 ms (WAV, then silence) and a
//! receiver that decodes G.711 into a recording.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::g711::Codec;

/// Samples per 20 ms packet at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// RTP fixed header length.
const HEADER_LEN: usize = 12;

/// Counters and recording of one call's media, shared with the public view.
#[derive(Debug, Default)]
pub(crate) struct MediaState {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub recorded: Mutex<Vec<i16>>,
}

/// Build one RTP packet (fixed header, no CSRC/extension) into `buf`.
pub fn write_packet(
    buf: &mut Vec<u8>,
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) {
    buf.clear();
    buf.push(0x80); // V=2, no padding/extension/CSRC
    buf.push(if marker { 0x80 | pt } else { pt });
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&ts.to_be_bytes());
    buf.extend_from_slice(&ssrc.to_be_bytes());
    buf.extend_from_slice(payload);
}

/// A parsed RTP header and where its payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit.
    pub marker: bool,
    /// Payload type.
    pub pt: u8,
    /// Sequence number.
    pub seq: u16,
    /// Timestamp.
    pub ts: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Payload range in the packet.
    pub payload: (usize, usize),
}

/// Parse an RTP packet (CSRCs, extension and padding honoured). `None` if it is not RTP v2.
pub fn parse_packet(p: &[u8]) -> Option<RtpHeader> {
    if p.len() < HEADER_LEN || p[0] >> 6 != 2 {
        return None;
    }
    let cc = usize::from(p[0] & 0x0F);
    let mut start = HEADER_LEN + 4 * cc;
    if p[0] & 0x10 != 0 {
        let ext = p.get(start + 2..start + 4)?;
        start += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = p.len();
    if p[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*p.last()?))?;
    }
    if start > end {
        return None;
    }
    Some(RtpHeader {
        marker: p[1] & 0x80 != 0,
        pt: p[1] & 0x7F,
        seq: u16::from_be_bytes([p[2], p[3]]),
        ts: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        payload: (start, end),
    })
}

/// Start sending and receiving on `socket` until `cancel`. The returned receiver fires when the
/// played audio has been sent completely (at once when there is none).
pub(crate) fn start(
    socket: Arc<UdpSocket>,
    remote: SocketAddr,
    codec: Codec,
    play: Arc<Vec<i16>>,
    record_limit: usize,
    state: Arc<MediaState>,
    cancel: CancellationToken,
) -> oneshot::Receiver<()> {
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(send_loop(
        socket.clone(),
        remote,
        codec,
        play,
        state.clone(),
        cancel.clone(),
        done_tx,
    ));
    tokio::spawn(recv_loop(socket, codec, record_limit, state, cancel));
    done_rx
}

async fn send_loop(
    socket: Arc<UdpSocket>,
    remote: SocketAddr,
    codec: Codec,
    play: Arc<Vec<i16>>,
    state: Arc<MediaState>,
    cancel: CancellationToken,
    done: oneshot::Sender<()>,
) {
    let ssrc: u32 = rand::random();
    let mut seq: u16 = rand::random();
    let mut ts: u32 = rand::random();
    let silence = [codec.encode(0); FRAME_SAMPLES];
    let mut payload = [0u8; FRAME_SAMPLES];
    let mut buf = Vec::with_capacity(HEADER_LEN + FRAME_SAMPLES);
    let mut frames = play.chunks(FRAME_SAMPLES);
    let mut done = Some(done);
    if play.is_empty() {
        let _ = done.take().map(|d| d.send(()));
    }
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut first = true;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tick.tick() => {}
        }
        let body: &[u8] = match frames.next() {
            Some(frame) => {
                // The last frame is padded with silence to a full 20 ms.
                payload.copy_from_slice(&silence);
                for (p, &s) in payload.iter_mut().zip(frame) {
                    *p = codec.encode(s);
                }
                &payload
            }
            None => {
                if let Some(d) = done.take() {
                    let _ = d.send(());
                }
                &silence
            }
        };
        write_packet(&mut buf, codec.payload_type(), first, seq, ts, ssrc, body);
        first = false;
        // A send error (peer's port closed) is not fatal for a test peer: keep the clock going.
        if socket.send_to(&buf, remote).await.is_ok() {
            state.sent.fetch_add(1, Ordering::Relaxed);
        }
        seq = seq.wrapping_add(1);
        ts = ts.wrapping_add(FRAME_SAMPLES as u32);
    }
}

async fn recv_loop(
    socket: Arc<UdpSocket>,
    codec: Codec,
    record_limit: usize,
    state: Arc<MediaState>,
    cancel: CancellationToken,
) {
    let mut buf = [0u8; 2048];
    let mut decoded = Vec::with_capacity(FRAME_SAMPLES);
    loop {
        let n = tokio::select! {
            _ = cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => n,
                // ICMP port-unreachable surfaces as an error on some systems: ignore it.
                Err(_) => continue,
            },
        };
        let Some(h) = parse_packet(&buf[..n]) else {
            continue;
        };
        state.received.fetch_add(1, Ordering::Relaxed);
        if h.pt != codec.payload_type() {
            continue; // telephone-event or comfort noise: counted, not recorded
        }
        decoded.clear();
        decoded.extend(
            buf[h.payload.0..h.payload.1]
                .iter()
                .map(|&b| codec.decode(b)),
        );
        if let Ok(mut rec) = state.recorded.lock() {
            let room = record_limit.saturating_sub(rec.len());
            rec.extend_from_slice(&decoded[..decoded.len().min(room)]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_round_trip() {
        // 1. Write a packet with the marker set, 2. parse it back.
        let mut buf = Vec::new();
        write_packet(&mut buf, 8, true, 65535, 0xDEAD_BEEF, 42, &[1, 2, 3]);
        let h = parse_packet(&buf).unwrap();
        assert_eq!(
            (h.marker, h.pt, h.seq, h.ts, h.ssrc),
            (true, 8, 65535, 0xDEAD_BEEF, 42)
        );
        assert_eq!(&buf[h.payload.0..h.payload.1], &[1, 2, 3]);
    }

    #[test]
    fn rejects_garbage_and_honours_padding() {
        // 1. Too short / wrong version → None.
        assert_eq!(parse_packet(&[0x80; 5]), None);
        assert_eq!(parse_packet(&[0x40; 20]), None);
        // 2. Padding bit with 2 padding bytes shortens the payload.
        let mut buf = Vec::new();
        write_packet(&mut buf, 0, false, 1, 2, 3, &[9, 9, 0, 2]);
        buf[0] |= 0x20;
        let h = parse_packet(&buf).unwrap();
        assert_eq!(h.payload.1 - h.payload.0, 2);
        // 3. Padding longer than the packet → None.
        let last = buf.len() - 1;
        buf[last] = 200;
        assert_eq!(parse_packet(&buf), None);
    }
}
