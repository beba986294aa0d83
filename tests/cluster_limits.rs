//! Cluster mode's shared limits on a real redis-server: three instances' limiters (one
//! `RedisCluster` each, as three dialgate processes would have) together never exceed one
//! bot's `max_concurrent` or its `max_cps`; a permit is a lease, so an instance that stops
//! renewing (a `kill -9`) gives its permits back within `lease_sec` while a live instance keeps
//! its own; losing Redis refuses at once and service resumes by itself when it is back.

mod common;

use common::redis::RedisServer;
use dialgate::call::limiter::{Limits, Permit, RateLimiter, Refusal};
use dialgate::cluster::{RedisCluster, RedisSettings};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const BOT: &str = "shared-bot";

async fn instance(redis: &RedisServer, id: &str, lease: Duration) -> Arc<RedisCluster> {
    RedisCluster::start(
        RedisSettings {
            url: redis.url(),
            instance_id: id.into(),
            lease,
            ca_file: None,
        },
        CancellationToken::new(),
    )
    .await
    .expect("instance joins the cluster")
}

/// Waits (bounded) until `bot` can be admitted on `c`.
async fn acquire_within(c: &RedisCluster, limits: Limits, bound: Duration) -> (Permit, Duration) {
    let start = Instant::now();
    loop {
        if let Ok(p) = c.limiter.try_acquire(BOT, limits).await {
            return (p, start.elapsed());
        }
        assert!(start.elapsed() < bound, "no permit within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_over_three_instances_keeps_one_bots_limits() {
    // 1. Redis and three instances; the bot allows 4 calls/s and 3 at once.
    let redis = RedisServer::start();
    let limits = Limits {
        max_cps: 4.0,
        max_concurrent: 3,
    };
    let nodes = [
        instance(&redis, "a", Duration::from_secs(5)).await,
        instance(&redis, "b", Duration::from_secs(5)).await,
        instance(&redis, "c", Duration::from_secs(5)).await,
    ];

    // 2. Each instance tries as fast as it can until 12 calls were admitted in total; every
    //    admitted call lasts 300 ms. `up` counts permits held across the instances.
    let up = Arc::new(AtomicU32::new(0));
    let max_up = Arc::new(AtomicU32::new(0));
    let grants = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for node in &nodes {
        let (node, up, max_up, grants) = (node.clone(), up.clone(), max_up.clone(), grants.clone());
        workers.push(tokio::spawn(async move {
            let mut refused = (0u32, 0u32);
            while grants.lock().unwrap().len() < 12 && t0.elapsed() < Duration::from_secs(30) {
                match node.limiter.try_acquire(BOT, limits).await {
                    Ok(p) => {
                        grants.lock().unwrap().push(Instant::now());
                        let n = up.fetch_add(1, Ordering::SeqCst) + 1;
                        max_up.fetch_max(n, Ordering::SeqCst);
                        let up = up.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            up.fetch_sub(1, Ordering::SeqCst);
                            drop(p);
                        });
                    }
                    Err(Refusal::Concurrency { .. }) => refused.0 += 1,
                    Err(Refusal::Rate { .. }) => refused.1 += 1,
                    Err(r) => panic!("Redis is up: {r:?}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            refused
        }));
    }
    let mut refused = (0, 0);
    for w in workers {
        let r = w.await.unwrap();
        refused = (refused.0 + r.0, refused.1 + r.1);
    }

    // 3. Never more than 3 up at once, over all three instances.
    assert!(
        max_up.load(Ordering::SeqCst) <= 3,
        "{} up at once",
        max_up.load(Ordering::SeqCst)
    );
    // 4. The rate: any k consecutive grants span at least the time the bucket needs to refill
    //    k - burst tokens (burst = one second's worth, 4); one token of slack for the moment
    //    each grant was stamped here rather than on Redis.
    let mut g = grants.lock().unwrap().clone();
    g.sort();
    assert!(g.len() >= 12, "only {} grants", g.len());
    for i in 0..g.len() {
        for j in i + 1..g.len() {
            let span = g[j].duration_since(g[i]).as_secs_f64();
            let allowed = 4.0 + limits.max_cps * span + 1.0;
            assert!(
                (j - i + 1) as f64 <= allowed,
                "{} grants within {span:.3} s exceed the bucket (≤ {allowed:.1})",
                j - i + 1
            );
        }
    }
    // 5. Both limits were actually reached (the burst was over them).
    assert!(
        refused.0 > 0 && refused.1 > 0,
        "refusals (concurrency, rate): {refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_instances_permits_come_back_within_the_lease() {
    // 1. Redis, a lease of 2 s, a bot with 3 concurrent calls and no rate pressure.
    let redis = RedisServer::start();
    let lease = Duration::from_secs(2);
    let limits = Limits {
        max_cps: 100.0,
        max_concurrent: 3,
    };
    let dying = instance(&redis, "dying", lease).await;
    let alive = instance(&redis, "alive", lease).await;
    let other = instance(&redis, "other", lease).await;

    // 2. The live instance holds one permit, the dying one two: the bot is full.
    let kept = alive
        .limiter
        .try_acquire(BOT, limits)
        .await
        .expect("alive's permit");
    let lost = [
        dying
            .limiter
            .try_acquire(BOT, limits)
            .await
            .expect("permit 1"),
        dying
            .limiter
            .try_acquire(BOT, limits)
            .await
            .expect("permit 2"),
    ];
    assert!(matches!(
        other.limiter.try_acquire(BOT, limits).await,
        Err(Refusal::Concurrency { .. })
    ));

    // 3. The dying instance stops renewing and never releases (kill -9).
    dying.stop_renewal();
    std::mem::forget(lost);
    let killed = Instant::now();

    // 4. Within the lease (plus one renewal period of slack) both come back to the others...
    let bound = lease + lease / 3 + Duration::from_millis(500);
    let (p1, _) = acquire_within(&other, limits, bound).await;
    let (p2, waited) = acquire_within(&other, limits, bound).await;
    assert!(
        killed.elapsed() <= bound + Duration::from_millis(200),
        "{waited:?}"
    );

    // 5. ...but not the live instance's: it renewed its lease past several lease periods
    //    (the bot is full again with its one and the two taken over).
    assert!(matches!(
        other.limiter.try_acquire(BOT, limits).await,
        Err(Refusal::Concurrency { .. })
    ));
    tokio::time::sleep(lease * 2).await;
    assert!(matches!(
        other.limiter.try_acquire(BOT, limits).await,
        Err(Refusal::Concurrency { .. })
    ));
    assert_eq!(alive.limiter.in_use(BOT).await, Some(3));

    // 6. A call that ends gives its permit back at once.
    drop(kept);
    let (_p3, _) = acquire_within(&other, limits, Duration::from_secs(2)).await;
    drop((p1, p2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_redis_refuses_at_once_and_service_resumes_by_itself() {
    // 1. Redis, one instance holding a permit (a call in progress).
    let mut redis = RedisServer::start();
    let lease = Duration::from_secs(3);
    let limits = Limits {
        max_cps: 100.0,
        max_concurrent: 5,
    };
    let node = instance(&redis, "solo", lease).await;
    let call = node.limiter.try_acquire(BOT, limits).await.expect("permit");

    // 2. Redis goes away: an admission is refused as unavailable, within the operation bound.
    redis.stop();
    let asked = Instant::now();
    let r = node.limiter.try_acquire(BOT, limits).await;
    assert!(
        matches!(r, Err(Refusal::Unavailable { retry_after_secs, .. }) if retry_after_secs > 0),
        "{r:?}"
    );
    assert!(
        asked.elapsed() <= dialgate_op_bound(),
        "{:?}",
        asked.elapsed()
    );

    // 3. Redis comes back empty (no persistence): admissions work again without any help,
    //    and the next renewal writes the live call's permit back, so it counts again.
    redis.restart();
    let (again, _) = acquire_within(&node, limits, Duration::from_secs(10)).await;
    let deadline = Instant::now() + lease * 2;
    while node.limiter.in_use(BOT).await != Some(2) {
        assert!(
            Instant::now() < deadline,
            "the live call's permit was not written back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop((call, again));
}

/// The longest a refusal may take while Redis is down: one bounded operation, plus slack for
/// a loaded machine.
fn dialgate_op_bound() -> Duration {
    Duration::from_millis(1000) + Duration::from_millis(1500)
}
