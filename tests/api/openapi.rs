//! The OpenAPI 3.1 document (`docs/openapi.json`, served at `GET /api/v1/openapi.json`) cannot
//! drift from the code: its operations are exactly the router's routes, its error codes exactly
//! the API's, every documented operation is routed, and Schemathesis (an independent fuzzer,
//! installed by scripts/install-peers) runs every operation against a live dialgate on loopback:
//! no 5xx, every status, content type, header and body as documented.

use crate::common;
use common::api::{StartOpts, basic, start};
use common::binary::trunk_yaml;
use dialgate::api::openapi::{DOCUMENT, ROUTES, error_codes};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const SECRET: &str = common::env::OPENAPI_DIALER_SECRET;

fn doc() -> Value {
    serde_json::from_str(DOCUMENT).expect("docs/openapi.json is JSON")
}

/// (path, METHOD) of every operation in the document.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ] {
            if item.get(method).is_some() {
                ops.insert((path.clone(), method.to_uppercase()));
            }
        }
    }
    ops
}

/// (path, METHOD) of every route of the router.
fn routed_operations() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .flat_map(|(path, methods)| {
            methods
                .split(", ")
                .map(move |m| (path.to_string(), m.to_string()))
        })
        .collect()
}

/// A bot that can dial out, a dead trunk on loopback, one client in both groups.
fn body() -> String {
    let bots = r#"bots:
  - id: demo-bot
    name: Demo
    sip_uri: "sip:bot@127.0.0.1:5999"
    outbound: { enabled: true, max_cps: 5, max_concurrent: 5 }
"#;
    let client = "api_clients:\n  - client_id: dialer\n    secret_env: OPENAPI_DIALER_SECRET\n    groups: [call_control, call_data_manager]\n";
    format!("{bots}{}{client}", trunk_yaml("127.0.0.1:5998"))
}

#[test]
fn the_document_is_openapi_3_1_and_lists_exactly_the_routes() {
    // 1. The committed document parses and declares OpenAPI 3.1.
    let doc = doc();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    // 2. Its operations are the router's routes, no more and no fewer.
    let documented = documented_operations(&doc);
    let routed = routed_operations();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes missing from docs/openapi.json: {undocumented:?}; documented but not routed: {unrouted:?}"
    );
    // 3. Every operation has an operationId and at least one response.
    for (path, method) in &documented {
        let op = &doc["paths"][path][method.to_lowercase()];
        assert!(op["operationId"].is_string(), "{method} {path}");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path}"
        );
    }
}

#[test]
fn the_documented_error_shape_has_exactly_the_api_error_codes() {
    // 1. The codes the Error schema allows.
    let doc = doc();
    let error = &doc["components"]["schemas"]["Error"]["properties"]["error"];
    let documented: BTreeSet<String> = error["properties"]["code"]["enum"]
        .as_array()
        .expect("Error.error.code.enum")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    // 2. The codes of every ApiError variant.
    let codes = error_codes();
    let actual: BTreeSet<String> = codes.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(documented, actual);
    // 3. Every error status the API sends on a documented route is documented somewhere
    //    (405 and 500 are generic: not per operation).
    let mut statuses = BTreeSet::new();
    for item in doc["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(r) = op["responses"].as_object() {
                statuses.extend(r.keys().cloned());
            }
        }
    }
    for (code, status) in codes {
        if status == 405 || status == 500 {
            continue;
        }
        assert!(
            statuses.contains(&status.to_string()),
            "{code} is sent with {status}, which no operation documents"
        );
    }
    // 4. The error object is closed: a new key must be documented first.
    assert_eq!(error["additionalProperties"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_is_the_committed_one_and_every_route_answers() {
    // 1. A live dialgate (plain HTTP on loopback).
    let t = start(&body(), StartOpts::with(|o| o.tls = false)).await;
    // 2. GET /api/v1/openapi.json is the committed document, as JSON.
    let served = t.http.get("/api/v1/openapi.json", "").await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(
        served.headers["content-type"], "application/json",
        "{:?}",
        served.headers
    );
    assert_eq!(served.json, doc());
    // 3. Every documented operation reaches a handler: never the router's 404 or 405.
    let auth = basic("dialer", SECRET);
    for (path, method) in documented_operations(&doc()) {
        let path = path.replace("{id}", "no-such-call");
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (m == Method::POST).then(|| ("application/json", b"{}".to_vec()));
        let r = t
            .http
            .send(m.clone(), &path, &[("authorization", auth.as_str())], body)
            .await;
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(r.json["error"]["code"], "not_found", "{method} {path}");
    }
    // 4. A method a route does not have is 405 with the route's Allow header.
    let r = t.http.send(Method::PUT, "/api/v1/calls/x", &[], None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "GET, DELETE");
    t.stop().await;
}

/// The project venv's interpreter and fuzzer (scripts/install-peers).
fn venv(bin: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".venv-peers/bin")
        .join(bin);
    assert!(
        p.exists(),
        "{} is missing: run scripts/install-peers",
        p.display()
    );
    p
}

/// Validates `instance` against `#/components/schemas/{schema}` of the document with the JSON
/// Schema 2020-12 validator Schemathesis itself uses (jsonschema_rs); the error list if invalid.
fn validate(schema: &str, instance: &Value) -> Result<(), String> {
    const SCRIPT: &str = r##"
import json, sys, jsonschema_rs
doc, name, instance = json.load(sys.stdin)
schema = dict(doc)
schema["$ref"] = "#/components/schemas/" + name
errors = [str(e) for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(instance)]
print("\n".join(errors))
sys.exit(1 if errors else 0)
"##;
    use std::io::Write;
    let mut child = std::process::Command::new(venv("python"))
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!([doc(), schema, instance]).to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_validate_against_their_schemas() {
    // 1. A live dialgate; one real dialout (to a trunk that does not answer), then a hang-up.
    let t = start(&body(), StartOpts::with(|o| o.tls = false)).await;
    let auth = basic("dialer", SECRET);
    let r = t
        .http
        .dialout(
            &auth,
            &json!({"bot": "demo-bot", "target": "+15550100", "metadata": {"k": "v"}, "headers": {"X-Campaign": "c"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let must = |schema: &str, v: &Value| {
        if let Err(e) = validate(schema, v) {
            panic!("{schema} does not describe the real answer:\n{e}\n{v:#}");
        }
    };
    must("DialoutAccepted", &r.json);
    let id = r.json["conversationId"].as_str().unwrap().to_owned();
    let h = t
        .http
        .send(
            Method::DELETE,
            &format!("/api/v1/calls/{id}"),
            &[("authorization", auth.as_str())],
            None,
        )
        .await;
    if h.status == StatusCode::ACCEPTED {
        must("HangupRequested", &h.json);
    } else {
        assert_eq!(h.status, StatusCode::CONFLICT, "{}", h.text);
        must("Error", &h.json);
    }
    // 2. The record (with deliveries and timeline), the list, the status and a token match.
    let rec = t.http.get(&format!("/api/v1/calls/{id}"), &auth).await;
    assert_eq!(rec.status, StatusCode::OK);
    must("CallRecord", &rec.json);
    let list = t.http.get("/api/v1/calls?limit=5", &auth).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.json["calls"].as_array().unwrap().is_empty());
    must("CallList", &list.json);
    let st = t.http.get("/api/v1/status", &auth).await;
    must("Status", &st.json);
    let tok = t
        .http
        .send(
            Method::POST,
            "/oauth/token",
            &[("authorization", auth.as_str())],
            Some((
                "application/x-www-form-urlencoded",
                b"grant_type=client_credentials".to_vec(),
            )),
        )
        .await;
    assert_eq!(tok.status, StatusCode::OK, "{}", tok.text);
    must("Token", &tok.json);
    // 3. Errors of several kinds have the documented shape.
    for (method, path, body) in [
        (Method::GET, "/api/v1/calls/nope", None),
        (Method::GET, "/api/v1/calls?limit=0", None),
        (
            Method::POST,
            "/api/v1/actions/dialout",
            Some(("application/json", b"[1]".to_vec())),
        ),
        (
            Method::POST,
            "/api/v1/actions/dialout",
            Some(("text/plain", b"x".to_vec())),
        ),
        (Method::GET, "/nowhere", None),
    ] {
        let r = t
            .http
            .send(method, path, &[("authorization", auth.as_str())], body)
            .await;
        assert!(r.status.is_client_error(), "{path}: {}", r.status);
        must("Error", &r.json);
    }
    // 4. The validator is not blind: a record missing its timeline is rejected.
    let mut broken = rec.json.clone();
    broken.as_object_mut().unwrap().remove("timeline");
    assert!(validate("CallRecord", &broken).is_err());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_on_any_operation() {
    // 0. The fuzzer comes from the project venv (scripts/install-peers).
    let bin = venv("schemathesis");
    // 1. A live dialgate on loopback (plain HTTP), with one real call on record so the list and
    //    record operations return real data to validate.
    let t = start(&body(), StartOpts::with(|o| o.tls = false)).await;
    let auth = basic("dialer", SECRET);
    let r = t
        .http
        .dialout(&auth, &json!({"bot": "demo-bot", "target": "+15550100"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // 2. Schemathesis loads the served document and runs every operation through all its
    //    phases (examples, coverage, fuzzing, stateful), a bounded number of cases each.
    let base = t.http.base.clone();
    let work = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new(&bin)
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["--url", &base])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "10", "--seed", "1", "--workers", "1"])
        .args(["--request-timeout", "20", "--generation-database", "none"])
        .args(["--generation-with-security-parameters", "false", "--no-color"])
        .args(["--auth", &format!("dialer:{SECRET}")])
        .current_dir(work.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("schemathesis finished within 600 s")
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // 3. It tested all eight operations and found nothing.
    assert!(out.status.success(), "schemathesis found failures:\n{text}");
    assert!(text.contains("Tested: 8"), "{text}");
    assert!(!text.contains("failed"), "{text}");
    t.stop().await;
}
