//! SIGHUP reloads the configuration. The signal goes to the whole process: the test holds
//! `config_kit::watcher_lock` so that no other test's watcher sees it.

use crate::config_kit;

use config_kit::{WAIT, Watched};

#[tokio::test]
async fn sighup_triggers_reload() {
    // 1. Store and watcher; the SIGHUP handler is installed once it has started.
    let mut w = Watched::start("hup").await;
    // 2. Send SIGHUP to ourselves with the file unchanged: only the signal can cause a reload.
    // SAFETY: kill(2) on our own pid with a signal whose handler is installed.
    let rc = unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    assert_eq!(rc, 0);
    // 3. The version bumps.
    tokio::time::timeout(WAIT, w.versions.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(w.store.version(), 2);
    // 4. Stop.
    w.stop().await;
}
