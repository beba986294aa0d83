//! Structural errors come all at once: unknown fields (with the closest valid name), wrong
//! types, bad enum values and missing fields of a file are reported in one run of
//! `dialgate check`, each as `file:line:col: path: message`, sorted by position.

use crate::config_kit::{check, check_text, load_text, write_config};

/// Five different mistakes (the issue's three misspellings, a list of strings where
/// listeners are mappings, a word where a number goes) plus a bad enum value and a missing
/// required field.
const FIVE_MISTAKES: &str = r#"server:
  sip:
    listen: ["udp:127.0.0.1:5060"]
  htps:
    listen: "127.0.0.1:8443"
  rtp:
    rtp_ports: 20000
bots:
  - id: demo-bot
    name: Demo
    sip_uri: "sip:bot@127.0.0.1:5090"
    outbond:
      enabled: true
  - id: second
    name: Second
    sip_uri: "sip:second@127.0.0.1:5091"
    outbound:
      max_cps: fast
      machine_detection: detekt
sip_connections:
  - id: carrier-a
    address: "127.0.0.1:5080"
"#;

#[test]
fn every_structural_mistake_is_reported_in_one_run() {
    // 1. A file with seven structural mistakes of five kinds.
    let dir = tempfile::tempdir().unwrap();
    let file = write_config(dir.path(), "bad.yaml", FIVE_MISTAKES);
    let f = file.display().to_string();
    // 2. One run of `dialgate check` fails...
    let (ok, _, err) = check(&file);
    assert!(!ok, "{err}");
    // 3. ...and names every mistake, in file order, with position and field path.
    let expected = [
        format!(
            "{f}:3:14: server.sip.listen[0]: expected a list of {{transport, address}}, found a string \"udp:127.0.0.1:5060\""
        ),
        format!("{f}:4:3: server.htps: unknown field `htps`, did you mean `http`?"),
        format!(
            "{f}:7:5: server.rtp.rtp_ports: unknown field `rtp_ports`; valid fields here: port_min, port_max, inactivity_timeout_sec, latching"
        ),
        format!("{f}:12:5: bots[0].outbond: unknown field `outbond`, did you mean `outbound`?"),
        format!("{f}:18:16: bots[1].outbound.max_cps: expected a number > 0, got \"fast\""),
        format!(
            "{f}:19:26: bots[1].outbound.machine_detection: `detekt` is not allowed here, did you mean `detect`? (one of: disabled, detect, disconnect)"
        ),
        format!("{f}:21:5: sip_connections[0].name: required field `name` is missing"),
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[..expected.len()], expected, "{err}");
    // 4. The summary counts them and ends with a newline.
    assert_eq!(lines[expected.len()], format!("{f}: 7 error(s)"), "{err}");
    assert_eq!(lines.len(), expected.len() + 1, "{err}");
    assert!(err.ends_with('\n'), "{err:?}");
}

#[test]
fn a_string_where_the_listener_list_goes_names_the_expected_shape() {
    // 1. `listen` is a single string instead of a list of {transport, address}.
    // 2. The library reports it as a wrong type at the value, in configuration words.
    let errs = load_text(
        "server:\n  sip:\n    listen: \"udp:127.0.0.1:5060\"\n  http: { plain_http: true }\n",
    )
    .unwrap_err();
    assert_eq!(errs.errors().len(), 1, "{errs}");
    let e = &errs.errors()[0];
    assert_eq!(e.kind, dialgate::config::ErrorKind::WrongType);
    assert_eq!(
        (e.line, e.column, e.path.as_str()),
        (3, 13, "server.sip.listen")
    );
    assert_eq!(
        e.message,
        "expected a list of {transport, address}, found a string \"udp:127.0.0.1:5060\""
    );
}

#[test]
fn errors_of_the_main_file_and_an_include_file_come_together() {
    // 1. The main file misspells a field and includes a directory whose file has another one.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    let main = dir.path().join("main.yaml");
    std::fs::write(
        &main,
        "server:\n  sip:\n    listen: [{ transport: udp, address: \"127.0.0.1:5060\" }]\n  http: { plain_http: true, listne: x }\n  include: conf.d\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("conf.d/a.yaml"),
        "bots:\n  - { id: b, name: B, sip_uri: \"sip:b@127.0.0.1\", recordin: true }\n",
    )
    .unwrap();
    // 2. Both are reported by one load.
    let errs = dialgate::config::load(&main).unwrap_err();
    let text = errs.to_string();
    assert_eq!(errs.errors().len(), 2, "{text}");
    assert!(
        text.contains(
            "main.yaml:4:29: server.http.listne: unknown field `listne`, did you mean `listen`?"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "a.yaml:2:51: bots[0].recordin: unknown field `recordin`, did you mean `recording`?"
        ),
        "{text}"
    );
}

#[test]
fn a_valid_file_still_loads_and_the_summary_ends_with_a_newline() {
    // 1. A correct minimal file.
    // 2. `check` accepts it; the summary's last line ends with a newline.
    let (ok, out, err) = check_text(
        "ok.yaml",
        "server:\n  sip:\n    listen: [{ transport: udp, address: \"127.0.0.1:5060\" }]\n  http: { plain_http: true }\n",
    );
    assert!(ok, "{err}");
    assert!(out.ends_with('\n'), "{out:?}");
}

#[test]
fn a_rejected_reload_records_every_structural_error() {
    // 1. A running configuration.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dialgate.yaml");
    let good = "server:\n  sip:\n    listen: [{ transport: udp, address: \"127.0.0.1:5060\" }]\n  http: { plain_http: true }\n";
    std::fs::write(&file, good).unwrap();
    let store = dialgate::config::ConfigStore::open(&file).unwrap();
    // 2. An edit with three misspelt fields is rejected with all three, in file order.
    std::fs::write(
        &file,
        "server:\n  sip:\n    listen: [{ transport: udp, address: \"127.0.0.1:5060\" }]\n  htps: { plain_http: true }\n  rtp: { port_mn: 20000 }\nbots:\n  - { id: b, name: B, sip_uri: \"sip:b@127.0.0.1\", outbond: {} }\n",
    )
    .unwrap();
    let errs = store.reload().unwrap_err();
    let paths: Vec<&str> = errs.errors().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        ["server.htps", "server.rtp.port_mn", "bots[0].outbond"]
    );
    // 3. The status's last reload error carries every one of them, one per line.
    let (_, msg) = store.last_error().unwrap();
    assert_eq!(msg.lines().count(), 3, "{msg}");
    assert_eq!(store.version(), 1);
}

#[test]
fn merge_keys_are_left_to_serde() {
    // 1. A bot whose fields come from an anchor through a YAML merge key.
    // 2. The structural pass neither calls `<<` unknown nor `sip_uri` missing; serde merges.
    let c = load_text("server:\n  sip:\n    listen: [{ transport: udp, address: \"127.0.0.1:5060\" }]\n  http: { plain_http: true }\nbots:\n  - &base { id: a, name: A, sip_uri: \"sip:a@127.0.0.1\" }\n  - <<: *base\n    id: b\n    name: B\n").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.bots[1].id, "b");
    assert_eq!(c.bots[1].sip_uri.as_deref(), Some("sip:a@127.0.0.1"));
}

#[test]
fn structural_and_semantic_errors_come_in_the_same_run() {
    // 1. A file with structural mistakes (a misspelt section, a misspelt field, a word for a
    //    number) and semantic ones (a duplicate bot ID, a rule naming an unknown trunk).
    // 2. One load reports both kinds, in file order.
    let errs = load_text(
        r#"server:
  sip:
    listen: [{ transport: udp, address: "127.0.0.1:5060" }]
  htps: { plain_http: true }
bots:
  - { id: a, name: A, sip_uri: "sip:a@127.0.0.1", recordin: true }
  - id: a
    name: A2
    sip_uri: "sip:a2@127.0.0.1"
    outbound: { enabled: true, max_cps: fast }
routing_rules:
  - { name: r, route: { sip_connection: nowhere } }
"#,
    )
    .unwrap_err();
    let got: Vec<String> = errs
        .errors()
        .iter()
        .map(|e| format!("{}:{}: {}", e.line, e.column, e.path))
        .collect();
    assert_eq!(
        got,
        [
            "4:3: server.htps",
            "6:51: bots[0].recordin",
            "7:9: bots[1].id",
            "10:41: bots[1].outbound.max_cps",
            "12:41: routing_rules[0].route.sip_connection",
        ],
        "{errs}"
    );
    // 3. What only repeats a structural error is not reported again: the misspelt `http`
    //    section does not also give "the REST API needs TLS", the bad `max_cps` no range error.
    let text = errs.to_string();
    assert!(!text.contains("server.http:"), "{text}");
    assert_eq!(text.matches("max_cps").count(), 1, "{text}");
}

#[test]
fn a_bots_transfer_method_is_refer_or_bridge_and_defaults_to_bridge() {
    let base = "server:\n  sip:\n    listen: [{ transport: udp, address: \"127.0.0.1:5060\" }]\n  http: { plain_http: true }\nbots:\n  - id: b\n    name: B\n    sip_uri: \"sip:bot@127.0.0.1:5090\"\n";
    // 1. A misspelt method is reported at its value, with the two words allowed.
    let errs = load_text(&format!("{base}    outbound: {{ transfer: blind }}\n")).unwrap_err();
    let e = &errs.errors()[0];
    assert_eq!(
        (e.line, e.path.as_str()),
        (9, "bots[0].outbound.transfer"),
        "{errs}"
    );
    assert!(e.message.contains("refer, bridge"), "{}", e.message);
    // 2. `refer` is read; without the key the method is `bridge`.
    let cfg = load_text(&format!("{base}    outbound: {{ transfer: refer }}\n")).unwrap();
    assert_eq!(
        cfg.bots[0].outbound.transfer,
        dialgate::config::TransferMethod::Refer
    );
    let cfg = load_text(base).unwrap();
    assert_eq!(
        cfg.bots[0].outbound.transfer,
        dialgate::config::TransferMethod::Bridge
    );
}

#[test]
fn the_send_metadata_info_key_is_checked_with_its_position() {
    // 1. A word where a flag goes, and a misspelling of the key on a second bot.
    // 2. Both are reported, each at its place, in configuration words.
    let errs = load_text("server:\n  sip:\n    listen: [ { transport: udp, address: \"127.0.0.1:5060\" } ]\n  http: { plain_http: true }\nbots:\n  - id: a\n    name: A\n    sip_uri: \"sip:a@127.0.0.1\"\n    outbound:\n      send_metadata_info: sometimes\n  - id: b\n    name: B\n    sip_uri: \"sip:b@127.0.0.1\"\n    outbound:\n      send_metadata_infos: true\n").unwrap_err();
    let got: Vec<(usize, usize, &str, &str)> = errs
        .errors()
        .iter()
        .map(|e| (e.line, e.column, e.path.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(got.len(), 2, "{errs}");
    assert_eq!(
        (got[0].0, got[0].2),
        (10, "bots[0].outbound.send_metadata_info")
    );
    assert!(got[0].3.contains("true or false"), "{errs}");
    assert_eq!(
        (got[1].0, got[1].2),
        (15, "bots[1].outbound.send_metadata_infos")
    );
    assert!(
        got[1].3.contains("did you mean `send_metadata_info`"),
        "{errs}"
    );
}

#[test]
fn a_bots_queue_settings_are_checked_and_default_to_reject() {
    let base = "server:\n  sip:\n    listen: [{ transport: udp, address: \"127.0.0.1:5060\" }]\n  http: { plain_http: true }\nbots:\n  - id: b\n    name: B\n    sip_uri: \"sip:bot@127.0.0.1:5090\"\n";
    // 1. A misspelt policy is reported at its value, with the three words allowed; a zero
    //    queue length at its own.
    let errs = load_text(&format!(
        "{base}    outbound: {{ on_limit: wait, max_queue: 0 }}\n"
    ))
    .unwrap_err();
    let e = &errs.errors()[0];
    assert_eq!(
        (e.line, e.path.as_str()),
        (9, "bots[0].outbound.on_limit"),
        "{errs}"
    );
    assert!(e.message.contains("reject, queue, on_request"), "{errs}");
    let errs = load_text(&format!("{base}    outbound: {{ max_queue: 0 }}\n")).unwrap_err();
    assert_eq!(
        errs.errors()[0].path,
        "bots[0].outbound.max_queue",
        "{errs}"
    );
    // 2. `on_request` is read; without the key a bot refuses (Live Hub's 429).
    let cfg = load_text(&format!(
        "{base}    outbound: {{ on_limit: on_request, max_queue_wait_sec: 30 }}\n"
    ))
    .unwrap();
    let o = &cfg.bots[0].outbound;
    assert_eq!(
        (o.on_limit, o.max_queue, o.max_queue_wait_sec),
        (dialgate::config::OnLimit::OnRequest, 1000, 30)
    );
    assert!(o.on_limit.queues(Some(true)) && !o.on_limit.queues(None));
    let cfg = load_text(base).unwrap();
    assert_eq!(
        cfg.bots[0].outbound.on_limit,
        dialgate::config::OnLimit::Reject
    );
    assert!(!cfg.bots[0].outbound.on_limit.queues(Some(true)));
}
