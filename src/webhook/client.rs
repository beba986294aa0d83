//! The outbound HTTP client used for notifications and bot events.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

use crate::netguard::{AllowList, GuardedResolver, check_url};

/// An HTTP(S) client with a per-request deadline. Requests to configured
/// destinations (bot URLs) go out as they are; notifications to a dialer's
/// `notifyUrl` go through [`HttpClient::post_notification`], which only
/// reaches permitted addresses ([`crate::netguard`]).
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    guarded: GuardedClient,
    allow: AllowList,
    timeout: Duration,
    connect_timeout: Duration,
}

/// What came back.
#[derive(Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: Bytes,
}

/// The only error a dialer's notification records: whether the address was
/// refused, closed, filtered or slow is not told (the record would otherwise
/// map the network for whoever chooses the URL).
pub const UNREACHABLE: &str = "unreachable";

impl HttpClient {
    /// A client trusting the web PKI roots; `http://` URLs work too. `timeout` bounds a
    /// whole request; `connect_timeout` bounds the TCP connect alone (short: a dead address
    /// fails fast instead of holding a delivery slot for the whole request deadline).
    /// Notifications reach public addresses only until
    /// [`with_notify_allow`](Self::with_notify_allow) opens networks.
    pub fn new(timeout: Duration, connect_timeout: Duration) -> Self {
        crate::crypto::install_crypto_provider();
        let https = https_over(HttpConnector::new(), connect_timeout);
        let allow: AllowList = std::sync::Arc::new(Vec::new);
        HttpClient {
            inner: Client::builder(TokioExecutor::new()).build(https),
            guarded: guarded_client(allow.clone(), connect_timeout),
            allow,
            timeout,
            connect_timeout,
        }
    }

    /// Networks notifications may reach although they are not public
    /// (`server.notify_allow`, read at every request).
    pub fn with_notify_allow(mut self, allow: AllowList) -> Self {
        self.guarded = guarded_client(allow.clone(), self.connect_timeout);
        self.allow = allow;
        self
    }

    /// POSTs a notification to a dialer's URL: the URL's literal address is
    /// checked here, a name's addresses when it is resolved to connect. Every
    /// failure short of an HTTP answer is [`UNREACHABLE`].
    pub async fn post_notification(
        &self,
        url: &str,
        body: Bytes,
        headers: &[(&str, String)],
    ) -> Result<HttpAnswer, String> {
        if let Err(e) = check_url(url, &(self.allow)()) {
            tracing::debug!(%url, error = %e, "notification destination refused");
            return Err(UNREACHABLE.into());
        }
        send(&self.guarded, self.timeout, url, body, headers)
            .await
            .map_err(|e| {
                tracing::debug!(%url, error = %e, "notification not delivered");
                UNREACHABLE.to_owned()
            })
    }

    /// GETs a resource of at most `max_bytes` (a 200 answer only), within the deadline.
    pub async fn get(&self, url: &str, max_bytes: usize) -> Result<Bytes, String> {
        get_with(&self.inner, self.timeout, url, max_bytes).await
    }

    /// [`get`](Self::get) for a URL a bot chose (`playUrl`): only to permitted addresses, like
    /// a notification ([`crate::netguard`], `server.notify_allow`).
    pub async fn get_guarded(&self, url: &str, max_bytes: usize) -> Result<Bytes, String> {
        check_url(url, &(self.allow)()).map_err(|e| e.to_string())?;
        get_with(&self.guarded, self.timeout, url, max_bytes).await
    }

    /// GETs `url` (with `authorization` if given) and returns the answer's status, within the
    /// deadline; the body is not read. The error names the cause (`connection refused`, …).
    pub async fn get_status(&self, url: &str, authorization: Option<&str>) -> Result<u16, String> {
        let mut req = hyper::Request::get(url).header(
            "user-agent",
            concat!("dialgate/", env!("CARGO_PKG_VERSION")),
        );
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("bad request for {url}: {e}"))?;
        match tokio::time::timeout(self.timeout, self.inner.request(req)).await {
            Ok(Ok(resp)) => Ok(resp.status().as_u16()),
            Ok(Err(e)) => Err(error_chain(&e)),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    /// POSTs JSON with extra headers; errors are transport-level only.
    pub async fn post_json(
        &self,
        url: &str,
        body: Bytes,
        headers: &[(&str, String)],
    ) -> Result<HttpAnswer, String> {
        send(&self.inner, self.timeout, url, body, headers).await
    }
}

/// An error and its causes, innermost last (`client error (Connect): tcp connect error:
/// Connection refused (os error 111)`).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

type GuardedClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// A client whose connector resolves names through the guard (an IP-literal
/// URL skips the resolver: [`check_url`] covers it before the request).
fn guarded_client(allow: AllowList, connect_timeout: Duration) -> GuardedClient {
    let http = HttpConnector::new_with_resolver(GuardedResolver::new(allow));
    Client::builder(TokioExecutor::new()).build(https_over(http, connect_timeout))
}

/// The HTTPS-or-HTTP connector over `http` with the settings both clients share.
fn https_over<R>(
    mut http: HttpConnector<R>,
    connect_timeout: Duration,
) -> hyper_rustls::HttpsConnector<HttpConnector<R>> {
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    // A request is small and answered at once: with Nagle a request written in two
    // pieces waits for the peer's delayed ACK (40 ms on Linux) before its second piece.
    http.set_nodelay(true);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

async fn get_with<C>(
    client: &Client<C, Full<Bytes>>,
    timeout: Duration,
    url: &str,
    max_bytes: usize,
) -> Result<Bytes, String>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let req = hyper::Request::get(url)
        .header(
            "user-agent",
            concat!("dialgate/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("bad request for {url}: {e}"))?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| format!("{e}"))?;
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
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("{url}: no answer within {} s", timeout.as_secs()))?
}

async fn send<C>(
    client: &Client<C, Full<Bytes>>,
    timeout: Duration,
    url: &str,
    body: Bytes,
    headers: &[(&str, String)],
) -> Result<HttpAnswer, String>
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
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
        let resp = client.request(req).await.map_err(|e| format!("{e}"))?;
        let status = resp.status().as_u16();
        let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| format!("reading the answer: {e}"))?
            .to_bytes();
        Ok::<_, String>(HttpAnswer { status, body })
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
}
