//! The main job and the operator's test call, as a user runs them: the real
//! binary, real SIP/RTP and HTTPS on loopback.

use crate::common;
use common::api::{StartOpts, start};
use common::binary::{stdout_of_success, trunk_yaml};
use dialgate::sim::{SimCallee, SimCalleeOptions};
use std::process::Command;

#[test]
fn dialgate_demo_places_a_call_and_exits_zero() {
    let _cpu = common::cpu::exclusive_blocking();
    // 1. `dialgate demo` starts the gateway and its simulated carrier and bot, places one call
    //    through the HTTPS API and checks the timeline.
    let out = Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .arg("demo")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("dialgate demo runs");
    // 2. It exits 0 only when the call went as expected, and says so.
    let stdout = stdout_of_success(&out);
    assert!(
        stdout.contains("demo: the call went as expected"),
        "{stdout}"
    );
    // 3. The timeline shows the call's steps with SIP codes.
    for step in [
        "POST /api/v1/actions/dialout → 200",
        "sent 180",
        "sent 200",
        "event start",
        "notification completed",
    ] {
        assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
    }
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // 4. With the voice installed (scripts/setup-model, run by scripts/test) the demo bot is a
    //    text bot: the person's "Hello." reaches it, it answers in text, dialgate speaks the
    //    reply and the person's recording, recognised back, holds it.
    let voice = concat!(env!("CARGO_MANIFEST_DIR"), "/data/models/piper");
    if std::path::Path::new(voice).is_dir() {
        for step in [
            "text bot at http://",
            "speak: saying \"Hi there, we are calling from Acme",
            "event playFinished",
            "bot     got    \"Hello",
            "ok   the person heard the bot's reply",
        ] {
            assert!(stdout.contains(step), "missing {step:?} in:\n{stdout}");
        }
    }
}

#[tokio::test]
async fn test_call_follows_a_call_on_a_running_instance() {
    // 1. A carrier that answers and hangs up after its greeting, and a bot that answers.
    let greeting = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/greeting.wav");
    let carrier = SimCallee::start(SimCalleeOptions::callee().with_wav(greeting).unwrap())
        .await
        .unwrap();
    let bot = SimCallee::start(SimCalleeOptions::bot()).await.unwrap();
    let body = format!(
        r#"bots:
  - {{ id: demo-bot, name: Demo Bot, sip_uri: "{bot}", outbound: {{ enabled: true }} }}
{trunk}api_clients:
  - {{ client_id: ops, secret_hash: "{hash}", groups: [call_control, call_data_manager] }}
"#,
        bot = bot.uri(),
        trunk = trunk_yaml(&carrier.local_addr().to_string()),
        hash = dialgate::config::hash_secret("ops-secret"),
    );
    let t = start(&body, StartOpts::default()).await;
    // 2. `dialgate test-call` against it, trusting its certificate.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dialgate"))
        .args([
            "test-call",
            "--target",
            "tel:+15551234567",
            "--bot",
            "demo-bot",
            "--client-id",
            "ops",
        ])
        .arg("--api")
        .arg(t.app().api_url())
        .arg("--ca")
        .arg(t.dir.path().join("test.crt"))
        .env("DIALGATE_CLIENT_SECRET", "ops-secret")
        .output()
        .await
        .expect("dialgate test-call runs");
    // 3. It exits 0 for a completed call and prints the timeline and the result.
    let stdout = stdout_of_success(&out);
    assert!(stdout.contains("dialout accepted"), "{stdout}");
    assert!(
        stdout.contains("result: \"completed\" reasonCode=\"client-disconnected\""),
        "{stdout}"
    );
    assert!(stdout.contains("connected"), "{stdout}");
    t.stop().await;
}
