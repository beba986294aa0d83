//! Process resources: the file-descriptor limit is raised at start, and new
//! dialouts are refused (503 + `Retry-After`) while the RTP port pool or the
//! descriptors run low, instead of accepting a call that then fails with
//! "RTP ports exhausted" or "Too many open files".

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Port pairs a call takes (carrier leg and bot leg).
pub const PAIRS_PER_CALL: usize = 2;
/// Port pairs kept free for calls accepted but not yet dialling.
pub const PAIRS_RESERVE: usize = 8;
/// Descriptors a call may take (4 RTP/RTCP sockets, an HTTP connection or
/// two for its notifications and bot events, a SIP TCP/TLS connection).
pub const FDS_PER_CALL: u64 = 8;
/// Descriptors kept for everything else (store, listeners, API connections).
pub const FDS_RESERVE: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (at most 1,048,576) and
/// returns the soft limit now in force. Each call holds 4 RTP/RTCP sockets and
/// the common default of 1,024 ran out near 250 calls.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let want = lim.rlim_max.min(1 << 20);
    if lim.rlim_cur < want {
        let new = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim.rlim_cur = want;
    }
    Ok(lim.rlim_cur)
}

/// The soft descriptor limit in force.
pub fn fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return u64::MAX;
    }
    lim.rlim_cur
}

/// Descriptors open now (entries of /proc/self/fd), or `None` where that
/// cannot be read.
fn open_fds() -> Option<u64> {
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64)
}

/// The resource a new call would lack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Shortage {
    /// Too few RTP port pairs left.
    #[error("RTP ports: {free} of {total} port pairs free")]
    Ports {
        /// Free pairs.
        free: usize,
        /// Pairs in the pool.
        total: usize,
    },
    /// Too few file descriptors left.
    #[error("file descriptors: {open} of {limit} open")]
    Descriptors {
        /// Open now.
        open: u64,
        /// Soft limit.
        limit: u64,
    },
}

/// Whether one more call fits: the decision, fed with the current figures.
pub fn check(free_pairs: usize, total_pairs: usize, open: u64, limit: u64) -> Result<(), Shortage> {
    if free_pairs < PAIRS_PER_CALL + PAIRS_RESERVE.min(total_pairs / 4) {
        return Err(Shortage::Ports {
            free: free_pairs,
            total: total_pairs,
        });
    }
    if open.saturating_add(FDS_PER_CALL + FDS_RESERVE) > limit {
        return Err(Shortage::Descriptors { open, limit });
    }
    Ok(())
}

/// Counting /proc/self/fd costs a directory read: the count is reused for
/// this long (a burst of dialouts does not read it per request).
const FD_COUNT_TTL: Duration = Duration::from_millis(100);

/// The capacity check the API runs before accepting a dialout.
pub struct CapacityGate {
    limit: u64,
    cached: Mutex<Option<(Instant, u64)>>,
}

impl Default for CapacityGate {
    fn default() -> Self {
        CapacityGate {
            limit: fd_limit(),
            cached: Mutex::new(None),
        }
    }
}

impl CapacityGate {
    /// Checks the port pool's figures and the descriptors.
    pub fn check(&self, free_pairs: usize, total_pairs: usize) -> Result<(), Shortage> {
        let now = Instant::now();
        let open = {
            let mut c = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            match *c {
                Some((at, n)) if now.duration_since(at) < FD_COUNT_TTL => n,
                _ => {
                    let n = open_fds().unwrap_or(0);
                    *c = Some((now, n));
                    n
                }
            }
        };
        check(free_pairs, total_pairs, open, self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_before_running_out() {
        // 1. plenty of everything
        assert_eq!(check(1000, 5000, 100, 65536), Ok(()));
        // 2. ports: a call and the reserve must fit
        assert!(matches!(
            check(PAIRS_PER_CALL + PAIRS_RESERVE - 1, 5000, 100, 65536),
            Err(Shortage::Ports { .. })
        ));
        // 3. a tiny pool (tests) keeps a proportionate reserve: one call in a two-pair pool
        assert_eq!(check(2, 2, 100, 65536), Ok(()));
        assert!(check(1, 2, 100, 65536).is_err());
        // 4. descriptors: refused while the reserve is still there
        assert!(matches!(
            check(1000, 5000, 1024 - FDS_RESERVE, 1024),
            Err(Shortage::Descriptors { .. })
        ));
    }

    #[test]
    fn the_fd_limit_is_raised_to_the_hard_limit() {
        // 1. after raising, the soft limit is the hard one (or 2^20)
        let soft = raise_fd_limit().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        assert_eq!(soft, lim.rlim_cur);
        assert_eq!(soft, lim.rlim_max.min(1 << 20));
        // 2. counting our descriptors works here
        assert!(open_fds().unwrap() > 0);
    }
}
