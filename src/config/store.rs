//! Hot reload: the running configuration, swapped atomically only when a new one loads cleanly.

use super::{Config, ConfigErrors, load};
use arc_swap::ArcSwap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One loaded configuration; calls keep the `Arc<Snapshot>` they started with.
#[derive(Debug)]
pub struct Snapshot {
    /// The configuration.
    pub config: Config,
    /// 1 for the first load, +1 for every successful reload.
    pub version: u64,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// Holder of the current configuration (lock-free reads).
pub struct ConfigStore {
    path: PathBuf,
    current: ArcSwap<Snapshot>,
    last_error: Mutex<Option<(SystemTime, String)>>,
    version_tx: watch::Sender<u64>,
    /// Serializes reloads so versions are handed out in order.
    reload_lock: Mutex<()>,
    /// Reload outcomes since start, for metrics: (accepted, rejected).
    reloads: [std::sync::atomic::AtomicU64; 2],
}

impl ConfigStore {
    /// Loads `path` for the first time (version 1).
    pub fn open(path: &Path) -> Result<Self, ConfigErrors> {
        let config = load(path)?;
        Ok(Self::with_config(path, config))
    }

    /// Wraps an already loaded configuration (version 1); later reloads read `path`.
    pub fn with_config(path: &Path, config: Config) -> Self {
        let (version_tx, _) = watch::channel(1);
        ConfigStore {
            // Absolute, so file-watcher events (absolute paths) can be compared with it.
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            current: ArcSwap::from_pointee(Snapshot {
                config,
                version: 1,
                loaded_at: SystemTime::now(),
            }),
            last_error: Mutex::new(None),
            version_tx,
            reload_lock: Mutex::new(()),
            reloads: Default::default(),
        }
    }

    /// The configuration file (absolute).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration now in force.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Version of the configuration now in force.
    pub fn version(&self) -> u64 {
        self.current.load().version
    }

    /// The most recent failed reload (time and all its errors, one per line), if the last
    /// reload failed; cleared by a successful one.
    pub fn last_error(&self) -> Option<(SystemTime, String)> {
        self.last_error.lock().map(|g| g.clone()).unwrap_or(None)
    }

    /// Reloads since start: (accepted, rejected).
    pub fn reload_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.reloads[0].load(Relaxed), self.reloads[1].load(Relaxed))
    }

    /// Receives the new version number after every successful reload (e.g. for the rate limiter).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version_tx.subscribe()
    }

    /// Reloads the file. On success the new configuration is in force and its version returned;
    /// on error the old one stays and the error is recorded for [`Self::last_error`].
    pub fn reload(&self) -> Result<u64, ConfigErrors> {
        let _guard = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = load(&self.path);
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(config) => {
                let version = self.current.load().version + 1;
                self.current.store(Arc::new(Snapshot {
                    config,
                    version,
                    loaded_at: SystemTime::now(),
                }));
                *last = None;
                self.reloads[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.version_tx.send_replace(version);
                tracing::info!(version, path = %self.path.display(), "configuration reloaded");
                Ok(version)
            }
            Err(errors) => {
                for e in errors.errors() {
                    tracing::error!(error = %e, "configuration reload rejected");
                }
                tracing::warn!(
                    version = self.current.load().version,
                    "keeping the running configuration"
                );
                *last = Some((SystemTime::now(), errors.to_string()));
                self.reloads[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Err(errors)
            }
        }
    }

    /// Directories to watch: the config file's directory (editors replace files by rename, which
    /// a watch on the file itself would lose) and the include directory.
    fn watch_dirs(&self) -> (PathBuf, Option<PathBuf>) {
        let parent = self
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let include = self
            .current()
            .config
            .server
            .include
            .clone()
            .map(|p| std::path::absolute(&p).unwrap_or(p));
        (parent, include)
    }
}

/// Quiet time after the last file event before reloading: editors write in several steps.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// Reloads `store` when its file or include directory changes (debounced) and on SIGHUP, until
/// `shutdown` is cancelled. The SIGHUP handler and the file watch are installed before this
/// returns, so a signal or edit right after the call is not missed.
pub fn spawn_watcher(store: Arc<ConfigStore>, shutdown: CancellationToken) -> JoinHandle<()> {
    // One pending wake-up is all a reload needs: a file event that finds one already queued
    // is the same news (`try_send` drops it), and the debounce below waits for quiet anyway.
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let (dir, include) = store.watch_dirs();
    let watcher = make_watcher(&store, &dir, include.as_deref(), tx);
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot install SIGHUP handler; reload on signal disabled");
            None
        }
    };
    tokio::spawn(async move {
        // Keep the watcher alive for the task's lifetime.
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(()) = rx.recv() => {
                    // Debounce: wait until no event arrived for DEBOUNCE.
                    loop {
                        tokio::select! {
                            _ = tokio::time::sleep(DEBOUNCE) => break,
                            _ = shutdown.cancelled() => return,
                            ev = rx.recv() => if ev.is_none() { break },
                        }
                    }
                    tracing::info!("configuration file changed, reloading");
                    let _ = store.reload();
                }
                Some(()) = async { match hup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    tracing::info!("SIGHUP received, reloading configuration");
                    let _ = store.reload();
                }
            }
        }
    })
}

fn make_watcher(
    store: &ConfigStore,
    dir: &Path,
    include: Option<&Path>,
    tx: mpsc::Sender<()>,
) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let file = store.path.clone();
    let inc = include.map(Path::to_path_buf);
    let handler = move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        // Opening or reading a file is not a change.
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        let relevant = ev
            .paths
            .iter()
            .any(|p| *p == file || inc.as_deref().is_some_and(|i| p.parent() == Some(i)));
        if relevant {
            // Full = a wake-up is already pending; it covers this change too.
            let _ = tx.try_send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the configuration file; reload with SIGHUP");
            return None;
        }
    };
    if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot watch the configuration directory");
    }
    if let Some(i) = include
        && let Err(e) = watcher.watch(i, RecursiveMode::NonRecursive)
    {
        tracing::warn!(error = %e, dir = %i.display(), "cannot watch the include directory");
    }
    Some(watcher)
}
