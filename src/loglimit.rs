//! Rate-limited logging of what strangers send: a warning about malformed or
//! unexpected SIP input is written once per source per interval, the rest are
//! counted (`dialgate_log_suppressed_total`). One unauthenticated connection
//! sending broken messages used to produce a WARN line per message (1.8 M
//! lines, 340 MB, in 2 s).
//!
//! [`SourceLimiter`] is the decision (a plain struct fed with `now`);
//! [`MalformedInputLimit`] is a `tracing` layer that applies it to warnings of
//! the SIP stack (rsipstack, whose per-message warnings carry the peer's
//! address) and of dialgate events marked `untrusted = true`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines left out so far (for `/metrics`).
pub static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// One line per source (and kind of message) per this long.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Sources remembered at most; beyond, the table starts afresh.
const MAX_SOURCES: usize = 10_000;

/// Which lines may be written.
#[derive(Debug)]
pub struct SourceLimiter {
    interval: Duration,
    last: HashMap<(usize, String), Instant>,
}

impl SourceLimiter {
    /// A limiter writing one line per key per `interval`.
    pub fn new(interval: Duration) -> Self {
        SourceLimiter {
            interval,
            last: HashMap::new(),
        }
    }

    /// Whether the line of kind `kind` about `source` may be written at `now`.
    pub fn allow(&mut self, kind: usize, source: &str, now: Instant) -> bool {
        let key = (kind, source.to_owned());
        match self.last.get(&key) {
            Some(at) if now.duration_since(*at) < self.interval => false,
            _ => {
                if self.last.len() >= MAX_SOURCES {
                    let interval = self.interval;
                    self.last.retain(|_, at| now.duration_since(*at) < interval);
                    if self.last.len() >= MAX_SOURCES {
                        self.last.clear();
                    }
                }
                self.last.insert(key, now);
                true
            }
        }
    }
}

/// Finds the peer's address in an event's fields.
#[derive(Default)]
struct SourceField {
    source: Option<String>,
    untrusted: bool,
}

impl Visit for SourceField {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if matches!(field.name(), "addr" | "src" | "remote" | "source" | "peer") {
            let v = format!("{value:?}");
            // An address with a port: the host alone is the source.
            let host = v.rsplit_once(':').map(|(h, _)| h.to_owned()).unwrap_or(v);
            self.source = Some(host);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "untrusted" {
            self.untrusted = value;
        }
    }
}

/// The `tracing` layer: drops repeated warnings about one source.
pub struct MalformedInputLimit {
    limiter: Mutex<SourceLimiter>,
}

impl Default for MalformedInputLimit {
    fn default() -> Self {
        MalformedInputLimit {
            limiter: Mutex::new(SourceLimiter::new(INTERVAL)),
        }
    }
}

impl<S: Subscriber> Layer<S> for MalformedInputLimit {
    fn event_enabled(&self, event: &Event<'_>, _ctx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        let from_stack = meta.target().starts_with("rsipstack");
        if !from_stack && *meta.level() > Level::WARN {
            return true;
        }
        let mut f = SourceField::default();
        event.record(&mut f);
        if !(from_stack || f.untrusted) {
            return true;
        }
        // A callsite's metadata is a static: its address names the kind of line.
        let kind = std::ptr::from_ref(meta) as usize;
        let source = f.source.unwrap_or_default();
        let ok = self
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allow(kind, &source, Instant::now());
        if !ok {
            SUPPRESSED.fetch_add(1, Relaxed);
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_source_per_interval() {
        // 1. a source's first line passes, the next ones within the interval do not
        let mut l = SourceLimiter::new(INTERVAL);
        let t0 = Instant::now();
        assert!(l.allow(1, "192.0.2.1", t0));
        for _ in 0..1000 {
            assert!(!l.allow(1, "192.0.2.1", t0 + Duration::from_secs(1)));
        }
        // 2. another source, or another kind of line, is not held back
        assert!(l.allow(1, "192.0.2.2", t0));
        assert!(l.allow(2, "192.0.2.1", t0));
        // 3. after the interval the source gets a line again
        assert!(l.allow(1, "192.0.2.1", t0 + INTERVAL));
    }
}
