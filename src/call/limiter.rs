//! Per-bot admission control: a token bucket for calls per second and a
//! concurrency permit held for the life of the call.
//!
//! The [`RateLimiter`] trait is the one interface of both backends: the in-process
//! [`LocalLimiter`] (one instance) and `cluster::RedisLimiter` (cluster mode, where every
//! instance enforces one bot's limits together on Redis). Its decisions are async because
//! the shared one asks Redis.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// A limiter's answer, boxed so the trait stays object-safe (`Arc<dyn RateLimiter>`).
pub type Decision<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A bot's limits, read from the configuration at each admission so a reload
/// changes them without touching calls in flight.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_cps: f64,
    pub max_concurrent: u32,
}

/// Why a call was not admitted.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// The bot already has `max_concurrent` calls.
    Concurrency { retry_after_secs: u64 },
    /// The calls-per-second budget is spent.
    Rate { retry_after_secs: u64 },
    /// The shared limits cannot be asked (cluster mode: Redis unreachable); nothing is
    /// admitted rather than over-admitted.
    Unavailable {
        reason: String,
        retry_after_secs: u64,
    },
}

/// Held by a live call; dropping it gives the concurrency slot back, on every
/// path (normal end, error, panic unwinding, task abort). What "giving back" means is the
/// backend's: each puts its own release guard in (a `Drop` impl), and a call may hang more
/// guards on it that must live exactly as long (cluster mode: the call's owner lease).
pub struct Permit {
    /// Dropped in order with the permit; their `Drop` impls release.
    held: Vec<Box<dyn Send + Sync>>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("guards", &self.held.len())
            .finish()
    }
}

impl Permit {
    /// A permit released by dropping `release`.
    pub fn new(release: impl Send + Sync + 'static) -> Permit {
        Permit {
            held: vec![Box::new(release)],
        }
    }

    /// Keeps `guard` alive as long as the call holds its permit.
    pub fn hold(&mut self, guard: impl Send + Sync + 'static) {
        self.held.push(Box::new(guard));
    }
}

/// The local backend's release: one slot of the bot's counter.
struct LocalSlot(Arc<AtomicU32>);

impl Drop for LocalSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Admission control for dialouts.
pub trait RateLimiter: Send + Sync {
    /// Admits one call for `bot` or says why not and when to retry.
    fn try_acquire<'a>(
        &'a self,
        bot: &'a str,
        limits: Limits,
    ) -> Decision<'a, Result<Permit, Refusal>>;
    /// Calls currently holding a permit for `bot` (`None` when it cannot be known now).
    fn in_use<'a>(&'a self, bot: &'a str) -> Decision<'a, Option<u32>>;
}

struct Bucket {
    tokens: f64,
    last: Instant,
    active: Arc<AtomicU32>,
}

/// The in-process limiter.
#[derive(Default)]
pub struct LocalLimiter {
    bots: Mutex<HashMap<String, Bucket>>,
}

impl LocalLimiter {
    /// A limiter with no history.
    pub fn new() -> Self {
        Self::default()
    }
}

impl LocalLimiter {
    /// The decision, synchronous: the bucket and the counter are in this process.
    pub fn acquire_now(&self, bot: &str, limits: Limits) -> Result<Permit, Refusal> {
        let now = Instant::now();
        // The burst size is one second's worth of calls (at least one call).
        let capacity = limits.max_cps.max(1.0);
        let mut bots = self.bots.lock().unwrap_or_else(|p| p.into_inner());
        let b = bots.entry(bot.to_owned()).or_insert_with(|| Bucket {
            tokens: capacity,
            last: now,
            active: Arc::new(AtomicU32::new(0)),
        });
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * limits.max_cps).min(capacity);
        b.last = now;
        // Concurrency first: a refused call must not spend a token.
        if b.active.load(Ordering::Acquire) >= limits.max_concurrent {
            return Err(Refusal::Concurrency {
                retry_after_secs: 1,
            });
        }
        if b.tokens < 1.0 {
            let wait = ((1.0 - b.tokens) / limits.max_cps).ceil().max(1.0);
            return Err(Refusal::Rate {
                retry_after_secs: wait as u64,
            });
        }
        b.tokens -= 1.0;
        b.active.fetch_add(1, Ordering::AcqRel);
        Ok(Permit::new(LocalSlot(b.active.clone())))
    }

    /// Calls holding a permit for `bot` now.
    pub fn in_use_now(&self, bot: &str) -> u32 {
        let bots = self.bots.lock().unwrap_or_else(|p| p.into_inner());
        bots.get(bot)
            .map(|b| b.active.load(Ordering::Acquire))
            .unwrap_or(0)
    }
}

impl RateLimiter for LocalLimiter {
    fn try_acquire<'a>(
        &'a self,
        bot: &'a str,
        limits: Limits,
    ) -> Decision<'a, Result<Permit, Refusal>> {
        let d = self.acquire_now(bot, limits);
        Box::pin(async move { d })
    }

    fn in_use<'a>(&'a self, bot: &'a str) -> Decision<'a, Option<u32>> {
        let n = self.in_use_now(bot);
        Box::pin(async move { Some(n) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const LIMITS: Limits = Limits {
        max_cps: 1.0,
        max_concurrent: 3,
    };

    #[tokio::test(start_paused = true)]
    async fn burst_of_ten_at_one_cps_three_concurrent() {
        let l = LocalLimiter::new();
        let mut held = Vec::new();
        // 1. A burst of 10 at t=0: exactly one admitted, nine refused for rate.
        for _ in 0..10 {
            match l.acquire_now("bot", LIMITS) {
                Ok(p) => held.push(p),
                Err(r) => assert_eq!(
                    r,
                    Refusal::Rate {
                        retry_after_secs: 1
                    }
                ),
            }
        }
        assert_eq!(held.len(), 1);
        // 2. One second later one more; and again: three in flight.
        for _ in 0..2 {
            tokio::time::advance(Duration::from_secs(1)).await;
            held.push(l.acquire_now("bot", LIMITS).unwrap());
            assert!(l.acquire_now("bot", LIMITS).is_err());
        }
        assert_eq!(l.in_use_now("bot"), 3);
        // 3. Tokens are back but concurrency is full.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(matches!(
            l.acquire_now("bot", LIMITS),
            Err(Refusal::Concurrency { .. })
        ));
        // 4. A call ends: its permit comes back.
        held.pop();
        assert_eq!(l.in_use_now("bot"), 2);
        held.push(l.acquire_now("bot", LIMITS).unwrap());
        // 5. Other bots are independent.
        assert!(l.acquire_now("other", LIMITS).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn raised_limits_apply_at_once() {
        let l = LocalLimiter::new();
        let _a = l.acquire_now("bot", LIMITS).unwrap();
        assert!(l.acquire_now("bot", LIMITS).is_err());
        // A reload raising max_cps to 5: the bucket refills at the new rate.
        let fast = Limits {
            max_cps: 5.0,
            max_concurrent: 10,
        };
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(l.acquire_now("bot", fast).is_ok());
    }
}
