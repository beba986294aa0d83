//! Machine detection inside real calls (DESIGN.md §1.5, issue "Machine detection"): the
//! simulated carrier callee answers and plays a recording over RTP through dialgate's relay, the
//! detector listens to the relay's tap of the callee's audio, and the result reaches the bot
//! (`machineDetection`, `beep` events), the dialer (the notifications' `machineDetection`) and
//! the call record (`machineDetection.result`, `decisionMs`, `beepMs`). With `disconnect`, a
//! machine or fax ends the call with reasonCode `machine-detected`.

use crate::common;
use std::time::Duration;

use common::mediaflows::{MediaFlow, MediaSetup, has_event, wait_sim_ended, with_lead_silence};
use common::simcall::{samples, sip_trace, timeline};
use serde_json::json;

/// The person hangs up; the call ends completed, client-disconnected. Returns the terminal
/// notification.
async fn person_hangs_up(f: &MediaFlow, id: &str) -> serde_json::Value {
    f.callee().hangup_all();
    let end = f.wait_terminal(id).await;
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["reasonCode"], "client-disconnected", "{end}");
    end
}

/// A machine greeting with a beep, `detect`: the bot hears `machineDetection` = machine, then
/// `beep`; the call goes on until the callee hangs up; notification and record say machine.
/// Both simulated legs ended: the callee answered and saw `callee_bye` ("BYE in": dialgate
/// hung it up, "BYE out": it hung up itself); dialgate BYEd the bot.
async fn legs_ended(f: &MediaFlow, callee_bye: &str) {
    let callee = sip_trace(&wait_sim_ended(f.callee.as_ref().unwrap(), "callee").await);
    assert_eq!(
        callee,
        ["INVITE", "sent 180", "sent 200", "ACK", callee_bye, "RTP"]
    );
    let bot = sip_trace(&wait_sim_ended(&f.bot, "bot").await);
    assert_eq!(bot, ["INVITE", "sent 200", "ACK", "BYE in", "RTP"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_greeting_with_beep_is_reported_to_bot_dialer_and_record() {
    let _cpu = common::cpu::exclusive().await;
    let f = MediaFlow::start(MediaSetup::sim(28000, "tests/fixtures/audio/machine.wav")).await;
    // 1. Dial with machineDetection `detect` (the bot's default is `disabled`).
    let id = f.dial(json!({"machineDetection": "detect"})).await;
    // 2. The bot gets `start`, then `machineDetection` with value `machine`.
    f.wait_bot_event(&id, "start").await;
    let md = f.wait_bot_event(&id, "machineDetection").await;
    assert_eq!(md["type"], "event");
    assert_eq!(md["value"], "machine", "{md}");
    // 3. The greeting's beep follows as a `beep` event, after the decision.
    f.wait_bot_event(&id, "beep").await;
    let names = f.bot_event_names(&id);
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(pos("start") < pos("machineDetection"), "{names:?}");
    assert!(pos("machineDetection") < pos("beep"), "{names:?}");
    assert_eq!(
        names.iter().filter(|n| *n == "machineDetection").count(),
        1,
        "{names:?}"
    );
    // 4. `detect` does not hang up: the call is still connected, nobody sent BYE.
    let live = f.record(&id).await;
    assert_eq!(live["status"], "connected", "{live:#}");
    assert!(
        !sip_trace(&f.callee().events())
            .iter()
            .any(|e| e.starts_with("BYE"))
    );
    // 5. The person (the machine) hangs up.
    let end = person_hangs_up(&f, &id).await;
    assert_eq!(end["machineDetection"], "machine", "{end}");
    // 6. SIP: the callee answered and hung up; dialgate BYEd the bot.
    legs_ended(&f, "BYE out").await;
    // 7. The record: machine, with the decision and beep times (audio time since answer).
    let rec = f.wait_settled(&id).await;
    assert_eq!(rec["status"], "completed");
    assert_eq!(rec["reasonCode"], "client-disconnected");
    let amd = &rec["machineDetection"];
    assert_eq!(amd["result"], "machine", "{rec:#}");
    let decision = amd["decisionMs"].as_i64().expect("decisionMs");
    let beep = amd["beepMs"].as_i64().expect("beepMs");
    assert!(decision > 0 && decision < beep, "{amd}");
    let tl = timeline(&rec);
    assert!(
        tl.iter().any(|l| l.starts_with("amd: machine after")),
        "{tl:#?}"
    );
    assert!(tl.iter().any(|l| l.starts_with("beep: beep")), "{tl:#?}");
    // 8. The dialer: answered, then exactly one terminal, both naming machine at the end.
    f.assert_answered_then_completed(&id, &rec);
    let disc = f.wait_bot_disconnect(&id).await;
    assert_eq!(disc["reasonCode"], "client-disconnected");
    f.stop().await;
}

/// A short "Hello?" then silence, `detect`: human; the call goes on until the person hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_hello_is_human_and_the_call_goes_on() {
    let _cpu = common::cpu::exclusive().await;
    let f = MediaFlow::start(MediaSetup::sim(28200, "tests/fixtures/audio/hello.wav")).await;
    // 1. Dial with detection on.
    let id = f.dial(json!({"machineDetection": "detect"})).await;
    // 2. The bot hears `machineDetection` = human.
    let md = f.wait_bot_event(&id, "machineDetection").await;
    assert_eq!(md["value"], "human", "{md}");
    // 3. The call goes on: connected, nobody hung up, the record already has the result.
    let live = f
        .wait_record(&id, "the AMD result", |r| {
            r["machineDetection"]["result"] == "human"
        })
        .await;
    assert_eq!(live["status"], "connected", "{live:#}");
    assert!(live["machineDetection"]["decisionMs"].as_i64().unwrap() > 0);
    assert!(live["machineDetection"]["beepMs"].is_null());
    assert!(
        !sip_trace(&f.callee().events())
            .iter()
            .any(|e| e.starts_with("BYE"))
    );
    assert!(
        !sip_trace(&f.bot.events())
            .iter()
            .any(|e| e.starts_with("BYE"))
    );
    // 4. The person hangs up: completed, client-disconnected, human.
    let end = person_hangs_up(&f, &id).await;
    assert_eq!(end["machineDetection"], "human", "{end}");
    // 5. The bot's leg was hung up by dialgate; no beep ever reached the bot.
    let bot = sip_trace(&wait_sim_ended(&f.bot, "bot").await);
    assert_eq!(bot, ["INVITE", "sent 200", "ACK", "BYE in", "RTP"]);
    let rec = f.wait_settled(&id).await;
    assert_eq!(rec["machineDetection"]["result"], "human", "{rec:#}");
    let names = f.bot_event_names(&id);
    assert!(!names.iter().any(|n| n == "beep"), "{names:?}");
    f.stop_answered_then_completed(&id, &rec).await;
}

/// Fax tones, `disconnect`: the call ends with machine-detected, both legs get BYE from
/// dialgate, the dialer's terminal notification says machine-detected and fax.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fax_with_disconnect_ends_the_call_as_machine_detected() {
    let _cpu = common::cpu::exclusive().await;
    let mut s = MediaSetup::sim(28400, "tests/fixtures/audio/fax.wav");
    // The detector knows fax within ~0.5 s of tone; a second of silence first lets the bot leg
    // be up before the decision, so both legs end with BYE (not a CANCEL of the bot INVITE).
    if let common::mediaflows::Carrier::Sim(o) = &mut s.carrier {
        o.play = with_lead_silence(
            samples("tests/fixtures/audio/fax.wav"),
            Duration::from_secs(1),
        );
    }
    let f = MediaFlow::start(s).await;
    // 1. Dial with machineDetection `disconnect`.
    let id = f.dial(json!({"machineDetection": "disconnect"})).await;
    // 2. The dialer's terminal notification: completed, machine-detected, fax.
    let end = f.wait_terminal(&id).await;
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["reasonCode"], "machine-detected", "{end}");
    assert_eq!(end["machineDetection"], "fax", "{end}");
    assert_eq!(end["sipCode"], 200, "the carrier answered 200: {end}");
    // 3. Both legs were hung up by dialgate (BYE received by each sim).
    legs_ended(&f, "BYE in").await;
    // 4. The bot heard the result, then its conversation was disconnected as machine-detected.
    let md = f.wait_bot_event(&id, "machineDetection").await;
    assert_eq!(md["value"], "fax", "{md}");
    let disc = f.wait_bot_disconnect(&id).await;
    assert_eq!(disc["reasonCode"], "machine-detected", "{disc}");
    // 5. The record and exactly one terminal notification.
    let rec = f.wait_settled(&id).await;
    assert_eq!(rec["status"], "completed", "{rec:#}");
    assert_eq!(rec["reasonCode"], "machine-detected");
    assert_eq!(rec["machineDetection"]["result"], "fax");
    assert!(rec["machineDetection"]["decisionMs"].as_i64().unwrap() > 0);
    let tl = timeline(&rec);
    assert!(
        tl.iter().any(|l| l.starts_with("amd: fax after")),
        "{tl:#?}"
    );
    f.stop_answered_then_completed(&id, &rec).await;
}

/// `machineDetection: disabled` in the request overrides the bot's `detect`: a whole machine
/// greeting with beep plays, and no detection result appears anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_in_the_request_means_no_machine_detection_at_all() {
    let _cpu = common::cpu::exclusive().await;
    let mut s = MediaSetup::sim(28600, "tests/fixtures/audio/machine.wav");
    s.machine_detection = "detect";
    // The machine hangs up by itself half a second after its greeting and beep.
    if let common::mediaflows::Carrier::Sim(o) = &mut s.carrier {
        o.hangup = dialgate::sim::Hangup::AfterAudio(Duration::from_millis(500));
    }
    let f = MediaFlow::start(s).await;
    // 1. Dial with detection disabled.
    let id = f.dial(json!({"machineDetection": "disabled"})).await;
    // 2. The whole greeting plays, the callee hangs up: completed, client-disconnected.
    let end = f.wait_terminal(&id).await;
    assert_eq!(end["status"], "completed", "{end}");
    assert_eq!(end["reasonCode"], "client-disconnected", "{end}");
    assert_eq!(end["machineDetection"], json!(null), "{end}");
    let callee = wait_sim_ended(f.callee.as_ref().unwrap(), "callee").await;
    assert_eq!(
        sip_trace(&callee),
        ["INVITE", "sent 180", "sent 200", "ACK", "BYE out", "RTP"]
    );
    // 3. The bot got `start` and the disconnect, but no machineDetection or beep event.
    f.wait_bot_disconnect(&id).await;
    let rec = f.wait_settled(&id).await;
    let names = f.bot_event_names(&id);
    assert!(names.iter().any(|n| n == "start"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "machineDetection" || n == "beep"),
        "{names:?}"
    );
    // 4. The record has no detection result and no detection in its timeline.
    assert_eq!(rec["machineDetection"], json!(null), "{rec:#}");
    assert!(
        !has_event(&rec, "amd") && !has_event(&rec, "beep"),
        "{:#?}",
        timeline(&rec)
    );
    assert!(
        f.notifications(&id)
            .iter()
            .all(|n| n["machineDetection"].is_null())
    );
    f.stop_answered_then_completed(&id, &rec).await;
}
