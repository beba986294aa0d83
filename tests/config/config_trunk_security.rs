//! Configuration of TLS and SRTP on trunks (issue 16 item 5): defaults, the keys read back,
//! and every refusal at the position of the offending key.

use crate::config_kit::{self, BOT_SIP_URI};
use dialgate::config::{self, ErrorKind, SrtpMode};
use std::path::Path;

/// A [`config_kit::one_trunk`] file whose trunk has the extra lines `trunk`, beside the CA
/// and client key its keys name.
fn yaml(dir: &Path, trunk: &str) -> std::path::PathBuf {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("ca.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("client.key"), ck.signing_key.serialize_pem()).unwrap();
    config_kit::one_trunk(dir, BOT_SIP_URI, trunk)
}

/// The positioned errors of a file whose trunk has the extra lines `trunk`.
fn errors(trunk: &str) -> Vec<config_kit::Positioned> {
    config_kit::one_trunk_errors(BOT_SIP_URI, trunk)
}

#[test]
fn tls_trunk_keys_load_with_safe_defaults() {
    let dir = tempfile::tempdir().unwrap();
    // 1. A TLS trunk without TLS keys: verified against the built-in roots, no SRTP.
    let c = config::load(&yaml(dir.path(), "    transport: tls\n")).unwrap();
    let t = &c.sip_connections[0];
    assert!(t.tls.verify);
    assert_eq!(t.tls.ca_file, None);
    assert_eq!(t.tls.client_cert, None);
    assert_eq!(t.srtp, SrtpMode::Off);
    // 2. Every key set: CA file, client certificate (paths resolved), SRTP required.
    let c = config::load(&yaml(
        dir.path(),
        "    transport: tls\n    tls_ca_file: ca.pem\n    tls_cert_file: ca.pem\n    \
         tls_key_file: client.key\n    srtp: required\n",
    ))
    .unwrap();
    let t = &c.sip_connections[0];
    assert_eq!(
        t.tls.ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    assert_eq!(
        t.tls.client_cert,
        Some((dir.path().join("ca.pem"), dir.path().join("client.key")))
    );
    assert_eq!(t.srtp, SrtpMode::Required);
    // 3. The opt-out must be explicit, and is kept.
    let c = config::load(&yaml(
        dir.path(),
        "    transport: tls\n    tls_verify: false\n    srtp: optional\n",
    ))
    .unwrap();
    assert!(!c.sip_connections[0].tls.verify);
    assert_eq!(c.sip_connections[0].srtp, SrtpMode::Optional);
}

#[test]
fn srtp_without_tls_is_refused_at_its_key() {
    // 1. SRTP on a UDP trunk: the keys would cross the network in clear.
    let e = errors("    srtp: required\n");
    let (path, line, kind, msg) = &e[0];
    assert_eq!(path, "sip_connections[0].srtp");
    assert_eq!(*line, 16, "{e:?}");
    assert_eq!(*kind, ErrorKind::Conflict);
    assert!(msg.contains("transport: tls"), "{msg}");
    // 2. The same for TCP and `optional`.
    let e = errors("    transport: tcp\n    srtp: optional\n");
    assert_eq!(e[0].0, "sip_connections[0].srtp");
    assert_eq!(e[0].1, 17);
}

#[test]
fn bad_tls_settings_are_refused_at_their_keys() {
    // 1. TLS keys on a UDP trunk.
    let e = errors("    tls_verify: false\n");
    assert_eq!(e[0].0, "sip_connections[0].tls_verify");
    assert_eq!(e[0].2, ErrorKind::Conflict);
    // 2. A CA file that does not exist.
    let e = errors("    transport: tls\n    tls_ca_file: nowhere.pem\n");
    assert_eq!(e[0].0, "sip_connections[0].tls_ca_file");
    assert_eq!(e[0].1, 17);
    assert_eq!(e[0].2, ErrorKind::MissingFile);
    // 3. A client certificate without its key.
    let e = errors("    transport: tls\n    tls_cert_file: ca.pem\n");
    assert_eq!(e[0].0, "sip_connections[0].tls_cert_file");
    assert!(e[0].3.contains("tls_key_file"), "{}", e[0].3);
    // 4. A CA file that verification will never read.
    let e = errors("    transport: tls\n    tls_verify: false\n    tls_ca_file: ca.pem\n");
    assert_eq!(e[0].0, "sip_connections[0].tls_ca_file");
    // 5. An unknown SRTP mode.
    let e = errors("    transport: tls\n    srtp: mandatory\n");
    assert!(e[0].0.contains("srtp"), "{e:?}");
}
