//! One bot's limits shared by every instance: the token bucket (`max_cps`) and the
//! concurrency permits (`max_concurrent`) on Redis, each admission one atomic script on
//! Redis's clock. Same policy as the local limiter: a burst of one second's worth of calls
//! (at least one), concurrency checked first so a refused call spends no token.

use super::leases::{Leases, bucket_key, permits_key};
use super::link::{ClusterError, Link, RETRY_AFTER_SECS};
use crate::call::limiter::{Decision, Limits, Permit, RateLimiter, Refusal};
use redis::Script;
use std::sync::Arc;

/// KEYS[1] permits, KEYS[2] bucket; ARGV max_cps, max_concurrent, lease ms, permit id.
/// Returns {1, now} granted, {0, 1, wait ms} concurrency, {0, 2, wait ms} rate.
const ACQUIRE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local maxc = tonumber(ARGV[2])
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= maxc then
  return {0, 1, 1000}
end
local cap = math.max(rate, 1)
local b = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
if now > ts then
  tokens = math.min(cap, tokens + (now - ts) / 1000 * rate)
  ts = now
end
if tokens < 1 then
  return {0, 2, math.ceil((1 - tokens) / rate * 1000)}
end
redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'ts', tostring(ts))
redis.call('PEXPIRE', KEYS[2], math.ceil(cap / rate * 1000) + 60000)
redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
redis.call('PEXPIRE', KEYS[1], lease + 1000)
return {1, now}
"#;

/// KEYS[1] permits: the permits not expired.
const IN_USE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"#;

/// The shared limiter.
pub struct RedisLimiter {
    link: Link,
    leases: Arc<Leases>,
    acquire: Script,
    in_use: Script,
}

/// A permit on Redis: given back (and no longer renewed) when the call drops it.
struct RedisPermit {
    leases: Arc<Leases>,
    bot: String,
    id: String,
}

impl Drop for RedisPermit {
    fn drop(&mut self) {
        self.leases.release_permit(&self.bot, &self.id);
    }
}

impl RedisLimiter {
    /// A limiter whose permits are held by `leases`.
    pub fn new(link: Link, leases: Arc<Leases>) -> RedisLimiter {
        RedisLimiter {
            link,
            leases,
            acquire: Script::new(ACQUIRE),
            in_use: Script::new(IN_USE),
        }
    }

    async fn decide(&self, bot: &str, limits: Limits) -> Result<Permit, Refusal> {
        let id = format!("{}:{}", self.leases.instance(), uuid::Uuid::new_v4());
        let (pk, bk) = (permits_key(bot), bucket_key(bot));
        let script = self.acquire.clone();
        let lease = self.leases.lease_ms();
        let pid = id.clone();
        let answer: Result<Vec<i64>, ClusterError> = self
            .link
            .run("the bot's limits", |mut c| async move {
                script
                    .key(&pk)
                    .key(&bk)
                    .arg(limits.max_cps)
                    .arg(limits.max_concurrent)
                    .arg(lease)
                    .arg(&pid)
                    .invoke_async(&mut c)
                    .await
            })
            .await;
        match answer.as_deref() {
            Ok([1, ..]) => {
                self.leases.hold_permit(bot, &id);
                Ok(Permit::new(RedisPermit {
                    leases: self.leases.clone(),
                    bot: bot.to_owned(),
                    id,
                }))
            }
            Ok([0, 1, wait_ms]) => Err(Refusal::Concurrency {
                retry_after_secs: secs(*wait_ms),
            }),
            Ok([0, 2, wait_ms]) => Err(Refusal::Rate {
                retry_after_secs: secs(*wait_ms),
            }),
            Ok(other) => Err(Refusal::Unavailable {
                reason: format!("unexpected answer from the limits script: {other:?}"),
                retry_after_secs: RETRY_AFTER_SECS,
            }),
            Err(e) => {
                tracing::warn!(bot, error = %e, "dialout refused: the shared limits are unavailable");
                Err(Refusal::Unavailable {
                    reason: e.to_string(),
                    retry_after_secs: RETRY_AFTER_SECS,
                })
            }
        }
    }
}

/// Whole seconds to wait, at least one.
fn secs(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000).max(1)
}

impl RateLimiter for RedisLimiter {
    fn try_acquire<'a>(
        &'a self,
        bot: &'a str,
        limits: Limits,
    ) -> Decision<'a, Result<Permit, Refusal>> {
        Box::pin(self.decide(bot, limits))
    }

    fn in_use<'a>(&'a self, bot: &'a str) -> Decision<'a, Option<u32>> {
        Box::pin(async move {
            let (key, script) = (permits_key(bot), self.in_use.clone());
            self.link
                .run("counting permits", |mut c| async move {
                    script.key(&key).invoke_async::<u32>(&mut c).await
                })
                .await
                .ok()
        })
    }
}
