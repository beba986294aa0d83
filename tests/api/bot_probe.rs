//! Bot health before a person is called (issue 12 item 7): `dialgate check --probe` sends each
//! bot's `events_url` the Bot API validation request (GET with the bearer token) and says, per
//! bot, whether it is healthy, refuses the token (401), is not there (404) or cannot be reached
//! (a closed port). Real HTTP servers on loopback: the simulated Bot API (which checks the token
//! like a Bot API bot does) and a port that was bound and closed.

use crate::common;
use std::process::Command;

use common::api::{StartOpts, TestApp, basic, start};
use serde_json::Value;

use dialgate::sim::{BotApiOptions, SimBotApi};
use dialgate::webhook::probe::{self, ProbeOutcome};

const TOKEN: &str = "probe-token";

/// A YAML with four bots: healthy, wrong token, wrong path, closed port.
async fn four_bots(dir: &std::path::Path) -> (std::path::PathBuf, SimBotApi) {
    let api = SimBotApi::start(BotApiOptions {
        token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await
    .expect("simulated Bot API");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // dropped: nothing listens there any more
    let url = api.events_url();
    let base = format!("http://{}", api.local_addr());
    let bot = |id: &str, url: &str, token: &str| {
        format!(
            "  - {{ id: {id}, name: {id}, sip_uri: \"sip:{id}@127.0.0.1\", events_url: \"{url}\", token: {token} }}\n"
        )
    };
    let yaml = format!(
        "server:\n  sip:\n    listen: [ {{ transport: udp, address: \"127.0.0.1:5060\" }} ]\n  http: {{ listen: \"127.0.0.1:8443\", plain_http: true }}\nbots:\n{}{}{}{}",
        bot("good", &url, TOKEN),
        bot("badtoken", &url, "wrong"),
        bot("nobot", &format!("{base}/nothing-here"), TOKEN),
        bot("down", &format!("http://{closed}/bot"), TOKEN),
    );
    let p = dir.join("probe.yaml");
    std::fs::write(&p, yaml).unwrap();
    (p, api)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bot_is_classified_by_what_its_url_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (path, api) = four_bots(dir.path()).await;
    let cfg = dialgate::config::load(&path).expect("valid configuration");
    // 1. Probe all four at once, each bounded.
    let results = probe::probe_bots(&cfg, probe::PROBE_TIMEOUT).await;
    let by = |id: &str| {
        results
            .iter()
            .find(|p| p.bot == id)
            .map(|p| p.outcome.clone())
            .expect("probed")
    };
    // 2. What each answered, classified.
    assert_eq!(by("good"), ProbeOutcome::Healthy(200));
    assert_eq!(by("badtoken"), ProbeOutcome::TokenRefused(401));
    assert_eq!(by("nobot"), ProbeOutcome::NotFound);
    let down = by("down");
    assert!(
        matches!(&down, ProbeOutcome::Unreachable(e) if e.to_lowercase().contains("refused")),
        "{down:?}"
    );
    // 3. The validation request is a GET carrying the bot's token.
    let reqs = api.requests();
    assert!(
        reqs.iter()
            .any(|r| r.auth.as_deref() == Some(&format!("Bearer {TOKEN}")[..]) && r.status == 200),
        "{reqs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probe_prints_one_line_per_bot_and_fails_when_one_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _api) = four_bots(dir.path()).await;
    // 1. `dialgate check --probe FILE` (the Bot API keeps running in this process).
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_dialgate"))
            .args(["check", "--probe"])
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 2. One clear line per bot, and a failing exit status.
    let line = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("probe: bot {id} ")))
            .unwrap_or_else(|| panic!("no line for {id}: {stdout}"))
            .to_owned()
    };
    assert!(
        line("good").ends_with("OK (the bot answered 200)"),
        "{stdout}"
    );
    assert!(line("badtoken").contains("answered 401"), "{stdout}");
    assert!(line("nobot").contains("answered 404"), "{stdout}");
    assert!(line("down").contains("unreachable"), "{stdout}");
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("3 bot(s) cannot take calls"), "{stderr}");
}

/// At start the bots are probed in the background (the start is not held up); the status
/// endpoint shows each bot's result; a reload that fixes the token probes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_reload_probe_the_bots_and_the_status_shows_it() {
    let api = SimBotApi::start(BotApiOptions {
        token: Some(TOKEN.into()),
        ..Default::default()
    })
    .await
    .expect("simulated Bot API");
    let body = format!(
        "bots:\n  - {{ id: good, name: good, sip_uri: \"sip:g@127.0.0.1\", events_url: \"{url}\", token: {TOKEN} }}\n  - {{ id: stale, name: stale, sip_uri: \"sip:s@127.0.0.1\", events_url: \"{url}\", token: old-token }}\napi_clients:\n  - {{ client_id: ops, secret_hash: \"{hash}\", groups: [call_control] }}\n",
        url = api.events_url(),
        hash = dialgate::config::hash_secret("ops-secret"),
    );
    // 1. dialgate starts; the probe runs behind it.
    let t = start(&body, StartOpts::with(|o| o.probe_bots = true)).await;
    let result = |s: &Value, bot: &str| {
        s["botProbe"]
            .as_array()
            .and_then(|l| l.iter().find(|p| p["bot"] == bot))
            .map(|p| p["result"].as_str().unwrap_or("").to_owned())
    };
    // 2. The status names each bot's result: `good` ok, `stale` refused (401).
    let s = wait_status(&t, |s| result(s, "stale").is_some()).await;
    assert_eq!(result(&s, "good").as_deref(), Some("ok"), "{s:#}");
    assert_eq!(
        result(&s, "stale").as_deref(),
        Some("unauthorized"),
        "{s:#}"
    );
    let detail = s["botProbe"][1]["detail"].as_str().unwrap_or("");
    assert!(detail.contains("401"), "{detail}");
    // 3. The token is fixed in the file: the reload probes again and `stale` is ok now.
    let text = std::fs::read_to_string(&t.config_path).unwrap();
    let tmp = t.config_path.with_extension("tmp");
    std::fs::write(&tmp, text.replace("old-token", TOKEN)).unwrap();
    std::fs::rename(&tmp, &t.config_path).unwrap();
    let s = wait_status(&t, |s| result(s, "stale").as_deref() == Some("ok")).await;
    assert_eq!(s["config"]["version"], 2, "{s:#}");
    t.stop().await;
}

async fn wait_status(t: &TestApp, pred: impl Fn(&Value) -> bool) -> Value {
    t.until_status(&basic("ops", "ops-secret"), pred).await
}
