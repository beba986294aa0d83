//! Per-leg packet logic owned by the relay thread (no sharing, no locks):
//! symmetric-RTP latching, outgoing sequence/timestamp/SSRC continuity and
//! RFC 3550 receive statistics.

use std::net::SocketAddr;
use std::time::Instant;

use super::rtp::{self, RtpView};
use super::stats::DropCause;

/// How a leg accepts packets from an address other than the one its SDP named
/// (symmetric RTP for peers behind NAT, against hijacking by third parties).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LatchMode {
    /// Only packets from the SDP address are accepted; we send to it.
    Strict,
    /// The leg may move to a new source only while learning: from the remote
    /// description (call start, re-INVITE) until its stream is established
    /// (the first packet accepted from the SDP address, or a new source
    /// latched after probation). Never mid-stream without signalling.
    #[default]
    Learn,
    /// Any address that sends `probation` consecutive packets with one SSRC
    /// takes the leg over, at any time (the pre-0.2 behaviour; hijackable).
    Off,
}

/// Symmetric RTP: where a leg's packets really come from.
#[derive(Debug, Default)]
pub(crate) struct Latch {
    /// Address the leg's packets are accepted from and ours are sent to.
    pub(crate) addr: Option<SocketAddr>,
    candidate: Option<(SocketAddr, u32)>,
    count: u32,
    mode: LatchMode,
    /// Learning closed: the stream is established (only `Learn` uses it).
    settled: bool,
}

impl Latch {
    /// A latch with the given policy, learning.
    pub(crate) fn new(mode: LatchMode) -> Self {
        Latch {
            mode,
            ..Latch::default()
        }
    }

    /// Where to send to this leg.
    #[inline]
    pub(crate) fn target(&self, sdp: SocketAddr) -> SocketAddr {
        self.addr.unwrap_or(sdp)
    }

    /// Accepts a packet from `from` or says why not. A new address must send
    /// `probation` consecutive packets with one SSRC before the leg moves there,
    /// and only when the mode allows a move now.
    /// Returns `Ok(true)` when the leg just moved.
    pub(crate) fn check(
        &mut self,
        from: SocketAddr,
        ssrc: u32,
        sdp: SocketAddr,
        probation: u32,
    ) -> Result<bool, DropCause> {
        if from == self.target(sdp) {
            self.candidate = None;
            if self.mode != LatchMode::Strict {
                self.addr = Some(from);
            }
            self.settled = true;
            return Ok(false);
        }
        let may_move = match self.mode {
            LatchMode::Strict => false,
            LatchMode::Learn => !self.settled,
            LatchMode::Off => true,
        };
        if !may_move {
            return Err(DropCause::ForeignSource);
        }
        match self.candidate {
            Some((a, s)) if a == from => {
                if s != ssrc {
                    self.candidate = Some((from, ssrc));
                    self.count = 1;
                    return Err(DropCause::WrongSsrc);
                }
                self.count += 1;
            }
            _ => {
                self.candidate = Some((from, ssrc));
                self.count = 1;
            }
        }
        if self.count >= probation.max(1) {
            self.addr = Some(from);
            self.candidate = None;
            self.settled = true;
            Ok(true)
        } else {
            Err(DropCause::ForeignSource)
        }
    }

    /// The remote signalled a new description. A new address forgets the
    /// latched one; either way a `learn` leg may learn again (a re-INVITE is
    /// the signalling that allows a move).
    pub(crate) fn on_remote(&mut self, address_changed: bool) {
        if address_changed {
            *self = Latch::new(self.mode);
        } else {
            self.candidate = None;
            self.count = 0;
            self.settled = false;
        }
    }

    /// Changes the policy (keeps what was learnt unless now strict).
    pub(crate) fn set_mode(&mut self, mode: LatchMode) {
        self.mode = mode;
        if mode == LatchMode::Strict {
            self.addr = None;
            self.candidate = None;
        }
    }
}

/// Keeps the stream sent on from this leg continuous (one SSRC, sequence and
/// timestamp without jumps) when the inbound source changes; rewrites nothing
/// until the first change, so the common case leaves the header untouched.
#[derive(Debug)]
pub(crate) struct SeqMap {
    init: bool,
    pub(crate) in_ssrc: u32,
    pub(crate) out_ssrc: u32,
    seq_delta: u16,
    ts_delta: u32,
    last_out_seq: u16,
    last_out_ts: u32,
    last_at: Option<Instant>,
    pub(crate) rewriting: bool,
    marker_pending: bool,
}

impl SeqMap {
    pub(crate) fn new() -> Self {
        SeqMap {
            init: false,
            in_ssrc: 0,
            out_ssrc: 0,
            seq_delta: 0,
            ts_delta: 0,
            last_out_seq: 0,
            last_out_ts: 0,
            last_at: None,
            rewriting: false,
            marker_pending: false,
        }
    }

    /// Applies the mapping to `pkt` in place. Returns true when the source changed.
    pub(crate) fn apply(&mut self, pkt: &mut [u8], v: &RtpView, now: Instant) -> bool {
        let mut changed = false;
        if !self.init {
            self.init = true;
            self.in_ssrc = v.ssrc;
            self.out_ssrc = v.ssrc;
            self.last_out_seq = v.seq.wrapping_sub(1);
            self.last_out_ts = v.ts;
        } else if v.ssrc != self.in_ssrc {
            // Continue our outgoing stream: next sequence number, timestamp
            // advanced by the real elapsed time (whole 20 ms frames, at least one).
            let elapsed_ms = self
                .last_at
                .map(|t| now.saturating_duration_since(t).as_millis() as u64)
                .unwrap_or(20);
            let frames = ((elapsed_ms + 10) / 20).max(1);
            let samples = (frames * 160) as u32;
            let next_seq = self.last_out_seq.wrapping_add(1);
            let next_ts = self.last_out_ts.wrapping_add(samples);
            self.seq_delta = next_seq.wrapping_sub(v.seq);
            self.ts_delta = next_ts.wrapping_sub(v.ts);
            self.in_ssrc = v.ssrc;
            self.rewriting = true;
            self.marker_pending = true;
            changed = true;
        }
        let out_seq = v.seq.wrapping_add(self.seq_delta);
        let out_ts = v.ts.wrapping_add(self.ts_delta);
        if self.rewriting {
            rtp::set_seq_ts_ssrc(pkt, out_seq, out_ts, self.out_ssrc);
            if self.marker_pending {
                rtp::set_marker(pkt);
                self.marker_pending = false;
            }
        }
        if (out_seq.wrapping_sub(self.last_out_seq) as i16) > 0 {
            self.last_out_seq = out_seq;
            self.last_out_ts = out_ts;
            self.last_at = Some(now);
        }
        changed
    }
}

/// RFC 3550 receive statistics (A.1 sequence tracking, A.8 jitter).
#[derive(Debug, Default)]
pub(crate) struct RxStats {
    ssrc: Option<u32>,
    base_seq: u64,
    max_seq: u64,
    expected_before: u64,
    transit: Option<i64>,
    jitter_x16: i64,
}

impl RxStats {
    /// Updates with one accepted packet; `arrival_units` is the arrival time
    /// in 8 kHz units; `audio` says whether the timestamp is media-clocked
    /// (telephone-event timestamps repeat, so they are kept out of jitter).
    /// Returns (expected packets so far, jitter × 16).
    pub(crate) fn update(&mut self, v: &RtpView, arrival_units: i64, audio: bool) -> (u64, u64) {
        if self.ssrc != Some(v.ssrc) {
            if self.ssrc.is_some() {
                self.expected_before += self.max_seq - self.base_seq + 1;
            }
            self.ssrc = Some(v.ssrc);
            self.base_seq = v.seq as u64 + 65536;
            self.max_seq = self.base_seq;
            self.transit = None;
        } else {
            // extend the 16-bit sequence number around the current maximum
            let cur = self.max_seq;
            let low = (cur & 0xffff) as u16;
            let delta = v.seq.wrapping_sub(low) as i16 as i64;
            let ext = (cur as i64 + delta).max(0) as u64;
            if ext > self.max_seq && delta < 3000 {
                self.max_seq = ext;
            }
        }
        if audio {
            let transit = arrival_units - v.ts as i64;
            if let Some(prev) = self.transit {
                let d = (transit - prev).abs();
                // ignore absurd steps (timestamp jumps) instead of poisoning the estimate
                if d < 8000 * 10 {
                    self.jitter_x16 += d - ((self.jitter_x16 + 8) >> 4);
                }
            }
            self.transit = Some(transit);
        }
        (
            self.expected_before + self.max_seq - self.base_seq + 1,
            self.jitter_x16.max(0) as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(seq: u16, ts: u32, ssrc: u32) -> RtpView {
        RtpView {
            pt: 0,
            marker: false,
            seq,
            ts,
            ssrc,
            payload_start: 12,
            payload_end: 12,
        }
    }

    fn addrs() -> (SocketAddr, SocketAddr, SocketAddr) {
        (
            "127.0.0.1:4000".parse().unwrap(),
            "127.0.0.2:5000".parse().unwrap(),
            "127.0.0.3:6000".parse().unwrap(),
        )
    }

    #[test]
    fn off_latches_anywhere_after_probation() {
        // 1. packets from the SDP address are accepted at once
        let (sdp, nat, _) = addrs();
        let mut l = Latch::new(LatchMode::Off);
        assert_eq!(l.check(sdp, 1, sdp, 3), Ok(false));
        // 2. a new address is foreign for two packets, latched on the third
        assert_eq!(l.check(nat, 2, sdp, 3), Err(DropCause::ForeignSource));
        assert_eq!(l.check(nat, 2, sdp, 3), Err(DropCause::ForeignSource));
        assert_eq!(l.check(nat, 2, sdp, 3), Ok(true));
        assert_eq!(l.target(sdp), nat);
        // 3. the old address is now foreign; an SSRC switch in probation restarts it
        assert_eq!(l.check(sdp, 1, sdp, 3), Err(DropCause::ForeignSource));
        assert_eq!(l.check(sdp, 9, sdp, 3), Err(DropCause::WrongSsrc));
    }

    #[test]
    fn strict_accepts_only_the_sdp_address() {
        // 1. the SDP address is accepted, anything else never, however long it sends
        let (sdp, nat, _) = addrs();
        let mut l = Latch::new(LatchMode::Strict);
        for _ in 0..10 {
            assert_eq!(l.check(nat, 2, sdp, 3), Err(DropCause::ForeignSource));
        }
        assert_eq!(l.check(sdp, 1, sdp, 3), Ok(false));
        // 2. we keep sending to the SDP address
        assert_eq!(l.target(sdp), sdp);
    }

    #[test]
    fn learn_moves_only_before_the_stream_is_established() {
        // 1. a peer behind NAT: its first packets come from another address, latched
        let (sdp, nat, attacker) = addrs();
        let mut l = Latch::new(LatchMode::Learn);
        assert_eq!(l.check(nat, 2, sdp, 3), Err(DropCause::ForeignSource));
        assert_eq!(l.check(nat, 2, sdp, 3), Err(DropCause::ForeignSource));
        assert_eq!(l.check(nat, 2, sdp, 3), Ok(true));
        // 2. mid-stream, a third party never takes the leg over
        for _ in 0..10 {
            assert_eq!(l.check(attacker, 7, sdp, 3), Err(DropCause::ForeignSource));
        }
        assert_eq!(l.check(nat, 2, sdp, 3), Ok(false));
        assert_eq!(l.target(sdp), nat);
        // 3. after a re-INVITE (same address) the leg may learn again
        l.on_remote(false);
        assert_eq!(l.target(sdp), nat, "what was learnt is kept meanwhile");
        for _ in 0..2 {
            assert_eq!(l.check(attacker, 7, sdp, 3), Err(DropCause::ForeignSource));
        }
        assert_eq!(l.check(attacker, 7, sdp, 3), Ok(true));
    }

    #[test]
    fn learn_closes_at_the_first_packet_from_the_sdp_address() {
        // 1. two packets of a candidate, then the peer is heard from its SDP address
        let (sdp, _, attacker) = addrs();
        let mut l = Latch::new(LatchMode::Learn);
        assert_eq!(l.check(attacker, 7, sdp, 3), Err(DropCause::ForeignSource));
        assert_eq!(l.check(attacker, 7, sdp, 3), Err(DropCause::ForeignSource));
        assert_eq!(l.check(sdp, 1, sdp, 3), Ok(false));
        // 2. the stream is established: the candidate never completes probation
        for _ in 0..10 {
            assert_eq!(l.check(attacker, 7, sdp, 3), Err(DropCause::ForeignSource));
        }
        assert_eq!(l.target(sdp), sdp);
    }

    #[test]
    fn rx_stats_count_loss() {
        // 1. seq 10, 11, 13 (12 lost) → expected 4
        let mut s = RxStats::default();
        s.update(&view(10, 0, 1), 0, true);
        s.update(&view(11, 160, 1), 160, true);
        let (expected, jitter) = s.update(&view(13, 480, 1), 480, true);
        assert_eq!(expected, 4);
        assert_eq!(jitter, 0);
        // 2. wrap-around keeps counting
        let mut s = RxStats::default();
        s.update(&view(65535, 0, 1), 0, true);
        let (expected, _) = s.update(&view(0, 160, 1), 160, true);
        assert_eq!(expected, 2);
    }
}
