//! `playUrl` audio for every call: one shared HTTP client (guarded like `notifyUrl`: only public
//! addresses unless `server.notify_allow` lists the network), a size and time limit per fetch,
//! and a small cache of decoded prompts bounded by bytes, so a campaign's voicemail message is
//! fetched once. `file:NAME` (or a bare relative name) reads `<data_dir>/prompts/NAME`.

use std::collections::VecDeque;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::netguard::AllowList;
use crate::tts::audio_file;
use crate::webhook::HttpClient;

/// The largest audio file fetched.
pub const MAX_AUDIO_BYTES: usize = 8 << 20;
/// Decoded prompts kept, in bytes of 8 kHz PCM (8 MiB ≈ 9 minutes of audio).
pub const CACHE_BYTES: usize = 8 << 20;
/// Whole-fetch deadline.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// TCP connect deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Fetches, decodes and caches prompt audio (one per process).
pub struct AudioFetcher {
    client: HttpClient,
    data_dir: PathBuf,
    cache: Mutex<Cache>,
}

/// Least-recently-used decoded prompts, bounded by bytes.
#[derive(Default)]
struct Cache {
    entries: VecDeque<(String, Arc<[i16]>)>,
    bytes: usize,
}

impl Cache {
    fn get(&mut self, key: &str) -> Option<Arc<[i16]>> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        let e = self.entries.remove(i)?;
        let pcm = e.1.clone();
        self.entries.push_back(e);
        Some(pcm)
    }

    fn put(&mut self, key: String, pcm: Arc<[i16]>, limit: usize) {
        let size = pcm.len() * 2;
        if size > limit {
            return;
        }
        while self.bytes + size > limit {
            match self.entries.pop_front() {
                Some((_, old)) => self.bytes -= old.len() * 2,
                None => break,
            }
        }
        self.bytes += size;
        self.entries.push_back((key, pcm));
    }
}

impl AudioFetcher {
    /// A fetcher reading files under `data_dir/prompts` and URLs permitted by `allow`.
    pub fn new(data_dir: PathBuf, allow: AllowList) -> AudioFetcher {
        AudioFetcher {
            client: HttpClient::new(FETCH_TIMEOUT, CONNECT_TIMEOUT).with_notify_allow(allow),
            data_dir,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The prompt's 8 kHz PCM: from the cache, else fetched (or read) and decoded with the
    /// bot's `playUrlMediaFormat`. The error says what went wrong, for the bot and the log.
    pub async fn load(&self, url: &str, format: Option<&str>) -> Result<Arc<[i16]>, String> {
        let key = format!("{}\u{0}{url}", format.unwrap_or(""));
        if let Some(pcm) = self.lock().get(&key) {
            return Ok(pcm);
        }
        let bytes = if url.starts_with("http://") || url.starts_with("https://") {
            self.client
                .get_guarded(url, MAX_AUDIO_BYTES)
                .await?
                .to_vec()
        } else {
            let path = self.local_path(url)?;
            let read = tokio::fs::read(&path);
            let bytes = read
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            if bytes.len() > MAX_AUDIO_BYTES {
                return Err(format!("{url} is larger than {MAX_AUDIO_BYTES} bytes"));
            }
            bytes
        };
        // Decoding and resampling minutes of audio is CPU work: off the async workers.
        let fmt = format.map(str::to_owned);
        let pcm = tokio::task::spawn_blocking(move || audio_file::decode(&bytes, fmt.as_deref()))
            .await
            .map_err(|e| format!("decoding failed: {e}"))?
            .map_err(|e| e.to_string())?;
        let pcm: Arc<[i16]> = pcm.into();
        self.lock().put(key, pcm.clone(), CACHE_BYTES);
        Ok(pcm)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `file:NAME` or a bare relative name, under the data directory's `prompts/` only.
    fn local_path(&self, url: &str) -> Result<PathBuf, String> {
        let name = url.strip_prefix("file:").unwrap_or(url);
        let rel = Path::new(name);
        if name.is_empty()
            || rel.is_absolute()
            || rel.components().any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(format!(
                "`{url}`: files are read from the data directory's prompts/ folder only \
                 (or use an http:// or https:// URL)"
            ));
        }
        Ok(self.data_dir.join("prompts").join(rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_recent_prompts_within_its_bytes() {
        let mut c = Cache::default();
        let p = |n: usize| -> Arc<[i16]> { vec![0i16; n].into() };
        // 1. Two prompts of 400 bytes fit in 1000; a third pushes out the oldest.
        c.put("a".into(), p(200), 1000);
        c.put("b".into(), p(200), 1000);
        assert!(c.get("a").is_some()); // "a" is now the most recent
        c.put("c".into(), p(200), 1000);
        assert!(c.get("b").is_none());
        assert!(c.get("a").is_some() && c.get("c").is_some());
        assert_eq!(c.bytes, 800);
        // 2. Larger than the whole cache: not kept.
        c.put("big".into(), p(600), 1000);
        assert!(c.get("big").is_none());
    }

    #[tokio::test]
    async fn local_files_stay_under_prompts_and_guarded_urls_are_refused() {
        let f = AudioFetcher::new(PathBuf::from("/nonexistent"), Arc::new(Vec::new));
        // 1. Escapes from prompts/ are refused before anything is read.
        for bad in ["file:../x.wav", "/etc/passwd", "file:", "a/../../b.wav"] {
            let e = f.load(bad, None).await.unwrap_err();
            assert!(e.contains("prompts/"), "{bad}: {e}");
        }
        // 2. A loopback URL is refused without server.notify_allow.
        let e = f.load("http://127.0.0.1:9/a.wav", None).await.unwrap_err();
        assert!(e.contains("notify_allow"), "{e}");
    }
}
