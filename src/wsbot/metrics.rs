//! Prometheus metrics of WebSocket bots, per bot kind (`kind="ac-bot-api"` / `"media-stream"`).
//! A call's bridge adds its session's counters as they grow ([`WsBotMetrics::add`]).

use super::config::WsProtocol;
use super::types::WsBotStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The bot kind of a metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// `ac-bot-api` or `media-stream`.
    pub kind: String,
}

/// The bot kind and the audio's direction (`to_bot` / `from_bot`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChunkLabels {
    /// `ac-bot-api` or `media-stream`.
    pub kind: String,
    /// `to_bot` (the person's audio) or `from_bot`.
    pub direction: String,
}

/// Counters of every WebSocket bot session, per bot kind.
#[derive(Debug, Default)]
pub struct WsBotMetrics {
    /// Sockets opened (first connections and resumes).
    pub connections: Family<KindLabels, Counter>,
    /// Reconnect attempts after a dropped socket.
    pub reconnects: Family<KindLabels, Counter>,
    /// Audio messages, by direction.
    pub audio_chunks: Family<ChunkLabels, Counter>,
    /// Bot audio frames played as (partly) silence because the playout buffer was empty.
    pub jitter_underruns: Family<KindLabels, Counter>,
    /// Bot audio pushes that did not fit the playout buffer.
    pub jitter_overflows: Family<KindLabels, Counter>,
    /// Incoming frames ignored (invalid JSON, bad base64, unknown type, oversized).
    pub bad_frames: Family<KindLabels, Counter>,
    /// Person's audio frames not sent (socket down or too slow).
    pub audio_dropped: Family<KindLabels, Counter>,
}

/// The label value of a protocol.
pub fn kind_name(p: WsProtocol) -> &'static str {
    match p {
        WsProtocol::AcBotApi => "ac-bot-api",
        WsProtocol::MediaStream => "media-stream",
    }
}

impl WsBotMetrics {
    /// Registers every counter (names prefixed `wsbot_`).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "wsbot_connections",
            "WebSocket bot sockets opened, by bot kind",
            self.connections.clone(),
        );
        r.register(
            "wsbot_reconnects",
            "WebSocket bot reconnect attempts, by bot kind",
            self.reconnects.clone(),
        );
        r.register(
            "wsbot_audio_chunks",
            "WebSocket bot audio messages, by bot kind and direction",
            self.audio_chunks.clone(),
        );
        r.register(
            "wsbot_jitter_underruns",
            "WebSocket bot playout buffer underruns (20 ms frames of silence), by bot kind",
            self.jitter_underruns.clone(),
        );
        r.register(
            "wsbot_jitter_overflows",
            "WebSocket bot audio that did not fit the playout buffer, by bot kind",
            self.jitter_overflows.clone(),
        );
        r.register(
            "wsbot_bad_frames",
            "Frames from WebSocket bots ignored (invalid, unknown or oversized), by bot kind",
            self.bad_frames.clone(),
        );
        r.register(
            "wsbot_audio_dropped",
            "Person's audio frames not sent to a WebSocket bot, by bot kind",
            self.audio_dropped.clone(),
        );
    }

    /// Adds what a session counted since `before` (its previous snapshot).
    pub fn add(&self, p: WsProtocol, before: &WsBotStats, now: &WsBotStats) {
        let kind = KindLabels {
            kind: kind_name(p).to_owned(),
        };
        let d = |a: u64, b: u64| b.saturating_sub(a);
        let inc = |f: &Family<KindLabels, Counter>, n: u64| {
            if n > 0 {
                f.get_or_create(&kind).inc_by(n);
            }
        };
        inc(&self.connections, d(before.connections, now.connections));
        inc(&self.reconnects, d(before.reconnects, now.reconnects));
        inc(
            &self.jitter_underruns,
            d(before.jitter.underruns, now.jitter.underruns),
        );
        inc(
            &self.jitter_overflows,
            d(before.jitter.overflows, now.jitter.overflows),
        );
        inc(&self.bad_frames, d(before.bad_frames, now.bad_frames));
        inc(
            &self.audio_dropped,
            d(before.audio_dropped, now.audio_dropped),
        );
        for (direction, n) in [
            ("to_bot", d(before.chunks_sent, now.chunks_sent)),
            ("from_bot", d(before.chunks_received, now.chunks_received)),
        ] {
            if n > 0 {
                self.audio_chunks
                    .get_or_create(&ChunkLabels {
                        kind: kind.kind.clone(),
                        direction: direction.to_owned(),
                    })
                    .inc_by(n);
            }
        }
    }
}
