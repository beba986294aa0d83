//! Helpers shared by the call harnesses that use dialgate's simulated peers
//! (`mediaflows`, `sttflows`): fixtures, notification filters, record timelines
//! and the simulated peers' SIP traces.

use dialgate::sim::{Notification, SimEvent, SimEventKind};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A file under the crate root (`tests/fixtures/audio/machine.wav`, `conf/greeting.wav`).
pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// 8 kHz mono samples of a WAV of the repository.
pub fn samples(rel: &str) -> Vec<i16> {
    dialgate::sim::audio::load_wav(repo_file(rel)).expect("fixture WAV (8 kHz mono 16-bit)")
}

/// Whether a notification concerns `id`.
pub fn is_for(n: &Notification, id: &str) -> bool {
    n.body["conversationId"] == id
}

/// `completed` or `failed`.
pub fn is_terminal(body: &Value) -> bool {
    matches!(body["status"].as_str(), Some("completed" | "failed"))
}

/// The record's timeline as `event: detail` lines.
pub fn timeline(record: &Value) -> Vec<String> {
    record["timeline"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|e| {
                    format!(
                        "{}: {}",
                        e["event"].as_str().unwrap_or(""),
                        e["detail"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What a simulated peer saw of its (single) call, as short words: `INVITE`, `sent 180`,
/// `ACK`, `BYE in` (from dialgate), `BYE out` (sent by the sim), `CANCEL`, `RTP`.
pub fn sip_trace(events: &[SimEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.kind {
            SimEventKind::Invite { .. } => "INVITE".to_owned(),
            SimEventKind::Sent { code } => format!("sent {code}"),
            SimEventKind::Ack => "ACK".into(),
            SimEventKind::Bye { from_remote: true } => "BYE in".into(),
            SimEventKind::Bye { from_remote: false } => "BYE out".into(),
            SimEventKind::Cancel => "CANCEL".into(),
            SimEventKind::RtpStats { .. } => "RTP".into(),
        })
        .collect()
}

/// The final RTP counters (sent, received) of a simulated peer's call.
pub fn rtp_counts(events: &[SimEvent]) -> Option<(u64, u64)> {
    events.iter().find_map(|e| match e.kind {
        SimEventKind::RtpStats { sent, received } => Some((sent, received)),
        _ => None,
    })
}

/// A call record's timestamp `key` (RFC 3339) in milliseconds since the epoch.
pub fn record_ms(record: &Value, key: &str) -> i64 {
    let s = record[key]
        .as_str()
        .unwrap_or_else(|| panic!("record has no {key}: {record:#}"));
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{key} `{s}`: {e}"));
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Asserts that never more than `max` of the calls `records` were up at once (a record's
/// dialing..ended span).
pub fn assert_at_most_up(records: &[Value], max: usize) {
    let spans: Vec<(i64, i64)> = records
        .iter()
        .map(|r| (record_ms(r, "dialingAt"), record_ms(r, "endedAt")))
        .collect();
    for (start, _) in &spans {
        let up = spans
            .iter()
            .filter(|(s, e)| s <= start && start < e)
            .count();
        assert!(up <= max, "{up} calls up at once: {spans:?}");
    }
}

/// Asserts a rate limit on the calls stamped `stamps` (ms): any k of them span at least the
/// time that lets `allowed(span_s) >= k` (a token bucket's burst plus its refill, with slack);
/// `rate` names the limit in the failure message.
pub fn assert_rate(stamps: &[i64], allowed: impl Fn(f64) -> f64, rate: &str) {
    let mut stamps = stamps.to_vec();
    stamps.sort();
    for i in 0..stamps.len() {
        for j in i + 1..stamps.len() {
            let span_s = (stamps[j] - stamps[i]) as f64 / 1000.0;
            assert!(
                (j - i + 1) as f64 <= allowed(span_s),
                "{} calls within {span_s:.3} s exceed {rate}: {stamps:?}",
                j - i + 1
            );
        }
    }
}

/// Asserts that the call `rec` was `rejected` for what its early media carried: an
/// `early-media` timeline entry mentions `heard` (e.g. "SIT tones").
pub fn assert_rejected_for(rec: &Value, heard: &str) {
    assert_eq!(rec["reasonCode"], "rejected", "{rec:#}");
    assert!(
        timeline_details(rec, "early-media")
            .iter()
            .any(|d| d.contains(heard)),
        "no early-media entry mentions {heard:?}: {rec:#}"
    );
}

/// Asserts that the terminal notification `term` is failed / rejected with a reason that
/// names each of `words` (case aside: recognised words come in any case).
pub fn assert_term_rejected_for(term: &Value, words: &[&str]) {
    assert_eq!(term["status"], "failed", "{term}");
    assert_eq!(term["reasonCode"], "rejected", "{term}");
    let reason = term["reason"].as_str().unwrap_or("").to_lowercase();
    for w in words {
        assert!(reason.contains(&w.to_lowercase()), "{w:?}: {term}");
    }
}

/// Asserts that the record `rec`'s transcript holds `words` (case aside).
pub fn assert_transcript_says(rec: &Value, words: &str) {
    assert!(
        rec["transcript"]
            .to_string()
            .to_lowercase()
            .contains(&words.to_lowercase()),
        "{rec:#}"
    );
}

/// The `detail` of every timeline entry of the record `rec` named `event`.
pub fn timeline_details(rec: &Value, event: &str) -> Vec<String> {
    rec["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["event"] == event)
        .map(|e| e["detail"].as_str().unwrap_or("").to_owned())
        .collect()
}
