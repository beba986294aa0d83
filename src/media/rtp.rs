//! RTP (RFC 3550) and RTCP header checks and in-place field rewriting.
//!
//! Everything works on the receive buffer itself: no copy, no allocation.

/// The fixed RTP header length.
pub const RTP_HEADER: usize = 12;

/// What the relay needs from one RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView {
    /// Payload type (7 bits).
    pub pt: u8,
    /// Marker bit.
    pub marker: bool,
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub ts: u32,
    /// Synchronisation source.
    pub ssrc: u32,
    /// Offset of the payload in the packet.
    pub payload_start: usize,
    /// End of the payload (excludes padding).
    pub payload_end: usize,
}

/// Validates an RTP packet and returns its fields, or `None` when it is
/// malformed or truncated (wrong version, CSRC list or extension past the end,
/// bad padding, RTCP packet types in the RTP port).
pub fn parse_rtp(buf: &[u8]) -> Option<RtpView> {
    if buf.len() < RTP_HEADER {
        return None;
    }
    let b0 = buf[0];
    if b0 >> 6 != 2 {
        return None;
    }
    let pt = buf[1] & 0x7f;
    // RTCP multiplexed on the RTP port (RFC 5761) uses PT 72..=76 in this position.
    if (72..=76).contains(&pt) {
        return None;
    }
    let cc = (b0 & 0x0f) as usize;
    let mut start = RTP_HEADER + 4 * cc;
    if buf.len() < start {
        return None;
    }
    if b0 & 0x10 != 0 {
        if buf.len() < start + 4 {
            return None;
        }
        let words = u16::from_be_bytes([buf[start + 2], buf[start + 3]]) as usize;
        start += 4 + 4 * words;
        if buf.len() < start {
            return None;
        }
    }
    let mut end = buf.len();
    if b0 & 0x20 != 0 {
        let pad = buf[end - 1] as usize;
        if pad == 0 || end - start < pad {
            return None;
        }
        end -= pad;
    }
    Some(RtpView {
        pt,
        marker: buf[1] & 0x80 != 0,
        seq: u16::from_be_bytes([buf[2], buf[3]]),
        ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload_start: start,
        payload_end: end,
    })
}

/// Rewrites the payload type, keeping the marker bit.
#[inline]
pub fn set_pt(buf: &mut [u8], pt: u8) {
    buf[1] = (buf[1] & 0x80) | (pt & 0x7f);
}

/// Sets the marker bit.
#[inline]
pub fn set_marker(buf: &mut [u8]) {
    buf[1] |= 0x80;
}

/// Rewrites sequence number, timestamp and SSRC.
#[inline]
pub fn set_seq_ts_ssrc(buf: &mut [u8], seq: u16, ts: u32, ssrc: u32) {
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Checks a (compound) RTCP packet: every sub-packet has version 2, an RTCP
/// packet type (192..=223) and a length that fits. Returns false if not.
pub fn valid_rtcp(buf: &[u8]) -> bool {
    if buf.len() < 8 {
        return false;
    }
    let mut off = 0;
    while off < buf.len() {
        if buf.len() - off < 4 {
            return false;
        }
        if buf[off] >> 6 != 2 || !(192..=223).contains(&buf[off + 1]) {
            return false;
        }
        let words = u16::from_be_bytes([buf[off + 2], buf[off + 3]]) as usize;
        let len = 4 * (words + 1);
        if buf.len() - off < len {
            return false;
        }
        off += len;
    }
    true
}

/// In a compound RTCP packet, replaces the sender SSRC of SR (200) and RR
/// (201) sub-packets equal to `from` by `to`, so that reports stay consistent
/// with the SSRC the relay rewrote on the RTP stream. Assumes [`valid_rtcp`].
pub fn rewrite_rtcp_sender_ssrc(buf: &mut [u8], from: u32, to: u32) {
    let mut off = 0;
    while off + 8 <= buf.len() {
        let words = u16::from_be_bytes([buf[off + 2], buf[off + 3]]) as usize;
        let pt = buf[off + 1];
        if pt == 200 || pt == 201 {
            let s = u32::from_be_bytes([buf[off + 4], buf[off + 5], buf[off + 6], buf[off + 7]]);
            if s == from {
                buf[off + 4..off + 8].copy_from_slice(&to.to_be_bytes());
            }
        }
        off += 4 * (words + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        set_seq_ts_ssrc(&mut v, seq, ts, ssrc);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn parses_a_plain_packet() {
        // 1. fields come back as written
        let p = pkt(8, 7, 160, 0xdead_beef, &[1, 2, 3]);
        let v = parse_rtp(&p).unwrap();
        assert_eq!((v.pt, v.seq, v.ts, v.ssrc), (8, 7, 160, 0xdead_beef));
        assert_eq!(&p[v.payload_start..v.payload_end], &[1, 2, 3]);
    }

    #[test]
    fn rejects_malformed_packets() {
        // 1. too short, wrong version, CSRC past the end, extension past the end, bad padding
        assert!(parse_rtp(&[0x80, 0, 0]).is_none());
        let mut p = pkt(0, 1, 1, 1, &[0; 4]);
        p[0] = 0x40;
        assert!(parse_rtp(&p).is_none());
        let mut p = pkt(0, 1, 1, 1, &[0; 4]);
        p[0] = 0x82; // two CSRCs = 8 bytes > 4 available
        assert!(parse_rtp(&p).is_none());
        let mut p = pkt(0, 1, 1, 1, &[0xbe, 0xde, 0x00, 0x09]);
        p[0] = 0x90; // extension of 9 words, none present
        assert!(parse_rtp(&p).is_none());
        let mut p = pkt(0, 1, 1, 1, &[0, 0, 0, 200]);
        p[0] = 0xa0; // padding count 200 > payload
        assert!(parse_rtp(&p).is_none());
        // 2. RTCP on the RTP port is not RTP
        assert!(parse_rtp(&pkt(72, 1, 1, 1, &[0; 8])).is_none());
    }

    #[test]
    fn rtcp_validation_and_rewrite() {
        // 1. an RR with no report blocks (8 bytes) is valid; its sender SSRC is rewritten
        let mut rr = vec![0x80, 201, 0, 1, 0, 0, 0, 5];
        assert!(valid_rtcp(&rr));
        rewrite_rtcp_sender_ssrc(&mut rr, 5, 9);
        assert_eq!(&rr[4..8], &9u32.to_be_bytes());
        // 2. a length field past the end is rejected
        let bad = vec![0x80, 200, 0, 6, 0, 0, 0, 5];
        assert!(!valid_rtcp(&bad));
    }
}
