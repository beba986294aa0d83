//! Loading: the good fixture with its defaults, and every error class with file:line:column.

use crate::config_kit;
use dialgate::config::{
    self, CallerIdFormat, ClientSecret, ErrorKind, Group, MachineDetectionMode, RouteTarget,
    SipTransport,
};
use std::path::Path;

use config_kit::{fixture, fixture_errors as errors_of, load_text};

#[test]
fn good_file_loads_with_defaults() {
    config_kit::env();
    // 1. Load the good fixture (with include dir conf.d).
    let c = config::load(&fixture("good.yaml")).unwrap();
    // 2. Server defaults and resolved paths.
    assert_eq!(c.server.sip.listen.len(), 2);
    assert_eq!(
        c.server.sip.max_connections, 1024,
        "server.sip.max_connections default"
    );
    assert_eq!(c.server.sip.listen[1].transport, SipTransport::Tls);
    assert_eq!(c.server.sip.public_address, "127.0.0.1");
    assert_eq!(
        c.server.sip.user_agent,
        format!("dialgate/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        (
            c.server.rtp.port_min,
            c.server.rtp.port_max,
            c.server.rtp.inactivity_timeout_sec
        ),
        (20000, 29999, 30)
    );
    assert_eq!(c.server.data_dir, fixture("data"));
    assert_eq!(
        c.server.http.tls.as_ref().unwrap().cert,
        fixture("certs/dev.crt")
    );
    assert_eq!(
        (
            c.server.max_call_duration_sec,
            c.server.bot_answer_timeout_sec
        ),
        (3600, 10)
    );
    // 3. Bot outbound defaults follow Live Hub: disabled, 1 cps, 3 concurrent, 30 s, events off.
    let quiet = c.bot("quiet-bot").unwrap();
    assert!(!quiet.outbound.enabled);
    assert!(!quiet.outbound.start_recognition_on_connect);
    assert!(!quiet.outbound.dialout_initiated_event);
    assert_eq!(
        quiet.outbound.machine_detection,
        MachineDetectionMode::Disabled
    );
    assert_eq!(quiet.outbound.answer_timeout_sec, 30);
    assert_eq!(quiet.outbound.max_cps, 1.0);
    assert_eq!(quiet.outbound.max_concurrent, 3);
    assert_eq!(quiet.language, "en-US");
    assert!(!quiet.recording);
    assert_eq!(quiet.token, None);
    // 4. Overrides and env secrets were applied.
    let demo = c.bot("Demo Bot").unwrap();
    assert_eq!(demo.id, "demo-bot");
    assert!(demo.outbound.enabled);
    assert_eq!(demo.outbound.max_cps, 2.5);
    assert_eq!(
        demo.outbound.machine_detection,
        MachineDetectionMode::Detect
    );
    assert_eq!(demo.token.as_deref(), Some("bot-token-1"));
    let a = c.sip_connection("carrier-a").unwrap();
    assert_eq!(a.password.as_deref(), Some("carrier-pass"));
    assert_eq!(a.caller_id_format, CallerIdFormat::E164);
    assert_eq!(a.headers.get("X-Account").map(String::as_str), Some("1234"));
    assert!(
        !format!("{a:?}").contains("carrier-pass"),
        "Debug leaks the password"
    );
    // 5. Include dir appended its lists (the .txt file was ignored).
    assert!(c.bot("included-bot").is_some());
    let b = c.sip_connection("carrier-b").unwrap();
    assert_eq!(
        (b.address.host.as_str(), b.address.port, b.transport),
        ("127.0.0.1", Some(5082), SipTransport::Tcp)
    );
    // 6. Routing: sorted by priority, origin bot name resolved to the ID.
    let names: Vec<&str> = c.routing_rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["us-from-demo", "default"]);
    assert_eq!(c.routing_rules[0].origin_bot.as_deref(), Some("demo-bot"));
    assert_eq!(
        c.routing_rules[0].route,
        RouteTarget::PhoneNumber("+15550001111".into())
    );
    let for_demo: Vec<&str> = c
        .routes_for("demo-bot", "+15551234567")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(for_demo, ["us-from-demo", "default"]);
    let for_uk: Vec<&str> = c
        .routes_for("demo-bot", "+442071234567")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(for_uk, ["default"]);
    assert_eq!(c.phone_number("+15550001111").unwrap().bot, "demo-bot");
    // 7. API client with env secret.
    let client = c.api_client("dialer").unwrap();
    assert_eq!(client.secret, ClientSecret::Env("client-secret".into()));
    assert!(client.verify_secret("client-secret"));
    assert!(!client.verify_secret("client-secreT"));
    assert!(client.has_group(Group::CallDataManager));
    // 8. Summary names listeners and the enabled bot.
    let s = config::summary(&c);
    assert!(s.contains("SIP listener: tls 127.0.0.1:5061"), "{s}");
    assert!(s.contains("Outbound enabled: demo-bot"), "{s}");
    assert!(s.contains("3 bots, 2 SIP connections"), "{s}");
}

#[test]
fn semantic_errors_are_all_reported_with_positions() {
    // 1. A file with one of each cross-check problem.
    // 2. Every problem is reported, each at its node.
    // 3. Nothing else.
    let e = errors_of("bad/semantic.yaml");
    config_kit::assert_errors(
        &e,
        "tests/fixtures/config/bad/semantic.yaml",
        &[
            "6:22: server.sip.listen[1].transport: a TLS listener needs certificates: add server.sip.tls { cert, key }",
            "8:5: server.http: the REST API needs TLS: add server.http.tls { cert, key }, or set plain_http: true to allow plain HTTP (tests only)",
            "10:15: server.rtp.port_min: RTP ports start on an even number (RTCP uses the next odd one), got 20001",
            "11:15: server.rtp.port_max: the RTP port range 20001..=20000 is empty; port_max must be above port_min so at least one RTP/RTCP pair fits",
            "16:9: bots[1].id: duplicate bot id `demo-bot` (first defined at tests/fixtures/config/bad/semantic.yaml:13)",
            "17:11: bots[1].name: duplicate bot name `Demo Bot` (first defined at tests/fixtures/config/bad/semantic.yaml:14)",
            "18:14: bots[1].sip_uri: `bot@127.0.0.1` is not a SIP URI; it must start with sip: or sips: (e.g. sip:bot@127.0.0.1:5090)",
            "20:16: bots[1].outbound.max_cps: expected a number > 0, got 0",
            "23:14: bots[2].sip_uri: `sip:other@127.0.0.1:99999` is not a valid SIP URI: `99999` is not a port number (1..=65535)",
            "24:16: bots[2].token_env: environment variable DIALGATE_TEST_SURELY_UNSET_VAR is not set",
            "30:7: sip_connections[0].headers.Account: header `Account` is not allowed; only custom headers starting with X- may be added",
            "35:13: phone_numbers[1].number: number +15550001111 is owned by two bots: `demo-bot` (tests/fixtures/config/bad/semantic.yaml:32) and `other-bot`; a number belongs to one bot",
            "38:13: phone_numbers[2].number: `5550002222` is not an E.164 number; write `+` then country code and number, digits only, at most 15 (e.g. +15551234567)",
            "40:21: phone_numbers[2].sip_connection: unknown SIP connection `carier-a`, did you mean `carrier-a`?",
            "43:17: routing_rules[0].origin_bot: unknown bot `no-such-bot`; defined: Demo Bot, Other Bot, demo-bot, other-bot",
            "44:26: routing_rules[0].destination_pattern: invalid regular expression: found open group without closing ')'",
            "45:30: routing_rules[0].route.sip_connection: unknown SIP connection `carrier-z`, did you mean `carrier-a`?",
            "47:28: routing_rules[1].route.phone_number: unknown phone number `+15559999999`; defined: +15550001111",
            "49:12: routing_rules[2].route: set exactly one of `sip_connection` or `phone_number`",
            "52:18: api_clients[0].secret_hash: not a PHC hash string (password hash string missing field); create one with `dialgate hash-secret`",
        ],
    );
}

#[test]
fn error_kinds_classify() {
    config_kit::env();
    // 1. Kinds of a few semantic errors, independent of wording.
    let errs = config::load(&fixture("bad/semantic.yaml")).unwrap_err();
    let kind_at = |path: &str| {
        errs.errors()
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.kind)
    };
    assert_eq!(kind_at("bots[1].id"), Some(ErrorKind::Duplicate));
    assert_eq!(kind_at("bots[2].token_env"), Some(ErrorKind::MissingEnv));
    assert_eq!(
        kind_at("routing_rules[0].origin_bot"),
        Some(ErrorKind::UnknownReference)
    );
    assert_eq!(kind_at("server.http"), Some(ErrorKind::Conflict));
    // 2. Display is one error per line.
    assert_eq!(errs.to_string().lines().count(), errs.errors().len());
}

#[test]
fn missing_certificates_resolve_against_config_dir() {
    let e = errors_of("bad/certs_missing.yaml");
    let f = "tests/fixtures/config/bad/certs_missing.yaml";
    config_kit::has(
        &e,
        &format!(
            "{f}:5:41: server.sip.tls.key: file tests/fixtures/config/bad/../certs/missing.key does not exist (relative paths start at the config file's directory)"
        ),
    );
    config_kit::has(
        &e,
        &format!(
            "{f}:8:18: server.http.tls.cert: file tests/fixtures/config/bad/nowhere/dev.crt does not exist (relative paths start at the config file's directory)"
        ),
    );
    // The existing ../certs/dev.crt and ../certs/dev.key are accepted.
    assert_eq!(e.len(), 2, "{}", e.join("\n"));
}

#[test]
fn serde_errors_have_position_path_and_plain_words() {
    // 1. Unknown field with suggestion.
    assert_eq!(
        errors_of("bad/unknown_field.yaml"),
        [
            "tests/fixtures/config/bad/unknown_field.yaml:11:7: bots[0].outbound.max_cp: unknown field `max_cp`, did you mean `max_cps`?"
        ]
    );
    // 2. Wrong type, in configuration words.
    assert_eq!(
        errors_of("bad/wrong_type.yaml"),
        [
            r#"tests/fixtures/config/bad/wrong_type.yaml:13:16: bots[1].outbound.max_cps: expected a number > 0, got "fast""#
        ]
    );
    // 3. Unknown enum value.
    assert_eq!(
        errors_of("bad/bad_enum.yaml"),
        [
            "tests/fixtures/config/bad/bad_enum.yaml:3:27: server.sip.listen[0].transport: `sctp` is not allowed here, did you mean `tcp`? (one of: udp, tcp, tls)"
        ]
    );
    // 4. Missing required field, named with its full path.
    assert_eq!(
        errors_of("bad/missing_field.yaml"),
        [
            "tests/fixtures/config/bad/missing_field.yaml:6:5: sip_connections[0].name: required field `name` is missing"
        ]
    );
    // 5. YAML syntax.
    let e = errors_of("bad/syntax.yaml");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("tests/fixtures/config/bad/syntax.yaml:4:7: YAML syntax error: "),
        "{}",
        e[0]
    );
}

#[test]
fn include_file_errors_name_the_include_file() {
    // 1. Main file fine; the include duplicates a bot and routes to an unknown trunk.
    let e = errors_of("bad/incl/main.yaml");
    // 2. Errors point into the include file, the duplicate note into the main file.
    assert_eq!(
        e,
        [
            "tests/fixtures/config/bad/incl/conf.d/a.yaml:3:9: bots[0].id: duplicate bot id `demo-bot` (first defined at tests/fixtures/config/bad/incl/main.yaml:7)",
            "tests/fixtures/config/bad/incl/conf.d/a.yaml:9:30: routing_rules[0].route.sip_connection: unknown SIP connection `nowhere`; no SIP connection is defined",
        ]
    );
}

#[test]
fn unreadable_and_empty_files() {
    config_kit::env();
    // 1. Missing file.
    let e = config::load(Path::new("tests/fixtures/config/nope.yaml")).unwrap_err();
    assert_eq!(e.errors()[0].kind, ErrorKind::Io);
    assert!(
        e.to_string()
            .starts_with("tests/fixtures/config/nope.yaml:1:1: cannot read the file"),
        "{e}"
    );
}

#[test]
fn hashed_client_secret_and_conflicting_secrets() {
    config_kit::env();
    // 1. A config with an argon2id hash made by hash_secret.
    let head = "server:\n  sip:\n    listen: [{ transport: udp, address: \"127.0.0.1:5060\" }]\n  http: { plain_http: true }\n";
    let hash = config::hash_secret("s3cret-value");
    // 2. It loads; the right secret verifies, a wrong one does not; groups are checked.
    let c = load_text(&format!("{head}api_clients:\n  - client_id: dialer\n    secret_hash: \"{hash}\"\n    groups: [call_control]\n")).unwrap();
    let client = c.api_client("dialer").unwrap();
    assert!(client.verify_secret("s3cret-value"));
    assert!(!client.verify_secret("s3cret-valu"));
    assert!(client.has_group(Group::CallControl));
    assert!(!client.has_group(Group::CallDataManager));
    // 3. Both secret forms at once, and a bot with token and token_env, are conflicts.
    let e: Vec<String> = load_text(&format!(
            "{head}bots:\n  - id: b\n    name: B\n    sip_uri: \"sip:b@127.0.0.1\"\n    token: abc\n    token_env: DIALGATE_TEST_BOT_TOKEN\napi_clients:\n  - client_id: dialer\n    secret_hash: \"{hash}\"\n    secret_env: DIALGATE_TEST_CLIENT_SECRET\n    groups: []\n"
        ))
        .unwrap_err()
        .errors()
        .iter()
        .map(|e| format!("{}:{}: {}: {}", e.line, e.column, e.path, e.message))
        .collect();
    assert_eq!(
        e,
        [
            "10:5: bots[0].token_env: set either `token` or `token_env`, not both",
            "14:5: api_clients[0].secret_env: set either `secret_hash` or `secret_env`, not both",
            "15:13: api_clients[0].groups: at least one group is required (call_control, call_data_manager)",
        ]
    );
}

#[test]
fn example_config_loads() {
    config_kit::env();
    // 1. Copy the example next to the certificate files and include dir it names.
    let dir = std::env::temp_dir().join(format!("dialgate-config-example-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf.d")).unwrap();
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::copy(fixture("certs/dev.crt"), dir.join("certs/dev.crt")).unwrap();
    std::fs::copy(fixture("certs/dev.key"), dir.join("certs/dev.key")).unwrap();
    std::fs::copy("conf/dialgate.example.yaml", dir.join("dialgate.yaml")).unwrap();
    // 2. It loads, and its documented secret verifies.
    let c = config::load(&dir.join("dialgate.yaml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.api_client("dialer").unwrap().verify_secret("change-me"));
    assert_eq!(
        c.bot("demo-bot").unwrap().token.as_deref(),
        Some("demo-token")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn wildcard_listener_needs_public_address() {
    config_kit::env();
    // 1. Listener on 0.0.0.0 without public_address: error at the address.
    let text = "server:\n  sip:\n    listen: [{ transport: udp, address: \"0.0.0.0:5060\" }]\n  http: { plain_http: true }\n";
    let e = load_text(text).unwrap_err();
    assert_eq!((e.errors()[0].line, e.errors()[0].column), (3, 41));
    assert_eq!(e.errors()[0].path, "server.sip.listen[0].address");
    // 2. With public_address it loads and uses it.
    let with_public = text.replace("  http:", "    public_address: 192.0.2.10\n  http:");
    assert_eq!(
        load_text(&with_public).unwrap().server.sip.public_address,
        "192.0.2.10"
    );
}

#[test]
fn speech_recogniser_settings_are_read_and_checked() {
    config_kit::env();
    // 1. Without `server.stt`, tiny.en with one worker of two threads (what ran before the key).
    let c = config::load(&fixture("good.yaml")).unwrap();
    assert_eq!(c.server.stt, config::SttSettings::default());
    assert_eq!(
        config::model_file(&c.server),
        c.server.data_dir.join("models").join("ggml-tiny.en.bin")
    );
    // 2. A model name that is not a plain file-name part, and pool sizes out of range, are
    //    refused, each at its node.
    let e = errors_of("bad/stt.yaml");
    config_kit::assert_errors(
        &e,
        "tests/fixtures/config/bad/stt.yaml",
        &[
            "10:12: server.stt.model: expected an installed model name such as `tiny.en` or `base` (the file data_dir/models/ggml-<model>.bin), got \"../../etc/passwd\"",
            "11:14: server.stt.workers: expected a whole number from 1 to 16, got 0",
            "12:22: server.stt.threads_per_job: expected a whole number from 1 to 64, got 65",
        ],
    );
    // 3. The engine gets what the file says.
    let s = config::SttSettings {
        model: "base".into(),
        workers: 2,
        ..Default::default()
    };
    let eng = s.engine_config(std::path::Path::new("/d"));
    assert_eq!((eng.model.as_str(), eng.workers), ("base", 2));
    assert_eq!(
        eng.model_file(),
        std::path::Path::new("/d/models/ggml-base.bin")
    );
}

#[test]
fn carrier_interop_keys_are_checked_with_positions() {
    // 1. session_expires_sec / min_se out of range or inconsistent.
    // 2. Each at its node, in words a telecom engineer reads.
    let e = errors_of("bad/interop.yaml");
    config_kit::assert_errors(
        &e,
        "tests/fixtures/config/bad/interop.yaml",
        &[
            "18:13: sip_connections[0].min_se: min_se must be between 90 (the RFC 4028 floor) and 86400 seconds",
            "17:26: sip_connections[0].session_expires_sec: session_expires_sec must be 0 (no session timers) or 90..86400 seconds",
            "22:26: sip_connections[1].session_expires_sec: session_expires_sec (120) is below min_se (600)",
        ],
    );
    // 3. A wrong type is a structural error at the key's value.
    let e = errors_of("bad/interop_type.yaml");
    assert_eq!(e.len(), 1, "{}", e.join("\n"));
    assert!(
        e[0].starts_with("tests/fixtures/config/bad/interop_type.yaml:17:")
            && e[0].contains("sip_connections[0].min_se"),
        "{}",
        e[0]
    );
}

#[test]
fn websocket_bots_are_validated_with_positions() {
    config_kit::env();
    // 1. Both media sides, a bad URL, an unset token variable, a non-µ-law media stream and
    //    chunks that are not whole 20 ms frames.
    // 2. Each problem is reported at its node.
    let e = errors_of("bad/websocket.yaml");
    config_kit::assert_errors(
        &e,
        "tests/fixtures/config/bad/websocket.yaml",
        &[
            "14:7: bots[0].websocket: a bot has exactly one media side: give either `sip_uri` or `websocket`, not both",
            "19:12: bots[1].websocket.url: scheme must be ws or wss, not http",
            "21:18: bots[1].websocket.token_env: environment variable DIALGATE_TEST_SURELY_UNSET_VAR is not set",
            "22:21: bots[1].websocket.media_format: media-stream bots always use raw/mulaw (8 kHz µ-law), not raw/lpcm16",
            "28:17: bots[2].websocket.chunk_ms: chunk_ms must be 20, 40, 60, 80 or 100 (whole 20 ms frames), not 30",
        ],
    );
    // 3. The conflict classifies as one.
    let errs = config::load(&fixture("bad/websocket.yaml")).unwrap_err();
    let kind = errs
        .errors()
        .iter()
        .find(|e| e.path == "bots[0].websocket")
        .map(|e| e.kind);
    assert_eq!(kind, Some(ErrorKind::Conflict));
}

#[test]
fn websocket_example_config_loads() {
    config_kit::env();
    // 1. (The example's variables are set by env().)
    // 2. It loads: one AC Bot API bot with its token, one media stream, neither a text bot.
    let c = config::load(Path::new("conf/websocket-bots.example.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let ac = c.bot("ac-ws-bot").unwrap();
    let ws = ac.websocket.as_ref().expect("websocket section");
    assert_eq!(ws.protocol, dialgate::wsbot::WsProtocol::AcBotApi);
    assert_eq!(ws.token.as_deref(), Some("ac-token"));
    assert!(!ac.is_text_bot());
    let ms = c.bot("stream-agent").unwrap();
    assert_eq!(
        ms.websocket.as_ref().map(|w| w.media_format),
        Some(dialgate::wsbot::MediaFormat::Mulaw)
    );
    assert!(!ms.is_text_bot());
}

#[test]
fn websocket_structure_errors_are_positioned() {
    config_kit::env();
    // 1. An unknown protocol and an unknown key inside `websocket`.
    let dir = std::env::temp_dir().join(format!("dialgate-ws-structure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dialgate.yaml");
    std::fs::write(
        &path,
        "server:\n  sip:\n    listen:\n      - { transport: udp, address: \"127.0.0.1:5060\" }\n  http:\n    listen: \"127.0.0.1:8443\"\n    plain_http: true\nbots:\n  - id: b\n    name: B\n    websocket:\n      url: \"ws://127.0.0.1:1/\"\n      protocol: sip\n      bogus: 1\n",
    )
    .unwrap();
    // 2. Both are reported with their lines.
    let e: Vec<String> = match config::load(&path) {
        Ok(_) => panic!("must fail"),
        Err(e) => e.errors().iter().map(|e| e.to_string()).collect(),
    };
    let all = e.join("\n");
    assert!(
        all.contains(":13:") && all.contains("bots[0].websocket.protocol"),
        "{all}"
    );
    assert!(
        all.contains("ac-bot-api") && all.contains("media-stream"),
        "{all}"
    );
    assert!(all.contains(":14:") && all.contains("bogus"), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}
