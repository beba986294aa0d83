//! Per-leg and process-wide counters: plain relaxed atomics, written by the
//! relay thread, read by anyone (stats queries, Prometheus rendering).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Why an inbound packet was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropCause {
    /// Not a valid RTP/RTCP packet (truncated, wrong version, bad lengths).
    Malformed = 0,
    /// From an address that is neither the latched source nor a source in probation that completed.
    ForeignSource = 1,
    /// From the probation candidate address but with another SSRC.
    WrongSsrc = 2,
    /// Arrived before both legs had a remote description (or after stop).
    NotReady = 3,
    /// The negotiated direction forbids it (hold: sendonly/recvonly/inactive).
    Direction = 4,
    /// A payload type the leg did not negotiate (or DTMF towards a leg without telephone-event).
    UnknownPayloadType = 5,
    /// The kernel refused the send (e.g. buffer full, unreachable).
    SendError = 6,
}

const CAUSES: usize = 7;

/// Live counters of one leg (inbound side = packets received from that leg).
#[derive(Default)]
pub(crate) struct LegCounters {
    pub(crate) rx_packets: AtomicU64,
    pub(crate) rx_bytes: AtomicU64,
    pub(crate) fwd_packets: AtomicU64,
    pub(crate) fwd_bytes: AtomicU64,
    pub(crate) rtcp_rx: AtomicU64,
    pub(crate) rtcp_fwd: AtomicU64,
    pub(crate) dropped: [AtomicU64; CAUSES],
    pub(crate) tap_drops: AtomicU64,
    /// Interarrival jitter in RTP timestamp units × 16 (RFC 3550 A.8 scaling).
    pub(crate) jitter_x16: AtomicU64,
    pub(crate) expected: AtomicU64,
    /// Packets accepted from the leg's real source (keeps inactivity at bay).
    pub(crate) valid_rx: AtomicU64,
    pub(crate) source_changes: AtomicU64,
}

impl LegCounters {
    #[inline]
    pub(crate) fn drop_packet(&self, cause: DropCause) {
        self.dropped[cause as usize].fetch_add(1, Relaxed);
        GLOBAL.dropped.fetch_add(1, Relaxed);
        match cause {
            DropCause::ForeignSource => GLOBAL.foreign_source.fetch_add(1, Relaxed),
            DropCause::WrongSsrc => GLOBAL.wrong_ssrc.fetch_add(1, Relaxed),
            _ => 0,
        };
    }

    pub(crate) fn snapshot(&self) -> LegStats {
        let d = |c: DropCause| self.dropped[c as usize].load(Relaxed);
        let rx = self.rx_packets.load(Relaxed);
        let expected = self.expected.load(Relaxed);
        let accepted = self.valid_rx.load(Relaxed);
        LegStats {
            packets_received: rx,
            bytes_received: self.rx_bytes.load(Relaxed),
            packets_forwarded: self.fwd_packets.load(Relaxed),
            bytes_forwarded: self.fwd_bytes.load(Relaxed),
            rtcp_received: self.rtcp_rx.load(Relaxed),
            rtcp_forwarded: self.rtcp_fwd.load(Relaxed),
            dropped_malformed: d(DropCause::Malformed),
            dropped_foreign_source: d(DropCause::ForeignSource),
            dropped_wrong_ssrc: d(DropCause::WrongSsrc),
            dropped_not_ready: d(DropCause::NotReady),
            dropped_direction: d(DropCause::Direction),
            dropped_unknown_pt: d(DropCause::UnknownPayloadType),
            dropped_send_error: d(DropCause::SendError),
            tap_drops: self.tap_drops.load(Relaxed),
            jitter_ms: self.jitter_x16.load(Relaxed) as f64 / 16.0 / 8.0,
            lost_estimate: expected.saturating_sub(accepted.min(expected)),
            source_changes: self.source_changes.load(Relaxed),
        }
    }
}

/// A snapshot of one leg's counters. "Received" counts packets that came
/// *from* this leg; "forwarded" counts those of them sent on to the other leg.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegStats {
    /// RTP packets received from this leg (all, valid or not).
    pub packets_received: u64,
    /// Bytes of those packets.
    pub bytes_received: u64,
    /// RTP packets forwarded to the other leg.
    pub packets_forwarded: u64,
    /// Bytes forwarded.
    pub bytes_forwarded: u64,
    /// RTCP packets received from this leg.
    pub rtcp_received: u64,
    /// RTCP packets relayed to the other leg.
    pub rtcp_forwarded: u64,
    /// Dropped: malformed or truncated.
    pub dropped_malformed: u64,
    /// Dropped: unexpected source address.
    pub dropped_foreign_source: u64,
    /// Dropped: SSRC mismatch during source probation.
    pub dropped_wrong_ssrc: u64,
    /// Dropped: before both remotes were known.
    pub dropped_not_ready: u64,
    /// Dropped: direction (hold) forbids forwarding.
    pub dropped_direction: u64,
    /// Dropped: payload type not negotiated.
    pub dropped_unknown_pt: u64,
    /// Dropped: send failed.
    pub dropped_send_error: u64,
    /// PCM frames a full tap or recording queue could not take.
    pub tap_drops: u64,
    /// RFC 3550 interarrival jitter, milliseconds (8 kHz clock).
    pub jitter_ms: f64,
    /// Packets expected from sequence numbers but never received.
    pub lost_estimate: u64,
    /// How many times the inbound SSRC/source changed (re-latched).
    pub source_changes: u64,
}

/// Stats of both legs of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaStats {
    /// Carrier (callee) leg.
    pub carrier: LegStats,
    /// Bot leg.
    pub bot: LegStats,
}

/// Process-wide counters for Prometheus.
#[derive(Default)]
pub(crate) struct GlobalCounters {
    pub(crate) sessions_created: AtomicU64,
    pub(crate) sessions_active: AtomicU64,
    pub(crate) rx_packets: AtomicU64,
    pub(crate) fwd_packets: AtomicU64,
    pub(crate) fwd_bytes: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) tap_drops: AtomicU64,
    pub(crate) inactivity_timeouts: AtomicU64,
    pub(crate) port_exhausted: AtomicU64,
    pub(crate) foreign_source: AtomicU64,
    pub(crate) wrong_ssrc: AtomicU64,
}

pub(crate) static GLOBAL: GlobalCounters = GlobalCounters {
    sessions_created: AtomicU64::new(0),
    sessions_active: AtomicU64::new(0),
    rx_packets: AtomicU64::new(0),
    fwd_packets: AtomicU64::new(0),
    fwd_bytes: AtomicU64::new(0),
    dropped: AtomicU64::new(0),
    tap_drops: AtomicU64::new(0),
    inactivity_timeouts: AtomicU64::new(0),
    port_exhausted: AtomicU64::new(0),
    foreign_source: AtomicU64::new(0),
    wrong_ssrc: AtomicU64::new(0),
};

/// Process-wide media counters (monotonic except `sessions_active`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Sessions ever created.
    pub sessions_created: u64,
    /// Sessions currently alive.
    pub sessions_active: u64,
    /// RTP packets received.
    pub rtp_packets_received: u64,
    /// RTP packets forwarded.
    pub rtp_packets_forwarded: u64,
    /// RTP bytes forwarded.
    pub rtp_bytes_forwarded: u64,
    /// Packets dropped (any cause).
    pub packets_dropped: u64,
    /// Tap/recording frames dropped on full queues.
    pub tap_drops: u64,
    /// Inactivity timeouts fired.
    pub inactivity_timeouts: u64,
    /// Session creations refused for lack of ports.
    pub port_exhausted: u64,
    /// Packets dropped because they came from neither the leg's SDP address
    /// nor its latched source (hijack attempts, stray traffic).
    pub foreign_source: u64,
    /// Packets dropped because a candidate source changed SSRC in probation.
    pub wrong_ssrc: u64,
}

/// Reads the process-wide counters.
pub fn global_metrics() -> MetricsSnapshot {
    let g = &GLOBAL;
    MetricsSnapshot {
        sessions_created: g.sessions_created.load(Relaxed),
        sessions_active: g.sessions_active.load(Relaxed),
        rtp_packets_received: g.rx_packets.load(Relaxed),
        rtp_packets_forwarded: g.fwd_packets.load(Relaxed),
        rtp_bytes_forwarded: g.fwd_bytes.load(Relaxed),
        packets_dropped: g.dropped.load(Relaxed),
        tap_drops: g.tap_drops.load(Relaxed),
        inactivity_timeouts: g.inactivity_timeouts.load(Relaxed),
        port_exhausted: g.port_exhausted.load(Relaxed),
        foreign_source: g.foreign_source.load(Relaxed),
        wrong_ssrc: g.wrong_ssrc.load(Relaxed),
    }
}
