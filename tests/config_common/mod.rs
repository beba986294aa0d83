//! Helpers shared by the hot-reload tests: a private temp directory with a config file.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Upper bound for every wait on the watcher (a bound, not a performance threshold).
pub const WAIT: Duration = Duration::from_secs(10);

/// Temp directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("dialgate-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A valid config whose single bot allows `cps` calls per second.
pub fn config_text(cps: &str) -> String {
    format!(
        "server:\n  sip:\n    listen: [{{ transport: udp, address: \"127.0.0.1:5060\" }}]\n  http: {{ plain_http: true }}\n  include: conf.d\nbots:\n  - id: b\n    name: B\n    sip_uri: \"sip:b@127.0.0.1\"\n    outbound:\n      max_cps: {cps}\n"
    )
}

/// Writes `text` to `path` the way editors do: temp file, then rename over the original.
pub fn write_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
