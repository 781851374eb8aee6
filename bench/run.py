#!/usr/bin/python3
"""Herald against its anchors, on this machine, in one run (`make bench`).

Systems (all behind nginx 1.22 on 127.0.0.1, 2 workers, the same client and workload):
  herald          nginx -> herald-fcgi; status written by bench/publish.py (temp + rename, 10/s)
  herald-runner   nginx -> herald-fcgi; status written by herald-runner running demo jobs (interval_ms 100)
  nchan           nginx + libnginx-mod-nchan; bench/publish.py POSTs the same JSON to the channel
  django-sync     gunicorn sync workers, StreamingHttpResponse polling the Redis cache every 100 ms
  django-gthread  gunicorn gthread workers, same view
  django-async    uvicorn workers, async generator view awaiting cache.aget

Environment: BENCH_N=1000,5000,10000  BENCH_SYSTEMS=herald,nchan,django (or the names
above)  BENCH_WINDOW=20 (seconds measured per run)  BENCH_SCENARIOS=one,spread.
--quick: small N, short windows, no submit/dispatch extras unless asked.
Writes bench/results/*.json, docs/BENCHMARKS.md and docs/bench-latency.png.

--rows picks the row sets (`make bench ROWS=...`): `classic` (the above), `fanout` (issue 11:
Herald through herald-runner, nchan and the relay floor at 5,000 streams, repeated; see
bench/fanout.py, which has its own BENCH_FANOUT_* variables), `stores` (issue 10: the PostgreSQL
store beside the state directory, two herald-fcgi nodes; see bench/stores.py), or `all` (the
default: all three); and `variants`, alone: the relay floor under other nginx settings. Run alone,
`fanout`, `stores` and `variants` rewrite only their own section of docs/BENCHMARKS.md.
Everything it starts is stopped at the end, also on errors.
"""

from __future__ import annotations

import argparse
import array
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
sys.path.insert(0, os.path.join(REPO, "scripts"))
from herald_stack import Stack, descendants, free_port, nginx_conf_text, stop_process  # noqa: E402

VENV = os.path.join(BENCH, ".venv")
VPY = os.path.join(VENV, "bin", "python")
RESULTS = os.path.join(BENCH, "results")
WORK = os.path.join(RESULTS, "work")
SCRATCH = os.path.join(REPO, ".build-release")
APT = ["nginx", "libfcgi-dev", "pkg-config", "libnginx-mod-nchan", "redis-server", "wrk", "python3-matplotlib", "python3-venv"]
PIP = ["django<6", "gunicorn", "uvicorn", "httptools", "uvloop", "django-redis", "redis"]
# What the fan-out rows alone need: the client's uvloop, nchan, a C compiler for the floor.
FANOUT_APT = ["nginx", "libfcgi-dev", "pkg-config", "libnginx-mod-nchan", "gcc", "libc6-dev", "python3-venv"]
FANOUT_PIP = ["uvloop"]
# What the store rows alone need: the client's uvloop, a PostgreSQL server and libpq.
STORES_APT = ["nginx", "libfcgi-dev", "pkg-config", "postgresql", "libpq-dev", "python3-venv"]
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
SPREAD_JOBS = 100
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# gunicorn's documented starting point is 2 x cores + 1 workers.
DJANGO_WORKERS = 2 * (os.cpu_count() or 2) + 1
GTHREADS = 50


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------
# set-up


def ensure_packages(rows):
    """The Debian and PyPI packages the row sets in `rows` need."""
    classic = "classic" in rows
    apt = (APT if classic else []) + (FANOUT_APT if rows & {"fanout", "variants"} else []) + (STORES_APT if "stores" in rows else [])
    subprocess.run([os.path.join(REPO, "scripts", "ensure-packages")] + list(dict.fromkeys(apt)), check=True)
    if not os.path.exists(VPY):
        subprocess.run(["/usr/bin/python3", "-m", "venv", VENV], check=True)
    modules = "django, gunicorn, uvicorn, uvloop, django_redis, httptools" if classic else "uvloop"
    r = subprocess.run([VPY, "-c", f"import {modules}"], stderr=subprocess.DEVNULL)
    if r.returncode != 0:
        subprocess.run([VPY, "-m", "pip", "install", "-q"] + (PIP if classic else FANOUT_PIP), check=True)


def build_herald():
    """Release build into .build-release; returns the bin dir."""
    if os.environ.get("HERALD_BIN_DIR"):
        return os.environ["HERALD_BIN_DIR"]
    log("swift build -c release --scratch-path .build-release")
    subprocess.run(["swift", "build", "-c", "release", "--scratch-path", SCRATCH], cwd=REPO, check=True)
    return subprocess.run(["swift", "build", "-c", "release", "--scratch-path", SCRATCH, "--show-bin-path"],
                          cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---------------------------------------------------------------------------
# process accounting


def family(pids):
    out = set()
    for p in pids:
        if p and os.path.exists(f"/proc/{p}"):
            out.add(p)
            out.update(descendants(p))
    return sorted(out)


def proc_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        fields = s[s.rfind(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_children_cpu(pid):
    """CPU seconds of the children the process has waited for (cutime + cstime)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
        fields = s[s.rfind(")") + 2:].split()
        return (int(fields[13]) + int(fields[14])) / TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_mem(pid):
    """(RSS, PSS) in bytes."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def proc_threads(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


# ---------------------------------------------------------------------------
# nginx for nchan and django: the same nginx.conf as the Herald stack (herald_stack.nginx_conf_text)


def nginx_conf(workdir, port, server, main=""):
    path = os.path.join(workdir, "nginx.conf")
    with open(path, "w") as f:
        f.write(nginx_conf_text(workdir, f"127.0.0.1:{port}", server, main_head=main,
                                error_log=os.path.join(workdir, "nginx-error.log")))
    return path


def start_nginx(workdir):
    logf = open(os.path.join(workdir, "nginx.log"), "ab")
    subprocess.run(["nginx", "-t", "-q", "-p", workdir, "-c", "nginx.conf", "-e", os.path.join(workdir, "nginx-error.log")],
                   check=True)
    return subprocess.Popen(["nginx", "-p", workdir, "-c", "nginx.conf", "-e", os.path.join(workdir, "nginx-error.log")],
                            stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def wait_http(port, path, timeout=20, ok=(200,)):
    import http.client
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path, headers={"Accept": "text/event-stream"})
            r = c.getresponse()
            last = r.status
            c.close()
            if r.status in ok:
                return True
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise RuntimeError(f"http://127.0.0.1:{port}{path} not ready: {last}")


# ---------------------------------------------------------------------------
# the systems: each is a context manager with .port, .pids(), .targets(jobs), .publisher(...)


def job_doc(i, id_="bench"):
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {"id": id_, "kind": "demo", "state": "running", "progress": 0.0, "message": "step 0",
            "params": {"steps": "10000", "interval_ms": "100"}, "created_at": now, "started_at": now,
            "finished_at": None, "updated_at": now, "attempt": 1, "exit_code": None, "error": None,
            "result": None, "seq": 1}


class HeraldSystem:
    """nginx + herald-fcgi (scripts/herald_stack.py); publisher: bench/publish.py file mode, or the runner."""

    def __init__(self, bin_dir, workdir, runner=False):
        self.runner = runner
        self.name = "herald-runner" if runner else "herald"
        self.stack = Stack(bin_dir, workdir, runner=runner, stop_grace=5,
                           config_overrides={"workers": SPREAD_JOBS + 10} if runner else {})
        self.ids = []

    def __enter__(self):
        self.stack.start()
        self.port = self.stack.port
        return self

    def __exit__(self, *exc):
        # Cancel running demo jobs so the runner stops at once.
        for i in self.ids:
            try:
                self.stack.request("POST", f"/jobs/{i}/cancel", timeout=5)
            except OSError:
                pass
        self.stack.stop()

    def pids(self):
        procs = [self.stack.nginx_proc, self.stack.fcgi_proc] + ([self.stack.runner_proc] if self.runner else [])
        return family([p.pid for p in procs if p is not None])

    def fcgi_pid(self):
        return self.stack.fcgi_proc.pid

    def prepare(self, njobs):
        """Creates njobs jobs; returns the publisher's job list (file mode) or None (runner)."""
        jobs = []
        for i in range(njobs):
            params = {"steps": "10000", "interval_ms": "100"} if self.runner else {}
            job = self.stack.submit("demo", params)
            self.ids.append(job["id"])
            doc = {k: v for k, v in job.items() if k != "links"}
            doc.update({"state": "running", "started_at": doc["created_at"], "progress": 0.0})
            jobs.append({"key": job["id"], "doc": doc})
        if self.runner:
            # Wait until every job runs (its seq rising) before measuring.
            deadline = time.monotonic() + 30
            for i in self.ids:
                while time.monotonic() < deadline:
                    st, _, j = self.stack.json("GET", f"/jobs/{i}")
                    if j and j.get("state") == "running":
                        break
                    time.sleep(0.1)
            return None
        return jobs

    def path(self, key):
        return f"/jobs/{key}/events"

    def publisher_args(self):
        return ["--mode", "file", "--state-dir", self.stack.state_dir]


class NchanSystem:
    name = "nchan"

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None

    def __enter__(self):
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port()
        server = """
        location ~ ^/pub/(\\w+)$ {
            allow 127.0.0.1; deny all;
            nchan_publisher;
            nchan_channel_id $1;
            nchan_message_buffer_length 10;
            nchan_message_timeout 5m;
        }
        location ~ ^/sub/(\\w+)$ {
            nchan_subscriber eventsource;
            nchan_channel_id $1;
            nchan_subscriber_first_message -1;
        }
"""
        nginx_conf(self.workdir, self.port, server, main=f"load_module {NCHAN_MODULE};")
        self.proc = start_nginx(self.workdir)
        time.sleep(0.3)
        if self.proc.poll() is not None:
            raise RuntimeError("nginx (nchan) exited: " + open(os.path.join(self.workdir, "nginx-error.log")).read()[-2000:])
        return self

    def __exit__(self, *exc):
        stop_process(self.proc, 5)

    def pids(self):
        return family([self.proc.pid])

    def prepare(self, njobs):
        import http.client
        jobs = []
        for i in range(njobs):
            key = f"job{i}"
            doc = job_doc(i, key)
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("POST", f"/pub/{key}", body=json.dumps(doc), headers={"Content-Type": "application/json"})
            c.getresponse().read()
            c.close()
            jobs.append({"key": key, "doc": doc})
        wait_http(self.port, "/sub/job0", timeout=5)  # answers once the channel has a message
        return jobs

    def path(self, key):
        return f"/sub/{key}"

    def publisher_args(self):
        return ["--mode", "nchan", "--port", str(self.port)]


class DjangoSystem:
    """nginx -> gunicorn (sync | gthread) or uvicorn, Redis as Django's cache."""

    def __init__(self, workdir, variant):
        self.workdir = workdir
        self.variant = variant
        self.name = f"django-{variant}"
        self.procs = []

    def _spawn(self, name, argv, env=None):
        logf = open(os.path.join(self.workdir, name + ".log"), "ab")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             cwd=BENCH, env=env, start_new_session=True)
        self.procs.append(p)
        return p

    def __enter__(self):
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self):
        os.makedirs(self.workdir, exist_ok=True)
        w = self.workdir
        redis_sock = os.path.join(w, "redis.sock")
        app_sock = os.path.join(w, "app.sock")
        self.redis = self._spawn("redis", ["redis-server", "--port", "0", "--unixsocket", redis_sock, "--unixsocketperm", "700",
                                           "--save", "", "--appendonly", "no", "--maxclients", "20000", "--dir", w])
        self.env = dict(os.environ, BENCH_REDIS=f"unix://{redis_sock}?db=0", DJANGO_SETTINGS_MODULE="djangoapp",
                        PYTHONPATH=BENCH)
        if self.variant == "sync":
            argv = [os.path.join(VENV, "bin", "gunicorn"), "-k", "sync", "-w", str(DJANGO_WORKERS), "--timeout", "600",
                    "--backlog", "4096", "-b", f"unix:{app_sock}", "djangoapp:wsgi"]
        elif self.variant == "gthread":
            argv = [os.path.join(VENV, "bin", "gunicorn"), "-k", "gthread", "-w", str(DJANGO_WORKERS), "--threads", str(GTHREADS),
                    "--timeout", "600", "--backlog", "4096", "-b", f"unix:{app_sock}", "djangoapp:wsgi"]
        else:
            argv = [os.path.join(VENV, "bin", "uvicorn"), "djangoapp:asgi", "--uds", app_sock, "--workers", str(os.cpu_count() or 2),
                    "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--backlog", "4096", "--log-level", "warning"]
        self.app = self._spawn("app", argv, self.env)
        server = f"""
        location /dj/ {{
            proxy_pass http://unix:{app_sock}:;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_read_timeout 120s;
        }}
"""
        nginx_conf(w, free_port(), server)
        self.port = int(re.search(r"listen 127.0.0.1:(\d+)", open(os.path.join(w, "nginx.conf")).read()).group(1))
        self.nginx = self._spawn("nginx", ["nginx", "-p", w, "-c", "nginx.conf", "-e", os.path.join(w, "nginx-error.log")])
        deadline = time.monotonic() + 20
        while not os.path.exists(app_sock) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            stop_process(p, 5)

    def pids(self):
        return family([p.pid for p in self.procs])

    def prepare(self, njobs):
        jobs = []
        for i in range(njobs):
            key = f"job{i}"
            jobs.append({"key": key, "doc": job_doc(i, key)})
        # seed the cache once through the task's own path
        seed = os.path.join(self.workdir, "seed.json")
        with open(seed, "w") as f:
            json.dump(jobs, f)
        subprocess.run([VPY, os.path.join(BENCH, "publish.py"), "--mode", "django", "--jobs", seed, "--out", seed + ".out",
                        "--duration", "0.01"], env=self.env, check=True, timeout=60)
        for j in jobs:
            j["doc"]["seq"] += 1
        wait_http(self.port, self.path("job0"), timeout=20)
        return jobs

    def path(self, key):
        return f"/dj/{'async' if self.variant == 'async' else 'sync'}/{key}/events"

    def publisher_args(self):
        return ["--mode", "django"]


# ---------------------------------------------------------------------------
# one measurement


def client_procs(n):
    return max(1, math.ceil(n / 6000))


def measure(system, n, scenario, window, outdir, setup_timeout=90, first_event_timeout=20):
    njobs = 1 if scenario == "one" else SPREAD_JOBS
    tag = f"{system.name}-{scenario}-{n}"
    run_dir = os.path.join(outdir, tag)
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    jobs = system.prepare(njobs)
    keys = [j["key"] for j in jobs] if jobs is not None else system.ids
    pub = None
    clients = []
    try:
        if jobs is not None:
            jobs_file = os.path.join(run_dir, "jobs.json")
            with open(jobs_file, "w") as f:
                json.dump(jobs, f)
            pub = subprocess.Popen([VPY, os.path.join(BENCH, "publish.py"), "--jobs", jobs_file,
                                    "--out", os.path.join(run_dir, "published.json"), "--duration", "900"]
                                   + system.publisher_args(),
                                   env=getattr(system, "env", None), stdin=subprocess.DEVNULL, start_new_session=True)
        targets = os.path.join(run_dir, "targets.txt")
        with open(targets, "w") as f:
            for s in range(n):
                j = s % njobs
                f.write(f"{j} {system.path(keys[j])}\n")
        k = client_procs(n)
        load_before = loadavg()
        base = family(system.pids())
        cpu_setup0 = sum(proc_cpu(p) for p in base)
        for i in range(k):
            clients.append(subprocess.Popen(
                [VPY, os.path.join(BENCH, "client.py"), "--port", str(system.port), "--targets", targets,
                 "--index", str(i), "--procs", str(k), "--out", os.path.join(run_dir, f"client{i}.json"),
                 "--setup-timeout", str(setup_timeout), "--first-event-timeout", str(first_event_timeout)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True))
        ready = []
        for c in clients:
            line = c.stdout.readline()
            if not line:
                raise RuntimeError(f"{tag}: a client exited during set-up")
            ready.append(json.loads(line))
        opened = sum(r["opened"] for r in ready)
        setup_s = max((r["setup_s"] or 0) for r in ready)
        pids = system.pids()
        cpu_setup = sum(proc_cpu(p) for p in pids) - cpu_setup0
        t0 = time.time() + 2.0
        t1 = t0 + window
        for c in clients:
            c.stdin.write(f"{t0} {t1}\n")
            c.stdin.flush()
        time.sleep(max(0, t0 - time.time()))
        pids = system.pids()
        cpu0 = {p: proc_cpu(p) for p in pids}
        peak_rss = peak_pss = 0
        fcgi_threads = []
        while time.time() < t1:
            pids = system.pids()
            mem = [proc_mem(p) for p in pids]
            peak_rss = max(peak_rss, sum(m[0] for m in mem))
            peak_pss = max(peak_pss, sum(m[1] for m in mem))
            if hasattr(system, "fcgi_pid"):
                fcgi_threads.append(proc_threads(system.fcgi_pid()))
            time.sleep(min(1.0, max(0.0, t1 - time.time())))
        pids = system.pids()
        cpu = sum(proc_cpu(p) - cpu0.get(p, 0.0) for p in pids)
        for c in clients:
            c.wait(timeout=window + 120)
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        if pub is not None:
            pub.send_signal(signal.SIGTERM)
            try:
                pub.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pub.kill()
                pub.wait()
    results = [json.load(open(os.path.join(run_dir, f"client{i}.json"))) for i in range(len(clients))]
    delays = array.array("d")
    for i in range(len(clients)):
        with open(os.path.join(run_dir, f"client{i}.json.delays"), "rb") as f:
            data = f.read()
        delays.frombytes(data)
    counts: dict = {}
    subs_per_job: dict = {}
    for r in results:
        for key, v in r["counts"].items():
            counts[int(key)] = counts.get(int(key), 0) + v
        for j, v in r["subs_per_job"].items():
            subs_per_job[int(j)] = subs_per_job.get(int(j), 0) + v
    # Expected deliveries: every (job, seq) published in the window to every subscriber open throughout.
    expected: dict = {}
    if jobs is not None:
        published = json.load(open(os.path.join(run_dir, "published.json")))["published"]
        from datetime import datetime
        for j, entries in published.items():
            for seq, ts in entries:
                t = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
                if t0 <= t < t1:
                    expected[(int(j) << 32) | seq] = True
    else:
        expected = dict.fromkeys(counts, True)  # runner: every seq anyone saw
    lost = 0
    for key in expected:
        lost += max(0, subs_per_job.get(key >> 32, 0) - counts.get(key, 0))
    vals = sorted(delays)

    def pct(q):
        return vals[min(len(vals) - 1, int(q * len(vals)))] * 1000 if vals else None

    client_cpu = sum(r["window_cpu_s"] for r in results)
    res = {
        "system": system.name, "scenario": scenario, "n": n, "jobs": njobs, "opened": opened,
        "full_window": sum(subs_per_job.values()), "window_s": window, "setup_s": setup_s,
        "setup_rate": opened / setup_s if setup_s else None, "setup_cpu_s": cpu_setup,
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": vals[-1] * 1000 if vals else None,
        "received": len(vals), "expected": sum(subs_per_job.get(k >> 32, 0) for k in expected),
        "lost": lost, "out_of_order": sum(r["out_of_order"] for r in results),
        "dropped": sum(r["dropped_during_window"] for r in results),
        "errors": {k: v for r in results for k, v in r["errors"].items()},
        "rss_mb": peak_rss / 2**20, "pss_mb": peak_pss / 2**20, "cpu_s": cpu, "cpu_pct": 100 * cpu / window,
        "client_cpu_s": client_cpu, "client_cpu_pct": 100 * client_cpu / window, "client_procs": len(clients),
        "load": load_before, "fcgi_threads": sorted(set(fcgi_threads)),
    }
    for i in range(len(clients)):
        os.unlink(os.path.join(run_dir, f"client{i}.json.delays"))
    with open(os.path.join(outdir, tag + ".json"), "w") as f:
        json.dump(res, f, indent=1)
    log(f"{tag}: opened {opened}/{n} in {setup_s:.1f}s, p50 {fmt(res['p50_ms'])} p99 {fmt(res['p99_ms'])} "
        f"max {fmt(res['max_ms'])} ms, lost {lost}/{res['expected']}, rss {res['rss_mb']:.0f} MB, "
        f"cpu {res['cpu_pct']:.0f}%, client cpu {res['client_cpu_pct']:.0f}%, errors {res['errors']}")
    return res


def fmt(v, d=1):
    return "–" if v is None else f"{v:.{d}f}"


# ---------------------------------------------------------------------------
# Herald extras: submit throughput and dispatch overhead


def submit_throughput(bin_dir, seconds):
    lua = os.path.join(BENCH, "post.lua")
    with Stack(bin_dir, os.path.join(WORK, "submit"), runner=False, stop_grace=5) as s:
        out = {}
        for conns in (1, 16, 64):
            r = subprocess.run(["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{seconds}s", "-s", lua, f"{s.url}/jobs"],
                               capture_output=True, text=True, timeout=seconds + 60)
            m = re.search(r"Requests/sec:\s+([\d.]+)", r.stdout)
            if not m:
                raise RuntimeError(f"wrk: {r.stdout[-500:]} {r.stderr[-500:]}")
            rps = float(m.group(1))
            bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", r.stdout)
            lat = re.search(r"Latency\s+([\d.]+\w+)", r.stdout)
            out[conns] = {"rps": rps, "non2xx": int(bad.group(1)) if bad else 0, "latency_avg": lat.group(1) if lat else None}
            log(f"submit: {conns} connections: {rps:.0f}/s, non-2xx {out[conns]['non2xx']}")
        return out


def dispatch_overhead(bin_dir, batch):
    from datetime import datetime

    def ts(v):
        return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()

    out = {}
    noop = {"kinds": {"noop": {"command": ["/bin/true"]}}, "workers": 4}
    # work mode: jobs submitted one at a time through nginx to a waiting runner.
    with Stack(bin_dir, os.path.join(WORK, "dispatch-work"), runner=True, stop_grace=5, config_overrides=noop) as s:
        ids = []
        for _ in range(batch):
            ids.append(s.submit("noop")["id"])
            time.sleep(0.02)
        lat = []
        for i in ids:
            j = s.wait_job(i, timeout=60)
            lat.append((ts(j["started_at"]) - ts(j["created_at"])) * 1000)
        lat.sort()
        out["work"] = {"jobs": batch, "p50_ms": lat[len(lat) // 2], "p99_ms": lat[int(0.99 * (len(lat) - 1))], "max_ms": lat[-1]}
        log(f"dispatch (work): submit -> running p50 {out['work']['p50_ms']:.1f} ms, max {lat[-1]:.1f} ms")
    # run mode: a batch waits in the queue; one `herald-runner run` drains it.
    with Stack(bin_dir, os.path.join(WORK, "dispatch-run"), runner=False, stop_grace=5, config_overrides=noop) as s:
        ids = [s.submit("noop")["id"] for _ in range(batch)]
        t = time.time()
        subprocess.run([os.path.join(bin_dir, "herald-runner"), "run", "--config", s.config_path], check=True,
                       timeout=600, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.time() - t
        starts = sorted(ts(s.json("GET", f"/jobs/{i}")[2]["started_at"]) for i in ids)
        out["run"] = {"jobs": batch, "wall_s": wall, "per_job_ms": wall * 1000 / batch, "jobs_per_s": batch / wall,
                      "first_running_ms": (starts[0] - t) * 1000}
        log(f"dispatch (run): {batch} no-op jobs in {wall:.2f}s = {out['run']['per_job_ms']:.1f} ms/job")
    return out


# ---------------------------------------------------------------------------
# report


def splice_section(doc, head, section):
    """Puts `section` (starting with the `head` line) into doc in place of the section under that
    heading, else before the soak: the other sections stay as they were generated. Notes inside a
    section use ### headings only."""
    text = open(doc).read() if os.path.exists(doc) else ""
    start = text.find(head)
    if start >= 0:
        end = text.find("\n## ", start + len(head))
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    else:
        at = text.find("## Soak")
        text = (text[:at] + section + "\n" + text[at:]) if at >= 0 else text + "\n" + section
    with open(doc, "w") as f:
        f.write(text)


def versions(bin_dir):
    def sh(cmd):
        try:
            r = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=30)
            return (r.stdout + r.stderr).strip()
        except Exception as e:  # noqa: BLE001
            return f"? ({e})"

    def pipv(pkg):
        return sh(f"{VPY} -c 'import importlib.metadata as m; print(m.version(\"{pkg}\"))'")

    mem = sh("free -g | awk '/Mem:/ {print $2}'")
    return {
        "nproc": os.cpu_count(), "memory_gib": mem, "kernel": platform.release(),
        "cpu": sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip(),
        "os": sh(". /etc/os-release; echo $PRETTY_NAME"),
        "nginx": sh("nginx -v 2>&1").replace("nginx version: ", ""),
        "nchan": sh("dpkg-query -W -f='${Version}' libnginx-mod-nchan"),
        "redis": sh("redis-server --version").split(" v=")[1].split()[0] if " v=" in sh("redis-server --version") else "?",
        "swift": sh("swift --version 2>&1 | head -1"),
        "herald": sh(f"{bin_dir}/herald-fcgi --version"),
        "python": platform.python_version(),
        "django": pipv("django"), "gunicorn": pipv("gunicorn"), "uvicorn": pipv("uvicorn"),
        "django-redis": pipv("django-redis"), "uvloop": pipv("uvloop"),
        "wrk": sh("dpkg-query -W -f='${Version}' wrk"),
        "rlimit_nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
        "git": sh(f"git -C {REPO} rev-parse --short HEAD"),
    }


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scen = [s for s in ("one", "spread") if any(r["scenario"] == s for r in rows)]
    fig, axes = plt.subplots(1, len(scen), figsize=(6.5 * len(scen), 4.8), squeeze=False)
    colors = {"herald": "tab:blue", "herald-runner": "tab:cyan", "nchan": "tab:green",
              "django-sync": "tab:red", "django-gthread": "tab:orange", "django-async": "tab:purple"}
    for ax, s in zip(axes[0], scen):
        for name in colors:
            rs = sorted((r for r in rows if r["system"] == name and r["scenario"] == s and r["p99_ms"] is not None),
                        key=lambda r: r["n"])
            if not rs:
                continue
            xs = [r["opened"] for r in rs]
            ax.plot(xs, [r["p99_ms"] for r in rs], "o-", color=colors[name], label=f"{name} p99")
            ax.plot(xs, [r["p50_ms"] for r in rs], "s--", color=colors[name], alpha=0.6, label=f"{name} p50")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("concurrent streams (opened)")
        ax.set_ylabel("publish → receipt delay (ms)")
        ax.set_title("one job" if s == "one" else f"spread over {SPREAD_JOBS} jobs")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle("SSE delivery delay, 10 status changes/s per job (same machine, same client)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(rows, extras, facts, runs, path):
    lines = []
    A = lines.append
    A("# Benchmarks: Herald against nchan and the classic Django SSE design\n")
    A("Generated by `bench/run.py` (`make bench`); the reading at the end is written by hand "
      "for the recorded run. Raw results: `bench/results/*.json` (not committed).\n")
    A("## How to run\n")
    A("```")
    A("make bench ROWS=classic                      # these tables (N = 1000, 5000, 10000), ~25 min")
    A("make bench ROWS=fanout                       # Herald / nchan / relay floor at 5,000 streams, ~8 min")
    A("make bench ROWS=stores                       # the PostgreSQL store beside the state directory, ~9 min")
    A("make bench ROWS=variants                     # the relay floor under other nginx settings")
    A("BENCH_N=1000,5000 BENCH_SYSTEMS=herald,nchan make bench")
    A("/usr/bin/python3 bench/run.py --quick        # a dry run: small N, short windows")
    A("/usr/bin/python3 bench/soak.py --minutes 2   # the soak (10,000 streams, jobs finishing throughout)")
    A("/usr/bin/python3 bench/scan.py               # /healthz, /metrics, a list with 10,000 kept jobs")
    A("```")
    A("The recorded results come from these invocations (in order; later ones with `--keep` re-measured or added rows):\n")
    for r in runs:
        A(f"- {r['at']}, load {' '.join(r['load'])}: `BENCH_N={r['n_list']} BENCH_SYSTEMS={r['systems_env']} "
          f"BENCH_WINDOW={r['window']:g} /usr/bin/python3 {r['argv']}`")
    A("")
    A("## Machine\n")
    A("| fact | value |\n| --- | --- |")
    for k in ("cpu", "nproc", "memory_gib", "os", "kernel", "nginx", "nchan", "redis", "swift", "herald", "python",
              "django", "gunicorn", "uvicorn", "django-redis", "uvloop", "wrk", "rlimit_nofile", "git"):
        A(f"| {k} | {facts.get(k)} |")
    A(f"| load average at start / end | {' '.join(facts['load_start'])} / {' '.join(facts['load_end'])} |\n")
    A("## Workload\n")
    A(f"- Each job's status changes 10 times a second (seq + 1, `updated_at` = now). "
      f"Scenario **one**: all N subscribers on one job; **spread**: {SPREAD_JOBS} jobs × N/{SPREAD_JOBS} subscribers "
      "(publishes spread evenly over each 100 ms).")
    A("- Client (`bench/client.py`): asyncio + uvloop on raw sockets, HTTP/1.1 GET with `Accept: text/event-stream`, "
      "chunked decoding and SSE parsing; for every subscriber and event the delay from `updated_at` inside the status "
      "to receipt (ms resolution of `updated_at`, so figures carry up to 1 ms of rounding). One client process per "
      "6,000 streams; at most 200 connections being opened at once.")
    A(f"- Measured: events published during a {runs[0]['window'] if runs else '?'} s window after every stream is open. **lost** = "
      "(published seqs in the window × subscribers open throughout) − receipts; for herald-runner the published seqs "
      "are those any subscriber saw. **set-up/s** = streams opened ÷ time until the last one got its first event. "
      "**RSS** = peak sum of RSS of every process of the system (nginx master + workers, herald-fcgi, herald-runner; "
      "nginx for nchan; nginx + gunicorn/uvicorn master + workers + redis-server for Django); PSS counts shared pages "
      "once. **CPU** = CPU seconds of those processes during the window, as % of one core. **client CPU** likewise for "
      "the load client.")
    A("- herald: bench/publish.py rewrites `STATE/jobs/ID.json` by temp file + rename (no fsync), herald-fcgi "
      "pushes it. herald-runner: `herald-runner work` running builtin demo jobs (`steps` 10000, `interval_ms` 100), "
      "which fsyncs nothing but final states. nchan: bench/publish.py POSTs the same JSON to `/pub/ID` "
      "(`nchan_subscriber eventsource`, `nchan_subscriber_first_message -1`: the latest message on connect, as Herald sends the current state). Django: bench/publish.py "
      "`cache.set`s the JSON through django-redis (Redis " + str(facts.get("redis")) + ", unix socket); the view "
      f"polls `cache.get` every 100 ms. gunicorn sync: {DJANGO_WORKERS} workers (2 × cores + 1); gthread: "
      f"{DJANGO_WORKERS} workers × {GTHREADS} threads; async: uvicorn, {os.cpu_count()} workers, uvloop + httptools, "
      "async generator view awaiting `cache.aget`. All behind nginx 1.22 (2 workers, `worker_connections` 20000, "
      "`proxy_buffering off`).\n")
    A("## Results\n")
    A("![p50/p99 delay against concurrent streams](bench-latency.png)\n")
    for s in ("one", "spread"):
        rs = [r for r in rows if r["scenario"] == s]
        if not rs:
            continue
        A(f"### {'One job, N subscribers' if s == 'one' else f'Spread: {SPREAD_JOBS} jobs × N/{SPREAD_JOBS} subscribers'}\n")
        A("| system | N asked | streams open | set-up/s | p50 ms | p99 ms | max ms | lost / expected | events/s per stream | RSS MB | PSS MB | CPU % | client CPU % | load |")
        A("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        order = ["herald", "herald-runner", "nchan", "django-sync", "django-gthread", "django-async"]
        for r in sorted(rs, key=lambda r: (r["n"], order.index(r["system"]))):
            A(f"| {r['system']} | {r['n']} | {r['opened']} | {fmt(r['setup_rate'], 0)} | {fmt(r['p50_ms'])} | "
              f"{fmt(r['p99_ms'])} | {fmt(r['max_ms'])} | {r['lost']} / {r['expected']} | "
              f"{fmt(r['expected'] / r['full_window'] / r['window_s'] if r['full_window'] else None)} | {r['rss_mb']:.0f} | "
              f"{r['pss_mb']:.0f} | {r['cpu_pct']:.0f} | {r['client_cpu_pct']:.0f} | {r['load'][0]} |")
        A("")
    errs = [(r["system"], r["scenario"], r["n"], r["errors"]) for r in rows if r["errors"]]
    if errs:
        A("Streams that did not open: " + "; ".join(f"{a} {b} {c}: {d}" for a, b, c, d in errs) + "\n")
    if extras.get("submit"):
        A("### Herald submit throughput (`POST /jobs` through nginx, wrk, 2 threads, `bench/post.lua`)\n")
        A("| connections | requests/s | non-2xx | mean latency |\n| ---: | ---: | ---: | ---: |")
        for c, v in extras["submit"].items():
            A(f"| {c} | {v['rps']:.0f} | {v['non2xx']} | {v['latency_avg']} |")
        A("\nEach submission is written tmp → fsync → rename into `new/`, then `new/` is fsynced (docs/PROTOCOL.md).\n")
    if extras.get("dispatch"):
        d = extras["dispatch"]
        A("### herald-runner dispatch overhead (no-op command jobs, `/bin/true`, workers 4)\n")
        if "work" in d:
            w = d["work"]
            A(f"- `herald-runner work` waiting, {w['jobs']} jobs submitted one at a time through nginx: submit → "
              f"`running` (`started_at − created_at`) p50 {w['p50_ms']:.1f} ms, p99 {w['p99_ms']:.1f} ms, max {w['max_ms']:.1f} ms.")
        if "run" in d:
            r = d["run"]
            A(f"- `herald-runner run` draining {r['jobs']} queued jobs: {r['wall_s']:.2f} s wall = "
              f"{r['per_job_ms']:.1f} ms per job ({r['jobs_per_s']:.0f} jobs/s, spawn + durable running/final "
              f"writes + lock release); the first job was `running` {r['first_running_ms']:.0f} ms after `run` started.\n")
    A("## Targets\n")
    for t in targets(rows):
        A(f"- {t}")
    A("")
    # Sections written by the other benchmarks, then the hand-written reading.
    for name in ("fanout-result.md", "fanout-notes.md", "stores-result.md", "stores-notes.md", "soak-result.md",
                 "scan-result.md", "reading.md"):
        section = os.path.join(BENCH, name)
        if os.path.exists(section):
            A(open(section).read())
    with open(path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


def targets(rows):
    out = []

    def get(system, n, scenario="one"):
        for r in rows:
            if r["system"] == system and r["n"] == n and r["scenario"] == scenario:
                return r
        return None

    nmax = max((r["n"] for r in rows if r["system"] == "herald"), default=None)
    if nmax is None:
        return ["(herald not measured)"]
    h = get("herald", nmax)
    hr = get("herald-runner", nmax)
    nc = get("nchan", nmax)
    for r in (h, hr, get("herald", nmax, "spread"), get("herald-runner", nmax, "spread")):
        if r:
            ok = r["lost"] == 0 and r["opened"] == r["n"]
            why = "" if ok or r["opened"] == r["n"] else f": nothing lost, but only {r['opened']} of {r['n']} streams opened"
            out.append(f"No event lost at {nmax} streams, {r['system']} ({r['scenario']}): "
                       f"**{'met' if ok else 'not met'}**{why} (lost {r['lost']} of {r['expected']}, {r['opened']} streams open).")
    if h and nc and h["p99_ms"] and nc["p99_ms"]:
        ratio = h["p99_ms"] / nc["p99_ms"]
        out.append(f"Herald p99 within 1.5× of nchan's at {nmax} (one job): {h['p99_ms']:.1f} vs {nc['p99_ms']:.1f} ms "
                   f"= {ratio:.2f}× → **{'met' if ratio <= 1.5 else 'not met'}**.")
        hs, ns = get("herald", nmax, "spread"), get("nchan", nmax, "spread")
        if hs and ns and hs["p99_ms"] and ns["p99_ms"]:
            ratio = hs["p99_ms"] / ns["p99_ms"]
            out.append(f"Same, spread over {SPREAD_JOBS} jobs: {hs['p99_ms']:.1f} vs {ns['p99_ms']:.1f} ms = {ratio:.2f}× "
                       f"→ **{'met' if ratio <= 1.5 else 'not met'}**.")
        out.append(f"Herald total RSS (nginx + herald-fcgi) ≤ nchan's at {nmax}: {h['rss_mb']:.0f} vs {nc['rss_mb']:.0f} MB "
                   f"→ **{'met' if h['rss_mb'] <= nc['rss_mb'] else 'not met'}** (PSS {h['pss_mb']:.0f} vs {nc['pss_mb']:.0f} MB).")
    if h and h["p99_ms"]:
        bound = h["p99_ms"]
        caps = {}
        for name in ("django-sync", "django-gthread", "django-async"):
            ok = [r["opened"] for r in rows if r["system"] == name and r["p99_ms"] is not None and r["p99_ms"] <= bound]
            tried = [r for r in rows if r["system"] == name]
            if tried:
                caps[name] = max(ok, default=0)
        if caps:
            best = max(caps.values())
            desc = ", ".join(f"{k} {v}" for k, v in caps.items())
            ratio = "∞" if best == 0 else f"{h['opened'] / best:.0f}×"
            out.append(f"≥ 10× the Django design's stream capacity at equal p99 (≤ {bound:.0f} ms; capacity = "
                       f"most streams a variant held open at that p99; polling loses events at any N, see lost): Herald {h['opened']} streams; Django: {desc} → {ratio} "
                       f"→ **{'met' if best == 0 or h['opened'] / best >= 10 else 'not met'}** (Django capacities are bounded "
                       "by the N values tried; see the tables).")
    return out


# ---------------------------------------------------------------------------


def expand_systems(spec):
    out = []
    for s in spec.split(","):
        s = s.strip()
        if s == "herald":
            out += ["herald", "herald-runner"]
        elif s == "django":
            out += ["django-sync", "django-gthread", "django-async"]
        elif s:
            out.append(s)
    return out


def django_ns(name, ns, quick):
    """N values for a Django variant: its capacity (workers or threads), then the requested N as far as sensible."""
    if name == "django-sync":
        return [DJANGO_WORKERS, DJANGO_WORKERS * 10]
    if name == "django-gthread":
        cap = DJANGO_WORKERS * GTHREADS
        return [cap, cap * 4] if not quick else [cap]
    return [n for n in ns if n <= 5000] or ns[:1]  # past 5,000 polling streams it has long collapsed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small N, short windows")
    p.add_argument("--no-extras", action="store_true", help="skip submit throughput and dispatch overhead")
    p.add_argument("--report-only", action="store_true", help="rewrite docs from bench/results/*.json")
    p.add_argument("--keep", action="store_true", help="keep earlier results in bench/results (re-measure some rows)")
    p.add_argument("--extras-only", action="store_true", help="only submit throughput and dispatch overhead")
    p.add_argument("--rows", default="all", help="classic, fanout, stores or all (default); variants alone")
    args = p.parse_args()
    rows = {"all": {"classic", "fanout", "stores"}}.get(args.rows, set(args.rows.split(",")))
    if not rows or rows - {"classic", "fanout", "stores", "variants"} or ("variants" in rows and len(rows) > 1):
        p.error(f"--rows: classic, fanout, stores, all or variants (alone), not {args.rows!r}")
    args.argv = ["bench/run.py"] + sys.argv[1:]
    default_n = "200,1000" if args.quick else "1000,5000,10000"
    args.n_list = os.environ.get("BENCH_N", default_n)
    args.systems_env = os.environ.get("BENCH_SYSTEMS", "herald,nchan,django")
    args.window = float(os.environ.get("BENCH_WINDOW", "5" if args.quick else "20"))
    scenarios = os.environ.get("BENCH_SCENARIOS", "one,spread").split(",")
    ns = [int(x) for x in args.n_list.split(",") if x]
    systems = expand_systems(args.systems_env)
    os.makedirs(RESULTS, exist_ok=True)
    doc = os.path.join(REPO, "docs", "BENCHMARKS.md")
    png = os.path.join(REPO, "docs", "bench-latency.png")

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    if "classic" not in rows:
        import fanout
        import stores
        if not args.report_only:
            ensure_packages(rows)
            raise_nofile()
            bin_dir = build_herald()
            try:
                if rows & {"fanout", "variants"}:
                    fanout.main(bin_dir, RESULTS, args.quick, args.argv, args.keep, variants="variants" in rows)
                if "stores" in rows:
                    stores.main(bin_dir, RESULTS, args.quick, args.argv, args.keep)
            except KeyboardInterrupt:
                log("interrupted; everything started was stopped")
                return 130
        else:
            if rows & {"fanout", "variants"}:
                fanout.report(RESULTS, variants="variants" in rows)
            if "stores" in rows:
                stores.report(RESULTS)
        if rows & {"fanout", "variants"}:
            fanout.splice_section(doc)
        if "stores" in rows:
            stores.splice_section(doc)
        log(f"wrote the {', '.join(sorted(rows))} section(s) of {doc}")
        return 0
    if not args.report_only:
        ensure_packages(rows)
        raise_nofile()
        bin_dir = build_herald()
        facts = versions(bin_dir)
        facts["load_start"] = loadavg()
        log(f"load average {' '.join(facts['load_start'])}; systems {systems}; N {ns}; window {args.window}s")
        if not args.keep:
            for f in os.listdir(RESULTS):
                if f.endswith(".json") and not f.startswith(("soak", "fanout", "stores")):
                    os.unlink(os.path.join(RESULTS, f))
        shutil.rmtree(WORK, ignore_errors=True)
        os.makedirs(WORK)
        this = {"argv": " ".join(args.argv), "n_list": args.n_list, "systems_env": args.systems_env,
                "window": args.window, "load": facts["load_start"], "at": time.strftime("%H:%M")}
        runs = []
        fp = os.path.join(RESULTS, "facts.json")
        if args.keep and os.path.exists(fp):
            runs = json.load(open(fp)).get("runs", [])
        with open(fp, "w") as f:
            json.dump({"facts": facts, "runs": runs + [this], "args": {"window": args.window}}, f, indent=1)

        try:
            if "fanout" in rows:
                import fanout
                fanout.main(bin_dir, RESULTS, args.quick, args.argv, args.keep)
            if "stores" in rows:
                import stores
                stores.main(bin_dir, RESULTS, args.quick, args.argv, args.keep)
            for name in ([] if args.extras_only else systems):
                for scenario in scenarios:
                    n_values = django_ns(name, ns, args.quick) if name.startswith("django") else ns
                    if name.startswith("django") and scenario == "spread":
                        continue  # the Django design's limit is per connection, not per job: one scenario is enough
                    for n in n_values:
                        wd = os.path.join(WORK, f"{name}-{scenario}-{n}")
                        if name in ("herald", "herald-runner"):
                            system = HeraldSystem(bin_dir, wd, runner=(name == "herald-runner"))
                        elif name == "nchan":
                            system = NchanSystem(wd)
                        else:
                            system = DjangoSystem(wd, name.split("-", 1)[1])
                        with system:
                            try:
                                fe = 10 if name.startswith("django") else 30
                                measure(system, n, scenario, args.window, RESULTS, first_event_timeout=fe)
                            except Exception as e:  # noqa: BLE001
                                log(f"{name} {scenario} {n}: FAILED: {e}")
                        time.sleep(2)  # let TIME_WAIT sockets and the load settle a little
            if not args.no_extras and any(s.startswith("herald") for s in systems):
                extras = {}
                for key, fn in (("submit", lambda: submit_throughput(bin_dir, 5 if args.quick else 10)),
                                ("dispatch", lambda: dispatch_overhead(bin_dir, 50 if args.quick else 200))):
                    try:
                        extras[key] = fn()
                    except Exception as e:  # noqa: BLE001
                        log(f"{key}: FAILED: {e}")
                extras["load"] = loadavg()
                with open(os.path.join(RESULTS, "extras.json"), "w") as f:
                    json.dump(extras, f, indent=1)
        except KeyboardInterrupt:
            log("interrupted; everything started was stopped")
            return 130
        state = json.load(open(os.path.join(RESULTS, "facts.json")))
        state["facts"]["load_end"] = loadavg()
        with open(os.path.join(RESULTS, "facts.json"), "w") as f:
            json.dump(state, f, indent=1)
    # The report: every per-run result in bench/results (with --keep, earlier runs too).
    rows = []
    for f in sorted(os.listdir(RESULTS)):
        if f.endswith(".json") and f not in ("facts.json", "extras.json", "summary.json", "fanout.json", "stores.json") and not f.startswith("soak"):
            rows.append(json.load(open(os.path.join(RESULTS, f))))
    extras_path = os.path.join(RESULTS, "extras.json")
    extras = json.load(open(extras_path)) if os.path.exists(extras_path) else {}
    state = json.load(open(os.path.join(RESULTS, "facts.json")))
    state["facts"].setdefault("load_end", loadavg())
    plot(rows, png)
    write_report(rows, extras, state["facts"], state.get("runs", []), doc)
    log(f"wrote {doc} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
