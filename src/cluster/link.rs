//! The one connection of an instance to Redis: redis-rs's connection manager (reconnects by
//! itself, re-subscribes this instance's channel after a reconnect), every operation bounded
//! so a Redis that does not answer turns into a quick, clear refusal instead of a hung request.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;

/// The longest any one Redis operation may take before it counts as Redis being unreachable.
pub const OP_TIMEOUT: Duration = Duration::from_millis(1000);
/// `Retry-After` of a refusal while Redis is unreachable: about the reconnect's back-off.
pub const RETRY_AFTER_SECS: u64 = 2;

/// Pub/sub messages that may wait for this instance's channel reader. redis-rs hands them over
/// without waiting (its connection would stall), and the reader takes each at once (a hang-up
/// is served off its loop), so only a flood of routed hang-ups fills it: the rest are dropped
/// and counted (`queue_full{queue="cluster_pushes"}`); the instance that routed one gets no
/// answer within its bounded wait and says so to its API client ("did not confirm the
/// hang-up"), who may retry.
pub const PUSH_BOUND: usize = 1024;

/// What went wrong talking to Redis.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// No connection, or no answer within [`OP_TIMEOUT`].
    #[error("Redis is unreachable: {0}")]
    Unreachable(String),
    /// Redis answered with an error (a script's, a wrong type).
    #[error("Redis refused {what}: {detail}")]
    Refused { what: &'static str, detail: String },
    /// `cluster.redis_url` is not a Redis URL.
    #[error("cluster.redis_url is not a Redis URL: {0}")]
    BadUrl(String),
    /// The TLS handshake of a `rediss://` connection failed: most often the server's
    /// certificate does not chain to a trusted CA (`cluster.redis_ca_file`) or names
    /// another host.
    #[error(
        "Redis TLS handshake failed ({0}): check cluster.redis_ca_file and the server's certificate"
    )]
    Tls(String),
    /// `cluster.redis_ca_file` cannot be read or holds no certificate.
    #[error("cluster.redis_ca_file {path}: {detail}")]
    CaFile { path: String, detail: String },
}

impl ClusterError {
    fn from_redis(what: &'static str, e: redis::RedisError) -> ClusterError {
        if let Some(tls) = tls_failure(&e) {
            return ClusterError::Tls(format!("{what}: {tls}"));
        }
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
        {
            ClusterError::Unreachable(format!("{what}: {e}"))
        } else {
            ClusterError::Refused {
                what,
                detail: e.to_string(),
            }
        }
    }
}

/// The rustls error behind a failed connection, when TLS is what failed (rustls errors reach
/// redis-rs as I/O errors of kind `InvalidData`).
fn tls_failure(e: &redis::RedisError) -> Option<String> {
    let io = std::error::Error::source(e)?.downcast_ref::<std::io::Error>()?;
    let tls = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(tls.to_string())
}

/// One direct connection attempt, bounded by [`OP_TIMEOUT`]: its error when TLS refused the
/// server (its certificate), `None` otherwise (connected, or failed for another reason).
async fn tls_refusal(client: &redis::Client) -> Option<ClusterError> {
    if !matches!(
        client.get_connection_info().addr,
        redis::ConnectionAddr::TcpTls { .. }
    ) {
        return None;
    }
    match tokio::time::timeout(OP_TIMEOUT, client.get_multiplexed_async_connection()).await {
        Ok(Err(e)) => match ClusterError::from_redis("the connection", e) {
            tls @ ClusterError::Tls(_) => Some(tls),
            _ => None,
        },
        _ => None,
    }
}

/// A cheap handle on the shared connection.
#[derive(Clone)]
pub struct Link {
    conn: ConnectionManager,
}

impl Link {
    /// Connects to `url` (RESP3, so pub/sub messages arrive on the same connection as pushes,
    /// returned as the receiver).
    pub async fn connect(
        url: &str,
    ) -> Result<(Link, mpsc::Receiver<redis::PushInfo>), ClusterError> {
        Self::connect_tls(url, None).await
    }

    /// [`Link::connect`], trusting the CA certificates in `ca_file` (PEM) instead of the
    /// system's roots when `url` is `rediss://` (TLS through rustls, the process's provider).
    pub async fn connect_tls(
        url: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<(Link, mpsc::Receiver<redis::PushInfo>), ClusterError> {
        use redis::IntoConnectionInfo;
        let mut info = url
            .into_connection_info()
            .map_err(|e| ClusterError::BadUrl(e.to_string()))?;
        info.redis.protocol = redis::ProtocolVersion::RESP3;
        if matches!(info.addr, redis::ConnectionAddr::TcpTls { .. }) {
            crate::crypto::install_crypto_provider();
        }
        let client = match ca_file {
            Some(path) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(read_ca(path)?),
                },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| ClusterError::BadUrl(e.to_string()))?;
        let (tx, rx) = mpsc::channel(PUSH_BOUND);
        let push = move |info: redis::PushInfo| match tx.try_send(info) {
            Err(mpsc::error::TrySendError::Full(_)) => {
                crate::overflow::dropped(
                    crate::overflow::Queue::ClusterPushes,
                    "a pub/sub message",
                );
                Ok(())
            }
            // The reader stopped (shutdown): nothing to deliver to.
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
            Ok(()) => Ok(()),
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(OP_TIMEOUT)
            .set_response_timeout(OP_TIMEOUT)
            // A few quick attempts per reconnect; the next command (a renewal at the latest,
            // every lease_sec / 3) starts another round, so it never gives up for good.
            .set_number_of_retries(3)
            .set_factor(100)
            .set_max_delay(1000)
            .set_push_sender(push)
            .set_automatic_resubscription();
        let made = tokio::time::timeout(
            OP_TIMEOUT * 5,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await;
        let conn = match made {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(ClusterError::from_redis("the connection", e)),
            Err(_) => {
                // The manager retries a failed handshake until the bound and then says
                // nothing of why: one plain attempt tells a TLS refusal from an absent server.
                let err = ClusterError::Unreachable(format!(
                    "no connection to {} within 5 s",
                    crate::config::redact_url(url)
                ));
                return Err(match tls_refusal(&client).await {
                    Some(tls) => tls,
                    None => err,
                });
            }
        };
        Ok((Link { conn }, rx))
    }

    /// Runs one operation on the connection, bounded by [`OP_TIMEOUT`].
    pub async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> Result<T, ClusterError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(OP_TIMEOUT, op(self.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ClusterError::from_redis(what, e)),
            Err(_) => Err(ClusterError::Unreachable(format!(
                "{what}: no answer within {} ms",
                OP_TIMEOUT.as_millis()
            ))),
        }
    }

    /// The connection itself (subscriptions).
    pub(super) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }
}

/// The PEM text of `cluster.redis_ca_file`, checked to hold at least one certificate (redis-rs
/// would otherwise build an empty trust store and every handshake would fail obscurely).
fn read_ca(path: &std::path::Path) -> Result<Vec<u8>, ClusterError> {
    use rustls_pki_types::pem::PemObject;
    let err = |detail: String| ClusterError::CaFile {
        path: path.display().to_string(),
        detail,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(pem)
}
