"""The fan-out rows of `make bench` (issue 11): Herald, nchan and the relay floor, same client.

    make bench ROWS=fanout          # every row below, 3 repeats each (~8 min)
    BENCH_REPEATS=5 BENCH_FANOUT_N=5000 BENCH_FANOUT_SYSTEMS=herald,nchan,floor BENCH_FANOUT_CASES=one,spread \
        make bench ROWS=fanout
    /usr/bin/python3 bench/run.py --rows fanout --quick       # a dry run: 200 streams, 1 repeat

Rows (each started afresh for every repeat):
  one     N streams on 1 job: herald, nchan, floor
  spread  N streams over 100 jobs (N/100 each): herald, nchan

Workload: every job reports STATES states (100) at 10 a second, then stays 5 s more.
  herald  `herald-runner work` runs one bench/ticker.py per job, reporting on fd 3; nginx ->
          herald-fcgi -> client. A job's states start at T0 + (its index × 100 / jobs) ms.
  nchan   bench/publish.py POSTs the same states to /pub/ID on the same schedule.
  floor   bench/relay-floor.c behind nginx/herald.conf (the same nginx config as Herald's
          streams) writes the same SSE bytes to every stream on the same schedule.
Every state carries `message: "sK tMS"`; the client (bench/client.py) times each receipt from MS,
the moment the state was reported (by the job program for herald, the publisher for nchan, the
floor for itself), and counts receipts per (job, K).

Metrics per run: p50/p99/max delay; states never seen (a job's state that none of its
subscribers received); deliveries lost (states × subscribers open throughout − receipts);
CPU per delivered event, per process (/proc utime + stime over [T0, T0 + STATES/10 s + 0.5 s],
divided by the events received in that time):
nginx (master + workers), herald-fcgi, herald-runner (itself, not its job programs), the floor.
BENCH_SYSCALLS=1 counts the relay's system calls per event and process (perf stat, tracepoints);
BENCH_PERF=1 records call graphs of those processes over the window into each run's perf.data
(perf's own CPU is then in the figures: use it for where the time goes, not for the totals).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import run as bench  # bench/run.py: process accounting, nchan, packages
from herald_stack import Stack, free_port, stop_process

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
STATES = 100
INTERVAL_MS = 100
LINGER_S = 5
SPREAD_JOBS = 100
SYSCALLS = ("write", "writev", "read", "readv", "recvfrom", "epoll_wait", "epoll_ctl", "sendmsg", "recvmsg")
SECTION = os.path.join(BENCH, "fanout-result.md")
VARIANTS_SECTION = os.path.join(BENCH, "relay-variants-result.md")
NOTES = os.path.join(BENCH, "fanout-notes.md")

# The SSE event Herald sends for a running ticker job (captured from herald-fcgi, id and
# timestamps replaced by placeholders the floor fills in): the floor writes the same bytes.
FLOOR_EVENT = (
    'event: status\nid: @SEQ@\ndata: {"id":"01kbfloorfloorfloorfloor00","kind":"ticker","state":"running",'
    '"progress":@SEQ@.0,"message":"s@SEQ@ t@MS@","params":{"slot":"0"},"owner":null,"created_at":"2026-12-02T14:00:00.000Z",'
    '"started_at":"2026-12-02T14:00:00.010Z","finished_at":null,"updated_at":"@TS@","attempt":1,'
    '"exit_code":null,"error":null,"result":null,"seq":@SEQ@,"links":{"self":"/jobs/01kbfloorfloorfloorfloor00",'
    '"events":"/jobs/01kbfloorfloorfloorfloor00/events","log":"/jobs/01kbfloorfloorfloorfloor00/log",'
    '"cancel":"/jobs/01kbfloorfloorfloorfloor00/cancel"}}\n\n')


def log(msg):
    print(f"[fanout {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build_floor(out_dir):
    """Compiles bench/relay-floor.c (cc -O2) into out_dir; returns the binary's path."""
    os.makedirs(out_dir, exist_ok=True)
    exe = os.path.join(out_dir, "relay-floor")
    src = os.path.join(BENCH, "relay-floor.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run(["cc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", "-o", exe, src], check=True)
    return exe


def offset_ms(i, njobs):
    """Job i's states start this many ms after T0: the jobs' states spread evenly over each interval."""
    return i * INTERVAL_MS // njobs


# ---------------------------------------------------------------------------
# the systems: context managers with .port, .processes() -> {name: [pids]}, .prepare(njobs) -> paths, .go(t0)


def ticker_config(go_file):
    """The config overrides for ticker jobs (bench/ticker.py) that start when go_file holds T0."""
    kind = {"command": ["/usr/bin/python3", os.path.join(BENCH, "ticker.py"), go_file, str(STATES),
                        str(INTERVAL_MS), str(LINGER_S)],
            "params": {"slot": "^[0-9]{1,4}$"}}
    return {"workers": SPREAD_JOBS + 10, "kinds": {"ticker": kind}}


class HeraldRows:
    name = "herald"

    def __init__(self, bin_dir, workdir):
        self.go_file = os.path.join(workdir, "go")
        self.stack = Stack(bin_dir, workdir, runner=True, stop_grace=5, config_overrides=ticker_config(self.go_file))
        self.ids = []

    def __enter__(self):
        self.stack.start()
        self.port = self.stack.port
        return self

    def __exit__(self, *exc):
        for i in self.ids:
            try:
                self.stack.request("POST", f"/jobs/{i}/cancel", timeout=5)
            except OSError:
                pass
        self.stack.stop()

    def processes(self):
        s = self.stack
        return {"nginx": bench.family([s.nginx_proc.pid]), "herald-fcgi": [s.fcgi_proc.pid],
                "herald-runner": [s.runner_proc.pid]}

    def prepare(self, njobs):
        for i in range(njobs):
            self.ids.append(self.stack.submit("ticker", {"slot": str(offset_ms(i, njobs))})["id"])
        deadline = time.monotonic() + 60
        for i in self.ids:
            while True:
                _, _, job = self.stack.json("GET", f"/jobs/{i}")
                if job and job.get("state") == "running":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {i} not running after 60 s: {job}")
                time.sleep(0.05)
        return [f"/jobs/{i}/events" for i in self.ids]

    def go(self, t0):
        with open(self.go_file + ".tmp", "w") as f:
            f.write(f"{t0:.3f}\n")
        os.rename(self.go_file + ".tmp", self.go_file)


class NchanRows:
    name = "nchan"

    def __init__(self, workdir):
        self.workdir = workdir
        self.nchan = bench.NchanSystem(workdir)
        self.pub = None

    def __enter__(self):
        self.nchan.__enter__()
        self.port = self.nchan.port
        return self

    def __exit__(self, *exc):
        stop_process(self.pub, 5)
        self.nchan.__exit__(*exc)

    def processes(self):
        return {"nginx": self.nchan.pids()}

    def prepare(self, njobs):
        self.jobs = self.nchan.prepare(njobs)
        return [self.nchan.path(j["key"]) for j in self.jobs]

    def go(self, t0):
        jobs_file = os.path.join(self.workdir, "jobs.json")
        with open(jobs_file, "w") as f:
            json.dump(self.jobs, f)
        self.pub = subprocess.Popen(
            [bench.VPY, os.path.join(BENCH, "publish.py"), "--mode", "nchan", "--port", str(self.port),
             "--jobs", jobs_file, "--out", os.path.join(self.workdir, "published.json"),
             "--start", f"{t0:.3f}", "--count", str(STATES), "--rate", str(1000 / INTERVAL_MS), "--tag",
             "--threads", "8"],
            stdin=subprocess.DEVNULL, start_new_session=True)


# Settings tried on the floor (`make bench ROWS=variants`): each changes the stream location of
# nginx/herald.conf (`location` directives replace or join the ones there), nginx.conf (`main`:
# worker_processes), the upstream (`tcp`: fastcgi_pass 127.0.0.1:PORT) or the floor (`floor`).
VARIANTS = {
    "as shipped": {},
    "fastcgi_buffer_size 2k": {"location": ["fastcgi_buffer_size 2k"]},
    "fastcgi_buffer_size 4k": {"location": ["fastcgi_buffer_size 4k"]},
    "fastcgi_buffering on (X-Accel-Buffering ignored)": {
        "location": ["fastcgi_buffering on", "fastcgi_ignore_headers X-Accel-Buffering"]},
    "postpone_output 0": {"location": ["postpone_output 0"]},
    "tcp_nodelay off": {"location": ["tcp_nodelay off"]},
    "chunked_transfer_encoding off": {"location": ["chunked_transfer_encoding off"]},
    "sendfile off, output_buffers 1 4k": {"location": ["sendfile off", "output_buffers 1 4k"]},
    "worker_processes 1": {"main": 1},
    "TCP upstream (127.0.0.1)": {"tcp": True},
    "2 events per write (floor --coalesce 2)": {"floor": ["--coalesce", "2"]},
    "io_uring, 256 writes per submit (floor --uring 256)": {"floor": ["--uring", "256"]},
}


def apply_variant(workdir, variant, tcp_port):
    """Edits the herald.conf and nginx.conf the stack wrote in workdir as `variant` says."""
    conf = os.path.join(workdir, "herald.conf")
    text = open(conf).read()
    head = "location ^~ /jobs {\n"
    start = text.index(head) + len(head)
    end = text.index("\n}\n", start)
    body = text[start:end]
    for directive in variant.get("location", []):
        name = directive.split()[0]
        pattern = re.compile(rf"^(\s*){re.escape(name)}\s[^;]*;", re.M)
        if pattern.search(body):
            body = pattern.sub(lambda m: f"{m.group(1)}{directive};", body, count=1)
        else:
            body += f"\n    {directive};"
    if variant.get("tcp"):
        body = re.sub(r"fastcgi_pass unix:[^;]*;", f"fastcgi_pass 127.0.0.1:{tcp_port};", body)
    with open(conf, "w") as f:
        f.write(text[:start] + body + text[end:])
    if "main" in variant:
        main_conf = os.path.join(workdir, "nginx.conf")
        text = open(main_conf).read()
        with open(main_conf, "w") as f:
            f.write(re.sub(r"worker_processes \d+;", f"worker_processes {variant['main']};", text))


class FloorRows:
    """nginx with nginx/herald.conf (as the Herald stack writes it) in front of bench/relay-floor.c;
    `variant` (one of VARIANTS) changes the configuration or the floor."""
    name = "floor"

    def __init__(self, bin_dir, workdir, floor_exe, variant=None):
        self.workdir = workdir
        self.floor_exe = floor_exe
        self.variant = variant or {}
        self.tcp_port = free_port() if self.variant.get("tcp") else None
        self.stack = Stack(bin_dir, workdir, runner=False, stop_grace=5)
        self.floor = None
        self.go_file = os.path.join(workdir, "go")

    def __enter__(self):
        s = self.stack
        try:
            os.makedirs(s.logs_dir, exist_ok=True)
            s._choose_socket_path()
            s.port = free_port()
            s.write_nginx_conf()
            apply_variant(self.workdir, self.variant, self.tcp_port)
            s.nginx_test()
            event = os.path.join(self.workdir, "event.txt")
            with open(event, "w") as f:
                f.write(FLOOR_EVENT)
            self.floor_log = open(os.path.join(s.logs_dir, "relay-floor.log"), "ab")
            listen = ["--tcp", str(self.tcp_port)] if self.tcp_port else ["--socket", s.socket_path]
            self.floor = subprocess.Popen(
                [self.floor_exe] + listen + ["--event", event, "--go", self.go_file,
                 "--count", str(STATES), "--interval-ms", str(INTERVAL_MS)] + list(self.variant.get("floor", [])),
                stdout=self.floor_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            deadline = time.monotonic() + 10
            while not self._listening():
                if self.floor.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("relay-floor did not start: " + s.log_tail("relay-floor"))
                time.sleep(0.02)
            s.start_nginx()
            if not s._wait_nginx_bound():
                raise RuntimeError("nginx did not start: " + s.log_tail("nginx-error"))
        except BaseException:
            self.__exit__()
            raise
        self.port = s.port
        return self

    def _listening(self):
        if not self.tcp_port:
            return os.path.exists(self.stack.socket_path)
        try:
            socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1).close()
            return True
        except OSError:
            return False

    def __exit__(self, *exc):
        self.stack.stop()
        stop_process(self.floor, 5)
        if self.floor is not None:
            self.floor_log.close()

    def processes(self):
        return {"nginx": bench.family([self.stack.nginx_proc.pid]), "floor": [self.floor.pid]}

    def prepare(self, njobs):
        assert njobs == 1, "the floor serves one job"
        return ["/jobs/01kbfloorfloorfloorfloor00/events"]

    def go(self, t0):
        with open(self.go_file + ".tmp", "w") as f:
            f.write(f"{t0:.3f}\n")
        os.rename(self.go_file + ".tmp", self.go_file)


# ---------------------------------------------------------------------------
# one run


def cpu_by_process(procs):
    return {name: sum(bench.proc_cpu(p) for p in pids) for name, pids in procs.items()}


def thread_sched(procs):
    """Per thread of each named group: (run ns, run-queue wait ns) so far, from /proc/PID/task/TID/schedstat."""
    out = {}
    for name, pids in procs.items():
        for pid in pids:
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    run, wait, _ = open(f"/proc/{pid}/task/{tid}/schedstat").read().split()
                except (OSError, ValueError):
                    continue
                out[(name, int(tid))] = (int(run), int(wait))
    return out


def busiest_threads(before, after, window_s, top=2):
    """The busiest threads of each group over the window: [run ms/s, run-queue wait ms/s], busiest first."""
    per = {}
    for key, (run, wait) in after.items():
        r0, w0 = before.get(key, (0, 0))
        per.setdefault(key[0], []).append(((run - r0) / 1e6 / window_s, (wait - w0) / 1e6 / window_s))
    return {name: [[round(r), round(w)] for r, w in sorted(ts, reverse=True)[:top]] for name, ts in per.items()}


def system_cpu(system):
    """CPU seconds so far of each of the system's named groups of processes: its own `cpu()` when
    it has one (processes that come and go), else that of the processes it has now."""
    return system.cpu() if hasattr(system, "cpu") else cpu_by_process(system.processes())


def measure(system, n, njobs, run_dir, setup_timeout=90, first_event_timeout=30):
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    paths = system.prepare(njobs)
    targets = os.path.join(run_dir, "targets.txt")
    with open(targets, "w") as f:
        for s in range(n):
            f.write(f"{s % njobs} {paths[s % njobs]}\n")
    k = bench.client_procs(n)
    load = bench.loadavg()
    clients = []
    try:
        for i in range(k):
            clients.append(subprocess.Popen(
                [bench.VPY, os.path.join(BENCH, "client.py"), "--port", str(system.port), "--targets", targets,
                 "--index", str(i), "--procs", str(k), "--out", os.path.join(run_dir, f"client{i}.json"),
                 "--setup-timeout", str(setup_timeout), "--first-event-timeout", str(first_event_timeout),
                 "--states", str(STATES)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True))
        ready = []
        for c in clients:
            line = c.stdout.readline()
            if not line:
                raise RuntimeError("a client exited during set-up")
            ready.append(json.loads(line))
        opened = sum(r["opened"] for r in ready)
        setup_s = max((r["setup_s"] or 0) for r in ready)
        t0 = time.time() + 1.5
        span = STATES * INTERVAL_MS / 1000
        t1 = t0 + span + 0.2  # the last state is reported at T0 + offset + span
        for c in clients:
            c.stdin.write(f"{t0} {t1}\n")
            c.stdin.flush()
        system.go(t0)
        time.sleep(max(0.0, t0 - time.time()))
        procs = system.processes()
        cpu0 = system_cpu(system)
        sched0 = thread_sched(procs)
        cpu_t0 = time.time()
        perf = None
        if os.environ.get("BENCH_SYSCALLS"):
            # Counts of the system calls on the relay's path, per thread: they do not depend on the
            # machine's load as CPU time does.
            pids = ",".join(str(p) for ps in procs.values() for p in ps)
            perf = subprocess.Popen(["perf", "stat", "--per-thread", "-x", ",", "-o", os.path.join(run_dir, "syscalls.csv"),
                                     "-e", ",".join(f"syscalls:sys_enter_{c}" for c in SYSCALLS), "-p", pids],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        elif os.environ.get("BENCH_PERF"):
            # Call graphs of the system's own processes over the window (perf report -i run/perf.data).
            pids = ",".join(str(p) for ps in procs.values() for p in ps)
            perf = subprocess.Popen(["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-g", "-p", pids,
                                     "-o", os.path.join(run_dir, "perf.data")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(max(0.0, t0 + span + 0.5 - time.time()))
        cpu = {name: v - cpu0[name] for name, v in system_cpu(system).items()}
        cpu_end = time.time()
        cpu_window = cpu_end - cpu_t0
        threads = busiest_threads(sched0, thread_sched(procs), cpu_window)
        if perf is not None:
            perf.send_signal(signal.SIGINT)
            perf.wait(timeout=60)
        for c in clients:
            c.wait(timeout=span + 150)
    finally:
        for c in clients:
            if c.poll() is None:
                c.kill()
                c.wait()
    results = [json.load(open(os.path.join(run_dir, f"client{i}.json"))) for i in range(len(clients))]
    delays, received = bench.array.array("d"), bench.array.array("d")
    for i in range(len(clients)):
        for arr, suffix in ((delays, ".delays"), (received, ".received")):
            path = os.path.join(run_dir, f"client{i}.json{suffix}")
            with open(path, "rb") as f:
                arr.frombytes(f.read())
            os.unlink(path)
    counts, subs_per_job = {}, {}
    for r in results:
        for key, v in r["counts"].items():
            counts[int(key)] = counts.get(int(key), 0) + v
        for j, v in r["subs_per_job"].items():
            subs_per_job[int(j)] = subs_per_job.get(int(j), 0) + v
    never_seen = lost = 0
    for j, subs in subs_per_job.items():
        for state in range(1, STATES + 1):
            got = counts.get((j << 32) | state, 0)
            never_seen += got == 0
            lost += max(0, subs - got)
    vals = sorted(delays)

    def pct(q):
        return vals[min(len(vals) - 1, int(q * len(vals)))] * 1000 if vals else None

    # CPU per event: the events received while the CPU was counted (all of them unless overloaded).
    delivered = sum(1 for t in received if t <= cpu_end)
    syscalls = {}
    csv = os.path.join(run_dir, "syscalls.csv")
    if os.path.exists(csv) and delivered:
        for line in open(csv):
            f = line.strip().split(",")
            if len(f) < 4 or not f[1].isdigit():
                continue
            comm = f[0].rsplit("-", 1)[0]
            call = f[3].removeprefix("syscalls:sys_enter_")
            per = syscalls.setdefault(comm, {})
            per[call] = per.get(call, 0) + int(f[1]) / delivered
    return {
        "n": n, "jobs": njobs, "opened": opened, "setup_s": setup_s, "load": load,
        "full_window": sum(subs_per_job.values()), "jobs_watched": len(subs_per_job),
        "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": vals[-1] * 1000 if vals else None,
        "delivered": delivered, "delivered_late": len(vals) - delivered, "expected": STATES * sum(subs_per_job.values()),
        "never_seen": never_seen, "lost": lost,
        "out_of_order": sum(r["out_of_order"] for r in results),
        "errors": {k: v for r in results for k, v in r["errors"].items()},
        "cpu_window_s": cpu_window, "cpu_s": cpu, "threads_ms_per_s": threads,
        "us_per_event": {name: (v * 1e6 / delivered if delivered else None) for name, v in cpu.items()},
        "us_per_event_total": sum(cpu.values()) * 1e6 / delivered if delivered else None,
        "client_cpu_s": sum(r["window_cpu_s"] for r in results),
        "syscalls_per_event": {c: {k: round(v, 3) for k, v in per.items() if v >= 0.001} for c, per in syscalls.items()},
    }


# ---------------------------------------------------------------------------
# the rows, the summary and the report section


def rows_wanted(systems):
    if systems == ["variants"]:
        wanted = os.environ.get("BENCH_VARIANTS")
        names = [v for v in VARIANTS if not wanted or any(w.strip() and w.strip() in v for w in wanted.split(","))]
        return [("one", 1, f"floor: {v}") for v in names]
    out = []
    cases = os.environ.get("BENCH_FANOUT_CASES", "one,spread").split(",")
    for scenario, njobs, names in (("one", 1, ("herald", "nchan", "floor")), ("spread", SPREAD_JOBS, ("herald", "nchan"))):
        out += [(scenario, njobs, name) for name in names if name in systems and scenario in cases]
    return out


def make_system(name, bin_dir, wd, floor_exe):
    if name == "herald":
        return HeraldRows(bin_dir, wd)
    if name == "nchan":
        return NchanRows(wd)
    if name == "floor":
        return FloorRows(bin_dir, wd, floor_exe)
    return FloorRows(bin_dir, wd, floor_exe, VARIANTS[name.split(": ", 1)[1]])


def spread(values, digits=1):
    """`median (min–max)` of the values that are not None."""
    vals = [v for v in values if v is not None]
    if not vals:
        return "–"
    med = statistics.median(vals)
    f = (lambda v: f"{v:,.0f}") if digits == 0 else (lambda v: f"{v:,.{digits}f}")
    return f(med) if len(vals) == 1 or min(vals) == max(vals) else f"{f(med)} ({f(min(vals))}–{f(max(vals))})"


def syscall_summary(rs):
    """Median system calls per event of the relay's path (BENCH_SYSCALLS=1), e.g. `nginx recvfrom 1.00 writev 1.00`."""
    per = {}
    for r in rs:
        for comm, calls in r.get("syscalls_per_event", {}).items():
            for call, v in calls.items():
                if call in ("write", "writev", "recvfrom", "read"):
                    per.setdefault(comm, {}).setdefault(call, []).append(v)
    return "; ".join(f"{comm} " + " ".join(f"{c} {statistics.median(v):.2f}" for c, v in sorted(calls.items()))
                     for comm, calls in per.items())


def summarize(runs):
    """Rows of the summary table, one per (scenario, system), in the rows' order."""
    out = []
    for key in dict.fromkeys((r["scenario"], r["system"]) for r in runs):
        rs = [r for r in runs if (r["scenario"], r["system"]) == key]
        names = list(dict.fromkeys(p for r in rs for p in r["us_per_event"]))
        out.append({
            "scenario": key[0], "system": key[1], "repeats": len(rs), "n": rs[0]["n"], "jobs": rs[0]["jobs"],
            "opened": spread([r["opened"] for r in rs], 0),
            "p50": spread([r["p50_ms"] for r in rs]), "p99": spread([r["p99_ms"] for r in rs]),
            "never_seen": spread([r["never_seen"] for r in rs], 0), "lost": spread([r["lost"] for r in rs], 0),
            "total": spread([r["us_per_event_total"] for r in rs], 2),
            "total_median": statistics.median([r["us_per_event_total"] for r in rs if r["us_per_event_total"]] or [0]),
            "p99_median": statistics.median([r["p99_ms"] for r in rs if r["p99_ms"] is not None] or [0]),
            "per_process": ", ".join(f"{p} {spread([r['us_per_event'].get(p) for r in rs], 2)}" for p in names),
            "syscalls": syscall_summary(rs),
        })
    return out


def write_section(runs, meta, variants=False):
    lines = []
    A = lines.append
    if variants:
        A("### The relay floor under other settings\n")
        A("Generated by `bench/run.py --rows variants` (`make bench ROWS=variants`; `BENCH_VARIANTS=a,b` picks "
          "variants by part of their name): the floor's one-job row with one setting changed at a time against "
          "nginx/herald.conf as shipped. Median (range) over the repeats.\n")
    else:
        A("## Fan-out at the limit: Herald, nchan and the relay floor (issue 11)\n")
        A("Generated by `bench/run.py --rows fanout` (`make bench ROWS=fanout`, module `bench/fanout.py`); "
          "the notes after the tables are written by hand. Each row was started afresh for every repeat; "
          "figures are the median, with the range over the repeats in brackets.\n")
    for m in meta:
        A(f"- {m['at']} UTC, git {m['git']}, load {' '.join(m['load'])} → {' '.join(m.get('load_end', ['?']))}: `{m['command']}`")
    A("")
    if not variants:
        A(f"Workload: every job reports {STATES} states at {1000 // INTERVAL_MS}/s (Herald: `herald-runner work` "
          "running bench/ticker.py, which reports on fd 3; nchan: bench/publish.py POSTing to `/pub/ID`; floor: "
          "bench/relay-floor.c writing the same SSE bytes as Herald). Delay: from the moment a state was reported "
          "(the job program's clock for Herald) to its receipt by the client (bench/client.py, one process, "
          "uvloop). **never seen**: states of a job that none of its subscribers received (summed over jobs). "
          "**lost**: states × subscribers open throughout − receipts. **CPU/event**: CPU seconds of the "
          f"system's processes over T0 … T0 + {STATES * INTERVAL_MS / 1000 + 0.5:g} s ÷ events delivered in the "
          "window, in µs; per process: nginx = master + workers, herald-runner = the runner alone (not its job "
          "programs), floor = relay-floor.\n")
    summary = summarize(runs)
    calls = any(s["syscalls"] for s in summary)
    A("| case | system | runs | streams open | p50 ms | p99 ms | states never seen | deliveries lost | CPU µs/event | "
      "per process µs/event |" + (" system calls per event |" if calls else ""))
    A("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |" + (" --- |" if calls else ""))
    for s in summary:
        jobs = "1 job" if s["jobs"] == 1 else f"{s['jobs']} jobs"
        case = f"{s['n']:,} streams, {jobs}"
        A(f"| {case} | {s['system']} | {s['repeats']} | {s['opened']} | {s['p50']} | {s['p99']} | {s['never_seen']} | "
          f"{s['lost']} | {s['total']} | {s['per_process']} |" + (f" {s['syscalls'] or '–'} |" if calls else ""))
    A("")
    ratios = []
    by = {(s["scenario"], s["system"]): s for s in summary}
    for scenario in ("one", "spread"):
        h, nc, fl = by.get((scenario, "herald")), by.get((scenario, "nchan")), by.get((scenario, "floor"))
        if h and nc and nc["total_median"] and nc["p99_median"]:
            ratios.append(f"{scenario}: Herald / nchan CPU per event {h['total_median'] / nc['total_median']:.2f}×, "
                          f"p99 {h['p99_median'] / nc['p99_median']:.2f}×")
        if fl and fl["total_median"]:
            if h:
                ratios.append(f"{scenario}: Herald / floor CPU per event {h['total_median'] / fl['total_median']:.2f}×")
            if nc and nc["total_median"]:
                ratios.append(f"{scenario}: floor / nchan CPU per event {fl['total_median'] / nc['total_median']:.2f}×")
    if ratios:
        A("Ratios of the medians: " + "; ".join(ratios) + ".\n")
    A("<details><summary>Every run</summary>\n")
    A("| case | system | streams | p50 ms | p99 ms | max ms | never seen | lost | CPU µs/event | per process µs/event | load |")
    A("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in runs:
        per = ", ".join(f"{p} {v:.2f}" for p, v in r["us_per_event"].items() if v is not None)
        A(f"| {r['scenario']} | {r['system']} | {r['opened']} | {bench.fmt(r['p50_ms'])} | {bench.fmt(r['p99_ms'])} | "
          f"{bench.fmt(r['max_ms'])} | {r['never_seen']} | {r['lost']} | {bench.fmt(r['us_per_event_total'], 2)} | {per} | "
          f"{r['load'][0]} |")
    A("\n</details>\n")
    with open(VARIANTS_SECTION if variants else SECTION, "w") as f:
        f.write("\n".join(lines))


def splice_section(doc):
    """Puts the fan-out section (and its hand-written notes) into docs/BENCHMARKS.md, in place of
    the previous one, else before the soak: the other sections stay as they were generated."""
    section = open(SECTION).read().rstrip() + "\n" if os.path.exists(SECTION) else ""
    if os.path.exists(VARIANTS_SECTION):
        section += "\n" + open(VARIANTS_SECTION).read().rstrip() + "\n"
    if os.path.exists(NOTES):
        section += "\n" + open(NOTES).read().rstrip() + "\n"
    bench.splice_section(doc, "## Fan-out at the limit", section)


def report(results_dir, variants=False):
    """Rewrites the section from the recorded runs (run.py --report-only)."""
    path = os.path.join(results_dir, "variants.json" if variants else "fanout.json")
    if os.path.exists(path):
        state = json.load(open(path))
        write_section(state["runs"], state["meta"], variants)


ENV = ("BENCH_FANOUT_N", "BENCH_REPEATS", "BENCH_FANOUT_SYSTEMS", "BENCH_FANOUT_CASES", "BENCH_VARIANTS",
       "BENCH_PERF", "BENCH_SYSCALLS")


def main(bin_dir, results_dir, quick, argv, keep, variants=False):
    """The fan-out rows, or (variants) the floor under each of VARIANTS; writes their section."""
    n = int(os.environ.get("BENCH_FANOUT_N", "200" if quick else "5000"))
    repeats = int(os.environ.get("BENCH_REPEATS", "1" if quick else "3"))
    systems = ["variants"] if variants else os.environ.get("BENCH_FANOUT_SYSTEMS", "herald,nchan,floor").split(",")
    out_file = os.path.join(results_dir, "variants.json" if variants else "fanout.json")
    state = json.load(open(out_file)) if keep and os.path.exists(out_file) else {"runs": [], "meta": []}
    floor_exe = build_floor(os.path.join(REPO, ".build-release"))
    work = os.path.join(results_dir, "work")
    meta = {"at": time.strftime("%H:%M", time.gmtime()), "load": bench.loadavg(),
            "git": subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True).stdout.strip(),
            "command": " ".join([f"{k}={os.environ[k]}" for k in ENV if k in os.environ] + ["/usr/bin/python3"] + argv)}
    log(f"rows {rows_wanted(systems)} × {repeats}, {n} streams, load {' '.join(meta['load'])}")
    runs = state["runs"]
    for rep in range(repeats):
        for scenario, njobs, name in rows_wanted(systems):
            wd = os.path.join(work, re.sub(r"[^A-Za-z0-9]+", "-", f"fanout-{name}-{scenario}-{rep}"))
            shutil.rmtree(wd, ignore_errors=True)
            try:
                with make_system(name, bin_dir, wd, floor_exe) as system:
                    r = measure(system, n, njobs, os.path.join(wd, "run"))
            except Exception as e:  # noqa: BLE001
                log(f"{name} {scenario} #{rep + 1}: FAILED: {e}")
                continue
            r.update({"system": name, "scenario": scenario, "repeat": rep + 1})
            runs.append(r)
            per = " ".join(f"{p} {v:.2f}" for p, v in r["us_per_event"].items() if v is not None)
            log(f"{name} {scenario} #{rep + 1}: {r['opened']}/{n} open, p50 {bench.fmt(r['p50_ms'])} p99 "
                f"{bench.fmt(r['p99_ms'])} ms, never seen {r['never_seen']}, lost {r['lost']}/{r['expected']}, "
                f"received after the CPU window {r['delivered_late']}, "
                f"CPU {bench.fmt(r['us_per_event_total'], 2)} µs/event ({per}), errors {r['errors']}"
                + (f", syscalls per event {r['syscalls_per_event']}" if r["syscalls_per_event"] else "")
                + f", busiest threads [run, run-queue wait] ms/s {r['threads_ms_per_s']}")
            with open(out_file, "w") as f:
                json.dump(state, f, indent=1)
            time.sleep(2)  # TIME_WAIT and the load settle a little
    meta["load_end"] = bench.loadavg()
    state["meta"].append(meta)
    with open(out_file, "w") as f:
        json.dump(state, f, indent=1)
    write_section(runs, state["meta"], variants)
    return state


if __name__ == "__main__":
    sys.exit("run it through bench/run.py --rows fanout")
