//! Delivery concurrency, decided without I/O: at most `global` deliveries in flight and at
//! most `per_destination` to one `scheme://host:port`, so a hanging or dead URL holds only its
//! own slots and never delays other destinations' notifications or bot requests.

use std::collections::HashMap;

/// The two caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deliveries in flight, all destinations together.
    pub global: usize,
    /// Deliveries in flight to one destination.
    pub per_destination: usize,
}

/// In-flight bookkeeping: what may start now.
#[derive(Debug)]
pub struct Scheduler {
    limits: Limits,
    in_flight: HashMap<String, usize>,
    total: usize,
}

impl Scheduler {
    /// An idle scheduler (caps of at least 1).
    pub fn new(limits: Limits) -> Scheduler {
        let mut s = Scheduler {
            limits,
            in_flight: HashMap::new(),
            total: 0,
        };
        s.set_limits(limits);
        s
    }

    /// New caps (configuration reload); deliveries in flight finish as they are.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = Limits {
            global: limits.global.max(1),
            per_destination: limits.per_destination.max(1),
        };
    }

    /// The caps in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// How many more deliveries may start, all destinations together.
    pub fn free(&self) -> usize {
        self.limits.global.saturating_sub(self.total)
    }

    /// Destinations at their cap (left out of the next candidate query).
    pub fn saturated(&self) -> Vec<String> {
        self.in_flight
            .iter()
            .filter(|(_, n)| **n >= self.limits.per_destination)
            .map(|(d, _)| d.clone())
            .collect()
    }

    /// Deliveries in flight to `destination`.
    pub fn in_flight(&self, destination: &str) -> usize {
        self.in_flight.get(destination).copied().unwrap_or(0)
    }

    /// Admits, in the given order, the candidates the caps allow and reserves their slots;
    /// returns them. Each admitted one must be [`Scheduler::release`]d exactly once.
    pub fn admit<T>(&mut self, candidates: Vec<T>, destination: impl Fn(&T) -> &str) -> Vec<T> {
        let mut out = Vec::new();
        for c in candidates {
            if self.free() == 0 {
                break;
            }
            let d = destination(&c);
            if self.in_flight(d) >= self.limits.per_destination {
                continue;
            }
            *self.in_flight.entry(d.to_owned()).or_default() += 1;
            self.total += 1;
            out.push(c);
        }
        out
    }

    /// A delivery to `destination` finished (or its claim was lost): its slot is free.
    pub fn release(&mut self, destination: &str) {
        if let Some(n) = self.in_flight.get_mut(destination) {
            *n -= 1;
            self.total = self.total.saturating_sub(1);
            if *n == 0 {
                self.in_flight.remove(destination);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(global: usize, per_destination: usize) -> Limits {
        Limits {
            global,
            per_destination,
        }
    }

    #[test]
    fn a_hung_destination_holds_only_its_own_slots() {
        // 1. Ten items for a hanging host, then one for a healthy host.
        let mut s = Scheduler::new(limits(8, 3));
        let mut batch: Vec<&str> = vec!["http://hung:80"; 10];
        batch.push("http://ok:80");
        // 2. Three hung ones and the healthy one start; the rest wait.
        let admitted = s.admit(batch, |d| d);
        assert_eq!(admitted.len(), 4);
        assert_eq!(admitted.last(), Some(&"http://ok:80"));
        assert_eq!(s.in_flight("http://hung:80"), 3);
        assert_eq!(s.saturated(), vec!["http://hung:80".to_owned()]);
        // 3. While the hung ones hang, more healthy items still start.
        let again = s.admit(vec!["http://hung:80", "http://ok:80"], |d| d);
        assert_eq!(again, vec!["http://ok:80"]);
        assert_eq!(s.free(), 8 - 5);
    }

    #[test]
    fn the_global_cap_bounds_everything_and_release_frees_slots() {
        // 1. Global cap 2 across three destinations.
        let mut s = Scheduler::new(limits(2, 5));
        let admitted = s.admit(vec!["a", "b", "c"], |d| d);
        assert_eq!(admitted, vec!["a", "b"]);
        assert_eq!(s.free(), 0);
        assert!(s.admit(vec!["c"], |d| d).is_empty());
        // 2. One finishes: the next may start.
        s.release("a");
        assert_eq!(s.admit(vec!["c"], |d| d), vec!["c"]);
        // 3. Releasing an unknown destination changes nothing.
        s.release("zzz");
        assert_eq!(s.free(), 0);
    }

    #[test]
    fn caps_of_zero_are_raised_to_one() {
        let mut s = Scheduler::new(limits(0, 0));
        assert_eq!(s.limits(), limits(1, 1));
        assert_eq!(s.admit(vec!["a", "a"], |d| d), vec!["a"]);
    }
}
