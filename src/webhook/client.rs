//! The outbound HTTP client used for notifications and bot events.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// An HTTP(S) client with a per-request deadline.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// What came back.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Bytes,
}

impl HttpClient {
    /// A client trusting the web PKI roots; `http://` URLs work too. `timeout` bounds a
    /// whole request; `connect_timeout` bounds the TCP connect alone (short: a dead address
    /// fails fast instead of holding a delivery slot for the whole request deadline).
    pub fn new(timeout: Duration, connect_timeout: Duration) -> Self {
        crate::crypto::install_crypto_provider();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        }
    }

    /// GETs a resource of at most `max_bytes` (a 200 answer only), within the deadline.
    pub async fn get(&self, url: &str, max_bytes: usize) -> Result<Bytes, String> {
        let req = hyper::Request::get(url)
            .header(
                "user-agent",
                concat!("dialgate/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("bad request for {url}: {e}"))?;
        let fut = async {
            let resp = self.inner.request(req).await.map_err(|e| format!("{e}"))?;
            let status = resp.status().as_u16();
            if status != 200 {
                return Err(format!("{url} answered {status}"));
            }
            http_body_util::Limited::new(resp.into_body(), max_bytes)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| format!("reading {url} (at most {max_bytes} bytes): {e}"))
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| format!("{url}: no answer within {} s", self.timeout.as_secs()))?
    }

    /// POSTs JSON with extra headers; errors are transport-level only.
    pub async fn post_json(
        &self,
        url: &str,
        body: Bytes,
        headers: &[(&str, String)],
    ) -> Result<HttpAnswer, String> {
        let mut req = hyper::Request::post(url).header("content-type", "application/json");
        req = req.header(
            "user-agent",
            concat!("dialgate/", env!("CARGO_PKG_VERSION")),
        );
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| format!("bad request for {url}: {e}"))?;
        let fut = async {
            let resp = self.inner.request(req).await.map_err(|e| format!("{e}"))?;
            let status = resp.status().as_u16();
            let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>(HttpAnswer { status, body })
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| format!("no answer within {} s", self.timeout.as_secs()))?
    }
}
