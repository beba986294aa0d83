//! A readable timeline of one call, merged from every party's view.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One line of the timeline.
pub struct Entry {
    pub at: Duration,
    pub who: &'static str,
    pub what: String,
}

/// Collects entries relative to a start instant (and its wall-clock twin).
pub struct Timeline {
    t0: Instant,
    t0_unix_ms: i64,
    pub entries: Vec<Entry>,
}

impl Timeline {
    /// Starts the clock now.
    pub fn start() -> Timeline {
        Timeline {
            t0: Instant::now(),
            t0_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            entries: Vec::new(),
        }
    }

    /// An entry at a monotonic instant.
    pub fn at(&mut self, at: Instant, who: &'static str, what: impl Into<String>) {
        self.entries.push(Entry {
            at: at.saturating_duration_since(self.t0),
            who,
            what: what.into(),
        });
    }

    /// An entry at an RFC 3339 time (from a call record).
    pub fn at_rfc3339(&mut self, at: &str, who: &'static str, what: impl Into<String>) {
        let ms = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
            .unwrap_or(self.t0_unix_ms);
        self.entries.push(Entry {
            at: Duration::from_millis((ms - self.t0_unix_ms).max(0) as u64),
            who,
            what: what.into(),
        });
    }

    /// Prints the entries in time order.
    pub fn print(&mut self) {
        self.entries.sort_by_key(|e| e.at);
        for e in &self.entries {
            println!("{:>7} ms  {:<9} {}", e.at.as_millis(), e.who, e.what);
        }
    }
}
