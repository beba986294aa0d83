//! RTP inactivity watcher: a tokio task per session that samples the relay's
//! "valid packets" counters, so it runs on tokio time (testable with a paused
//! clock) and costs nothing per packet.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::mpsc::Sender;
use tokio::time::Instant;

use super::engine::SessionShared;
use super::stats::GLOBAL;
use super::types::{Leg, MediaEvent};

pub(crate) async fn watch(shared: Arc<SessionShared>, timeout: Duration, tx: Sender<MediaEvent>) {
    let tick = (timeout / 10).max(Duration::from_millis(20));
    let mut last_count = [0u64; 2];
    let mut last_epoch = [0u64; 2];
    let mut since = [Instant::now(); 2];
    let mut fired = [false; 2];
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if shared.stopped.load(Relaxed) || tx.is_closed() {
            return;
        }
        let now = Instant::now();
        for i in 0..2 {
            let count = shared.legs[i].valid_rx.load(Relaxed);
            let epoch = shared.epoch[i].load(Relaxed);
            if count != last_count[i] || epoch != last_epoch[i] {
                // A new remote (the answer after early media that fell silent) is watched
                // afresh: a timeout during early media must not disarm the call's.
                if epoch != last_epoch[i] {
                    fired[i] = false;
                }
                last_count[i] = count;
                last_epoch[i] = epoch;
                since[i] = now;
                continue;
            }
            // A leg that is not expected to send (no remote yet, on hold) is
            // never timed out; its clock restarts when it should send again.
            if !shared.should_send[i].load(Relaxed) {
                since[i] = now;
                continue;
            }
            if !fired[i] && now.duration_since(since[i]) >= timeout {
                fired[i] = true;
                GLOBAL.inactivity_timeouts.fetch_add(1, Relaxed);
                let _ = tx.try_send(MediaEvent::InactivityTimeout {
                    leg: Leg::from_idx(i),
                });
            }
        }
        if fired == [true, true] {
            return;
        }
    }
}
