//! What this instance holds on Redis, as leases: each bot's concurrency permits (members of
//! the bot's sorted set, scored with their expiry) and each live call's owner key (`PX`).
//! One task renews them all every `lease / 3`; a held thing is released when its guard drops
//! (the call ends). An instance that dies renews nothing more, and within `lease` everything
//! it held has expired — the permits count for nobody, the calls have no owner.

use super::link::{ClusterError, Link};
use redis::Script;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The sorted set of a bot's permits (member: permit id, score: expiry in Redis ms).
pub(super) fn permits_key(bot: &str) -> String {
    format!("dialgate:bot:{bot}:permits")
}

/// The hash of a bot's token bucket (`tokens`, `ts`).
pub(super) fn bucket_key(bot: &str) -> String {
    format!("dialgate:bot:{bot}:bucket")
}

/// A live call's owner (value: instance id, with `PX` lease).
pub(super) fn owner_key(conversation_id: &str) -> String {
    format!("dialgate:call:{conversation_id}")
}

/// Extends the permits still there; returns those that are gone (expired while Redis was
/// unreachable, or forgotten by a Redis restarted without persistence).
/// KEYS[1] the bot's permits; ARGV[1] lease ms, ARGV[2..] permit ids.
const RENEW: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
local gone = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
  else
    gone[#gone + 1] = ARGV[i]
  end
end
redis.call('PEXPIRE', KEYS[1], lease + 1000)
return gone
"#;

/// Writes permits back (calls still up whose permits Redis lost): they count again.
/// KEYS[1] the bot's permits; ARGV[1] lease ms, ARGV[2..] permit ids.
const READD: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease + 1000)
return #ARGV - 1
"#;

/// Deletes an owner key only while it still names this instance.
/// KEYS[1] the owner key; ARGV[1] this instance.
const DISOWN: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

/// Everything this instance holds, and its renewal.
pub struct Leases {
    link: Link,
    instance: String,
    lease: Duration,
    /// Permit ids held per bot.
    permits: Mutex<HashMap<String, HashSet<String>>>,
    /// Live calls owned here.
    calls: Mutex<HashSet<String>>,
    /// Set by [`Leases::freeze`]: nothing is released or renewed any more (a simulated crash).
    frozen: AtomicBool,
    renew: Script,
    readd: Script,
    disown: Script,
}

impl Leases {
    /// Nothing held yet.
    pub fn new(link: Link, instance: &str, lease: Duration) -> Arc<Leases> {
        Arc::new(Leases {
            link,
            instance: instance.to_owned(),
            lease,
            permits: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashSet::new()),
            frozen: AtomicBool::new(false),
            renew: Script::new(RENEW),
            readd: Script::new(READD),
            disown: Script::new(DISOWN),
        })
    }

    /// This instance's id.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The lease length.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The lease in ms, as the scripts take it.
    pub(super) fn lease_ms(&self) -> u64 {
        self.lease.as_millis().max(1) as u64
    }

    /// Stops releasing and renewing (what a `kill -9` does to an instance).
    pub fn freeze(&self) {
        self.frozen.store(true, Ordering::SeqCst);
    }

    fn frozen(&self) -> bool {
        self.frozen.load(Ordering::SeqCst)
    }

    /// Notes a permit granted on Redis; renewed until [`Leases::release_permit`].
    pub(super) fn hold_permit(&self, bot: &str, id: &str) {
        let mut p = self.permits.lock().unwrap_or_else(|p| p.into_inner());
        p.entry(bot.to_owned()).or_default().insert(id.to_owned());
    }

    /// Gives a permit back (the call ended). When Redis is unreachable the permit simply
    /// expires: it is no longer renewed.
    pub(super) fn release_permit(self: &Arc<Self>, bot: &str, id: &str) {
        {
            let mut p = self.permits.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(set) = p.get_mut(bot) {
                set.remove(id);
                if set.is_empty() {
                    p.remove(bot);
                }
            }
        }
        if self.frozen() {
            return;
        }
        let (me, key, id) = (self.clone(), permits_key(bot), id.to_owned());
        spawn_detached(async move {
            let r = me
                .link
                .run("releasing a permit", |mut c| async move {
                    redis::cmd("ZREM")
                        .arg(&key)
                        .arg(&id)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "a permit was not given back on Redis; it expires with its lease");
            }
        });
    }

    /// Records this instance as the owner of a live call (at once, and at every renewal).
    pub(super) fn own_call(self: &Arc<Self>, id: &str) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned());
        let (me, id) = (self.clone(), id.to_owned());
        spawn_detached(async move {
            let key = owner_key(&id);
            let (inst, ms) = (me.instance.clone(), me.lease_ms());
            let r = me
                .link
                .run("recording a call's owner", |mut c| async move {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&inst)
                        .arg("PX")
                        .arg(ms)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await;
            if let Err(e) = r {
                tracing::warn!(conversation_id = %id, error = %e, "the call's owner is not on Redis yet; the next renewal writes it");
            }
        });
    }

    /// The call ended here: its owner key goes (if it still names this instance).
    pub(super) fn disown_call(self: &Arc<Self>, id: &str) {
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        if self.frozen() {
            return;
        }
        let (me, id) = (self.clone(), id.to_owned());
        spawn_detached(async move {
            let key = owner_key(&id);
            let inst = me.instance.clone();
            let script = me.disown.clone();
            let r = me
                .link
                .run("removing a call's owner", |mut c| async move {
                    script
                        .key(&key)
                        .arg(&inst)
                        .invoke_async::<i64>(&mut c)
                        .await
                })
                .await;
            if let Err(e) = r {
                tracing::debug!(conversation_id = %id, error = %e, "the call's owner key expires with its lease");
            }
        });
    }

    /// Renews every lease now; errors are Redis being unreachable (the next round retries).
    pub async fn renew_once(&self) -> Result<(), ClusterError> {
        let held: Vec<(String, Vec<String>)> = self
            .permits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(b, ids)| (b.clone(), ids.iter().cloned().collect()))
            .collect();
        let ms = self.lease_ms();
        for (bot, ids) in held {
            let key = permits_key(&bot);
            let script = self.renew.clone();
            let (k, i) = (key.clone(), ids.clone());
            let gone: Vec<String> = self
                .link
                .run("renewing permits", |mut c| async move {
                    let mut inv = script.key(&k);
                    inv.arg(ms);
                    for id in &i {
                        inv.arg(id);
                    }
                    inv.invoke_async(&mut c).await
                })
                .await?;
            // Written back only if still held now: a call that ended meanwhile stays gone.
            let still: Vec<String> = {
                let p = self.permits.lock().unwrap_or_else(|p| p.into_inner());
                gone.into_iter()
                    .filter(|id| p.get(&bot).is_some_and(|s| s.contains(id)))
                    .collect()
            };
            if !still.is_empty() {
                tracing::warn!(bot = %bot, permits = still.len(), "Redis had lost permits of calls still up here; written back");
                let script = self.readd.clone();
                self.link
                    .run("writing permits back", |mut c| async move {
                        let mut inv = script.key(&key);
                        inv.arg(ms);
                        for id in &still {
                            inv.arg(id);
                        }
                        inv.invoke_async::<i64>(&mut c).await
                    })
                    .await?;
            }
        }
        let calls: Vec<String> = self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect();
        if !calls.is_empty() {
            let inst = self.instance.clone();
            self.link
                .run("renewing call owners", |mut c| async move {
                    let mut pipe = redis::pipe();
                    for id in &calls {
                        pipe.cmd("SET")
                            .arg(owner_key(id))
                            .arg(&inst)
                            .arg("PX")
                            .arg(ms)
                            .ignore();
                    }
                    pipe.query_async::<()>(&mut c).await
                })
                .await?;
        }
        Ok(())
    }

    /// Renews every `lease / 3` until `shutdown` (or [`Leases::freeze`]).
    pub async fn renew_forever(self: Arc<Self>, shutdown: CancellationToken) {
        let period = self.lease / 3;
        let mut was_down = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
            }
            if self.frozen() {
                return;
            }
            match self.renew_once().await {
                Ok(()) if was_down => {
                    was_down = false;
                    tracing::info!("Redis is reachable again: leases renewed");
                }
                Ok(()) => {}
                Err(e) if !was_down => {
                    was_down = true;
                    tracing::error!(error = %e, "cannot renew this instance's leases on Redis (calls in progress go on; new dialouts are refused until it is back)");
                }
                Err(_) => {}
            }
        }
    }

    /// Permits this instance holds for `bot` (tests, status).
    pub fn held_permits(&self, bot: &str) -> usize {
        self.permits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(bot)
            .map_or(0, HashSet::len)
    }
}

/// Runs a release in the background when there is a runtime (a guard may drop outside one,
/// at process exit: then the lease simply expires).
fn spawn_detached(f: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(h) = tokio::runtime::Handle::try_current() {
        h.spawn(f);
    }
}
