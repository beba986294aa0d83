//! The brake on guessing API secrets: a plain struct fed with `now`.
//!
//! Failures are counted per (client, address), per client (any address: an
//! attacker rotating addresses) and per address (any client: one address trying
//! many client IDs). Past a few free failures every further attempt on a key
//! is *delayed*, not refused: attempts queue behind each other on the key, each
//! step twice the last (capped), so guesses per second fall to a trickle while
//! a correct secret still gets through — and a secret verified before is never
//! braked at all (the authenticator checks its cache first). Only when a key's
//! queue is longer than [`MAX_WAIT`] (an attack in full flow) is an attempt
//! answered 429 with the wait.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures per (client, address) before attempts are delayed.
pub const PAIR_FREE: u32 = 5;
/// Failures per client (any address) or per address (any client) before
/// attempts are delayed.
pub const WIDE_FREE: u32 = 20;
/// Failures are forgotten this long after a key's first one.
pub const WINDOW: Duration = Duration::from_secs(60);
/// First delay step past the free failures; doubles per failure.
const FIRST_STEP: Duration = Duration::from_millis(100);
/// Largest delay step.
const MAX_STEP: Duration = Duration::from_secs(2);
/// Longest an attempt is made to wait; beyond it the answer is 429.
pub const MAX_WAIT: Duration = Duration::from_secs(10);
/// Keys remembered at most (expired ones are dropped first).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Pair(String, IpAddr),
    Client(String),
    Addr(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    since: Instant,
    /// When the next delayed attempt on this key may run.
    next_slot: Instant,
}

/// What to do with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Verify now.
    Now,
    /// Verify after this delay.
    After(Duration),
    /// Too many attempts queued on a key: answer 429, retry after this long.
    Refuse(Duration),
}

/// Failure counters and delay queues.
#[derive(Debug, Default)]
pub struct Brake {
    entries: HashMap<Key, Entry>,
}

fn keys(client: Option<&str>, ip: IpAddr) -> Vec<(Key, u32)> {
    let mut k = vec![(Key::Addr(ip), WIDE_FREE)];
    if let Some(c) = client {
        k.push((Key::Pair(c.to_owned(), ip), PAIR_FREE));
        k.push((Key::Client(c.to_owned()), WIDE_FREE));
    }
    k
}

fn step(over: u32) -> Duration {
    let doubled = FIRST_STEP.saturating_mul(1u32 << over.saturating_sub(1).min(16));
    doubled.min(MAX_STEP)
}

impl Brake {
    /// Decides when an attempt by `client` (if named) from `ip` may be
    /// verified, and books its slot.
    pub fn admit(&mut self, client: Option<&str>, ip: IpAddr, now: Instant) -> Admit {
        let mut wait = Duration::ZERO;
        let mut booked = Vec::new();
        for (key, free) in keys(client, ip) {
            let Some(e) = self.live(&key, now) else {
                continue;
            };
            if e.failures < free {
                continue;
            }
            let slot = e.next_slot.max(now);
            wait = wait.max(slot - now);
            booked.push((key, slot + step(e.failures + 1 - free)));
        }
        if wait > MAX_WAIT {
            return Admit::Refuse(wait);
        }
        for (key, next) in booked {
            if let Some(e) = self.entries.get_mut(&key) {
                e.next_slot = next;
            }
        }
        if wait.is_zero() {
            Admit::Now
        } else {
            Admit::After(wait)
        }
    }

    /// Counts a failed attempt.
    pub fn failure(&mut self, client: Option<&str>, ip: IpAddr, now: Instant) {
        if self.entries.len() >= MAX_KEYS {
            self.entries
                .retain(|_, e| now.duration_since(e.since) < WINDOW);
            if self.entries.len() >= MAX_KEYS {
                tracing::warn!("authentication brake table full: forgetting old failures");
                self.entries.clear();
            }
        }
        for (key, _) in keys(client, ip) {
            let live = self.live(&key, now).is_some();
            let e = self.entries.entry(key).or_insert(Entry {
                failures: 0,
                since: now,
                next_slot: now,
            });
            if !live {
                *e = Entry {
                    failures: 0,
                    since: now,
                    next_slot: now,
                };
            }
            e.failures += 1;
        }
    }

    /// A correct secret from `ip`: that pair starts afresh (the client- and
    /// address-wide counts stay, they may be someone else's failures).
    pub fn success(&mut self, client: &str, ip: IpAddr) {
        self.entries.remove(&Key::Pair(client.to_owned(), ip));
    }

    fn live(&mut self, key: &Key, now: Instant) -> Option<Entry> {
        let e = *self.entries.get(key)?;
        if now.duration_since(e.since) >= WINDOW {
            self.entries.remove(key);
            return None;
        }
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn free_failures_then_growing_delays_never_a_refusal_at_first() {
        // 1. five failures of one client from one address cost nothing
        let mut b = Brake::default();
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        for _ in 0..PAIR_FREE {
            assert_eq!(b.admit(Some("dialer"), a, t0), Admit::Now);
            b.failure(Some("dialer"), a, t0);
        }
        // 2. the next attempts are delayed, queued one behind the other
        assert_eq!(b.admit(Some("dialer"), a, t0), Admit::Now);
        assert_eq!(
            b.admit(Some("dialer"), a, t0),
            Admit::After(Duration::from_millis(100))
        );
        // 3. another address of the same client, and another client, are not
        assert_eq!(b.admit(Some("dialer"), ip("192.0.2.2"), t0), Admit::Now);
        assert_eq!(b.admit(Some("other"), a, t0), Admit::Now);
        // 4. after the window all is forgotten
        assert_eq!(b.admit(Some("dialer"), a, t0 + WINDOW), Admit::Now);
    }

    #[test]
    fn rotating_addresses_are_braked_by_the_client_count() {
        // 1. one failure from each of 20 addresses against one client
        let mut b = Brake::default();
        let t0 = Instant::now();
        for i in 0..WIDE_FREE {
            let a = ip(&format!("198.51.100.{i}"));
            assert_eq!(b.admit(Some("dialer"), a, t0), Admit::Now);
            b.failure(Some("dialer"), a, t0);
        }
        // 2. a new address for the same client now queues
        assert_eq!(b.admit(Some("dialer"), ip("203.0.113.9"), t0), Admit::Now);
        assert!(matches!(
            b.admit(Some("dialer"), ip("203.0.113.10"), t0),
            Admit::After(_)
        ));
    }

    #[test]
    fn a_flood_is_refused_only_past_the_longest_wait() {
        // 1. enough failures that every step is the largest
        let mut b = Brake::default();
        let t0 = Instant::now();
        let a = ip("192.0.2.7");
        for _ in 0..30 {
            b.failure(Some("dialer"), a, t0);
        }
        // 2. parallel attempts queue 2 s apart until the queue is longer than MAX_WAIT
        let mut waits = Vec::new();
        loop {
            match b.admit(Some("dialer"), a, t0) {
                Admit::Now => waits.push(Duration::ZERO),
                Admit::After(w) => waits.push(w),
                Admit::Refuse(w) => {
                    assert!(w > MAX_WAIT);
                    break;
                }
            }
            assert!(waits.len() < 100, "the queue is bounded");
        }
        assert_eq!(waits.len(), 6, "{waits:?}");
        // 3. a success of the pair resets it (the client-wide count remains)
        b.success("dialer", a);
    }
}
