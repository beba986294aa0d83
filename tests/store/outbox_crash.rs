//! Exactly one terminal notification per call across SIGKILL: the real `dialgate run` process
//! is killed while a burst of calls is ending, restarted on the same data directory, and every
//! call ends up with one terminal notification (one event id; a request that was in flight at
//! the kill may arrive again with the same id) and, if its Bot API conversation was opened,
//! one disconnect. Three rounds.
//! SIP: an in-process simulated carrier answering 486; RTP ports 27600-27999.

use crate::common::binary::{Dialgate, free_tcp_port, server_yaml, trunk_yaml};
use crate::outbox_sink;

use base64::Engine as _;
use bytes::Bytes;
use dialgate::sim::{SimCallee, SimCalleeOptions};
use dialgate::store::Store;
use dialgate::webhook::HttpClient;
use outbox_sink::{Behaviour, Got, Sink, busy_carrier, until_settled};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

const SECRET: &str = "crash-dialer-secret";
const WHSEC: &str = "whsec-crash";
/// Calls per round.
const CALLS: usize = 40;
/// Bound for one step; the restart waits up to one claim lease (request timeout + 15 s).
const WAIT: Duration = Duration::from_secs(90);

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    api: String,
    client: HttpClient,
    auth: String,
}

fn setup(carrier: &SimCallee, sink: &Sink) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let config = dir.path().join("dialgate.yaml");
    std::fs::write(
        &config,
        format!(
            r#"{server}  notify_allow: [127.0.0.0/8]
bots:
  - id: b
    name: B
    sip_uri: "sip:bot@127.0.0.1:9"
    events_url: "{bot}"
    token: bot-token
    outbound: {{ enabled: true, dialout_initiated_event: true, max_cps: 1000, max_concurrent: 1000 }}
{trunk}api_clients:
  - client_id: d
    secret_env: CRASH_SECRET
    groups: [call_control, call_data_manager]
    webhook_secret: "{WHSEC}"
"#,
            server = server_yaml(0, port, Some((27600, 27999)), &dir.path().join("data")),
            bot = sink.url().replace("/notify", "/bot"),
            trunk = trunk_yaml(&carrier.local_addr().to_string()),
        ),
    )
    .unwrap();
    Setup {
        dir,
        config,
        api: format!("http://127.0.0.1:{port}"),
        client: HttpClient::new(Duration::from_secs(10), Duration::from_secs(2)),
        auth: format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("d:{SECRET}"))
        ),
    }
}

impl Setup {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the binary and waits (bounded) until it answers.
    async fn run(&self) -> Dialgate {
        let log = self.dir.path().join("dialgate.log");
        let env = [("CRASH_SECRET", SECRET), ("RUST_LOG", "dialgate=warn")];
        let p = Dialgate::spawn(&self.config, Some(&log), &env);
        for _ in 0..600 {
            // Any HTTP answer (a 404 here) means the API is up.
            let up = self
                .client
                .post_json(&format!("{}/healthz", self.api), Bytes::new(), &[])
                .await
                .is_ok();
            if up {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("dialgate did not start:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dialgate.log")).unwrap_or_default()
    }

    async fn dial(&self, sink: &Sink, n: usize) -> String {
        let body = json!({"bot": "b", "target": format!("+1555{n:07}"), "notifyUrl": sink.url()});
        let a = self
            .client
            .post_json(
                &format!("{}/api/v1/actions/dialout", self.api),
                Bytes::from(body.to_string()),
                &[("authorization", self.auth.clone())],
            )
            .await
            .expect("the API answers");
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        let v: Value = serde_json::from_slice(&a.body).unwrap();
        v["conversationId"].as_str().unwrap().to_owned()
    }
}

fn is_terminal_note(g: &Got) -> bool {
    g.path == "/notify" && matches!(g.body["status"].as_str(), Some("failed" | "completed"))
}

/// Per conversation: the distinct event ids of its terminal notifications (accepted ones).
fn terminal_ids(got: &[Got]) -> HashMap<String, HashSet<String>> {
    let mut m: HashMap<String, HashSet<String>> = HashMap::new();
    for g in got
        .iter()
        .filter(|g| is_terminal_note(g) && g.status == 200)
    {
        let c = g.body["conversationId"].as_str().unwrap_or("").to_owned();
        m.entry(c).or_default().insert(g.event_id.clone());
    }
    m
}

/// Per conversation: the distinct event ids of its Bot API disconnects.
fn disconnect_ids(got: &[Got]) -> HashMap<String, HashSet<String>> {
    let mut m: HashMap<String, HashSet<String>> = HashMap::new();
    for g in got.iter().filter(|g| g.path.ends_with("/disconnect")) {
        let c = g.body["conversation"].as_str().unwrap_or("").to_owned();
        m.entry(c).or_default().insert(g.event_id.clone());
    }
    m
}

/// The conversations the bot was asked to open (a call cut off before its opening was
/// queued never reaches the bot, so it gets no disconnect either).
fn opened(got: &[Got]) -> HashSet<String> {
    got.iter()
        .filter(|g| g.body.get("capabilities").is_some())
        .filter_map(|g| g.body["conversation"].as_str().map(str::to_owned))
        .collect()
}

/// Waits (bounded) until every call of `ids` has a terminal notification, and a disconnect
/// if its bot conversation was opened.
async fn until_all_ended(sink: &Sink, ids: &[String], s: &Setup) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = sink.requests();
        let (t, d, o) = (terminal_ids(&got), disconnect_ids(&got), opened(&got));
        let missing: Vec<_> = ids
            .iter()
            .filter(|i| !t.contains_key(*i) || (o.contains(*i) && !d.contains_key(*i)))
            .collect();
        if missing.is_empty() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            let store = Store::open(&s.data()).unwrap();
            let first = missing[0];
            panic!(
                "{} calls without their terminal notification or disconnect, e.g. {first}: \
                 terminal {:?}, disconnect {:?}\nrecord {:?}\ndeliveries {:#?}\n{}",
                missing.len(),
                t.get(first),
                d.get(first),
                store.get_call(first).await.unwrap(),
                store.deliveries(first).await.unwrap(),
                s.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_of_call_endings_loses_and_doubles_nothing() {
    // 1. A carrier that answers every INVITE 486 after a short ring; one HTTP peer as the
    //    dialer's notify URL and the bot's Bot API.
    let carrier = busy_carrier(Duration::from_millis(150)).await;
    let sink = Sink::start(Behaviour::Accept).await;
    let s = setup(&carrier, &sink);
    let mut all_ids: Vec<String> = Vec::new();
    for round in 0..3 {
        // 2. dialgate runs; a burst of dialouts, each ending `failed/busy` moments later.
        let p = s.run().await;
        let before = terminal_ids(&sink.requests()).len();
        let mut ids = Vec::new();
        for n in 0..CALLS {
            ids.push(s.dial(&sink, round * CALLS + n).await);
        }
        // 3. SIGKILL once a third of this round's calls have been notified: the others are
        //    ringing, ending, or being notified right now.
        let deadline = tokio::time::Instant::now() + WAIT;
        while terminal_ids(&sink.requests()).len() < before + CALLS / 3 {
            assert!(tokio::time::Instant::now() < deadline, "{}", s.log());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(p);
        let notified_at_kill = terminal_ids(&sink.requests()).len() - before;
        eprintln!("round {round}: {notified_at_kill} of {CALLS} calls notified at the kill");
        // 4. Restart on the same data directory: every call of every round ends up with its
        //    terminal notification and its bot disconnect.
        let p = s.run().await;
        all_ids.extend(ids.iter().cloned());
        until_all_ended(&sink, &all_ids, &s).await;
        until_settled(&Store::open(&s.data()).unwrap(), &all_ids, WAIT).await;
        // 5. Exactly one of each per call: one event id (a request in flight at the kill
        //    may have reached the sink twice, always with the same id); a disconnect exactly
        //    for the calls whose bot conversation was opened.
        let got = sink.requests();
        let (t, d, o) = (terminal_ids(&got), disconnect_ids(&got), opened(&got));
        let store = Store::open(&s.data()).unwrap();
        for id in &all_ids {
            assert_eq!(
                t[id].len(),
                1,
                "terminal notifications of {id}: {:?}",
                t[id]
            );
            let queued_open = store
                .deliveries(id)
                .await
                .unwrap()
                .iter()
                .any(|(i, _)| i.kind == "open");
            assert_eq!(
                queued_open,
                o.contains(id),
                "{id}: a queued opening is delivered"
            );
            if o.contains(id) {
                assert_eq!(d[id].len(), 1, "disconnects of {id}: {:?}", d.get(id));
            } else {
                assert!(!d.contains_key(id), "{id}: a disconnect without an opening");
            }
        }
        let repeats = got.iter().filter(|g| is_terminal_note(g)).count() - t.len();
        let unopened = all_ids.iter().filter(|i| !o.contains(*i)).count();
        eprintln!(
            "after round {round}: {repeats} terminal notifications repeated with the same event id, \
             {unopened} calls cut off before their bot conversation was queued"
        );
        // 6. Every request carries an event id, every notification is signed, every record
        //    is terminal.
        assert!(got.iter().all(|g| !g.event_id.is_empty()));
        assert!(
            got.iter()
                .filter(|g| g.path == "/notify")
                .all(|g| g.signed_with(WHSEC))
        );
        for id in &all_ids {
            let rec = store
                .get_call(id)
                .await
                .unwrap()
                .expect("the call is stored");
            assert!(rec.status.is_terminal(), "{id}: {:?}", rec.status);
        }
        drop(p);
    }
    assert_eq!(all_ids.len(), 3 * CALLS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_completes_a_terminal_call_stored_without_its_notification() {
    // 1. A store as an older dialgate could leave it after a crash: a call terminal
    //    (failed/busy) whose notification was never queued.
    let carrier = SimCallee::start(SimCalleeOptions::callee()).await.unwrap();
    let sink = Sink::start(Behaviour::Accept).await;
    let s = setup(&carrier, &sink);
    {
        let store = Store::open(&s.data()).unwrap();
        store
            .insert_call(
                dialgate::store::NewCall {
                    conversation_id: "orphan".into(),
                    client_id: "d".into(),
                    bot_id: "b".into(),
                    target: "+15550000001".into(),
                    request: json!({"bot": "b", "target": "+15550000001", "notifyUrl": sink.url()}),
                    config_version: 1,
                    snapshot: dialgate::store::CallSnapshot {
                        webhook_secret: Some(WHSEC.into()),
                        ..Default::default()
                    },
                },
                None,
            )
            .await
            .unwrap();
        let conn = rusqlite::Connection::open(s.data().join("dialgate.sqlite")).unwrap();
        conn.execute(
            "UPDATE calls SET status='failed', reason_code='busy', reason='486 Busy Here', \
             sip_code=486, ended_at=created_at, terminal_queued=0 WHERE conversation_id='orphan'",
            [],
        )
        .unwrap();
    }
    // 2. dialgate starts: recovery queues the stored outcome's notification, delivered once.
    let p = s.run().await;
    let got = sink.wait_for_accepted(1, WAIT).await;
    assert_eq!(got[0].body["conversationId"], "orphan");
    assert_eq!(got[0].body["status"], "failed");
    assert_eq!(got[0].body["reasonCode"], "busy");
    assert_eq!(got[0].body["sipCode"], 486);
    assert!(got[0].signed_with(WHSEC));
    until_settled(
        &Store::open(&s.data()).unwrap(),
        &["orphan".to_owned()],
        WAIT,
    )
    .await;
    drop(p);
    // 3. Another restart queues nothing more.
    let _p = s.run().await;
    let store = Store::open(&s.data()).unwrap();
    assert_eq!(store.deliveries("orphan").await.unwrap().len(), 1);
    assert_eq!(sink.requests().len(), 1);
}
