//! Cluster mode on Redis: several dialgate instances with the same YAML share one bot's
//! limits (token bucket and concurrency permits, [`RedisLimiter`]), know which instance owns
//! each live call ([`Owners`]), and route `DELETE /api/v1/calls/{id}` to it over pub/sub.
//!
//! Every shared decision is one atomic Lua script on Redis (its clock, `TIME`, is the one
//! clock of the cluster). What an instance holds — its calls' permits and owner keys — is a
//! lease it renews every `lease_sec / 3` ([`Leases`]): an instance killed with `kill -9`
//! stops renewing and everything it held expires within `lease_sec`.
//!
//! Losing Redis: new dialouts are refused (503 with `Retry-After`, see
//! [`crate::call::limiter::Refusal::Unavailable`]); calls in progress do not need Redis and go
//! on; the connection manager reconnects by itself and the next renewal writes back what the
//! instance holds (a Redis restarted without persistence has forgotten it).
//!
//! Liveness and takeover live on the shared store instead ([`Liveness`]): with PostgreSQL, an
//! instance that stops renewing its lease there has its calls and SIP legs taken over and
//! ended by exactly one survivor.

mod calls;
mod leases;
mod limiter;
mod link;
mod liveness;
mod metrics;
mod owners;

pub use calls::{ClusterCalls, LocalCalls};
pub use leases::Leases;
pub use limiter::RedisLimiter;
pub use link::{ClusterError, Link, RETRY_AFTER_SECS};
pub use liveness::{Liveness, heartbeat_validity};
pub use metrics::ClusterMetrics;
pub use owners::{LocalHangup, Owners, RemoteHangup};

use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What an instance needs to join the cluster on Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://host:port/db` (RESP3 is switched on by dialgate: pub/sub shares the connection).
    pub url: String,
    /// This instance's name, unique in the cluster.
    pub instance_id: String,
    /// How long what an instance holds outlives its last renewal.
    pub lease: Duration,
    /// CA (PEM) trusted for a `rediss://` URL instead of the system's roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// The Redis part of the `cluster` section, when there is one.
pub fn redis_settings(config: &crate::config::Config) -> Option<RedisSettings> {
    let c = config.cluster.as_ref()?;
    Some(RedisSettings {
        url: c.redis_url.clone()?,
        instance_id: c.instance_id.clone(),
        lease: Duration::from_secs(u64::from(c.lease_sec)),
        ca_file: c.redis_ca_file.clone(),
    })
}

/// This instance's part of the cluster on Redis.
pub struct RedisCluster {
    pub settings: RedisSettings,
    pub link: Link,
    pub leases: Arc<Leases>,
    pub limiter: Arc<RedisLimiter>,
    pub owners: Arc<Owners>,
    renewal: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl RedisCluster {
    /// Connects (Redis must be reachable at start), subscribes to this instance's channel and
    /// starts the lease renewal. Both tasks end with `shutdown`.
    pub async fn start(
        settings: RedisSettings,
        shutdown: CancellationToken,
    ) -> Result<Arc<RedisCluster>, ClusterError> {
        let (link, pushes) = Link::connect_tls(&settings.url, settings.ca_file.as_deref()).await?;
        let leases = Leases::new(link.clone(), &settings.instance_id, settings.lease);
        let limiter = Arc::new(RedisLimiter::new(link.clone(), leases.clone()));
        let owners = Owners::new(link.clone(), leases.clone());
        owners.subscribe().await?;
        tokio::spawn(owners.clone().serve(pushes, shutdown.clone()));
        let renewal = tokio::spawn(leases.clone().renew_forever(shutdown));
        tracing::info!(
            instance = %settings.instance_id,
            lease_ms = settings.lease.as_millis() as u64,
            "cluster mode: limits, live calls and hang-ups shared on Redis"
        );
        Ok(Arc::new(RedisCluster {
            settings,
            link,
            leases,
            limiter,
            owners,
            renewal: std::sync::Mutex::new(Some(renewal)),
        }))
    }

    /// Stops renewing this instance's leases, as a crashed instance would (tests of lease
    /// expiry; nothing is released, it expires).
    pub fn stop_renewal(&self) {
        let task = self
            .renewal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(t) = task {
            t.abort();
        }
        self.leases.freeze();
    }
}
