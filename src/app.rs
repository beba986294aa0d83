//! Assembles the service: configuration, store, outbox, call engine, API.

use crate::api::{self, ApiState, auth::Authenticator};
use crate::call::CallControl;
use crate::call::limiter::LocalLimiter;
use crate::config::ConfigStore;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::webhook::{Outbox, OutboxOptions};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Knobs tests and tools may change; production uses the defaults.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Lifetime of OAuth access tokens (Live Hub: 900 s).
    pub token_ttl: Duration,
    /// Outbox retry policy.
    pub outbox: OutboxOptions,
    /// Watch the configuration file and reload on SIGHUP.
    pub watch_config: bool,
    /// Probe every bot's `events_url` at start and after each reload (a warning per unhealthy
    /// bot, `botProbe` in the status); tests whose Bot API peers count requests turn it off.
    pub probe_bots: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            token_ttl: Duration::from_secs(900),
            outbox: OutboxOptions::default(),
            watch_config: true,
            probe_bots: true,
        }
    }
}

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Api(#[from] api::ServeError),
    #[error("{0}")]
    Engine(String),
    #[error("cluster mode: {0}")]
    Cluster(String),
}

/// Start-up report: one WARN line per bot that needs speech recognition while the engine has
/// no model loaded (`engine_status` is the engine's `GET /api/v1/status` part).
fn report_recognition(config: &ConfigStore, engine_status: &serde_json::Value) {
    let available = engine_status["recognition"]["available"].as_bool() != Some(false);
    let snap = config.current();
    let gaps = crate::config::recognition_gaps(&snap.config, available);
    let model = crate::config::model_file(&snap.config.server);
    for (gap, line) in gaps.iter().zip(crate::config::gap_lines(&gaps, &model)) {
        tracing::warn!(bot = %gap.bot, refused = gap.refused, "{line}");
    }
}

/// The store the configuration asks for: PostgreSQL in cluster mode (`cluster.postgres_url`),
/// else SQLite in `server.data_dir`.
async fn open_store(config: &crate::config::Config) -> Result<Store, AppError> {
    match &config.cluster {
        Some(crate::config::ClusterConfig {
            instance_id,
            postgres_url: Some(url),
            ..
        }) => {
            let store = Store::open_postgres(url, instance_id).await?;
            tracing::info!(database = %store.path().display(), instance = %instance_id, "store on PostgreSQL");
            Ok(store)
        }
        _ => Ok(Store::open(&config.server.data_dir)?),
    }
}

/// This instance's id and lease when the store is shared on PostgreSQL: it renews its
/// liveness there and takes dead instances' calls over (`cluster::Liveness`).
fn takeover_settings(config: &crate::config::Config) -> Option<(String, Duration)> {
    let c = config.cluster.as_ref()?;
    c.postgres_url.as_ref()?;
    Some((
        c.instance_id.clone(),
        Duration::from_secs(u64::from(c.lease_sec)),
    ))
}

/// A running dialgate.
pub struct App {
    pub config: Arc<ConfigStore>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    pub outbox: Arc<Outbox>,
    pub engine: Arc<crate::call::engine::Engine>,
    pub api_addr: SocketAddr,
    pub api_tls: bool,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Queued dialouts: stopped before the calls are drained, so a permit freed by the drain
    /// does not start a new call in a stopping process (the queue waits for the next start).
    queue: Arc<crate::call::queue::DialQueue>,
    /// Cluster mode on Redis (`cluster.redis_url`): tests stop its lease renewal.
    pub cluster: Option<Arc<crate::cluster::RedisCluster>>,
}

impl App {
    /// Loads the configuration and starts every part.
    pub async fn start(config_path: &Path, opts: AppOptions) -> Result<App, AppError> {
        crate::crypto::install_crypto_provider();
        match crate::limits::raise_fd_limit() {
            Ok(n) => tracing::info!(limit = n, "open file limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
        }
        let metrics = Arc::new(Metrics::new());
        let config =
            Arc::new(ConfigStore::open(config_path).map_err(|e| AppError::Config(e.to_string()))?);
        let snap = config.current();
        let store = open_store(&snap.config).await?;
        // Cluster mode on PostgreSQL: this instance's lease is renewed before its restart
        // recovery reads its calls, so no survivor takes them over meanwhile.
        let liveness = match takeover_settings(&snap.config) {
            Some((instance, lease)) => Some(
                crate::cluster::Liveness::register(
                    store.clone(),
                    metrics.clone(),
                    &instance,
                    lease,
                )
                .await?,
            ),
            None => None,
        };
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        if let Some(l) = &liveness {
            tasks.push(tokio::spawn(l.clone().run(shutdown.clone())));
        }
        if opts.watch_config {
            tasks.push(crate::config::spawn_watcher(
                config.clone(),
                shutdown.clone(),
            ));
        }
        let outbox = Outbox::new(
            store.clone(),
            config.clone(),
            metrics.clone(),
            opts.outbox.clone(),
        );
        let engine = crate::call::engine::Engine::start(crate::call::engine::EngineDeps {
            config: config.clone(),
            store: store.clone(),
            outbox: outbox.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        })
        .await
        .map_err(AppError::Engine)?;
        report_recognition(&config, &engine.status_json());
        outbox.set_sink(engine.clone());
        // The voice of bots whose text dialgate speaks is loaded before the first call needs it
        // (off the async workers).
        engine.preload_tts().await;
        tasks.push(outbox.spawn(shutdown.clone()));
        engine.recover().await;
        // Cluster mode on Redis: shared limits, and calls recorded with their owner.
        let cluster = match crate::cluster::redis_settings(&snap.config) {
            Some(s) => Some(
                crate::cluster::RedisCluster::start(s, shutdown.clone())
                    .await
                    .map_err(|e| AppError::Cluster(e.to_string()))?,
            ),
            None => None,
        };
        let (limiter, calls): (
            Arc<dyn crate::call::limiter::RateLimiter>,
            Arc<dyn CallControl>,
        ) = match &cluster {
            Some(c) => (
                c.limiter.clone(),
                Arc::new(crate::cluster::ClusterCalls::new(
                    engine.clone(),
                    c.leases.clone(),
                )),
            ),
            None => (Arc::new(LocalLimiter::new()), engine.clone()),
        };
        // Cluster mode on PostgreSQL: the queue is shared, and this instance claims from it
        // only while it has room for a call (the same check as the API's).
        let shared = (store.engine() == "postgres").then(|| {
            let pool = engine.media.port_pool().clone();
            let gate = crate::limits::CapacityGate::default();
            crate::call::queue::SharedMode {
                has_room: Box::new(move || gate.check(pool.free(), pool.capacity()).is_ok()),
            }
        });
        let queue = crate::call::queue::DialQueue::new(crate::call::queue::QueueDeps {
            store: store.clone(),
            outbox: outbox.clone(),
            limiter: limiter.clone(),
            calls: calls.clone(),
            config: config.clone(),
            metrics: metrics.clone(),
            shared,
        });
        if let Some(c) = &cluster {
            c.owners.set_local(Arc::new(crate::cluster::LocalCalls {
                queue: queue.clone(),
                calls: engine.clone(),
            }));
        }
        // Dialouts that were queued when the process stopped wait again, in their order.
        queue.restore().await;
        // Cluster mode on PostgreSQL: dead instances' calls are ended here from now on.
        if let Some(l) = &liveness {
            l.attach(engine.clone(), queue.clone());
        }
        tasks.push(tokio::spawn(queue.clone().run(shutdown.clone())));
        let probes = crate::webhook::probe::ProbeBoard::default();
        if opts.probe_bots {
            tasks.push(crate::webhook::probe::spawn_prober(
                config.clone(),
                probes.clone(),
                shutdown.clone(),
            ));
        }
        let engine_status = engine.clone();
        let pool = engine.media.port_pool().clone();
        let gate = crate::limits::CapacityGate::default();
        let state = Arc::new(ApiState {
            config: config.clone(),
            store: store.clone(),
            limiter,
            calls,
            queue: queue.clone(),
            metrics: metrics.clone(),
            auth: Authenticator::new(opts.token_ttl),
            started: std::time::SystemTime::now(),
            status_extra: Box::new(move || {
                let mut v = engine_status.status_json();
                if let serde_json::Value::Object(m) = &mut v {
                    m.insert("botProbe".into(), probes.to_json());
                }
                v
            }),
            capacity: Box::new(move || gate.check(pool.free(), pool.capacity())),
            owners: cluster.as_ref().map(|c| c.owners.clone()),
        });
        let server = api::serve(state, shutdown.clone()).await?;
        tasks.push(server.task);
        Ok(App {
            config,
            store,
            metrics,
            outbox,
            engine,
            api_addr: server.local_addr,
            api_tls: server.tls,
            shutdown,
            tasks,
            queue,
            cluster,
        })
    }

    /// Base URL of the API (`https://127.0.0.1:8443`).
    pub fn api_url(&self) -> String {
        format!(
            "{}://{}",
            if self.api_tls { "https" } else { "http" },
            self.api_addr
        )
    }

    /// Stops accepting work and ends every live call.
    pub async fn shutdown(self) {
        self.queue.stop();
        self.engine.shutdown().await;
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
    }
}
