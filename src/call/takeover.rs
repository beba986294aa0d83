//! The engine's part of a cluster takeover (`cluster::liveness`): a survivor ends what a dead
//! instance left, as that instance's own restart would have — CANCEL or BYE to its legs from
//! the journaled dialog state, and each of its unfinished calls ended with its one terminal
//! notification (`error`, the reason naming the dead instance). Its queued dialouts are not
//! ended here: they wait in the survivor's queue (`DialQueue::adopt`).

use super::engine::{Engine, LeftBy};
use crate::store::TakenOver;

impl Engine {
    /// Ends the legs and calls `me` took over from a dead instance (`taken.from`); returns
    /// how many calls this ended (a call that ended meanwhile is not ended twice).
    pub async fn end_taken_over(&self, me: &str, taken: &TakenOver) -> usize {
        let from = taken.from.as_str();
        if !taken.legs.is_empty() {
            self.end_legs(taken.legs.clone(), LeftBy::DeadInstance(from));
        }
        let reason = |answered: bool| match answered {
            true => format!("dialgate instance `{from}` died during the call; ended by `{me}`"),
            false => format!(
                "dialgate instance `{from}` died before the call was answered; ended by `{me}`"
            ),
        };
        let what = format!("call of dead instance `{from}` ended by takeover");
        let ended = self.end_unfinished_calls(&taken.calls, reason, &what).await;
        for _ in 0..ended {
            self.count_ended("error");
        }
        ended
    }
}
