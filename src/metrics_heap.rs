//! The allocator's own count of the heap in use, for `dialgate_heap_bytes`.
//!
//! RSS is a high-water mark (glibc keeps freed memory for reuse), so it cannot tell live state
//! from what the allocator holds on to; the bytes handed out and not yet freed can. Memory per
//! concurrent call is measured with both (`scripts/bench-calls --hold`).

/// Bytes allocated and not freed (glibc: `mallinfo2` in-use chunks plus mmapped blocks);
/// `None` where the allocator does not say.
pub fn in_use_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and only reads the allocator's statistics.
        let m = unsafe { libc::mallinfo2() };
        Some((m.uordblks + m.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    /// An allocation that is kept shows up in the count.
    #[test]
    fn counts_a_live_allocation() {
        let Some(before) = super::in_use_bytes() else {
            return;
        };
        let block = vec![1u8; 4 << 20];
        let during = super::in_use_bytes().unwrap_or(0);
        assert!(during >= before + (4 << 20) - 4096, "{before} -> {during}");
        drop(block);
    }
}
