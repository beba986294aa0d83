use super::*;
use rsipstack::dialog::dialog::TerminatedReason;
use std::time::Duration;

fn id(call_id: &str) -> DialogId {
    DialogId {
        call_id: call_id.to_owned(),
        local_tag: "ours".to_owned(),
        remote_tag: "theirs".to_owned(),
    }
}

/// Bounded receive: a state that never comes fails the test instead of hanging it.
async fn next(leg: &mut LegStates) -> Option<DialogState> {
    tokio::time::timeout(Duration::from_secs(5), leg.recv())
        .await
        .expect("a routed state within 5 s")
}

#[tokio::test]
async fn each_state_reaches_the_leg_of_its_call_id() {
    // 1. Two legs registered on one router.
    let router = DialogRouter::start(CancellationToken::new());
    let mut a = router.register("a@dialgate");
    let mut b = router.register("b@dialgate");
    assert_eq!(router.len(), 2);
    // 2. rsipstack reports states of both dialogs on the one shared sender, interleaved.
    let tx = a.sender();
    tx.send(DialogState::Trying(id("b@dialgate"))).unwrap();
    tx.send(DialogState::Trying(id("a@dialgate"))).unwrap();
    tx.send(DialogState::Terminated(
        id("a@dialgate"),
        TerminatedReason::UasBye,
    ))
    .unwrap();
    // 3. Each leg gets its own, in order.
    assert!(
        matches!(next(&mut a).await, Some(DialogState::Trying(i)) if i.call_id == "a@dialgate")
    );
    assert!(matches!(
        next(&mut a).await,
        Some(DialogState::Terminated(..))
    ));
    assert!(
        matches!(next(&mut b).await, Some(DialogState::Trying(i)) if i.call_id == "b@dialgate")
    );
}

#[tokio::test]
async fn an_ended_leg_leaves_no_route_behind() {
    // 1. A leg registers, then ends (its states are dropped with its task).
    let router = DialogRouter::start(CancellationToken::new());
    let mut live = router.register("live@dialgate");
    let ended = router.register("ended@dialgate");
    let tx = ended.sender();
    drop(ended);
    // 2. Its route is gone: the table does not grow with the legs that ended.
    assert_eq!(router.len(), 1);
    // 3. A late state for it is dropped; the live leg's states still flow.
    tx.send(DialogState::Trying(id("ended@dialgate"))).unwrap();
    tx.send(DialogState::Trying(id("live@dialgate"))).unwrap();
    assert!(
        matches!(next(&mut live).await, Some(DialogState::Trying(i)) if i.call_id == "live@dialgate")
    );
    drop(live);
    assert_eq!(router.len(), 0);
}

#[tokio::test]
async fn flush_returns_what_was_sent_before_it_in_order() {
    // 1. Two states are on their way when the leg's final response arrives.
    let router = DialogRouter::start(CancellationToken::new());
    let mut leg = router.register("c@dialgate");
    let tx = leg.sender();
    tx.send(DialogState::Trying(id("c@dialgate"))).unwrap();
    tx.send(DialogState::Calling(id("c@dialgate"))).unwrap();
    // 2. The flush gives both, in order, and nothing of the marker.
    let flushed = tokio::time::timeout(Duration::from_secs(5), leg.flush())
        .await
        .expect("flush within 5 s");
    assert_eq!(flushed.len(), 2);
    assert!(matches!(flushed[0], DialogState::Trying(_)));
    assert!(matches!(flushed[1], DialogState::Calling(_)));
    // 3. A state sent after the flush is the next one received.
    tx.send(DialogState::Terminated(
        id("c@dialgate"),
        TerminatedReason::UacBye,
    ))
    .unwrap();
    assert!(matches!(
        next(&mut leg).await,
        Some(DialogState::Terminated(..))
    ));
}

#[tokio::test]
async fn a_replaced_route_survives_the_old_one_ending() {
    // 1. The same Call-ID is registered twice (the earlier holder ends afterwards).
    let router = DialogRouter::start(CancellationToken::new());
    let old = router.register("d@dialgate");
    let mut new = router.register("d@dialgate");
    drop(old);
    // 2. The newer route is still there and receives.
    assert_eq!(router.len(), 1);
    new.sender()
        .send(DialogState::Trying(id("d@dialgate")))
        .unwrap();
    assert!(next(&mut new).await.is_some());
}

#[tokio::test]
async fn legs_see_the_end_when_the_router_stops() {
    // 1. The endpoint shuts down while a leg waits for a state.
    let cancel = CancellationToken::new();
    let router = DialogRouter::start(cancel.clone());
    let mut leg = router.register("e@dialgate");
    cancel.cancel();
    // 2. The leg's receive ends instead of waiting forever; the table is empty.
    assert!(next(&mut leg).await.is_none());
    assert_eq!(router.len(), 0);
}
