//! A cache of synthesised sentences (8 kHz PCM), least recently used first out, bounded by the
//! bytes it holds: bots repeat their greetings and confirmations word for word.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use lru::LruCache;

/// The cache (shared by the engine's workers and callers).
pub struct AudioCache {
    inner: Mutex<Inner>,
    cap_bytes: usize,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct Inner {
    lru: LruCache<String, Arc<[i16]>>,
    bytes: usize,
}

fn size_of(pcm: &[i16], key: &str) -> usize {
    std::mem::size_of_val(pcm) + key.len()
}

impl AudioCache {
    /// A cache holding at most `cap_bytes` of audio (0 disables it).
    pub fn new(cap_bytes: usize) -> AudioCache {
        AudioCache {
            inner: Mutex::new(Inner {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            cap_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map inconsistent for readers.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The audio for `key`, if cached (counts a hit or a miss).
    pub fn get(&self, key: &str) -> Option<Arc<[i16]>> {
        let found = self.lock().lru.get(key).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Store audio; evicts the least recently used entries beyond the bound. An entry larger
    /// than the whole cache is not stored.
    pub fn put(&self, key: &str, pcm: Arc<[i16]>) {
        let size = size_of(&pcm, key);
        if size > self.cap_bytes {
            return;
        }
        let mut inner = self.lock();
        if let Some(old) = inner.lru.put(key.to_owned(), pcm) {
            inner.bytes -= size_of(&old, key);
        }
        inner.bytes += size;
        while inner.bytes > self.cap_bytes {
            match inner.lru.pop_lru() {
                Some((k, v)) => inner.bytes -= size_of(&v, &k),
                None => break,
            }
        }
    }

    /// (entries, bytes held, hits, misses).
    pub fn usage(&self) -> (usize, usize, u64, u64) {
        let inner = self.lock();
        (
            inner.lru.len(),
            inner.bytes,
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(n: usize) -> Arc<[i16]> {
        vec![1i16; n].into()
    }

    #[test]
    fn bounded_by_bytes_least_recently_used_out() {
        // 1. Room for two 1000-sample entries (2000 bytes each, plus their keys).
        let c = AudioCache::new(4100);
        c.put("a", pcm(1000));
        c.put("b", pcm(1000));
        // 2. Touch "a", then add "c": "b" (least recently used) goes.
        assert!(c.get("a").is_some());
        c.put("c", pcm(1000));
        assert!(c.get("b").is_none());
        assert!(c.get("a").is_some() && c.get("c").is_some());
        let (entries, bytes, hits, misses) = c.usage();
        assert_eq!((entries, hits, misses), (2, 3, 1));
        assert!(bytes <= 4100);
        // 3. Something bigger than the whole cache is not stored and evicts nothing.
        c.put("huge", pcm(5000));
        assert!(c.get("huge").is_none());
        assert_eq!(c.usage().0, 2);
        // 4. Replacing an entry keeps the byte count right.
        c.put("a", pcm(10));
        assert_eq!(c.usage().1, 20 + 1 + 2000 + 1);
    }
}
