//! SIGHUP reloads the configuration. The signal goes to the whole process: the test holds
//! `config_kit::watcher_lock` so that no other test's watcher sees it.

use crate::config_kit;

use config_kit::{TempDir, WAIT, config_text};
use dialgate::config::{ConfigStore, spawn_watcher};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn sighup_triggers_reload() {
    // 1. Store and watcher; spawn_watcher installs the SIGHUP handler before it returns.
    let _alone = config_kit::watcher_lock().await;
    let dir = TempDir::new("hup");
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    let file = dir.path().join("dialgate.yaml");
    std::fs::write(&file, config_text("1.0")).unwrap();
    let store = Arc::new(ConfigStore::open(&file).unwrap());
    let mut versions = store.subscribe();
    let shutdown = CancellationToken::new();
    let task = spawn_watcher(store.clone(), shutdown.clone());
    // 2. Send SIGHUP to ourselves with the file unchanged: only the signal can cause a reload.
    // SAFETY: kill(2) on our own pid with a signal whose handler is installed.
    let rc = unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    assert_eq!(rc, 0);
    // 3. The version bumps.
    tokio::time::timeout(WAIT, versions.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.version(), 2);
    // 4. Stop.
    shutdown.cancel();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}
