//! One CPU-heavy or real-time-sensitive test at a time within a test binary.
//!
//! The tests of a binary run in parallel threads. Whisper decoding, speech synthesis, the
//! quick-start demo (both at once) and a burst of argon2 verifications take every core they
//! get; a test that judges audio against the clock beside them — machine detection over a
//! call, recognition inside a call, a person who hangs up after a fixed time — then gets its
//! audio or its transcript late and fails for a reason that is not its own. Separate binaries
//! (one per file) used to keep them apart by accident; this guard does it on purpose. It
//! bounds nothing but the overlap: light tests of the binary still run beside a guarded one.
//!
//! Take it first thing in the test and keep it to the end (bind it to `_cpu`, not `_`).

use tokio::sync::{Mutex, MutexGuard};

/// The binary's one slot for heavy or real-time-sensitive tests. A tokio mutex does not
/// poison: a guarded test that fails releases it for the next one like any other.
static SLOT: Mutex<()> = Mutex::const_new(());

/// Waits for the slot from an async test (`#[tokio::test]`).
pub async fn exclusive() -> MutexGuard<'static, ()> {
    SLOT.lock().await
}

/// Waits for the slot from a plain `#[test]` (not inside a runtime: it blocks the thread).
pub fn exclusive_blocking() -> MutexGuard<'static, ()> {
    SLOT.blocking_lock()
}

/// [`exclusive`] when `heavy`, nothing otherwise: for the kit's flows, which take the slot for
/// their whole life when the call runs speech recognition or synthesis.
pub async fn exclusive_if(heavy: bool) -> Option<MutexGuard<'static, ()>> {
    match heavy {
        true => Some(exclusive().await),
        false => None,
    }
}
