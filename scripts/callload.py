#!/usr/bin/env python3
"""End-to-end call load against a real dialgate on loopback (used by scripts/bench-calls and
scripts/soak).

Peers, all on 127.0.0.1: SIPp as the carrier (answers, hangs up after a hold time) and as the
bot's SIP side (answers, waits for BYE); a Bot API (opens conversations, accepts activities) and
the dialer's notifyUrl sink, both in this process; the dialer itself (POST /api/v1/actions/dialout
paced at a target rate from a thread pool). Everything is bounded: each step lasts a fixed time,
every wait has a deadline, every process is stopped at the end.

Figures per step: accepted and completed calls per second, API latency p50/p99, POST ->
bot-connected p50/p99 (the call record's createdAt -> botConnectedAt), dialgate's CPU (cores)
and RSS per concurrent call, duplicate and lost terminal notifications, and the machine's load.
"""

import argparse
import base64
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "bench-dialer-secret"
TERMINAL = ("failed", "completed")


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def pct(values, q):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q / 100.0 * (len(v) - 1))))]


class Peers(http.server.ThreadingHTTPServer):
    """The dialer's notification sink and the Bot API, one HTTP server."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.notes = {}  # conversationId -> list of (status, event id)
        self.opens = 0
        self.base = "http://127.0.0.1:%d" % self.server_address[1]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The answer goes out as headers then body, two writes: with Nagle the body waits for
    # dialgate's delayed ACK (40 ms), which capped each delivery slot at ~23 requests/s.
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(n) if n else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        srv = self.server
        if self.path == "/notify":
            with srv.lock:
                srv.notes.setdefault(body.get("conversationId", "?"), []).append(
                    (body.get("status"), self.headers.get("x-dialgate-event-id"))
                )
            return self.reply({})
        if self.path == "/bot":
            with srv.lock:
                srv.opens += 1
                cid = "c%d" % srv.opens
            u = srv.base + "/conversation/" + cid
            return self.reply(
                {
                    "activitiesURL": u + "/activities",
                    "refreshURL": u + "/refresh",
                    "disconnectURL": u + "/disconnect",
                    "expiresSeconds": 600,
                }
            )
        if self.path.endswith("/refresh"):
            return self.reply({"expiresSeconds": 600})
        return self.reply({})


def sipp(scenario, port, workdir, extra=()):
    """A SIPp UAS for any number of calls, bounded by the caller stopping it."""
    d = os.path.join(workdir, "sipp-%d" % port)
    os.makedirs(d, exist_ok=True)
    args = [
        "sipp", "-sf", os.path.join(ROOT, "tests/sipp", scenario),
        "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(port),
        "-nostdin", "-max_socket", "60000", "-trace_err",
        "-error_file", os.path.join(d, "errors.log"), *extra,
    ]
    return subprocess.Popen(args, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write_config(workdir, http_port, sip_port, carrier_port, bot_port, peers, log_level):
    cfg = os.path.join(workdir, "dialgate.yaml")
    with open(cfg, "w") as f:
        f.write(
            f"""server:
  sip:
    listen: [ {{ transport: udp, address: "127.0.0.1:{sip_port}" }} ]
  http: {{ listen: "127.0.0.1:{http_port}", plain_http: true, max_connections: 4096 }}
  rtp: {{ port_min: 30000, port_max: 59999, inactivity_timeout_sec: 0 }}
  data_dir: {workdir}/data
  bot_answer_timeout_sec: 10
  notify_allow: [127.0.0.0/8]
bots:
  - id: bench-bot
    name: Bench Bot
    sip_uri: "sip:bot@127.0.0.1:{bot_port}"
    events_url: "{peers.base}/bot"
    outbound: {{ enabled: true, max_cps: 100000, max_concurrent: 100000 }}
sip_connections:
  - id: carrier
    name: Carrier
    address: "127.0.0.1:{carrier_port}"
routing_rules:
  - {{ name: all, type: call, origin_bot: "*", route: {{ sip_connection: carrier }} }}
api_clients:
  - client_id: dialer
    secret_env: BENCH_DIALER_SECRET
    groups: [call_control, call_data_manager]
"""
        )
    return cfg


class Dialgate:
    def __init__(self, binary, cfg, workdir, log_level):
        env = dict(os.environ, BENCH_DIALER_SECRET=SECRET)
        if log_level:
            env["RUST_LOG"] = log_level
        self.log = open(os.path.join(workdir, "dialgate.log"), "wb")
        self.p = subprocess.Popen(
            [binary, "run", "--config", cfg], env=env, stdout=self.log, stderr=self.log
        )

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.p.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self):
        with open("/proc/%d/status" % self.p.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def anon_kib(self):
        """Anonymous resident memory (heap, stacks, task and channel blocks; not the mapped
        binary or libraries)."""
        try:
            with open("/proc/%d/smaps_rollup" % self.p.pid) as f:
                for line in f:
                    if line.startswith("Anonymous:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


class Api:
    def __init__(self, port):
        self.port = port
        self.auth = "Basic " + base64.b64encode(("dialer:" + SECRET).encode()).decode()
        self.local = threading.local()

    def conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.local.c = c
        return c

    def request(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"authorization": self.auth}
        if data is not None:
            headers["content-type"] = "application/json"
        for attempt in (1, 2):
            c = self.conn()
            try:
                c.request(method, path, body=data, headers=headers)
                r = c.getresponse()
                raw = r.read()
                return r.status, raw
            except (OSError, http.client.HTTPException):
                c.close()
                self.local.c = None
                if attempt == 2:
                    return 0, b""

    def healthy(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
            c.request("GET", "/healthz")
            return c.getresponse().status == 200
        except OSError:
            return False

    def live_calls(self):
        st, raw = self.request("GET", "/metrics")
        n = 0
        for line in raw.decode(errors="replace").splitlines():
            if line.startswith("dialgate_calls{"):
                try:
                    n += int(float(line.split()[-1]))
                except ValueError:
                    pass
        return n

    def gauges(self):
        """Connected calls, all live calls, heap bytes in use and live tokio tasks."""
        st, raw = self.request("GET", "/metrics")
        out = {"connected": 0, "live": 0, "heap": 0, "tasks": 0}
        for line in raw.decode(errors="replace").splitlines():
            try:
                v = int(float(line.split()[-1]))
            except (ValueError, IndexError):
                continue
            if line.startswith("dialgate_calls{"):
                out["live"] += v
                if 'state="connected"' in line:
                    out["connected"] += v
            elif line.startswith("dialgate_heap_bytes "):
                out["heap"] = v
            elif line.startswith("dialgate_tokio_tasks "):
                out["tasks"] = v
        return out

    def tables(self):
        """`dialgate_table_entries` by table, plus `tokio_tasks` (the leak check gauges)."""
        st, raw = self.request("GET", "/metrics")
        out = {}
        for line in raw.decode(errors="replace").splitlines():
            try:
                if line.startswith('dialgate_table_entries{table="'):
                    name = line.split('"')[1]
                    out[name] = int(float(line.split()[-1]))
                elif line.startswith("dialgate_tokio_tasks "):
                    out["tokio_tasks"] = int(float(line.split()[-1]))
            except (ValueError, IndexError):
                pass
        return out


def run_step(api, peers, dg, rate, seconds, notify_url, workers):
    """Dials at `rate`/s for `seconds`; returns per-call facts and the step's measurements,
    the last being the series of (seconds into the step, live calls, RSS KiB) samples."""
    results = []  # (conversationId or None, http status, latency s, sent at)
    lock = threading.Lock()
    body = {"bot": "bench-bot", "notifyUrl": notify_url}
    n_total = int(rate * seconds)
    start = time.monotonic()
    cpu0 = dg.cpu_seconds()
    peak_live, peak_rss = 0, dg.rss_kib()
    load_samples = []
    series = []  # (seconds into the step, live calls, RSS KiB), about every 30 s

    def one(i):
        b = dict(body, target="+1555%07d" % (int(time.time() * 1000) % 10_000_000 + i % 1000))
        t = time.monotonic()
        st, raw = api.request("POST", "/api/v1/actions/dialout", b)
        dt = time.monotonic() - t
        cid = None
        if st == 200:
            try:
                cid = json.loads(raw)["conversationId"]
            except (ValueError, KeyError):
                pass
        with lock:
            results.append((cid, st, dt, t))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i in range(n_total):
            due = start + i / rate
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            pool.submit(one, i)
            if i % max(1, int(rate)) == 0:
                live, rss = api.live_calls(), dg.rss_kib()
                peak_live = max(peak_live, live)
                peak_rss = max(peak_rss, rss)
                load_samples.append(os.getloadavg()[0])
                if i % max(1, int(rate * 30)) == 0:
                    series.append((now - start, live, rss))
    elapsed = time.monotonic() - start
    cpu = (dg.cpu_seconds() - cpu0) / max(elapsed, 1e-9)
    return results, elapsed, cpu, peak_live, peak_rss, load_samples, series


def settle(api, peers, ids, wait_s):
    """Waits (bounded) until every accepted call has a terminal notification."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with peers.lock:
            missing = [c for c in ids if not any(s in TERMINAL for s, _ in peers.notes.get(c, []))]
        if not missing:
            return []
        time.sleep(0.5)
    return missing


def drained(api, wait_s):
    """Waits (bounded) until no call is live and rsipstack's per-call tables are empty (its
    finished transactions linger 64 x T1 = 32 s); returns the last table reading."""
    deadline = time.monotonic() + wait_s
    t = api.tables()
    while time.monotonic() < deadline:
        busy = {k: v for k, v in t.items() if k != "tokio_tasks" and v}
        if not busy:
            break
        time.sleep(1)
        t = api.tables()
    return t


def connected_delays(api, ids, sample):
    delays = []
    for cid in ids[:sample]:
        st, raw = api.request("GET", "/api/v1/calls/" + cid)
        if st != 200:
            continue
        rec = json.loads(raw)
        a, b = rec.get("createdAt"), rec.get("botConnectedAt")
        if a and b:
            ta = datetime.fromisoformat(a.replace("Z", "+00:00"))
            tb = datetime.fromisoformat(b.replace("Z", "+00:00"))
            delays.append((tb - ta).total_seconds() * 1000)
    return delays


def hold(api, dg, targets, rate, workers, notify_url, wait_s):
    """Memory per concurrent call: dials up to each target count of long calls (they stay up:
    the carrier's hold time outlasts the run) at a modest rate, waits (bounded) until all of
    them are connected, then prints RSS, anonymous memory, heap in use and tokio tasks above
    idle, each divided by the calls held: 5 s after the last call connected, and again 40 s
    after (past 64 x T1 = 32 s, when rsipstack has let the answered INVITE transactions go:
    what a long call keeps)."""
    time.sleep(2)
    idle = api.gauges()
    idle_rss, idle_anon = dg.rss_kib(), dg.anon_kib()
    print("idle: RSS %d KiB, anonymous %d KiB, heap %d KiB, %d tasks"
          % (idle_rss, idle_anon, idle["heap"] // 1024, idle["tasks"]))
    print("%6s %6s %9s %12s %13s %13s %10s %6s" % (
        "calls", "after", "connected", "RSS KiB/call", "anon KiB/call", "heap KiB/call",
        "tasks/call", "load"))
    dialled = 0
    body = {"bot": "bench-bot", "notifyUrl": notify_url}
    # The figures at the previous count (40 s row): the slope between two counts is what one
    # more concurrent call costs, without what the first calls set up once (caches, pools).
    prev = None
    slopes = []
    refused = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for n in targets:
            start = time.monotonic()
            futures = []
            for i in range(n - dialled):
                due = start + i / rate
                now = time.monotonic()
                if due > now:
                    time.sleep(due - now)
                b = dict(body, target="+1555%07d" % ((dialled + i) % 10_000_000))
                futures.append(pool.submit(api.request, "POST", "/api/v1/actions/dialout", b))
            refused += sum(1 for f in futures if f.result()[0] != 200)
            dialled = n
            # Connected = both legs up and bridged; then let the notifications and Bot API
            # requests of the last calls finish, so what remains is the calls' own state.
            deadline = time.monotonic() + wait_s
            g = api.gauges()
            while g["connected"] < n - refused and time.monotonic() < deadline:
                time.sleep(1)
                g = api.gauges()
            connected_at = time.monotonic()
            for after in (5, 40):
                time.sleep(max(0.0, connected_at + after - time.monotonic()))
                g = api.gauges()
                rss, anon = dg.rss_kib(), dg.anon_kib()
                held = max(g["connected"], 1)
                print("%6d %5ds %9d %12.1f %13.1f %13.1f %10.2f %6.2f" % (
                    n, after, g["connected"], (rss - idle_rss) / held, (anon - idle_anon) / held,
                    (g["heap"] - idle["heap"]) / 1024 / held,
                    (g["tasks"] - idle["tasks"]) / held, os.getloadavg()[0]), flush=True)
            now = (g["connected"], rss, anon, g["heap"] / 1024)
            if prev and now[0] > prev[0]:
                d = now[0] - prev[0]
                slopes.append("%d -> %d calls: RSS %.1f, anonymous %.1f, heap %.1f KiB per added call" % (
                    prev[0], now[0], (now[1] - prev[1]) / d, (now[2] - prev[2]) / d, (now[3] - prev[3]) / d))
            prev = now
    for line in slopes:
        print(line)
    if refused:
        print("%d dialouts refused" % refused)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="25,50,100,150,200,300,400", help="dialouts/s per step (ramp)")
    ap.add_argument("--step-seconds", type=float, default=10)
    ap.add_argument("--hold-ms", type=int, default=3000, help="carrier answers, then hangs up after this (scenario pause)")
    ap.add_argument("--p99-limit-ms", type=float, default=250)
    ap.add_argument("--settle-seconds", type=float, default=60)
    ap.add_argument("--log-level", default="", help="RUST_LOG for dialgate (default: its own default level)")
    ap.add_argument("--binary", default="", help="dialgate binary (default: target/release, else target/debug)")
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--soak", action="store_true", help="one step at the first rate, no ramp stop")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--drain-seconds", type=float, default=45,
                    help="after the last step: wait (bounded) for the per-call tables to empty, then report RSS kept per finished call")
    ap.add_argument("--hold", default="",
                    help="memory per concurrent call: hold this many calls up, e.g. 500,1000 (dialled at the first --rates rate; carrier hold 900 s unless --hold-ms is given)")
    args = ap.parse_args()
    if args.hold and "--hold-ms" not in sys.argv:
        args.hold_ms = 900_000
    # `timeout` (or a CI runner) stops us with SIGTERM: exit through the `finally` below, so
    # dialgate and the SIPp peers are stopped too instead of being left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    binary = args.binary
    if not binary:
        for p in ("target/release/dialgate", "target/debug/dialgate"):
            if os.path.exists(os.path.join(ROOT, p)):
                binary = os.path.join(ROOT, p)
                break
    if not binary or not shutil.which("sipp"):
        sys.exit("needs a built dialgate (cargo build --release --bin dialgate) and sipp (sip-tester)")
    profile = "release" if "/release/" in binary else "DEBUG (figures describe unoptimised code)"

    workdir = tempfile.mkdtemp(prefix="dialgate-bench-")
    peers = Peers()
    threading.Thread(target=peers.serve_forever, daemon=True).start()
    http_port, sip_port = free_port(), free_port(socket.SOCK_DGRAM)
    carrier_port, bot_port = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    scen_dir = os.path.join(workdir, "scenarios")
    os.makedirs(scen_dir)
    # The carrier's hold time is the scenario's pause.
    src = open(os.path.join(ROOT, "tests/sipp/flow_carrier_answer_bye.xml")).read()
    carrier_xml = os.path.join(scen_dir, "carrier.xml")
    open(carrier_xml, "w").write(src.replace('milliseconds="3000"', 'milliseconds="%d"' % args.hold_ms))
    procs = [
        sipp(carrier_xml, carrier_port, workdir),
        sipp("flow_bot_answer.xml", bot_port, workdir),
    ]
    cfg = write_config(workdir, http_port, sip_port, carrier_port, bot_port, peers, args.log_level)
    dg = Dialgate(binary, cfg, workdir, args.log_level)
    api = Api(http_port)
    try:
        deadline = time.monotonic() + 60
        while not api.healthy():
            if time.monotonic() > deadline or dg.p.poll() is not None:
                sys.exit("dialgate did not start; see %s/dialgate.log" % workdir)
            time.sleep(0.1)
        if args.hold:
            print("dialgate %s (%s), log level %s, %d CPUs, load %.2f" % (
                binary, profile, args.log_level or "default", os.cpu_count(), os.getloadavg()[0]))
            targets = sorted(int(n) for n in args.hold.split(","))
            rate = float(args.rates.split(",")[0]) if "--rates" in sys.argv else 50.0
            hold(api, dg, targets, rate, args.workers, peers.base + "/notify", args.settle_seconds)
            return
        idle_rss = dg.rss_kib()
        idle_tables = api.tables()
        finished = 0
        print("dialgate %s (%s), log level %s, hold %d ms, %d-s steps, %d CPUs, load %.2f"
              % (binary, profile, args.log_level or "default", args.hold_ms, args.step_seconds,
                 os.cpu_count(), os.getloadavg()[0]))
        print("%6s %9s %9s %8s %8s %9s %9s %6s %9s %6s %5s %5s %5s" % (
            "rate", "acc/s", "done/s", "api50ms", "api99ms", "conn50ms", "conn99ms",
            "cpu", "KiB/call", "live", "fail", "dup", "lost"))
        rates = [float(r) for r in args.rates.split(",")]
        if args.soak:
            rates = rates[:1]
        for rate in rates:
            results, elapsed, cpu, peak_live, peak_rss, loads, series = run_step(
                api, peers, dg, rate, args.step_seconds, peers.base + "/notify", args.workers)
            ids = [c for c, st, _, _ in results if c]
            refused = [r for r in results if not r[0]]
            lat = [dt * 1000 for _, _, dt, _ in results]
            missing = settle(api, peers, ids, args.settle_seconds)
            with peers.lock:
                notes = {c: list(peers.notes.get(c, [])) for c in ids}
            dup = sum(1 for c in ids if sum(1 for s, _ in notes[c] if s in TERMINAL) > 1)
            completed = sum(1 for c in ids if any(s == "completed" for s, _ in notes[c]))
            failed = sum(1 for c in ids if any(s == "failed" for s, _ in notes[c]))
            conn = connected_delays(api, ids, 200)
            per_call = (peak_rss - idle_rss) / peak_live if peak_live else float("nan")
            print("%6.0f %9.1f %9.1f %8.1f %8.1f %9.1f %9.1f %6.2f %9.0f %6d %5d %5d %5d" % (
                rate, len(ids) / elapsed, completed / elapsed, pct(lat, 50), pct(lat, 99),
                pct(conn, 50), pct(conn, 99), cpu, per_call, peak_live,
                failed + len(refused), dup, len(missing)), flush=True)
            finished += len(ids)
            if loads:
                print("       machine load during the step: %.2f (1-min average)" % max(loads))
            if args.soak:
                # RSS through the run: a slope with the calls dialled is memory kept per
                # finished call (the live calls stay about the same).
                print("       RSS above idle through the run (s: live calls, KiB): " + ", ".join(
                    "%d: %d, %d" % (t, live, rss - idle_rss) for t, live, rss in series))
            if not args.soak and (failed or refused or pct(lat, 99) > args.p99_limit_ms):
                why = "failures" if (failed or refused) else "API p99 > %g ms" % args.p99_limit_ms
                print("stopping the ramp at %g dialouts/s: %s" % (rate, why))
                break
        # What the finished calls left behind: tables should be back to their idle size; RSS
        # above idle divided by the calls is what each finished call kept (leaks, caches and
        # the allocator's retained free memory together).
        after = drained(api, args.drain_seconds)
        rss = dg.rss_kib()
        print("after %d calls ended: RSS %d KiB above idle (%.2f KiB per finished call); tables %s (idle %s)"
              % (finished, rss - idle_rss, (rss - idle_rss) / max(finished, 1),
                 ", ".join("%s=%d" % kv for kv in sorted(after.items())),
                 ", ".join("%s=%d" % kv for kv in sorted(idle_tables.items()))), flush=True)
    finally:
        dg.stop()
        for p in procs:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        peers.shutdown()
        if args.keep:
            print("work directory kept: %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
