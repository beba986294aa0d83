//! `bots[].session_expires_sec` / `min_se` (session timers on the bot leg, issue 16): the
//! default, the keys read back, and each refusal at the position of the offending key.

use dialgate::config::{self, ErrorKind};
use std::path::Path;

/// A configuration whose only bot has the media side `media` and the extra lines `bot`
/// (YAML at 4 spaces).
fn yaml(dir: &Path, media: &str, bot: &str) -> std::path::PathBuf {
    let text = format!(
        r#"server:
  sip:
    listen:
      - {{ transport: udp, address: "127.0.0.1:0" }}
  http: {{ listen: "127.0.0.1:0", plain_http: true }}
  rtp: {{ port_min: 20000, port_max: 20099 }}
  data_dir: data
bots:
  - id: b
    name: B
{media}{bot}sip_connections:
  - id: carrier
    name: Carrier
    address: "127.0.0.1:5061"
routing_rules:
  - name: all
    origin_bot: "*"
    route: {{ sip_connection: carrier }}
"#
    );
    let path = dir.join("dialgate.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

const SIP: &str = "    sip_uri: \"sip:bot@127.0.0.1:5090\"\n";

/// Loads the bot and returns `(path, line, kind, message)` of each error.
fn errors(media: &str, bot: &str) -> Vec<(String, usize, ErrorKind, String)> {
    let dir = tempfile::tempdir().unwrap();
    match config::load(&yaml(dir.path(), media, bot)) {
        Ok(_) => panic!("must fail:\n{bot}"),
        Err(e) => e
            .errors()
            .iter()
            .map(|e| (e.path.clone(), e.line, e.kind, e.message.clone()))
            .collect(),
    }
}

#[test]
fn bot_session_timers_are_off_by_default_and_read_back() {
    // 1. Nothing written: off (0), Min-SE 90.
    let dir = tempfile::tempdir().unwrap();
    let c = config::load(&yaml(dir.path(), SIP, "")).unwrap();
    assert_eq!((c.bots[0].session_expires_sec, c.bots[0].min_se), (0, 90));
    // 2. Both keys as written.
    let c = config::load(&yaml(
        dir.path(),
        SIP,
        "    session_expires_sec: 600\n    min_se: 120\n",
    ))
    .unwrap();
    assert_eq!(
        (c.bots[0].session_expires_sec, c.bots[0].min_se),
        (600, 120)
    );
}

#[test]
fn bad_bot_session_timer_values_are_refused_at_their_keys() {
    // 1. Below the RFC 4028 floor (line 12 of the file).
    let e = errors(SIP, "    session_expires_sec: 30\n");
    assert_eq!(e[0].0, "bots[0].session_expires_sec");
    assert_eq!((e[0].1, e[0].2), (12, ErrorKind::InvalidValue));
    // 2. Min-SE below 90.
    let e = errors(SIP, "    min_se: 10\n");
    assert_eq!(e[0].0, "bots[0].min_se");
    // 3. An interval below the bot's own Min-SE.
    let e = errors(SIP, "    session_expires_sec: 100\n    min_se: 200\n");
    assert_eq!(e[0].0, "bots[0].session_expires_sec");
    assert_eq!(e[0].2, ErrorKind::Conflict);
    // 4. A text bot has no SIP leg to refresh.
    let e = errors(
        "    events_url: \"http://127.0.0.1:8081/bot\"\n",
        "    session_expires_sec: 600\n",
    );
    assert_eq!(e[0].0, "bots[0].session_expires_sec");
    assert_eq!(e[0].2, ErrorKind::Conflict);
    assert!(e[0].3.contains("sip_uri"), "{}", e[0].3);
}
