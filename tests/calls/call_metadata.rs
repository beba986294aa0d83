//! `sendMetaData` inside a real call (issue 12 item 6): with `outbound.send_metadata_info` the
//! bot's metadata reaches the person's leg as an in-dialog SIP INFO (`Content-Type:
//! application/json`, the body the activity's `value`); SIPp plays the person and checks the
//! header and the body (its scenario fails otherwise). Without the key nothing is sent and the
//! timeline records it.
//! Ports: relay RTP 37800-38199, SIPp media 32620 and 32640.

use crate::common;
use common::mediaflows::{Carrier, MediaFlow, MediaSetup};
use common::simcall::timeline;
use common::sippflows::{finish, sip_flow};
use serde_json::json;

fn setup(rtp_min: u16, media_port: u16, enabled: bool) -> MediaSetup {
    let mut s = MediaSetup::sim(rtp_min, "tests/fixtures/audio/hello.wav");
    let xml = std::fs::read_to_string(common::sippflows::scenario("uas_info_metadata.xml"))
        .expect("scenario");
    s.carrier = Carrier::Sipp {
        xml,
        media_port,
        args: vec![],
    };
    s.send_metadata_info = enabled;
    // The bot answers `start` with its metadata, then hangs up 1.5 s later.
    s.bot_on_start = vec![
        json!({"type": "event", "name": "sendMetaData", "value": {"orderId": "A-1"}}),
        json!({"type": "event", "name": "hangup", "delay": 1500}),
    ];
    s
}

/// Dials the flow of `setup`; the person answers, the bot hangs up. Returns the flow, the call
/// and what the person's SIPp scenario said (its exit code and message log).
async fn call(setup: MediaSetup) -> (MediaFlow, String, i32, String) {
    let f = MediaFlow::start(setup).await;
    let id = f.dial(json!({})).await;
    let end = f.wait_terminal(&id).await;
    assert_eq!(end["reasonCode"], "bot-disconnected", "{end}");
    let (code, log) = finish(f.sipp()).await;
    (f, id, code, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_reaches_the_person_as_sip_info_when_the_bot_enables_it() {
    // 1. Dial; the person answers; the bot sends its metadata at `start`, then hangs up.
    let (f, id, code, log) = call(setup(37800, 32620, true)).await;
    // 2. The person received exactly: INVITE, ACK, INFO (header and body checked by SIPp), BYE.
    assert_eq!(code, 0, "the person's scenario failed:\n{log}");
    let flow = sip_flow(&log);
    assert!(
        flow.contains(&"<INFO".to_owned()) && flow.last().map(String::as_str) == Some(">200"),
        "{flow:?}"
    );
    // 3. The timeline says it was sent.
    let rec = f.wait_settled(&id).await;
    let tl = timeline(&rec);
    assert!(
        tl.iter()
            .any(|l| l.contains("sendMetaData") && l.contains("sent as SIP INFO")),
        "{tl:#?}"
    );
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_key_metadata_is_recorded_and_not_sent() {
    // The person's scenario waits for an INFO that never comes: BYE arrives instead, so it
    // fails — the proof that nothing was sent.
    let (f, id, code, log) = call(setup(38000, 32640, false)).await;
    assert_ne!(code, 0, "{log}");
    assert!(!sip_flow(&log).contains(&"<INFO".to_owned()), "{log}");
    let rec = f.wait_settled(&id).await;
    let tl = timeline(&rec);
    assert!(
        tl.iter()
            .any(|l| l.contains(r#"{"orderId":"A-1"}"#) && l.contains("send_metadata_info is off")),
        "{tl:#?}"
    );
    f.stop().await;
}
