#!/usr/bin/env python3
"""A dialgate cluster on loopback, for scripts/cluster-demo and scripts/bench-cluster.

Starts Debian's PostgreSQL and Redis with their own data directories under one temporary
directory (PostgreSQL as the `postgres` user when run as root: the server refuses root), SIPp
as the carrier and as the bot, and N dialgate instances with one configuration (they differ only
in `cluster.instance_id` and their listen ports, as they would on N machines). Everything is on
127.0.0.1, every wait is bounded, and `Kit.stop()` stops everything the kit started, in reverse
order; `Kit` is a context manager and SIGTERM/SIGINT/SIGHUP end the process through it.
"""

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "cluster-dialer-secret"
# Debian package -> a file it installs (as scripts/install-peers tells presence).
PACKAGES = {
    "postgresql": "/usr/bin/pg_ctlcluster",
    "redis-server": "/usr/bin/redis-server",
    "sip-tester": "/usr/bin/sipp",
}


class KitError(Exception):
    """Something the kit needs could not be set up; the message says what and where to look."""


def free_port(kind=socket.SOCK_STREAM):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(what, seconds, ready, alive=lambda: True):
    """Polls `ready()` every 50 ms for at most `seconds`; fails early when `alive()` is false."""
    deadline = time.monotonic() + seconds
    while not ready():
        if not alive():
            raise KitError("%s: the process exited" % what)
        if time.monotonic() > deadline:
            raise KitError("%s: not ready within %g s" % (what, seconds))
        time.sleep(0.05)


def install_missing(log=print):
    """Installs the Debian packages that are missing (as root, or through sudo)."""
    missing = [p for p, f in PACKAGES.items() if not os.path.exists(f)]
    if not missing:
        return
    if not shutil.which("apt-get"):
        raise KitError("missing %s and no apt-get on this machine" % " ".join(missing))
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    if sudo and not shutil.which("sudo"):
        raise KitError("missing %s; run as root (or install sudo)" % " ".join(missing))
    log("installing %s (Debian packages)" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    apt = sudo + ["apt-get", "-o", "DPkg::Lock::Timeout=300"]
    for args in (["update", "-qq"], ["install", "-y", "-qq", "--no-install-recommends", *missing]):
        r = subprocess.run(apt + args, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise KitError("apt-get %s failed:\n%s%s" % (args[0], r.stdout, r.stderr))
    for p in missing:
        if not os.path.exists(PACKAGES[p]):
            raise KitError("%s installed but %s is still missing" % (p, PACKAGES[p]))


def pg_bin():
    """The newest installed PostgreSQL server's bin directory."""
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(d + "/initdb")]
    if not found:
        raise KitError("no /usr/lib/postgresql/*/bin/initdb (Debian package postgresql)")
    return max(found, key=lambda d: int(d.split("/")[-2]) if d.split("/")[-2].isdigit() else 0)


def http_get(url, timeout=2.0):
    """(status, body) of a GET, or (0, b"") when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


class Instance:
    """One dialgate process of the cluster."""

    def __init__(self, name, http_port, sip_port, config, log_path, proc):
        self.name = name
        self.http_port = http_port
        self.sip_port = sip_port
        self.config = config
        self.log_path = log_path
        self.proc = proc
        self.base = "http://127.0.0.1:%d" % http_port

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def live_calls(self):
        """Calls in this instance's registry now (its /metrics `dialgate_calls` gauges)."""
        status, body = http_get(self.base + "/metrics", timeout=10)
        n = 0
        for line in body.decode(errors="replace").splitlines():
            if line.startswith("dialgate_calls{"):
                try:
                    n += int(float(line.split()[-1]))
                except ValueError:
                    pass
        return n


class Kit:
    """Everything started for one cluster; stopped in reverse order by `stop()`."""

    def __init__(self, log=print, keep=False):
        self.log = log
        self.keep = keep
        self.work = tempfile.mkdtemp(prefix="dialgate-cluster-")
        # The PostgreSQL user must reach its directories inside it.
        os.chmod(self.work, 0o755)
        self._stops = []  # (what, function), run in reverse order
        self.instances = []
        self.pg_url = self.redis_url = None
        self.pg_port = self.redis_port = None

    # --- lifetime -------------------------------------------------------------------------

    def __enter__(self):
        def on_signal(signum, _frame):
            raise SystemExit(128 + signum)

        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, on_signal)
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def stop(self):
        """Stops everything started, newest first; every stop is bounded."""
        while self._stops:
            what, fn = self._stops.pop()
            try:
                fn()
            except Exception as e:  # a failed stop must not keep the others from running
                print("cluster kit: stopping %s: %s" % (what, e), file=sys.stderr)
        if self.keep:
            print("work directory kept: %s" % self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def _on_stop(self, what, fn):
        self._stops.append((what, fn))

    def _stop_process(self, proc, grace=20):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    # --- PostgreSQL -----------------------------------------------------------------------

    def _as_postgres(self):
        """preexec_fn and owner for the server's tools: the `postgres` user when root."""
        if os.geteuid() != 0:
            return None, None
        import pwd

        pw = pwd.getpwnam("postgres")

        def drop():
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

        return drop, (pw.pw_uid, pw.pw_gid)

    def start_postgres(self, statement_stats=False):
        """initdb + pg_ctl start on a free port of 127.0.0.1; creates database `dialgate`.
        With `statement_stats`, pg_stat_statements counts every statement the server runs."""
        bin_dir = pg_bin()
        drop, owner = self._as_postgres()
        data, run = os.path.join(self.work, "pg-data"), os.path.join(self.work, "pg-run")
        for d in (data, run):
            os.makedirs(d, mode=0o700)
            if owner:
                os.chown(d, *owner)
        self.pg_port = free_port()

        def tool(name, *args, timeout=120):
            r = subprocess.run([os.path.join(bin_dir, name), *args], cwd=run, preexec_fn=drop,
                               capture_output=True, text=True, timeout=timeout)
            if r.returncode != 0:
                raise KitError("%s failed:\n%s%s" % (name, r.stdout, r.stderr))

        tool("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        opts = "-k %s -p %d -c listen_addresses=127.0.0.1 -c max_connections=300" % (run, self.pg_port)
        if statement_stats:
            opts += " -c shared_preload_libraries=pg_stat_statements"
        tool("pg_ctl", "start", "-D", data, "-l", os.path.join(run, "server.log"), "-w", "-t", "60", "-o", opts)
        self._on_stop("PostgreSQL", lambda: tool("pg_ctl", "stop", "-D", data, "-m", "fast", "-w", "-t", "30", timeout=60))
        tool("createdb", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "dialgate")
        self.pg_url = "postgres://postgres@127.0.0.1:%d/dialgate" % self.pg_port
        if statement_stats:
            self.psql("CREATE EXTENSION pg_stat_statements")
        self.pg_version = os.path.basename(os.path.dirname(bin_dir))
        return self.pg_url

    # --- Redis ----------------------------------------------------------------------------

    def start_redis(self):
        """redis-server on a free port of 127.0.0.1, no persistence, its own directory."""
        d = os.path.join(self.work, "redis")
        os.makedirs(d)
        self.redis_port = free_port()
        log = open(os.path.join(d, "redis.log"), "wb")
        proc = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", d, "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT)
        self._on_stop("Redis", lambda: self._stop_process(proc, 10))
        wait_until("redis-server", 10, lambda: self.redis_command("PING") == "PONG",
                   lambda: proc.poll() is None)
        self.redis_url = "redis://127.0.0.1:%d" % self.redis_port
        return self.redis_url

    def redis_command(self, *args):
        r = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.redis_port), *args],
                           capture_output=True, text=True, timeout=5)
        return r.stdout.strip()

    def redis_calls(self):
        """Calls per command since Redis started (INFO commandstats), e.g. {"evalsha": 12}."""
        out = {}
        for line in self.redis_command("INFO", "commandstats").splitlines():
            if line.startswith("cmdstat_") and ":" in line:
                name, stats = line[len("cmdstat_"):].split(":", 1)
                for kv in stats.split(","):
                    if kv.startswith("calls="):
                        out[name] = int(kv[len("calls="):])
        return out

    def psql(self, sql):
        """Runs `sql` in database `dialgate`; its unaligned output."""
        r = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.pg_port), "-U", "postgres", "-d", "dialgate",
             "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise KitError("psql %r failed: %s" % (sql, r.stderr.strip()))
        return r.stdout.strip()

    def pg_counts(self):
        """(statements, transactions) PostgreSQL ran in database `dialgate` so far: statements
        from pg_stat_statements (BEGIN and COMMIT included; start with statement_stats=True),
        transactions from pg_stat_database. The psql queries themselves count too (a few)."""
        row = self.psql(
            "SELECT (SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements s JOIN pg_database d "
            "ON d.oid = s.dbid WHERE d.datname = 'dialgate'), "
            "(SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'dialgate')")
        a, b = row.split("|")
        return int(a), int(b)

    # --- SIPp -----------------------------------------------------------------------------

    def start_sipp(self, name, scenario_xml, port):
        """A SIPp UAS answering any number of calls on 127.0.0.1:port."""
        d = os.path.join(self.work, "sipp-" + name)
        os.makedirs(d, exist_ok=True)
        proc = subprocess.Popen(
            ["sipp", "-sf", scenario_xml, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(port),
             "-nostdin", "-max_socket", "60000", "-trace_err", "-error_file", os.path.join(d, "errors.log")],
            cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._on_stop("SIPp " + name, lambda: self._stop_process(proc, 10))
        time.sleep(0.2)
        if proc.poll() is not None:
            raise KitError("SIPp %s exited at start (port %d in use?)" % (name, port))
        return proc

    def carrier_scenario(self, hold_ms):
        """tests/sipp/flow_carrier_answer_bye.xml with the carrier's hold time set."""
        src = open(os.path.join(ROOT, "tests/sipp/flow_carrier_answer_bye.xml")).read()
        path = os.path.join(self.work, "carrier-%d.xml" % hold_ms)
        open(path, "w").write(src.replace('milliseconds="3000"', 'milliseconds="%d"' % hold_ms))
        return path

    # --- dialgate -------------------------------------------------------------------------

    def start_instances(self, binary, n, yaml_body, lease_sec=5, postgres=True, redis=True,
                        log_level="", first_rtp=30000, rtp_per_instance=2000, prefix="dg-"):
        """Starts `n` dialgate instances in parallel and waits (bounded) until each answers
        /healthz. `yaml_body` is the configuration without `server` and `cluster`; those two
        sections are the same for every instance except `instance_id` and the ports. Instances
        are named `<prefix><i>`; a prefix used before in this kit gets a number appended."""
        self._prefixes = getattr(self, "_prefixes", {})
        seen = self._prefixes.get(prefix, 0)
        self._prefixes[prefix] = seen + 1
        if seen:
            prefix = "%s%d-" % (prefix, seen + 1)
        started = []
        for i in range(1, n + 1):
            name = "%s%d" % (prefix, i)
            d = os.path.join(self.work, name)
            os.makedirs(os.path.join(d, "data"))
            http_port, sip_port = free_port(), free_port(socket.SOCK_DGRAM)
            rtp = first_rtp + (i - 1) * rtp_per_instance
            cluster = ""
            if postgres or redis:
                cluster = "cluster:\n  instance_id: %s\n" % name
                if postgres:
                    cluster += "  postgres_url_env: DIALGATE_PG_URL\n"
                if redis:
                    cluster += "  redis_url_env: DIALGATE_REDIS_URL\n"
                cluster += "  lease_sec: %d\n" % lease_sec
            cfg = os.path.join(d, "dialgate.yaml")
            with open(cfg, "w") as f:
                f.write(
                    "server:\n"
                    "  sip:\n"
                    "    listen: [ { transport: udp, address: \"127.0.0.1:%d\" } ]\n"
                    "  http: { listen: \"127.0.0.1:%d\", plain_http: true, max_connections: 4096 }\n"
                    "  rtp: { port_min: %d, port_max: %d, inactivity_timeout_sec: 0 }\n"
                    "  data_dir: %s/data\n"
                    "  bot_answer_timeout_sec: 10\n"
                    "  notify_allow: [127.0.0.0/8]\n"
                    % (sip_port, http_port, rtp, rtp + rtp_per_instance - 1, d)
                    + yaml_body + cluster)
            env = dict(os.environ, CLUSTER_DIALER_SECRET=SECRET)
            if self.pg_url:
                env["DIALGATE_PG_URL"] = self.pg_url
            if self.redis_url:
                env["DIALGATE_REDIS_URL"] = self.redis_url
            if log_level:
                env["RUST_LOG"] = log_level
            log_path = os.path.join(d, "dialgate.log")
            log = open(log_path, "wb")
            proc = subprocess.Popen([binary, "run", "--config", cfg], env=env, stdout=log, stderr=log)
            inst = Instance(name, http_port, sip_port, cfg, log_path, proc)
            self._on_stop(name, lambda p=proc: self._stop_process(p))
            started.append(inst)
        for inst in started:
            try:
                wait_until(inst.name, 90, lambda: http_get(inst.base + "/healthz", 1)[0] == 200,
                           lambda: inst.proc.poll() is None)
            except KitError as e:
                raise KitError("%s; its log:\n%s" % (e, inst.log_tail()))
        self.instances.extend(started)
        return started

    def stop_instances(self):
        """Stops the running instances (before starting others in the same kit)."""
        for inst in self.instances:
            self._stop_process(inst.proc)
        self.instances = []


def bot_yaml(bot_port, max_cps, max_concurrent, carrier_port):
    """Bots, trunk, route and API client shared by the demo and the benchmark."""
    return (
        "bots:\n"
        "  - id: demo-bot\n"
        "    name: Demo Bot\n"
        "    sip_uri: \"sip:bot@127.0.0.1:%d\"\n"
        "    outbound: { enabled: true, max_cps: %s, max_concurrent: %d }\n"
        "sip_connections:\n"
        "  - id: carrier\n"
        "    name: Carrier\n"
        "    address: \"127.0.0.1:%d\"\n"
        "routing_rules:\n"
        "  - { name: all, type: call, origin_bot: \"*\", route: { sip_connection: carrier } }\n"
        "api_clients:\n"
        "  - client_id: dialer\n"
        "    secret_env: CLUSTER_DIALER_SECRET\n"
        "    groups: [call_control, call_data_manager]\n"
        % (bot_port, max_cps, max_concurrent, carrier_port))


def find_binary(explicit=""):
    """The dialgate binary: `explicit`, else DIALGATE_BIN, else target/release, else target/debug."""
    for p in (explicit, os.environ.get("DIALGATE_BIN", ""),
              os.path.join(ROOT, "target/release/dialgate"), os.path.join(ROOT, "target/debug/dialgate")):
        if p and os.access(p, os.X_OK):
            return p
    raise KitError("no dialgate binary: cargo build --release --bin dialgate (or set DIALGATE_BIN)")
