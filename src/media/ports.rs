//! RTP/RTCP port pool: even RTP ports, RTCP on RTP + 1, released by RAII.

use std::sync::{Arc, Mutex};

use super::MediaError;

struct PoolState {
    /// `in_use[i]` is pair `i` (RTP port `first + 2 * i`).
    in_use: Vec<bool>,
    /// Indices of the free pairs, in no particular order.
    free: Vec<usize>,
}

/// A thread-safe pool of RTP/RTCP port pairs in `[min, max]`. Pairs are
/// handed out at random among the free ones, so a call's ports cannot be
/// guessed from another call's (sequential ports made relay ports easy to find
/// for anyone trying to inject or capture audio).
#[derive(Clone)]
pub struct PortPool {
    first: u16,
    state: Arc<Mutex<PoolState>>,
}

/// One allocated pair; dropping it returns the pair to the pool.
pub struct PortPair {
    rtp: u16,
    index: usize,
    state: Arc<Mutex<PoolState>>,
}

impl PortPool {
    /// Builds a pool over the even ports from `min` (rounded up to even) to `max`,
    /// keeping only pairs whose RTCP port (`rtp + 1`) is still `<= max`.
    pub fn new(min: u16, max: u16) -> Result<Self, MediaError> {
        let first = min.saturating_add(min & 1);
        if first < 1024 || max <= first {
            return Err(MediaError::InvalidPortRange { min, max });
        }
        // RTP ports first, first+2, .. up to max-1 (so that RTCP = RTP+1 <= max)
        let pairs = ((max - first - 1) / 2 + 1) as usize;
        if pairs == 0 {
            return Err(MediaError::InvalidPortRange { min, max });
        }
        Ok(PortPool {
            first,
            state: Arc::new(Mutex::new(PoolState {
                in_use: vec![false; pairs],
                free: (0..pairs).collect(),
            })),
        })
    }

    /// Takes a free pair chosen at random, or fails with
    /// [`MediaError::PortsExhausted`].
    pub fn alloc(&self) -> Result<PortPair, MediaError> {
        // A poisoned lock only means another thread panicked mid-update of
        // plain data; it is still consistent, so keep going.
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let n = st.in_use.len();
        if st.free.is_empty() {
            return Err(MediaError::PortsExhausted { pairs: n });
        }
        let pick = rand::random_range(0..st.free.len());
        let i = st.free.swap_remove(pick);
        st.in_use[i] = true;
        Ok(PortPair {
            rtp: self.first + 2 * i as u16,
            index: i,
            state: self.state.clone(),
        })
    }

    /// Number of pairs currently free.
    pub fn free(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .free
            .len()
    }

    /// Number of pairs in the pool.
    pub fn capacity(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .in_use
            .len()
    }
}

impl PortPair {
    /// The (even) RTP port.
    pub fn rtp(&self) -> u16 {
        self.rtp
    }
    /// The RTCP port (RTP + 1).
    pub fn rtcp(&self) -> u16 {
        self.rtp + 1
    }
}

impl std::fmt::Debug for PortPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PortPair({}/{})", self.rtp, self.rtp + 1)
    }
}

impl Drop for PortPair {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.in_use[self.index] {
            st.in_use[self.index] = false;
            st.free.push(self.index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhaustion_and_release() {
        // 1. a range 20000..=20005 holds three pairs: 20000, 20002, 20004
        let pool = PortPool::new(20000, 20005).unwrap();
        assert_eq!(pool.capacity(), 3);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        let c = pool.alloc().unwrap();
        let mut ports = [a.rtp(), b.rtp(), c.rtp()];
        ports.sort();
        assert_eq!(ports, [20000, 20002, 20004]);
        assert!(ports.iter().all(|p| p % 2 == 0));
        assert_eq!(a.rtcp(), a.rtp() + 1);
        // 2. the fourth allocation is a clear error
        let err = pool.alloc().unwrap_err();
        assert!(
            matches!(err, MediaError::PortsExhausted { pairs: 3 }),
            "{err}"
        );
        // 3. dropping a pair frees it for the next allocation
        let freed = b.rtp();
        drop(b);
        assert_eq!(pool.free(), 1);
        let d = pool.alloc().unwrap();
        assert_eq!(d.rtp(), freed);
        drop((a, c, d));
        assert_eq!(pool.free(), 3);
    }

    #[test]
    fn odd_bounds_and_bad_ranges() {
        // 1. an odd minimum rounds up; a pair never straddles max
        let pool = PortPool::new(20001, 20004).unwrap();
        assert_eq!(pool.capacity(), 1);
        assert_eq!(pool.alloc().unwrap().rtp(), 20002);
        // 2. empty or privileged ranges are rejected
        assert!(PortPool::new(20000, 20000).is_err());
        assert!(PortPool::new(100, 200).is_err());
    }

    #[test]
    fn pairs_are_not_handed_out_in_order() {
        // 1. 20 allocations from a 1000-pair pool
        let pool = PortPool::new(20000, 21999).unwrap();
        let pairs: Vec<PortPair> = (0..20).map(|_| pool.alloc().unwrap()).collect();
        let ports: Vec<u16> = pairs.iter().map(|p| p.rtp()).collect();
        // 2. are not the sequence 20000, 20002, … (chance of that at random: 1/1000^19)
        let sequential: Vec<u16> = (0..20).map(|i| 20000 + 2 * i).collect();
        assert_ne!(ports, sequential);
        // 3. and neither is any run of consecutive pairs
        let steps_of_two = ports.windows(2).filter(|w| w[1] == w[0] + 2).count();
        assert!(steps_of_two < 10, "{ports:?}");
    }

    #[test]
    fn thread_safe_allocation_gives_distinct_pairs() {
        // 1. four threads take 25 pairs each from a 100-pair pool: all distinct
        let pool = PortPool::new(20000, 20199).unwrap();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = pool.clone();
                std::thread::spawn(move || (0..25).map(|_| p.alloc().unwrap()).collect::<Vec<_>>())
            })
            .collect();
        let all: Vec<PortPair> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let mut ports: Vec<u16> = all.iter().map(|p| p.rtp()).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 100);
        assert_eq!(pool.free(), 0);
    }
}
