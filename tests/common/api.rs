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
    let app = App::start(
        &config_path,
        AppOptions {
            token_ttl: opts.token_ttl,
            outbox: dialgate::webhook::OutboxOptions {
                base_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(400),
                max_attempts: 5,
                request_timeout: Duration::from_secs(5),
            },
            watch_config: true,
            probe_bots: opts.probe_bots,
        },
    )
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
