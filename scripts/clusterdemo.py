#!/usr/bin/env python3
"""scripts/cluster-demo: three dialgate instances sharing PostgreSQL and Redis on loopback.

Shows (1) one bot's limits (max_cps 1, max_concurrent 3) holding across the three instances
while a burst of dialouts is spread over them, and (2) a call record placed on one instance read
from the two others (GET /api/v1/calls/{id}). SIPp is the carrier (answers, hangs up after a
hold time) and the bot's SIP side. Everything started is stopped on exit, on error and on
SIGINT/SIGTERM (scripts/clusterkit.py). Exit status 0 only when every check held.
"""

import argparse
import base64
import json
import os
import socket
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

sys.dont_write_bytecode = True  # no __pycache__ left in scripts/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import clusterkit  # noqa: E402
from clusterkit import Kit, KitError, SECRET, bot_yaml, free_port  # noqa: E402

MAX_CPS, MAX_CONCURRENT = 1, 3
AUTH = "Basic " + base64.b64encode(("dialer:" + SECRET).encode()).decode()


def request(method, url, body=None, timeout=10):
    """(status, headers, JSON body or text) of one API request."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"authorization": AUTH, "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, headers, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    except OSError as e:
        return 0, {}, str(e)
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, raw.decode(errors="replace")


def dialout(inst):
    # A generous bound: on a loaded machine an answer can take seconds, and a dialout given up
    # here could still be accepted there, unseen by the checks.
    return request("POST", inst.base + "/api/v1/actions/dialout",
                   {"bot": "demo-bot", "target": "+15550100001"}, timeout=60)


class LiveSampler(threading.Thread):
    """Samples the live calls of every instance (their /metrics) until stopped; keeps the peak
    of the sum, i.e. the calls up across the cluster at once."""

    def __init__(self, instances, period=0.1):
        super().__init__(daemon=True)
        self.instances, self.period = instances, period
        self.peak, self.peak_split = 0, []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            split = [i.live_calls() for i in self.instances]
            if sum(split) > self.peak:
                self.peak, self.peak_split = sum(split), split
            self.halt.wait(self.period)


def burst(instances, rounds, gap, log):
    """`rounds` rounds of one dialout per instance at once, `gap` s apart (sent on schedule,
    whatever the answers' latency). Returns (t sent, instance, status, Retry-After, body,
    latency s), in the order sent."""
    t0 = time.monotonic()

    def one(inst, due):
        time.sleep(max(0.0, due - time.monotonic()))
        sent = time.monotonic()
        status, headers, body = dialout(inst)
        retry = headers.get("retry-after") if headers else None
        return sent - t0, inst, status, retry, body, time.monotonic() - sent

    with ThreadPoolExecutor(max_workers=rounds * len(instances)) as pool:
        futures = [pool.submit(one, inst, t0 + r * gap) for r in range(rounds) for inst in instances]
        answers = [f.result() for f in futures]
    for t, inst, status, retry, body, latency in answers:
        if status == 200:
            what = "accepted  conversationId %s" % body.get("conversationId")
        elif isinstance(body, dict) and "error" in body:
            what = "%s: %s (Retry-After %s)" % (body["error"].get("code"), body["error"].get("message"), retry)
        else:
            what = str(body)[:120]
        log("   sent t=%4.2f s  %s  %d in %3.0f ms  %s" % (t, inst.name, status, latency * 1000, what))
    return answers


def created_s(record):
    """A record's createdAt in seconds (the accepting instance's clock)."""
    ts = record["createdAt"].replace("Z", "+00:00")
    return datetime.fromisoformat(ts).timestamp()


def rate_holds(times, cps, burst_size):
    """Whether every k consecutive acceptances span at least the refill time of k - burst
    tokens (one token of slack: times are stamped here, not on Redis's clock)."""
    times = sorted(times)
    for i in range(len(times)):
        for j in range(i + 1, len(times)):
            if j - i + 1 > burst_size + cps * (times[j] - times[i]) + 1:
                return False
    return True


def show_record(label, inst, cid, log):
    status, _, rec = request("GET", inst.base + "/api/v1/calls/" + cid)
    if status != 200:
        log("   %s: GET from %s -> %d %s" % (label, inst.name, status, rec))
        return status, None
    keys = ("conversationId", "status", "reasonCode", "sipCode", "createdAt", "answeredAt", "endedAt")
    shown = {k: rec.get(k) for k in keys if rec.get(k) is not None}
    log("   %s: GET %s/api/v1/calls/%s -> %d %s" % (label, inst.name, cid[:8] + "…", status, json.dumps(shown)))
    return status, rec


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--short", action="store_true", default=os.environ.get("CLUSTER_DEMO_SHORT") == "1",
                    help="shorter calls and burst (tests/cluster_demo.rs; also CLUSTER_DEMO_SHORT=1)")
    ap.add_argument("--binary", default="", help="dialgate binary (default: DIALGATE_BIN, target/release, target/debug)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, configurations)")
    args = ap.parse_args()
    hold_ms = 6000 if args.short else 12000
    rounds, gap = (6, 0.5) if args.short else (10, 0.5)
    log = lambda s="": print(s, flush=True)  # noqa: E731
    ok = True

    def check(cond, what):
        nonlocal ok
        log("   %s %s" % ("ok  " if cond else "FAIL", what))
        ok &= bool(cond)

    binary = clusterkit.find_binary(args.binary)
    clusterkit.install_missing(log)
    with Kit(log=log, keep=args.keep) as kit:
        kit.start_postgres()
        kit.start_redis()
        carrier_port, bot_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
        kit.start_sipp("carrier", kit.carrier_scenario(hold_ms), carrier_port)
        kit.start_sipp("bot", os.path.join(clusterkit.ROOT, "tests/sipp/flow_bot_answer.xml"), bot_port)
        nodes = kit.start_instances(binary, 3, bot_yaml(bot_port, MAX_CPS, MAX_CONCURRENT, carrier_port))
        log("cluster-demo: shared services on loopback, data under %s" % kit.work)
        log("  PostgreSQL %s: 127.0.0.1:%d (database dialgate, run as its own user)" % (kit.pg_version, kit.pg_port))
        log("  Redis: 127.0.0.1:%d" % kit.redis_port)
        for n in nodes:
            log("  %s: API http://127.0.0.1:%d, SIP udp 127.0.0.1:%d (%s)" % (n.name, n.http_port, n.sip_port, n.config))
        log("  (the three configurations differ only in cluster.instance_id and the listen ports)")
        log("  carrier: SIPp on 127.0.0.1:%d, answers and hangs up %.0f s later; bot: SIPp on 127.0.0.1:%d"
            % (carrier_port, hold_ms / 1000, bot_port))
        log()

        # 1. The burst, spread over the three instances, while the live calls are sampled.
        log("1. One bot (demo-bot: max_cps %d, max_concurrent %d); %d rounds of one dialout per instance "
            "at once, %.1f s apart:" % (MAX_CPS, MAX_CONCURRENT, rounds, gap))
        # Each instance has answered a request first (its connections made), so the burst
        # measures admissions, not start-up.
        for n in nodes:
            request("GET", n.base + "/api/v1/calls?limit=1")
        sampler = LiveSampler(nodes)
        sampler.start()
        answers = burst(nodes, rounds, gap, log)
        accepted = [a for a in answers if a[2] == 200]
        refused = [a for a in answers if a[2] == 429]
        reasons = {}
        for a in refused:
            msg = a[4]["error"]["message"] if isinstance(a[4], dict) else ""
            key = "max_concurrent" if "max_concurrent" in msg else "max_cps" if "max_cps" in msg else "other"
            reasons[key] = reasons.get(key, 0) + 1
        per_node = {n.name: sum(1 for a in accepted if a[1] is n) for n in nodes}
        log("   accepted %d (%s); refused with 429: %d (%s)" % (
            len(accepted), ", ".join("%s %d" % kv for kv in per_node.items()), len(refused),
            ", ".join("%s %d" % kv for kv in sorted(reasons.items())) or "none"))
        # Wait (bounded) for the accepted calls to end, still sampling.
        ids = [a[4]["conversationId"] for a in accepted]
        owner = {a[4]["conversationId"]: a[1] for a in accepted}
        deadline = time.monotonic() + hold_ms / 1000 + 30
        records = {}
        while time.monotonic() < deadline and len(records) < len(ids):
            for cid in ids:
                if cid not in records:
                    st, _, rec = request("GET", owner[cid].base + "/api/v1/calls/" + cid)
                    if st == 200 and rec.get("status") in ("completed", "failed"):
                        records[cid] = rec
            time.sleep(0.25)
        sampler.halt.set()
        sampler.join(5)
        log("   live calls across the cluster (sum of the three /metrics, sampled every 0.1 s): peak %d (%s)"
            % (sampler.peak, " + ".join(str(x) for x in sampler.peak_split) or "0"))
        check(len(accepted) >= 1, "at least one dialout accepted")
        check(all(a[2] in (200, 429) for a in answers), "every answer is 200 or 429 (no 5xx)")
        check(sampler.peak <= MAX_CONCURRENT, "never more than %d calls up at once in the cluster" % MAX_CONCURRENT)
        # When each call was accepted, by the record's createdAt (stamped by the instance that
        # accepted it, just after its admission on Redis).
        created = sorted(created_s(r) for r in records.values())
        if created:
            log("   accepted at %s s after the first (createdAt of each record)"
                % ", ".join("+%.2f" % (c - created[0]) for c in created))
        check(rate_holds(created, MAX_CPS, MAX_CPS),
              "acceptances at most %d per second over the cluster (burst %d)" % (MAX_CPS, MAX_CPS))
        check(len(records) == len(ids), "every accepted call ended (%d of %d)" % (len(records), len(ids)))
        log()

        # 2. A call placed on one instance, read from the others (the record is in PostgreSQL).
        if accepted:
            origin, body = accepted[0][1], accepted[0][4]
            cid = body["conversationId"]
            others = [n for n in nodes if n is not origin]
            log("2. Call %s was placed on %s; its record read from the other instances:" % (cid, origin.name))
            _, mine = show_record("on %s   " % origin.name, origin, cid, log)
            for n in others:
                st, rec = show_record("from %s " % n.name, n, cid, log)
                check(st == 200 and rec and mine and rec.get("status") == mine.get("status")
                      and rec.get("conversationId") == cid, "%s serves the record placed on %s" % (n.name, origin.name))
            st, _, listing = request("GET", others[-1].base + "/api/v1/calls?bot=demo-bot&limit=100")
            listed = {c.get("conversationId") for c in listing.get("calls", [])} if isinstance(listing, dict) else set()
            check(st == 200 and set(ids) <= listed,
                  "GET %s/api/v1/calls lists all %d accepted calls, whichever instance placed them"
                  % (others[-1].name, len(ids)))
        log()
        log("3. Stopping everything started (3 instances, 2 SIPp, Redis, PostgreSQL).")
    log("cluster-demo: %s" % ("OK" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KitError as e:
        print("cluster-demo: %s" % e, file=sys.stderr)
        sys.exit(2)
