//! The store's suite, run against both engines: SQLite (one instance) and PostgreSQL (cluster
//! mode, a throwaway server on loopback: `tests/common/postgres.rs`). Every test gets a fresh
//! database and, where concurrency matters, a second handle on the same database: on
//! PostgreSQL a second instance's pool; on SQLite, the one-instance engine, a clone of the
//! handle (one process shares one connection).

use crate::common::postgres;

use dialgate::core::{LegDialog, LegDialogState, Transport};
use dialgate::store::{
    AttemptOutcome, CallEnd, CallFilter, CallSnapshot, CallStatus, Channel, DueQuery, ExtraColumn,
    Inserted, LegJournalOp, NewCall, Recorded, Store, now_ms,
};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;

/// A store on one engine, with what keeps its database alive.
struct Db {
    store: Store,
    second: Store,
    _keep: Keep,
}

enum Keep {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Pg(#[allow(dead_code)] Arc<postgres::PgCluster>),
}

/// The kinds of the outbox items queued for call `id`, in order.
async fn kinds_of(s: &Store, id: &str) -> Vec<String> {
    s.deliveries(id)
        .await
        .unwrap()
        .into_iter()
        .map(|(i, _)| i.kind)
        .collect()
}

impl Db {
    /// The `i`-th of handles taken in turns from the two (racers alternate between them).
    fn handle(&self, i: usize) -> &Store {
        if i.is_multiple_of(2) {
            &self.store
        } else {
            &self.second
        }
    }
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("SQLite store opens");
    Db {
        second: store.clone(),
        store,
        _keep: Keep::Dir(dir),
    }
}

async fn pg() -> Db {
    let cluster = postgres::shared();
    let url = cluster.database().await;
    let store = Store::open_postgres(&url, "dg-a")
        .await
        .expect("PostgreSQL store opens");
    // A second instance on the same database: migrations already applied, nothing redone.
    let second = Store::open_postgres(&url, "dg-b")
        .await
        .expect("second instance opens");
    assert_eq!(store.engine(), "postgres");
    Db {
        store,
        second,
        _keep: Keep::Pg(cluster),
    }
}

/// Each named test runs once per engine: `<name>::sqlite` and `<name>::postgres`.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::sqlite().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(super::pg().await).await;
            }
        }
    )*};
}

on_both_engines!(
    calls_are_inserted_read_listed_and_updated,
    idempotency_keys_answer_with_the_first_call,
    finish_call_writes_one_terminal_and_one_notification,
    two_claimers_never_hold_the_same_item,
    the_leg_journal_keeps_live_legs_only,
    retention_prunes_finished_calls_only,
    timeline_lines_of_concurrent_calls_all_land_in_order,
    a_refused_timeline_line_fails_only_its_own_caller,
    the_shared_queue_is_claimed_once_in_order,
    a_waiting_dialout_ends_once_or_is_dialled_never_both,
);

/// The one-instance queue is SQLite's: it is restored at start and each dialout leaves it
/// once. In cluster mode on PostgreSQL the queue is the shared table
/// (`the_shared_queue_is_claimed_once_in_order`).
mod queued_dialouts_come_back_in_order {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::queued_dialouts_come_back_in_order(super::sqlite().await).await;
    }
}

/// Due items: at most `n`, and at most `n` per destination.
fn up_to(n: u32) -> DueQuery {
    DueQuery {
        limit: n,
        per_destination: n,
        exclude: vec![],
    }
}

fn new_call(id: &str, bot: &str) -> NewCall {
    NewCall {
        conversation_id: id.into(),
        client_id: "dialer".into(),
        bot_id: bot.into(),
        target: "+15550001".into(),
        request: json!({"bot": bot, "target": "+15550001", "notifyUrl": "http://127.0.0.1:9/n"}),
        config_version: 1,
        snapshot: CallSnapshot {
            bot_name: "Bot".into(),
            bot_events_url: Some("http://127.0.0.1:9/bot".into()),
            ..Default::default()
        },
    }
}

fn end(id: &str) -> CallEnd {
    CallEnd {
        conversation_id: id.into(),
        status: CallStatus::Completed,
        reason_code: "normal".into(),
        reason: "hung up".into(),
        sip_code: Some(200),
        notification: Some((
            "http://127.0.0.1:9/n".into(),
            json!({"conversationId": id, "status": "completed"}),
        )),
        bot_disconnect: Some(json!({"type": "disconnect"})),
    }
}

async fn calls_are_inserted_read_listed_and_updated(db: Db) {
    let s = &db.store;
    // 1. Three accepted dialouts, two bots.
    for (id, bot) in [("c1", "bot-a"), ("c2", "bot-b"), ("c3", "bot-a")] {
        assert_eq!(
            s.insert_call(new_call(id, bot), None).await.unwrap(),
            Inserted::New
        );
    }
    // 2. One read back whole, from the other handle too.
    let r = db.second.get_call("c1").await.unwrap().expect("c1 stored");
    assert_eq!((r.bot.as_str(), r.status), ("bot-a", CallStatus::Queued));
    assert_eq!(r.request["notifyUrl"], "http://127.0.0.1:9/n");
    assert!(s.get_call("nope").await.unwrap().is_none());
    // 3. Listing filters by bot and pages.
    let f = CallFilter {
        bot: Some("bot-a".into()),
        limit: 10,
        ..Default::default()
    };
    let mut ids: Vec<String> = s
        .list_calls(f.clone())
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.conversation_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["c1", "c3"]);
    let page = s
        .list_calls(CallFilter {
            limit: 1,
            offset: 1,
            ..f
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    // 4. Progress, detection, extras, transcript and timeline.
    s.set_progress("c1", CallStatus::Ringing, Some(180))
        .await
        .unwrap();
    s.set_progress("c1", CallStatus::Answered, None)
        .await
        .unwrap();
    s.set_amd("c1", Some(("human", 1200, "silence")), Some(3000))
        .await
        .unwrap();
    s.set_extra("c1", ExtraColumn::SttStatus, "active".into())
        .await
        .unwrap();
    s.append_transcript("c1", json!({"text": "hello"}))
        .await
        .unwrap();
    s.append_transcript("c1", json!({"text": "bye"}))
        .await
        .unwrap();
    s.add_event("c1", "note", "a line").await.unwrap();
    let r = s.get_call("c1").await.unwrap().unwrap();
    assert_eq!(r.status, CallStatus::Answered);
    assert_eq!(r.sip_code, Some(180));
    assert!(r.ringing_at.is_some() && r.answered_at.is_some());
    assert_eq!(r.machine_detection.as_ref().unwrap()["beepMs"], 3000);
    assert_eq!(r.recognition.as_deref(), Some("active"));
    assert_eq!(r.transcript, json!([{"text": "hello"}, {"text": "bye"}]));
    let kinds: Vec<String> = s
        .events("c1")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(kinds, ["accepted", "note"]);
    // 5. Counts per status.
    let mut counts = s.count_by_status().await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        [("answered".to_string(), 1), ("queued".to_string(), 2)]
    );
}

async fn idempotency_keys_answer_with_the_first_call(db: Db) {
    let s = &db.store;
    // 1. The first use of a key writes the call.
    assert_eq!(
        s.insert_call(new_call("k1", "b"), Some("key-1".into()))
            .await
            .unwrap(),
        Inserted::New
    );
    // 2. The same key again (another handle): the first call's ID, nothing written.
    assert_eq!(
        db.second
            .insert_call(new_call("k2", "b"), Some("key-1".into()))
            .await
            .unwrap(),
        Inserted::Duplicate("k1".into())
    );
    assert!(s.get_call("k2").await.unwrap().is_none());
    assert_eq!(
        s.find_idempotent("dialer", "key-1").await.unwrap(),
        Some("k1".into())
    );
    // 3. Both handles racing on a new key: one call, and both answers name it.
    let (a, b) = tokio::join!(
        s.insert_call(new_call("r1", "b"), Some("key-2".into())),
        db.second
            .insert_call(new_call("r2", "b"), Some("key-2".into()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let winner = match (&a, &b) {
        (Inserted::New, Inserted::Duplicate(w)) => {
            assert_eq!(w, "r1");
            "r1"
        }
        (Inserted::Duplicate(w), Inserted::New) => {
            assert_eq!(w, "r2");
            "r2"
        }
        other => panic!("expected one new and one duplicate, got {other:?}"),
    };
    let loser = if winner == "r1" { "r2" } else { "r1" };
    assert!(s.get_call(loser).await.unwrap().is_none());
}

async fn queued_dialouts_come_back_in_order(db: Db) {
    let s = &db.store;
    // 1. Three queued dialouts (possibly in one millisecond) and one dialled at once.
    for id in ["q1", "q2", "q3"] {
        s.insert_queued_call(new_call(id, "b"), None).await.unwrap();
    }
    s.insert_call(new_call("now", "b"), None).await.unwrap();
    let ids = |v: Vec<dialgate::store::CallRecord>| -> Vec<String> {
        v.into_iter().map(|r| r.conversation_id).collect()
    };
    // 2. The queue, in order.
    assert_eq!(ids(s.waiting_calls().await.unwrap()), ["q1", "q2", "q3"]);
    // 3. q2 leaves the queue once only; it is then a call in progress.
    assert!(s.mark_dialled("q2").await.unwrap());
    assert!(!db.second.mark_dialled("q2").await.unwrap());
    assert_eq!(ids(s.waiting_calls().await.unwrap()), ["q1", "q3"]);
    let mut unfinished = ids(s.unfinished_calls().await.unwrap());
    unfinished.sort();
    assert_eq!(unfinished, ["now", "q2"]);
    let r = s.get_call("q2").await.unwrap().unwrap();
    assert!(r.queued_at.is_some() && r.dialled_at.is_some() && r.queue_wait_ms.is_some());
}

async fn finish_call_writes_one_terminal_and_one_notification(db: Db) {
    let s = &db.store;
    // 1. A call whose bot conversation was opened.
    s.insert_call(new_call("f1", "b"), None).await.unwrap();
    s.enqueue("f1", Channel::Bot, "open", None, "{}".into())
        .await
        .unwrap();
    // 2. Ten ends racing on two handles.
    let mut tasks = Vec::new();
    for i in 0..10 {
        let st = db.handle(i).clone();
        tasks.push(tokio::spawn(async move { st.finish_call(end("f1")).await }));
    }
    let mut newly = 0;
    for t in tasks {
        if t.await.unwrap().unwrap().newly_terminal {
            newly += 1;
        }
    }
    // 3. Exactly one won; one terminal notification and one disconnect were queued.
    assert_eq!(newly, 1);
    let r = s.get_call("f1").await.unwrap().unwrap();
    assert_eq!(r.status, CallStatus::Completed);
    let kinds = kinds_of(s, "f1").await;
    assert_eq!(kinds, ["open", "status", "disconnect"]);
    assert!(s.terminal_without_note().await.unwrap().is_empty());
}

async fn two_claimers_never_hold_the_same_item(db: Db) {
    // 1. Sixty items, one per conversation, all due.
    const N: usize = 60;
    for i in 0..N {
        let id = format!("o{i}");
        db.store
            .insert_call(new_call(&id, "b"), None)
            .await
            .unwrap();
        db.store
            .enqueue(
                &id,
                Channel::Dialer,
                "status",
                Some("http://127.0.0.1:9/n"),
                json!({"status": "answered"}).to_string(),
            )
            .await
            .unwrap();
    }
    // 2. Two workers (one per handle) read, claim and deliver until nothing is due.
    let worker = |st: Store, token: &'static str| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for _round in 0..200 {
                let (due, _) = st.due_items(up_to(8)).await.unwrap();
                if due.is_empty() {
                    break;
                }
                let ids = due.iter().map(|d| d.item.id).collect();
                let won = st
                    .claim(ids, token.into(), now_ms() + 60_000)
                    .await
                    .unwrap();
                for id in won {
                    let rec = st
                        .record_attempt(
                            id,
                            token.into(),
                            Some(200),
                            None,
                            1,
                            AttemptOutcome::Delivered,
                        )
                        .await
                        .unwrap();
                    assert_eq!(rec, Recorded::Done { superseded: false });
                    mine.push(id);
                }
            }
            mine
        })
    };
    let (a, b) = tokio::join!(
        worker(db.store.clone(), "worker-a"),
        worker(db.second.clone(), "worker-b")
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // 3. Every item delivered once, by one of them.
    let all: HashSet<i64> = a.iter().chain(&b).copied().collect();
    assert_eq!(a.len() + b.len(), N, "an item was delivered twice");
    assert_eq!(all.len(), N);
    for i in 0..N {
        let d = db.store.deliveries(&format!("o{i}")).await.unwrap();
        assert_eq!(d[0].0.state, "delivered");
        assert_eq!(d[0].1.len(), 1, "one attempt recorded");
    }
}

fn leg(call_id: &str, state: LegDialogState) -> LegDialog {
    LegDialog {
        call_id: call_id.into(),
        conversation_id: "conv-1".into(),
        state,
        local_tag: "lt".into(),
        remote_tag: (state == LegDialogState::Up).then(|| "rt".into()),
        cseq: 1,
        remote_target: "sip:+1555@127.0.0.1:5090".into(),
        route_set: vec!["<sip:127.0.0.1:5070;lr>".into()],
        transport: Transport::Tcp,
        destination: "127.0.0.1:5070".into(),
        local_contact: (state == LegDialogState::Calling)
            .then(|| "<sip:dialgate@127.0.0.1:5060>".into()),
        request: "INVITE sip:+1555@127.0.0.1:5090 SIP/2.0\r\n\r\n".into(),
    }
}

async fn the_leg_journal_keeps_live_legs_only(db: Db) {
    let s = &db.store;
    // 1. INVITE sent: the leg is cancellable.
    let calling = leg("a@x", LegDialogState::Calling);
    s.apply_leg_journal(vec![LegJournalOp::Save(calling.clone())])
        .await
        .unwrap();
    assert_eq!(s.leg_dialogs().await.unwrap(), vec![calling]);
    // 2. ACK sent: up, with the INVITE's Contact kept.
    s.apply_leg_journal(vec![
        LegJournalOp::Save(leg("a@x", LegDialogState::Up)),
        LegJournalOp::Save(leg("b@x", LegDialogState::Calling)),
    ])
    .await
    .unwrap();
    let legs = s.leg_dialogs().await.unwrap();
    assert_eq!(legs.len(), 2);
    assert_eq!(legs[0].state, LegDialogState::Up);
    assert_eq!(
        legs[0].local_contact.as_deref(),
        Some("<sip:dialgate@127.0.0.1:5060>")
    );
    assert_eq!(legs[0].transport, Transport::Tcp);
    // 3. Both gone: nothing left for recovery.
    s.apply_leg_journal(vec![
        LegJournalOp::Forget("a@x".into()),
        LegJournalOp::Forget("b@x".into()),
    ])
    .await
    .unwrap();
    assert!(s.leg_dialogs().await.unwrap().is_empty());
}

async fn retention_prunes_finished_calls_only(db: Db) {
    let s = &db.store;
    // 1. One call ended with its notification delivered; one still live.
    s.insert_call(new_call("old", "b"), Some("k-old".into()))
        .await
        .unwrap();
    s.insert_call(new_call("live", "b"), None).await.unwrap();
    s.finish_call(CallEnd {
        bot_disconnect: None,
        ..end("old")
    })
    .await
    .unwrap();
    let (due, _) = s.due_items(up_to(10)).await.unwrap();
    let ids: Vec<i64> = due.iter().map(|d| d.item.id).collect();
    assert_eq!(ids.len(), 1);
    let won = s.claim(ids, "t".into(), now_ms() + 60_000).await.unwrap();
    s.record_attempt(
        won[0],
        "t".into(),
        Some(200),
        None,
        1,
        AttemptOutcome::Delivered,
    )
    .await
    .unwrap();
    // 2. Prune everything that ended before now (+1 ms).
    let p = s.prune_before(now_ms() + 1, 100).await.unwrap();
    assert_eq!(p.calls, 1);
    // 3. The ended call is gone with its deliveries; the live one stays.
    assert!(s.get_call("old").await.unwrap().is_none());
    assert!(s.deliveries("old").await.unwrap().is_empty());
    assert!(s.get_call("live").await.unwrap().is_some());
}

async fn the_shared_queue_is_claimed_once_in_order(db: Db) {
    let ids = |v: Vec<dialgate::store::CallRecord>| -> Vec<String> {
        v.into_iter().map(|r| r.conversation_id).collect()
    };
    // 1. Forty dialouts queued for bot `r` (many in one millisecond), one for bot `c`, and one
    //    dialled at once.
    const N: usize = 40;
    for i in 0..N {
        db.store
            .insert_queued_call(new_call(&format!("r{i:02}"), "r"), None)
            .await
            .unwrap();
    }
    db.store
        .insert_queued_call(new_call("c0", "c"), None)
        .await
        .unwrap();
    db.store
        .insert_call(new_call("now", "r"), None)
        .await
        .unwrap();

    // 2. Every bot's depth and oldest dialout, on either handle.
    let depths = db.second.waiting_by_bot().await.unwrap();
    let by_bot: Vec<(&str, usize)> = depths.iter().map(|q| (q.bot.as_str(), q.depth)).collect();
    assert_eq!(by_bot, [("c", 1), ("r", N)]);
    assert!(
        depths
            .iter()
            .all(|q| q.oldest_ms > 0 && q.oldest_ms <= now_ms())
    );
    assert_eq!(db.store.waiting_count("r").await.unwrap(), N);
    assert_eq!(db.store.waiting_count("none").await.unwrap(), 0);

    // 3. Alone, a claim takes the oldest; it is then dialled, no longer waiting.
    let first = db.store.claim_waiting("r").await.unwrap().unwrap();
    assert_eq!(first.conversation_id, "r00");
    assert!(first.dialled_at.is_some() && first.queue_wait_ms.is_some());
    assert_eq!(db.store.waiting_count("r").await.unwrap(), N - 1);

    // 4. Two instances claim the rest at once, two claimers each, until nothing waits.
    let claimer = |st: Store| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(r) = st.claim_waiting("r").await.unwrap() {
                mine.push(r.conversation_id);
            }
            mine
        })
    };
    let tasks = [
        claimer(db.store.clone()),
        claimer(db.second.clone()),
        claimer(db.store.clone()),
        claimer(db.second.clone()),
    ];
    let mut all = Vec::new();
    for t in tasks {
        let mine = t.await.unwrap();
        // Each claimer took its dialouts in queue order.
        let mut sorted = mine.clone();
        sorted.sort();
        assert_eq!(mine, sorted, "claims out of queue order");
        all.extend(mine);
    }
    // 5. Every dialout claimed exactly once; bot `c`'s and the dialled call untouched.
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), N - 1, "a dialout was claimed twice: {all:?}");
    assert_eq!(distinct.len(), N - 1);
    assert!(db.store.claim_waiting("r").await.unwrap().is_none());
    let by_bot: Vec<(String, usize)> = db
        .store
        .waiting_by_bot()
        .await
        .unwrap()
        .into_iter()
        .map(|q| (q.bot, q.depth))
        .collect();
    assert_eq!(by_bot, [("c".to_string(), 1)]);
    let left = db.store.claim_waiting("c").await.unwrap();
    assert_eq!(left.map(|r| r.conversation_id).as_deref(), Some("c0"));

    // 6. On PostgreSQL the claimer owns what it claimed: its restart recovery (or a takeover
    //    of it) ends the call; on SQLite there is one owner.
    let claimed_by_second: Vec<String> = ids(db.second.unfinished_calls().await.unwrap());
    assert!(claimed_by_second.contains(&"r00".to_string()) != (db.store.engine() == "postgres"));
}

async fn a_waiting_dialout_ends_once_or_is_dialled_never_both(db: Db) {
    // The end of a dialout that waited too long.
    let end_of = |id: &str| {
        let mut e = end(id);
        e.status = CallStatus::Failed;
        e.reason_code = "queue-timeout".into();
        e.sip_code = None;
        e
    };
    // 1. Three queued dialouts of one bot.
    for id in ["w1", "w2", "w3"] {
        db.store
            .insert_queued_call(new_call(id, "w"), None)
            .await
            .unwrap();
    }
    // 2. w1 is claimed: ending it as a waiting dialout does nothing, on either handle.
    assert_eq!(
        db.store
            .claim_waiting("w")
            .await
            .unwrap()
            .unwrap()
            .conversation_id,
        "w1"
    );
    assert!(
        db.second
            .finish_waiting(end_of("w1"))
            .await
            .unwrap()
            .is_none()
    );
    let r = db.store.get_call("w1").await.unwrap().unwrap();
    assert!(!r.status.is_terminal(), "{r:?}");
    assert!(db.store.deliveries("w1").await.unwrap().is_empty());

    // 3. w2 ends while waiting (a DELETE): once, with one terminal notification; it is out of
    //    the queue, and the next claim takes w3.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let st = db.handle(i).clone();
        let e = end_of("w2");
        tasks.push(tokio::spawn(async move { st.finish_waiting(e).await }));
    }
    let mut ended = 0;
    for t in tasks {
        if let Some(f) = t.await.unwrap().unwrap() {
            assert!(f.newly_terminal && f.queued);
            ended += 1;
        }
    }
    assert_eq!(ended, 1);
    let r = db.store.get_call("w2").await.unwrap().unwrap();
    assert_eq!(r.status, CallStatus::Failed);
    assert!(r.dialled_at.is_none());
    let kinds = kinds_of(&db.store, "w2").await;
    assert_eq!(kinds, ["status"]);
    // w3 before the cut-off of a timeout is found; none before its queuing time.
    let old = db.store.waiting_before("w", now_ms() + 1).await.unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0].conversation_id, "w3");
    let queued_at = old[0].queued_at.unwrap();
    assert!(
        db.store
            .waiting_before("w", queued_at)
            .await
            .unwrap()
            .is_empty()
    );

    // 4. A claim and an end racing for w3: exactly one of them wins.
    let (st, nd) = (db.store.clone(), db.second.clone());
    let e = end_of("w3");
    let (claimed, finished) = tokio::join!(
        tokio::spawn(async move { st.claim_waiting("w").await }),
        tokio::spawn(async move { nd.finish_waiting(e).await })
    );
    let claimed = claimed.unwrap().unwrap().is_some();
    let finished = finished.unwrap().unwrap().is_some();
    assert!(claimed != finished, "claimed {claimed}, ended {finished}");
    let r = db.store.get_call("w3").await.unwrap().unwrap();
    assert_eq!(r.status.is_terminal(), finished);
    assert_eq!(r.dialled_at.is_some(), claimed);
}

/// PostgreSQL writes timeline lines in batches (one statement for the lines queued together):
/// lines from many calls at once, through both instances, must all land, each call's in the
/// order it wrote them, and be readable as soon as `add_event` returned.
async fn timeline_lines_of_concurrent_calls_all_land_in_order(db: Db) {
    const CALLS: usize = 40;
    const LINES: usize = 6;
    // 1. Forty calls, half through each instance's handle, each writing six lines in turn,
    //    all at once (so lines queue behind each other and form batches).
    let mut tasks = Vec::new();
    for c in 0..CALLS {
        let s = if c % 2 == 0 {
            db.store.clone()
        } else {
            db.second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let id = format!("t{c}");
            for l in 0..LINES {
                s.add_event(&id, "step", &format!("{id} line {l}"))
                    .await
                    .expect("line written");
                // 2. Each line is readable once add_event returned.
                let seen = s.events(&id).await.expect("timeline read");
                assert_eq!(seen.len(), l + 1, "{id}: line {l} not yet readable");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    // 3. Every call's timeline holds its six lines, in order, and nothing of another call.
    for c in 0..CALLS {
        let id = format!("t{c}");
        let details: Vec<String> = db
            .store
            .events(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.2)
            .collect();
        let want: Vec<String> = (0..LINES).map(|l| format!("{id} line {l}")).collect();
        assert_eq!(details, want, "{id}'s timeline");
    }
}

/// One line PostgreSQL refuses (a NUL byte in text) among lines of other calls written at the
/// same moment: the others land; only the bad line's caller gets the error (SQLite stores it).
async fn a_refused_timeline_line_fails_only_its_own_caller(db: Db) {
    for round in 0..5 {
        // 1. Twenty good lines and one bad one, all at once, so they share batches.
        let mut good = Vec::new();
        for c in 0..20 {
            let s = db.store.clone();
            good.push(tokio::spawn(async move {
                let id = format!("g{round}-{c}");
                s.add_event(&id, "step", "fine").await.map(|_| id)
            }));
        }
        let s = db.store.clone();
        let bad = tokio::spawn(async move { s.add_event("bad", "step", "nul \0 here").await });
        // 2. Every good line was written and reads back.
        for t in good {
            let id = t
                .await
                .unwrap()
                .expect("a good line is written whatever its batch held");
            assert_eq!(db.store.events(&id).await.unwrap().len(), 1, "{id}");
        }
        // 3. The bad line failed on PostgreSQL only.
        let bad = bad.await.unwrap();
        assert_eq!(bad.is_err(), db.store.engine() == "postgres", "{bad:?}");
    }
}
