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
        prepare_process();
        let metrics = Arc::new(Metrics::new());
        let config =
            Arc::new(ConfigStore::open(config_path).map_err(|e| AppError::Config(e.to_string()))?);
        let store = open_store(&config.current().config).await?;
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let liveness = start_liveness(&config, &store, &metrics, &shutdown, &mut tasks).await?;
        if opts.watch_config {
            tasks.push(crate::config::spawn_watcher(
                config.clone(),
                shutdown.clone(),
            ));
        }
        let core = Core {
            outbox: Outbox::new(
                store.clone(),
                config.clone(),
                metrics.clone(),
                opts.outbox.clone(),
            ),
            config,
            store,
            metrics,
            shutdown,
        };
        let engine = start_engine(&core, &mut tasks).await?;
        // One descriptor-count cache for the API's check and the shared queue's.
        let room = room_check(&engine);
        let Dispatch {
            queue,
            cluster,
            limiter,
            calls,
        } = start_queue(&core, &engine, &room).await?;
        // Cluster mode on PostgreSQL: dead instances' calls are ended here from now on.
        if let Some(l) = &liveness {
            l.attach(engine.clone(), queue.clone());
        }
        tasks.push(tokio::spawn(queue.clone().run(core.shutdown.clone())));
        let state = Arc::new(ApiState {
            config: core.config.clone(),
            store: core.store.clone(),
            limiter,
            calls,
            queue: queue.clone(),
            metrics: core.metrics.clone(),
            auth: Authenticator::new(opts.token_ttl),
            started: std::time::SystemTime::now(),
            status_extra: status_extra(&core, &engine, opts.probe_bots, &mut tasks),
            capacity: Box::new(move || room()),
            owners: cluster.as_ref().map(|c| c.owners.clone()),
        });
        let server = api::serve(state, core.shutdown.clone()).await?;
        tasks.push(server.task);
        Ok(App {
            config: core.config,
            store: core.store,
            metrics: core.metrics,
            outbox: core.outbox,
            engine,
            api_addr: server.local_addr,
            api_tls: server.tls,
            shutdown: core.shutdown,
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

/// What every part of the service is built on.
struct Core {
    config: Arc<ConfigStore>,
    store: Store,
    metrics: Arc<Metrics>,
    outbox: Arc<Outbox>,
    shutdown: CancellationToken,
}

/// The limiter and call control the API and the queue use: the cluster's (shared limits,
/// calls recorded with their owner) or this instance's own.
type Admission = (
    Arc<dyn crate::call::limiter::RateLimiter>,
    Arc<dyn CallControl>,
);

/// Where accepted dialouts go: the queue, and what admits and starts them.
struct Dispatch {
    queue: Arc<crate::call::queue::DialQueue>,
    /// Cluster mode on Redis.
    cluster: Option<Arc<crate::cluster::RedisCluster>>,
    limiter: Arc<dyn crate::call::limiter::RateLimiter>,
    calls: Arc<dyn CallControl>,
}

/// Whether this instance has room for one more call (RTP ports, descriptors).
type RoomCheck = Arc<dyn Fn() -> Result<(), crate::limits::Shortage> + Send + Sync>;

/// Process-wide set-up before anything opens a socket: the TLS crypto provider and the open
/// file limit (each call holds several descriptors).
fn prepare_process() {
    crate::crypto::install_crypto_provider();
    match crate::limits::raise_fd_limit() {
        Ok(n) => tracing::info!(limit = n, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
}

/// Cluster mode on PostgreSQL: this instance's lease is registered and renewed (a task in
/// `tasks`) before its restart recovery reads its calls, so no survivor takes them over
/// meanwhile.
async fn start_liveness(
    config: &ConfigStore,
    store: &Store,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Option<Arc<crate::cluster::Liveness>>, AppError> {
    let Some((instance, lease)) = takeover_settings(&config.current().config) else {
        return Ok(None);
    };
    let l = crate::cluster::Liveness::register(store.clone(), metrics.clone(), &instance, lease)
        .await?;
    tasks.push(tokio::spawn(l.clone().run(shutdown.clone())));
    Ok(Some(l))
}

/// The call engine, with the outbox delivering through it, the bots' voice loaded and the
/// previous process's calls recovered.
async fn start_engine(
    core: &Core,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Result<Arc<crate::call::engine::Engine>, AppError> {
    let engine = crate::call::engine::Engine::start(crate::call::engine::EngineDeps {
        config: core.config.clone(),
        store: core.store.clone(),
        outbox: core.outbox.clone(),
        metrics: core.metrics.clone(),
        shutdown: core.shutdown.clone(),
    })
    .await
    .map_err(AppError::Engine)?;
    report_recognition(&core.config, &engine.status_json());
    core.outbox.set_sink(engine.clone());
    // The voice of bots whose text dialgate speaks is loaded before the first call needs it
    // (off the async workers).
    engine.preload_tts().await;
    tasks.push(core.outbox.spawn(core.shutdown.clone()));
    engine.recover().await;
    Ok(engine)
}

/// The capacity check of the API and of the shared queue: one gate, so one cached count of
/// this process's descriptors.
fn room_check(engine: &crate::call::engine::Engine) -> RoomCheck {
    let pool = engine.media.port_pool().clone();
    let gate = crate::limits::CapacityGate::default();
    Arc::new(move || gate.check(pool.free(), pool.capacity()))
}

/// The dialout queue (its waiting dialouts restored), cluster mode on Redis when configured,
/// and the limiter and call control the API uses.
async fn start_queue(
    core: &Core,
    engine: &Arc<crate::call::engine::Engine>,
    room: &RoomCheck,
) -> Result<Dispatch, AppError> {
    let cluster = match crate::cluster::redis_settings(&core.config.current().config) {
        Some(s) => Some(
            crate::cluster::RedisCluster::start(s, core.shutdown.clone())
                .await
                .map_err(|e| AppError::Cluster(e.to_string()))?,
        ),
        None => None,
    };
    let (limiter, calls) = admission(cluster.as_deref(), engine);
    // Cluster mode on PostgreSQL: the queue is shared, and this instance claims from it
    // only while it has room for a call (the same check as the API's).
    let shared = (core.store.engine() == "postgres").then(|| {
        let room = room.clone();
        crate::call::queue::SharedMode {
            has_room: Box::new(move || room().is_ok()),
        }
    });
    let queue = crate::call::queue::DialQueue::new(crate::call::queue::QueueDeps {
        store: core.store.clone(),
        outbox: core.outbox.clone(),
        limiter: limiter.clone(),
        calls: calls.clone(),
        config: core.config.clone(),
        metrics: core.metrics.clone(),
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
    Ok(Dispatch {
        queue,
        cluster,
        limiter,
        calls,
    })
}

/// Cluster mode on Redis: shared limits, and calls recorded with their owner; else this
/// instance's own limiter and engine.
fn admission(
    cluster: Option<&crate::cluster::RedisCluster>,
    engine: &Arc<crate::call::engine::Engine>,
) -> Admission {
    match cluster {
        Some(c) => (
            c.limiter.clone(),
            Arc::new(crate::cluster::ClusterCalls::new(
                engine.clone(),
                c.leases.clone(),
            )),
        ),
        None => (Arc::new(LocalLimiter::new()), engine.clone()),
    }
}

/// The engine's part of `GET /api/v1/status`, with the bots' probe results (`botProbe`),
/// probed in the background when `probe_bots` is set.
fn status_extra(
    core: &Core,
    engine: &Arc<crate::call::engine::Engine>,
    probe_bots: bool,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Box<dyn Fn() -> serde_json::Value + Send + Sync> {
    let probes = crate::webhook::probe::ProbeBoard::default();
    if probe_bots {
        tasks.push(crate::webhook::probe::spawn_prober(
            core.config.clone(),
            probes.clone(),
            core.shutdown.clone(),
        ));
    }
    let engine = engine.clone();
    Box::new(move || {
        let mut v = engine.status_json();
        if let serde_json::Value::Object(m) = &mut v {
            m.insert("botProbe".into(), probes.to_json());
        }
        v
    })
}
