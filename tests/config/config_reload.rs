//! Hot reload through the file watcher: good edits take effect, bad ones are rejected.

use crate::config_kit;

use config_kit::{TempDir, WAIT, Watched, config_text, write_by_rename};
use dialgate::config::ConfigStore;
use tokio::sync::watch;

fn cps(store: &ConfigStore) -> f64 {
    store.current().config.bots[0].outbound.max_cps
}

/// Waits (bounded by [`WAIT`]) until the store's bot allows `want` calls per second.
async fn until_cps(store: &ConfigStore, versions: &mut watch::Receiver<u64>, want: f64) {
    tokio::time::timeout(WAIT, async {
        while cps(store) != want {
            versions.changed().await.unwrap();
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn reload_keeps_old_config_on_error_and_in_flight_snapshots() {
    // 1. Start with a valid file (version 1).
    let dir = TempDir::new("manual");
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    let file = dir.path().join("dialgate.yaml");
    std::fs::write(&file, config_text("1.0")).unwrap();
    let store = ConfigStore::open(&file).unwrap();
    let in_flight = store.current();
    assert_eq!(in_flight.version, 1);
    // 2. A valid edit bumps the version; the old snapshot is unchanged for its holder.
    std::fs::write(&file, config_text("4.0")).unwrap();
    assert_eq!(store.reload().unwrap(), 2);
    assert_eq!(cps(&store), 4.0);
    assert_eq!(in_flight.config.bots[0].outbound.max_cps, 1.0);
    assert!(store.last_error().is_none());
    // 3. An invalid edit is rejected with line:column; version 2 keeps serving.
    std::fs::write(&file, config_text("fast")).unwrap();
    let err = store.reload().unwrap_err();
    assert_eq!(err.errors()[0].line, 11);
    assert_eq!(err.errors()[0].column, 16);
    assert_eq!(store.version(), 2);
    assert_eq!(cps(&store), 4.0);
    let (_, msg) = store.last_error().unwrap();
    assert!(
        msg.contains(":11:16: bots[0].outbound.max_cps: expected a number > 0, got \"fast\""),
        "{msg}"
    );
    // 4. Fixing the file clears the error.
    std::fs::write(&file, config_text("2.0")).unwrap();
    assert_eq!(store.reload().unwrap(), 3);
    assert!(store.last_error().is_none());
}

#[tokio::test]
async fn watcher_sees_edits_renames_and_include_dir() {
    // 1. Valid file, store, subscriber, watcher (no SIGHUP test meanwhile: it would reload too).
    let mut w = Watched::start("watch").await;
    let (file, store) = (w.file.clone(), w.store.clone());
    let inc = w.dir.path().join("conf.d");
    let versions = &mut w.versions;

    // 2. In-place write: new version arrives, value applied.
    std::fs::write(&file, config_text("5.0")).unwrap();
    tokio::time::timeout(WAIT, versions.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cps(&store), 5.0);
    let v_after_write = store.version();
    assert!(v_after_write >= 2);

    // 3. Editor-style rename-replace is seen too.
    write_by_rename(&file, &config_text("6.0"));
    until_cps(&store, versions, 6.0).await;
    assert!(store.version() > v_after_write);

    // 4. An invalid edit: recorded as error with position, old config keeps serving.
    write_by_rename(&file, &config_text("fast"));
    tokio::time::timeout(WAIT, async {
        while store.last_error().is_none() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let (_, msg) = store.last_error().unwrap();
    assert!(msg.contains(":11:16: bots[0].outbound.max_cps"), "{msg}");
    assert_eq!(cps(&store), 6.0);

    // 5. Fix the file, then add a bot through the include directory.
    write_by_rename(&file, &config_text("7.0"));
    until_cps(&store, versions, 7.0).await;
    std::fs::write(
        inc.join("more.yaml"),
        "bots:\n  - { id: c, name: C, sip_uri: \"sip:c@127.0.0.1\" }\n",
    )
    .unwrap();
    tokio::time::timeout(WAIT, async {
        while store.current().config.bot("c").is_none() {
            versions.changed().await.unwrap();
        }
    })
    .await
    .unwrap();

    // 6. Stop the watcher.
    w.stop().await;
}
