//! A small HTTPS client for the demo and `test-call`: talks to the API like a dialer would.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

/// An API client trusting one extra certificate (a self-signed dev certificate).
pub struct ApiClient {
    base: String,
    auth: String,
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ApiClient {
    /// `trust_pem`: PEM certificates to trust besides the web PKI.
    pub fn new(
        base: &str,
        trust_pem: Option<&[u8]>,
        client_id: &str,
        secret: &str,
    ) -> Result<ApiClient, String> {
        use base64::Engine;
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        crate::crypto::install_crypto_provider();
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = trust_pem {
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| format!("bad certificate: {e}"))?;
                roots.add(c).map_err(|e| format!("bad certificate: {e}"))?;
            }
        }
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{secret}"));
        Ok(ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Basic {basic}"),
            inner: Client::builder(TokioExecutor::new()).build(conn),
        })
    }

    /// Exchanges the client credentials for a Bearer token (OAuth 2.0) and uses it from now on.
    pub async fn login(&mut self, client_id: &str, secret: &str) -> Result<(), String> {
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}",
            form_urlencoded::byte_serialize(client_id.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
        );
        let (status, v) = self
            .request(
                "POST",
                "/oauth/token",
                Some(("application/x-www-form-urlencoded", form.into_bytes())),
                false,
            )
            .await?;
        if status != 200 {
            return Err(format!("POST /oauth/token answered {status}: {v}"));
        }
        let token = v["access_token"]
            .as_str()
            .ok_or("no access_token in the answer")?;
        self.auth = format!("Bearer {token}");
        Ok(())
    }

    /// One request; returns the status and the JSON body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        with_auth: bool,
    ) -> Result<(u16, Value), String> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path));
        if with_auth {
            req = req.header("authorization", &self.auth);
        }
        let body = match body {
            Some((ct, b)) => {
                req = req.header("content-type", ct);
                Full::new(Bytes::from(b))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req.body(body).map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(Duration::from_secs(15), self.inner.request(req))
            .await
            .map_err(|_| format!("{method} {path}: no answer within 15 s"))?
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// `POST /api/v1/actions/dialout`.
    pub async fn dialout(&self, body: &Value) -> Result<(u16, Value), String> {
        self.request(
            "POST",
            "/api/v1/actions/dialout",
            Some(("application/json", body.to_string().into_bytes())),
            true,
        )
        .await
    }

    /// Polls `GET /api/v1/calls/{id}` until the call is terminal (bounded).
    pub async fn wait_terminal(&self, id: &str, limit: Duration) -> Result<Value, String> {
        let until = tokio::time::Instant::now() + limit;
        loop {
            let (status, v) = self
                .request("GET", &format!("/api/v1/calls/{id}"), None, true)
                .await?;
            if status != 200 {
                return Err(format!("GET /api/v1/calls/{id} answered {status}: {v}"));
            }
            if matches!(v["status"].as_str(), Some("failed" | "completed")) {
                return Ok(v);
            }
            if tokio::time::Instant::now() > until {
                return Err(format!("the call did not end within {} s", limit.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
