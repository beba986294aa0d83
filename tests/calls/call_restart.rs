//! The real dialgate binary killed with SIGKILL and restarted on the same data directory:
//! notifications still pending are delivered after the restart (a failing `answered` being
//! superseded by the terminal notification), and a call cut off while
//! ringing ends failed/error with its terminal notification delivered.
//! No leg is left up: after the restart, the legs of a call that was up get a BYE, a leg that
//! was ringing gets a CANCEL (its 487 is ACKed), and a callee answering as that CANCEL arrives
//! is ACKed and sent a BYE. A SIGTERM with a carrier that never answers the CANCEL still ends
//! the call in the store with exactly one terminal notification.
//! Ports: SIP 16200-16239 (peers), relay RTP 27000-27499.

use crate::common;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::api::{Http, basic};
use common::binary::{Dialgate, free_tcp_port, log_of, server_yaml};
use common::http_peers::NotifySink;
use common::peers::Sipp;
use common::sippflows::*;
use serde_json::{Value, json};

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    http: Http,
    auth: String,
}

/// A config with plain HTTP on a fixed port (the same across restarts), the given RTP range,
/// the trunk at 127.0.0.1:`carrier_port` and the bot at 127.0.0.1:`bot_port`.
fn setup(rtp: (u16, u16), carrier_port: u16, bot_port: u16) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    // The SIP port stays the same across restarts, as in production: a peer's late answer
    // goes to the Via of the lost process's INVITE.
    let sip_port = common::peers::free_udp_port();
    let trunk = Trunk {
        address: format!("127.0.0.1:{carrier_port}"),
        ..Default::default()
    };
    // No Bot API here: the flows are about the dialer's notifications.
    let body = body_without_bot_api(bot_port, &trunk);
    let config = dir.path().join("dialgate.yaml");
    let server = server_yaml(sip_port, port, Some(rtp), &dir.path().join("data"));
    let server = format!("{server}  bot_answer_timeout_sec: 30\n  notify_allow: [127.0.0.0/8]\n");
    std::fs::write(&config, format!("{server}{body}")).unwrap();
    Setup {
        log: dir.path().join("dialgate.log"),
        dir,
        config,
        http: Http::new(&format!("http://127.0.0.1:{port}"), None, false),
        auth: basic("dialer", SECRET),
    }
}

/// The leg dialogs the store keeps (state per leg), read from the database file the way an
/// operator would, while dialgate runs or after it died.
fn stored_legs(s: &Setup) -> Vec<(String, String)> {
    let db = s.dir.path().join("data").join("dialgate.sqlite");
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT conversation_id, state FROM leg_dialogs ORDER BY call_id")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Waits (bounded) until the store keeps `want` legs of the call in state `state`.
async fn until_legs_stored(s: &Setup, id: &str, state: &str, want: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let legs = stored_legs(s);
        let n = legs.iter().filter(|(c, st)| c == id && st == state).count();
        if n == want {
            return;
        }
        assert!(Instant::now() < deadline, "legs stored: {legs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs the binary (`dialgate run --config …`), appending its output to the setup's log, and
/// waits (bounded) until it answers /healthz.
async fn run(s: &Setup) -> Dialgate {
    Dialgate::spawn_healthy(&s.config, &s.log, &s.http).await
}

/// What every test here starts with: the dialer's notification sink, a SIPp carrier playing
/// `carrier` on `port`, a SIPp bot answering on `port + 1` (each giving up after `timeout_s`),
/// the setup with relay RTP `rtp..=rtp + 99`, and the first dialgate process running on it.
async fn start(
    carrier: &str,
    port: u16,
    timeout_s: u32,
    rtp: u16,
) -> (NotifySink, Sipp, Sipp, Setup, Dialgate) {
    let sink = NotifySink::start().await.unwrap();
    let carrier = uas(carrier, port, timeout_s);
    let botp = uas("flow_bot_answer.xml", port + 1, timeout_s);
    let s = setup((rtp, rtp + 99), port, port + 1);
    let d = run(&s).await;
    (sink, carrier, botp, s, d)
}

/// Waits (bounded) for a SIPp peer to end and asserts its scenario passed (with dialgate's log
/// in the message); returns its message trace.
async fn scenario_passed(s: &Setup, peer: &Sipp, who: &str) -> String {
    let (code, trace) = finish(peer).await;
    assert_eq!(code, 0, "{who}\n{}", log_of(&s.log));
    trace
}

/// Dials `target` with a long answer timeout and waits (bounded) until it rings; returns its id.
async fn dial_until_ringing(s: &Setup, sink: &NotifySink, target: &str) -> String {
    let extra = json!({"answerTimeoutSec": 120});
    let id = dial(&s.http, &s.auth, target, &sink.url(), extra).await;
    record_until(&s.http, &s.auth, &id, "ringing", |r| {
        r["ringingAt"].is_string()
    })
    .await;
    id
}

/// Exactly one terminal notification, failed/error, and the call settles with it the only
/// notification the dialer heard; returns the settled record.
async fn failed_error_once(s: &Setup, sink: &NotifySink, id: &str) -> Value {
    let term = one_terminal(sink, id).await;
    assert_eq!(term["status"], "failed");
    assert_eq!(term["reasonCode"], "error");
    let rec = record_until(&s.http, &s.auth, id, "settled", settled).await;
    assert_eq!(
        notes(sink, id),
        vec![("failed".to_owned(), Some("error".to_owned()), None)],
        "{rec:#}"
    );
    rec
}

/// The attempts of the record's `idx`-th dialer delivery.
fn attempts_of(rec: &Value, idx: usize) -> Vec<Value> {
    dialer_deliveries(rec)[idx]["attempts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn pending_notifications_are_delivered_after_sigkill() {
    // 1. A dialer whose notify URL answers 500 to everything for now; a SIPp carrier that
    //    answers and hangs up after a pause; a SIPp bot that answers.
    let (sink, carrier, botp, s, d) = start("flow_carrier_answer_bye.xml", 16200, 60, 27000).await;
    sink.fail_first(1_000_000);
    // 2. The call runs to its end (the person hangs up).
    let id = dial(&s.http, &s.auth, "+15551238001", &sink.url(), json!({})).await;
    let clog = scenario_passed(&s, &carrier, "carrier scenario").await;
    assert_eq!(
        sip_flow(&clog),
        ["<INVITE", ">180", ">200", "<ACK", ">BYE", "<200"]
    );
    let blog = passed(&botp, "bot scenario").await;
    assert_eq!(sip_flow(&blog), ["<INVITE", ">200", "<ACK", "<BYE", ">200"]);
    // 3. The call is completed, but the dialer has accepted nothing: `answered`, which
    //    failed, is superseded by `completed` (README "Status notifications"), and
    //    `completed` is being retried on its own budget (3 attempts so far).
    let rec = record_until(
        &s.http,
        &s.auth,
        &id,
        "completed with 3 failed attempts",
        |r| {
            r["status"] == "completed"
                && dialer_deliveries(r).len() == 2
                && dialer_deliveries(r)[0]["state"] == "superseded"
                && dialer_deliveries(r)[1]["attempts"]
                    .as_array()
                    .is_some_and(|a| a.len() >= 3)
        },
    )
    .await;
    // 4. SIGKILL now, between two attempts (the next one is seconds away).
    d.kill9();
    let failed_before = sink.requests().len();
    assert!(sink.accepted().is_empty());
    assert_eq!(
        dialer_deliveries(&rec)[1]["state"],
        "pending",
        "completed not yet delivered: {rec:#}"
    );
    // 5. The dialer recovers; dialgate restarts on the same data directory.
    sink.fail_first(0);
    let _d = run(&s).await;
    // 6. The terminal notification arrives, accepted exactly once; the superseded
    //    `answered` is never sent again.
    let term = one_terminal(&sink, &id).await;
    assert_eq!(term["status"], "completed");
    assert_eq!(term["reasonCode"], "client-disconnected");
    let rec = record_until(&s.http, &s.auth, &id, "settled", settled).await;
    assert_eq!(
        notes(&sink, &id),
        vec![(
            "completed".to_owned(),
            Some("client-disconnected".to_owned()),
            Some(200)
        )]
    );
    // 7. The record lists every attempt the dialer saw: the 500s before the kill, then one
    //    200 for `completed` after the restart.
    assert_eq!(rec["status"], "completed", "{rec:#}");
    assert_eq!(rec["reasonCode"], "client-disconnected");
    let d = dialer_deliveries(&rec);
    assert_eq!(d.len(), 2, "{rec:#}");
    assert_eq!(d[0]["state"], "superseded", "{rec:#}");
    assert_eq!(d[1]["state"], "delivered", "{rec:#}");
    let answered = attempts_of(&rec, 0);
    let completed = attempts_of(&rec, 1);
    assert!(!answered.is_empty(), "{rec:#}");
    assert!(answered.iter().all(|a| a["httpStatus"] == 500), "{rec:#}");
    assert_eq!(
        answered.len() + completed.len(),
        failed_before + 1,
        "{rec:#}"
    );
    let (last, before) = completed.split_last().expect("completed was attempted");
    assert!(before.iter().all(|a| a["httpStatus"] == 500), "{rec:#}");
    assert_eq!(last["httpStatus"], 200);
    assert_eq!(
        sink.requests().len(),
        answered.len() + completed.len(),
        "every request the dialer saw is a recorded attempt"
    );
}

#[tokio::test]
async fn call_cut_off_while_ringing_ends_failed_after_restart() {
    // 1. A carrier that rings and never answers; a dialer that accepts everything.
    let (sink, carrier, botp, s, d) = start("flow_ring_until_cancel.xml", 16210, 60, 27100).await;
    // 2. Dial; it rings.
    let id = dial_until_ringing(&s, &sink, "+15551238002").await;
    // 3. The store keeps the ringing leg's dialog state (what a CANCEL needs). SIGKILL
    //    mid-ring: nothing was notified yet.
    until_legs_stored(&s, &id, "calling", 1).await;
    d.kill9();
    assert!(sink.requests().is_empty());
    // 4. Restart: the call is ended failed/error and its notification delivered once.
    let _d = run(&s).await;
    let rec = failed_error_once(&s, &sink, &id).await;
    // 5. The record: failed/error, rang but never answered, one delivered notification.
    assert_failed_and_notified(&rec, "error");
    assert!(rec["ringingAt"].is_string() && rec["answeredAt"].is_null());
    assert!(timeline(&rec).contains(&"failed".to_owned()), "{rec:#}");
    // 6. The carrier saw the INVITE and rang; after the restart it got a CANCEL (from the
    //    stored dialog state), and its 487 was ACKed; the bot was never invited.
    let clog = scenario_passed(&s, &carrier, "carrier scenario").await;
    assert_eq!(
        sip_flow(&clog),
        ["<INVITE", ">180", "<CANCEL", ">200", ">487", "<ACK"]
    );
    assert!(botp.messages().is_empty());
    // 7. The leg is forgotten once its CANCEL was answered, and counted.
    until_legs_stored(&s, &id, "calling", 0).await;
    assert!(stored_legs(&s).is_empty());
    assert_eq!(s.http.counter("legs_cleaned_at_recovery").await, 1.0);
}

#[tokio::test]
async fn legs_left_up_get_a_bye_after_sigkill() {
    // 1. A carrier that answers and waits for a BYE; a SIPp bot that answers and waits too.
    let (sink, carrier, botp, s, d) =
        start("flow_carrier_answer_wait_bye.xml", 16220, 90, 27200).await;
    // 2. The call is up on both legs, and the store keeps both legs' dialogs as up.
    let id = dial(&s.http, &s.auth, "+15551238003", &sink.url(), json!({})).await;
    record_until(&s.http, &s.auth, &id, "bot connected", |r| {
        r["botConnectedAt"].is_string()
    })
    .await;
    until_legs_stored(&s, &id, "up", 2).await;
    // 3. SIGKILL: the process dies with both dialogs up.
    d.kill9();
    // 4. Restart: both peers get a BYE built from the stored dialog state and answer it.
    let _d = run(&s).await;
    let clog = scenario_passed(&s, &carrier, "carrier scenario").await;
    let flow = sip_flow(&clog);
    assert_eq!(flow.first().map(String::as_str), Some("<INVITE"), "{clog}");
    assert!(
        flow.ends_with(&[">200", "<ACK", "<BYE", ">200"].map(String::from)),
        "{clog}"
    );
    let blog = scenario_passed(&s, &botp, "bot scenario").await;
    assert_eq!(sip_flow(&blog), ["<INVITE", ">200", "<ACK", "<BYE", ">200"]);
    // 5. The call ended completed/error with one terminal notification; both legs are
    //    forgotten and counted as cleaned at recovery.
    let term = one_terminal(&sink, &id).await;
    assert_eq!(term["status"], "completed");
    assert_eq!(term["reasonCode"], "error");
    until_legs_stored(&s, &id, "up", 0).await;
    assert_eq!(s.http.counter("legs_cleaned_at_recovery").await, 2.0);
}

#[tokio::test]
async fn a_callee_answering_the_recovery_cancel_is_acked_and_sent_bye() {
    // 1. A carrier that rings, and answers exactly when a CANCEL arrives (200 OK retransmitted
    //    until ACKed, then waits for a BYE).
    let (sink, carrier, botp, s, d) =
        start("flow_carrier_answer_after_cancel.xml", 16230, 90, 27300).await;
    let id = dial_until_ringing(&s, &sink, "+15551238004").await;
    until_legs_stored(&s, &id, "calling", 1).await;
    // 2. SIGKILL mid-ring, restart: recovery CANCELs; the callee answers anyway, for a dialog
    //    the new process never had. It is ACKed and ended with BYE.
    d.kill9();
    let _d = run(&s).await;
    let clog = scenario_passed(&s, &carrier, "carrier scenario").await;
    let flow = sip_flow(&clog);
    assert_eq!(flow[..4], ["<INVITE", ">180", "<CANCEL", ">200"], "{clog}");
    assert!(flow.contains(&"<ACK".to_owned()), "{clog}");
    assert_eq!(flow.iter().filter(|m| *m == "<BYE").count(), 1, "{clog}");
    // 3. The dialer was told once: failed/error (the person was never connected to the bot).
    let term = one_terminal(&sink, &id).await;
    assert_eq!(term["status"], "failed");
    assert_eq!(term["reasonCode"], "error");
    assert!(botp.messages().is_empty());
}

// Multi-threaded: the dialer's sink (in this process) must answer while the test waits for
// dialgate to exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_call_whose_carrier_ignores_the_cancel() {
    // 1. A carrier that rings and never answers our CANCEL.
    let (sink, carrier, _botp, s, d) = start("flow_ring_ignore_cancel.xml", 16232, 90, 27400).await;
    let id = dial_until_ringing(&s, &sink, "+15551238005").await;
    // 2. SIGTERM: the CANCEL goes out, is never answered; dialgate still exits, within its
    //    drain, and says how many calls it had to cut short.
    let status = d.sigterm().await;
    assert!(status.success(), "{status:?}\n{}", log_of(&s.log));
    let (code, clog) = finish(&carrier).await;
    assert_eq!(code, 0);
    assert_eq!(sip_flow(&clog), ["<INVITE", ">180", "<CANCEL"]);
    let log = log_of(&s.log);
    let drain = log
        .lines()
        .find(|l| l.contains("drain finished"))
        .unwrap_or_else(|| panic!("no drain line:\n{log}"));
    assert!(
        drain.contains("calls=1") && drain.contains("cut_short=1"),
        "{drain}"
    );
    // 3. The store, read after exit: the call is terminal (never left `ringing`), with
    //    exactly one terminal item queued for the dialer; the ringing leg is still journaled
    //    for the next start to CANCEL.
    let db = s.dir.path().join("data").join("dialgate.sqlite");
    let conn = rusqlite::Connection::open(db).unwrap();
    let status: String = conn
        .query_row(
            "SELECT status FROM calls WHERE conversation_id=?1",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "failed");
    let terminal: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE conversation_id=?1 AND channel='dialer'
               AND json_extract(payload, '$.status') IN ('failed','completed')",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(terminal, 1);
    assert_eq!(stored_legs(&s), vec![(id.clone(), "calling".to_owned())]);
    drop(conn);
    // 4. After a restart the dialer has exactly one terminal notification: failed/error.
    let _d = run(&s).await;
    failed_error_once(&s, &sink, &id).await;
}
