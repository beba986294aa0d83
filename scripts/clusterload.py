#!/usr/bin/env python3
"""scripts/bench-cluster: end-to-end dialouts/s of dialgate in cluster mode on loopback.

Configurations, one after the other on one PostgreSQL, one Redis and one pair of SIPp peers
(carrier: answers, hangs up after the hold time; bot: answers, waits for BYE):
  - one instance on SQLite, no cluster (the single-instance reference);
  - one instance with the PostgreSQL store, no Redis (PostgreSQL against SQLite);
  - cluster mode (PostgreSQL + Redis) with 1, 2 and 3 instances, dialouts spread round-robin.
Each configuration ramps through --rates (dialouts/s offered in total) for --step-seconds each,
stopping at the first step with failures or an API p99 over --p99-limit-ms. Per step: accepted
and completed dialouts/s, API p50/p99, CPU of the instances (cores), failures, lost terminal
notifications; per configuration: Redis commands and PostgreSQL statements/transactions per
dialout (server-side counters: INFO commandstats, pg_stat_statements, pg_stat_database).
Every wait is bounded; everything started is stopped at the end (scripts/clusterkit.py).
The peers share the machine with dialgate: figures compare within one run only.
"""

import argparse
import json
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True  # no __pycache__ left in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import callload  # noqa: E402
import clusterkit  # noqa: E402
from clusterkit import Kit, KitError, bot_yaml, free_port  # noqa: E402

# Commands dialgate sends to Redis (the others in INFO commandstats ran inside its scripts).
REDIS_SENT = ("evalsha", "eval", "script|load", "set", "zrem", "publish", "subscribe", "hello", "client|setinfo")
REDIS_IGNORED = ("info", "ping")  # this script's own


def run_step(apis, rate, seconds, notify_url, workers):
    """Dials at `rate`/s in total for `seconds`, round-robin over `apis`."""
    results = []  # (conversationId or None, status, latency s)
    lock = threading.Lock()
    n_total = int(rate * seconds)
    start = time.monotonic()

    def one(i):
        api = apis[i % len(apis)]
        body = {"bot": "demo-bot", "notifyUrl": notify_url, "target": "+1555%07d" % (i % 10_000_000)}
        t = time.monotonic()
        st, raw = api.request("POST", "/api/v1/actions/dialout", body)
        dt = time.monotonic() - t
        cid = None
        if st == 200:
            try:
                cid = json.loads(raw)["conversationId"]
            except (ValueError, KeyError):
                pass
        with lock:
            results.append((cid, st, dt))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i in range(n_total):
            due = start + i / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            pool.submit(one, i)
    return results, time.monotonic() - start


def redis_sent(before, after):
    d = {k: after.get(k, 0) - before.get(k, 0) for k in after if k not in REDIS_IGNORED}
    return sum(v for k, v in d.items() if k in REDIS_SENT), sum(d.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="50,100,150,200", help="dialouts/s offered in total, per step (ramp)")
    ap.add_argument("--step-seconds", type=float, default=10)
    ap.add_argument("--hold-ms", type=int, default=1000, help="the carrier hangs up this long after answering")
    ap.add_argument("--instances", default="1,2,3", help="cluster sizes to measure")
    ap.add_argument("--p99-limit-ms", type=float, default=250)
    ap.add_argument("--settle-seconds", type=float, default=30)
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--log-level", default="warn", help="RUST_LOG of the instances")
    ap.add_argument("--binary", default="")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    sizes = [int(n) for n in args.instances.split(",")]

    binary = clusterkit.find_binary(args.binary)
    profile = "release" if "/release/" in binary else "DEBUG (figures describe unoptimised code)"
    clusterkit.install_missing()
    callload.SECRET = clusterkit.SECRET  # the kit's API client
    peers = callload.Peers()
    threading.Thread(target=peers.serve_forever, daemon=True).start()
    notify_url = peers.base + "/notify"
    summary = []
    with Kit(keep=args.keep) as kit:
        kit.start_postgres(statement_stats=True)
        kit.start_redis()
        carrier_port, bot_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
        kit.start_sipp("carrier", kit.carrier_scenario(args.hold_ms), carrier_port)
        kit.start_sipp("bot", os.path.join(clusterkit.ROOT, "tests/sipp/flow_bot_answer.xml"), bot_port)
        yaml = bot_yaml(bot_port, 100000, 100000, carrier_port)
        print("bench-cluster: %s (%s), hold %d ms, %g-s steps, rates %s/s offered in total, %d CPUs, load %.2f"
              % (binary, profile, args.hold_ms, args.step_seconds, args.rates, os.cpu_count(), os.getloadavg()[0]))
        print("PostgreSQL %s and Redis on 127.0.0.1 (shared by every configuration); SIPp carrier and bot"
              % kit.pg_version)
        print("%-22s %4s %6s %8s %8s %8s %8s %6s %5s %5s %6s" % (
            "configuration", "inst", "rate", "acc/s", "done/s", "api50ms", "api99ms", "cpu", "fail", "lost", "load"))
        configs = [("single, SQLite", 1, False, False), ("single, PostgreSQL", 1, True, False)]
        configs += [("cluster PG+Redis", n, True, True) for n in sizes]
        for label, n, pg, redis in configs:
            nodes = kit.start_instances(binary, n, yaml, postgres=pg, redis=redis, log_level=args.log_level)
            apis = [callload.Api(x.http_port) for x in nodes]
            r0, p0 = kit.redis_calls(), kit.pg_counts()
            best, dialouts = None, 0
            for rate in rates:
                cpu0 = [x.cpu_seconds() for x in nodes]
                load = os.getloadavg()[0]
                results, elapsed = run_step(apis, rate, args.step_seconds, notify_url, args.workers)
                cpu = sum(x.cpu_seconds() - c for x, c in zip(nodes, cpu0)) / max(elapsed, 1e-9)
                ids = [c for c, _, _ in results if c]
                missing = callload.settle(None, peers, ids, args.settle_seconds)
                with peers.lock:
                    notes = {c: list(peers.notes.get(c, [])) for c in ids}
                completed = sum(1 for c in ids if any(s == "completed" for s, _ in notes[c]))
                failed = sum(1 for c in ids if any(s == "failed" for s, _ in notes[c])) + len(results) - len(ids)
                lat = [dt * 1000 for _, _, dt in results]
                dialouts += len(ids)
                p99 = callload.pct(lat, 99)
                print("%-22s %4d %6.0f %8.1f %8.1f %8.1f %8.1f %6.2f %5d %5d %6.2f" % (
                    label, n, rate, len(ids) / elapsed, completed / elapsed, callload.pct(lat, 50), p99,
                    cpu, failed, len(missing), load), flush=True)
                clean = not failed and not missing
                if clean and (best is None or completed / elapsed > best[1]):
                    best = (rate, completed / elapsed, cpu, p99)
                if not clean or p99 > args.p99_limit_ms:
                    break
            time.sleep(1.5)  # PostgreSQL's statistics are flushed about once a second
            r1, p1 = kit.redis_calls(), kit.pg_counts()
            sent, executed = redis_sent(r0, r1)
            per = lambda x: x / dialouts if dialouts else float("nan")  # noqa: E731
            extra = []
            if redis:
                extra.append("Redis %.1f commands sent per dialout (%.1f executed incl. inside scripts; "
                             "lease renewals included)" % (per(sent), per(executed)))
            if pg:
                extra.append("PostgreSQL %.1f statements and %.1f transactions per dialout "
                             "(background polling included)"
                             % (per(p1[0] - p0[0]), per(p1[1] - p0[1])))
            for e in extra:
                print("%-22s      %s" % ("", e))
            summary.append((label, n, best))
            kit.stop_instances()
        print()
        ref = summary[0][2]
        for label, n, best in summary:
            if not best:
                print("%-22s x%d: no step without failures or lost notifications" % (label, n))
                continue
            rate, done, cpu, p99 = best
            ratio = done / ref[1] if ref else float("nan")
            print("%-22s x%d: best step without failures %g/s offered: %.1f completed/s (%.1f per instance), "
                  "%.2f of single-SQLite; API p99 %.0f ms; CPU %.2f cores" % (
                      label, n, rate, done, done / n, ratio, p99, cpu))
    peers.shutdown()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KitError as e:
        print("bench-cluster: %s" % e, file=sys.stderr)
        sys.exit(2)
