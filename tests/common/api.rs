//! Test support for the HTTPS API: certificates, a configuration, an
//! in-process dialgate, and an HTTP client that trusts the test certificate.
#![allow(dead_code)]

use bytes::Bytes;
use dialgate::app::{App, AppOptions};
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, StatusCode};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A self-signed certificate for 127.0.0.1 written into `dir`.
pub struct TestCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: Vec<u8>,
}

pub fn make_cert(dir: &Path) -> TestCert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = dir.join("test.crt");
    let key = dir.join("test.key");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    TestCert {
        cert,
        key,
        der: ck.cert.der().to_vec(),
    }
}

/// An HTTP(S) client for the API under test.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
    pub version: hyper::Version,
}

impl Http {
    pub fn new(base: &str, trust_der: Option<&[u8]>, http2: bool) -> Http {
        dialgate::crypto::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        if let Some(der) = trust_der {
            roots
                .add(rustls::pki_types::CertificateDer::from(der.to_vec()))
                .unwrap();
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let conn = if http2 {
            b.enable_http2().build()
        } else {
            b.enable_http1().build()
        };
        let mut cb = Client::builder(TokioExecutor::new());
        if http2 {
            cb.http2_only(true);
        }
        Http {
            base: base.to_owned(),
            client: cb.build(conn),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let body = match body {
            Some((ct, b)) => {
                req = req.header("content-type", ct);
                Full::new(Bytes::from(b))
            }
            None => Full::new(Bytes::new()),
        };
        let resp = tokio::time::timeout(
            Duration::from_secs(20),
            self.client.request(req.body(body).unwrap()),
        )
        .await
        .expect("API answered within 20 s")
        .expect("API request");
        let status = resp.status();
        let version = resp.version();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Answer {
            status,
            headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            text,
            version,
        }
    }

    /// GET without panicking when nothing listens yet.
    pub async fn probe(&self, path: &str) -> Option<StatusCode> {
        let req = hyper::Request::get(format!("{}{}", self.base, path))
            .body(Full::new(Bytes::new()))
            .ok()?;
        let r = tokio::time::timeout(Duration::from_secs(2), self.client.request(req))
            .await
            .ok()?
            .ok()?;
        Some(r.status())
    }

    /// The value of the counter `name` in `/metrics` (`dialgate_<name>_total`, or
    /// `<name>_total` for a name given whole); panics when it is not there.
    pub async fn counter(&self, name: &str) -> f64 {
        let m = self.send(Method::GET, "/metrics", &[], None).await;
        m.text
            .lines()
            .find(|l| {
                l.starts_with(&format!("dialgate_{name}_total "))
                    || l.starts_with(&format!("{name}_total "))
            })
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /metrics:\n{}", m.text))
    }

    pub async fn get(&self, path: &str, auth: &str) -> Answer {
        self.send(Method::GET, path, &[("authorization", auth)], None)
            .await
    }

    pub async fn post_json(&self, path: &str, auth: &str, body: &Value) -> Answer {
        self.send(
            Method::POST,
            path,
            &[("authorization", auth)],
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    pub async fn dialout(&self, auth: &str, body: &Value) -> Answer {
        self.post_json("/api/v1/actions/dialout", auth, body).await
    }

    /// POSTs the dialout `body` with `extra`'s fields merged in; asserts 200 and returns its
    /// `conversationId`.
    pub async fn dialout_id(&self, auth: &str, mut body: Value, extra: Value) -> String {
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        let a = self.dialout(auth, &body).await;
        assert_eq!(a.status, StatusCode::OK, "dialout: {}", a.text);
        a.json["conversationId"]
            .as_str()
            .expect("conversationId")
            .to_owned()
    }
}

/// `Basic base64(id:secret)`.
pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// A dialgate started in-process on a fresh data directory.
pub struct TestApp {
    pub app: Option<App>,
    pub http: Http,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl TestApp {
    /// `DELETE /api/v1/calls/{id}` as `auth`.
    pub async fn hangup(&self, auth: &str, id: &str) -> Answer {
        let path = format!("/api/v1/calls/{id}");
        let headers = [("authorization", auth)];
        self.http.send(Method::DELETE, &path, &headers, None).await
    }

    /// `GET /api/v1/calls/{id}` as `auth` (asserts 200).
    pub async fn record(&self, auth: &str, id: &str) -> Value {
        let a = self.http.get(&format!("/api/v1/calls/{id}"), auth).await;
        assert_eq!(a.status, StatusCode::OK, "call record: {}", a.text);
        a.json
    }

    /// Polls `GET /api/v1/status` (bounded: 200 × 50 ms) until `pred` holds; returns it.
    pub async fn until_status(&self, auth: &str, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..200 {
            let a = self.http.get("/api/v1/status", auth).await;
            if pred(&a.json) {
                return a.json;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the status never matched");
    }

    pub fn app(&self) -> &App {
        self.app.as_ref().unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(a) = self.app.take() {
            a.shutdown().await;
        }
    }
}

/// Options for [`start`].
pub struct StartOpts {
    pub tls: bool,
    pub http2: bool,
    pub token_ttl: Duration,
    /// `server.notify_allow: [127.0.0.0/8]`, so loopback sinks get
    /// notifications (true unless a test checks that they are refused).
    pub loopback_notify: bool,
    /// Probe the bots' `events_url` at start and after reloads (off: most tests count the
    /// requests their Bot API peers get).
    pub probe_bots: bool,
}

impl StartOpts {
    /// The defaults changed by `f` (e.g. `|o| o.tls = false` for plain HTTP).
    pub fn with(f: impl FnOnce(&mut StartOpts)) -> Self {
        let mut o = StartOpts::default();
        f(&mut o);
        o
    }
}

impl Default for StartOpts {
    fn default() -> Self {
        StartOpts {
            tls: true,
            http2: false,
            token_ttl: Duration::from_secs(900),
            loopback_notify: true,
            probe_bots: false,
        }
    }
}

/// Writes `yaml_body` (which must not contain `server:`) below a server
/// section for this test's directory, and starts dialgate on it.
pub async fn start(yaml_body: &str, opts: StartOpts) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let cert = make_cert(dir.path());
    let http = if opts.tls {
        format!(
            "    tls: {{ cert: {}, key: {} }}\n",
            cert.cert.display(),
            cert.key.display()
        )
    } else {
        "    plain_http: true\n".to_owned()
    };
    let allow = if opts.loopback_notify {
        "  notify_allow: [127.0.0.0/8]\n"
    } else {
        ""
    };
    let yaml = format!(
        "server:\n  sip:\n    listen:\n      - {{ transport: udp, address: \"127.0.0.1:0\" }}\n  http:\n    listen: \"127.0.0.1:0\"\n{http}  rtp:\n    port_min: 21000\n    port_max: 21999\n  data_dir: {}\n{allow}{yaml_body}",
        dir.path().join("data").display()
    );
    let config_path = dir.path().join("dialgate.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let options = AppOptions {
        token_ttl: opts.token_ttl,
        watch_config: true,
        probe_bots: opts.probe_bots,
        ..flow_app_options()
    };
    let app = App::start(&config_path, options)
        .await
        .expect("dialgate starts");
    let http = Http::new(&app.api_url(), Some(&cert.der), opts.http2);
    TestApp {
        app: Some(app),
        http,
        dir,
        config_path,
    }
}

/// dialgate's options in flow tests: short delivery back-offs, no file watching, no bot probes.
pub fn flow_app_options() -> AppOptions {
    AppOptions {
        token_ttl: Duration::from_secs(900),
        outbox: dialgate::webhook::OutboxOptions {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(400),
            max_attempts: 5,
            request_timeout: Duration::from_secs(5),
        },
        watch_config: false,
        probe_bots: false,
    }
}

/// Writes `yaml` as `dialgate.yaml` in `dir` and starts dialgate on it with
/// [`flow_app_options`], trusting `cert_der` for its API.
pub async fn start_app(dir: tempfile::TempDir, yaml: &str, cert_der: &[u8]) -> TestApp {
    let config_path = dir.path().join("dialgate.yaml");
    std::fs::write(&config_path, yaml).unwrap();
    let app = App::start(&config_path, flow_app_options())
        .await
        .expect("dialgate starts");
    let http = Http::new(&app.api_url(), Some(cert_der), false);
    TestApp {
        app: Some(app),
        http,
        dir,
        config_path,
    }
}

/// The `server:` section of a flow's dialgate: SIP over UDP and the HTTPS API (certificate
/// `cert`) on free ports of 127.0.0.1, relay RTP in `rtp` (a call silent for `inactivity_sec`
/// ends), data in `data`, notify URLs on loopback allowed, calls capped at 120 s.
pub fn flow_server_yaml(
    cert: &TestCert,
    rtp: (u16, u16),
    inactivity_sec: u32,
    data: &Path,
) -> String {
    format!(
        r#"server:
  sip:
    listen:
      - {{ transport: udp, address: "127.0.0.1:0" }}
  http:
    listen: "127.0.0.1:0"
    tls: {{ cert: {cert}, key: {key} }}
  rtp:
    port_min: {rtp_min}
    port_max: {rtp_max}
    inactivity_timeout_sec: {inactivity_sec}
  data_dir: {data}
  notify_allow: [127.0.0.0/8]
  max_call_duration_sec: 120
"#,
        cert = cert.cert.display(),
        key = cert.key.display(),
        rtp_min = rtp.0,
        rtp_max = rtp.1,
        data = data.display(),
    )
}

/// `items` as YAML lines, each indented by `indent` and ended by a newline.
pub fn yaml_lines(items: &[String], indent: &str) -> String {
    items.iter().map(|l| format!("{indent}{l}\n")).collect()
}

/// The trunk `carrier` at `address` and a rule sending every bot's calls to it.
pub fn flow_trunk_yaml(address: &str) -> String {
    format!(
        "sip_connections:\n  - id: carrier\n    name: Carrier\n    address: \"{address}\"\nrouting_rules:\n  - name: everything\n    origin_bot: \"*\"\n    route: {{ sip_connection: carrier }}\n"
    )
}

/// The dialer's API client `dialer` (both groups), its secret in the environment variable
/// `secret_env`, its notifications signed with `webhook_secret`.
pub fn dialer_client_yaml(secret_env: &str, webhook_secret: &str) -> String {
    format!(
        "api_clients:\n  - client_id: dialer\n    secret_env: {secret_env}\n    groups: [call_control, call_data_manager]\n    webhook_secret: {webhook_secret}\n"
    )
}
