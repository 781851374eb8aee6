"""The store rows of `make bench` (issue 10): the PostgreSQL store beside the state directory,
on the same machine, in one run.

    make bench ROWS=stores          # every row below, 3 repeats each (~9 min)
    BENCH_REPEATS=5 BENCH_STORES_N=1000,5000 BENCH_STORES=directory,postgres,postgres-async \
        BENCH_STORES_ROWS=submit,running,fanout make bench ROWS=stores
    /usr/bin/python3 bench/run.py --rows stores --quick       # a dry run: 200 streams, 1 repeat

Stores (BENCH_STORES, all three by default): directory, postgres, and postgres-async: the same
PostgreSQL with synchronous_commit off for its database (commits do not wait for the WAL flush),
in the fan-out rows only (it makes submissions non-durable too: a diagnostic, not a deployment),
to tell the flush's share of the delay from the rest.

Every row runs against the same deployment, started afresh for each run: one nginx with an
upstream of two herald-fcgi nodes (unix sockets, least_conn, as nginx/example-cluster.conf) and
one `herald-runner work`, all on one store: a state directory, or a fresh database in a private
PostgreSQL cluster (scripts/herald_postgres.py) with PostgreSQL's shipped durability settings
(fsync, synchronous_commit and full_page_writes on: the directory store fsyncs too), reached over
its unix socket. In each repeat the stores take turns row by row, so a change in the machine's
load falls on both.

Rows:
  submit    BENCH_SUBMIT_JOBS (3000) POST /jobs through nginx over BENCH_SUBMIT_CONNS (8)
            keep-alive connections, no runner (bench/submitter.py throughput): jobs/s.
  running   BENCH_RUNNING_JOBS (200) jobs (`/bin/true`) submitted one at a time, 25 ms apart, to
            a waiting `herald-runner work` (bench/submitter.py latency): from the 201 to the
            job's `started_at`, and to the first started status seen on its event stream.
  fanout    N streams (BENCH_STORES_N: 1,000 and 5,000) over 100 jobs of bench/ticker.py, each
            reporting 100 states on fd 3 at 10/s through `herald-runner work`; the client and the
            metrics of bench/fanout.py (delay from the report in the job program to the receipt);
            on PostgreSQL also what the run cost it, from start to stop: transactions, connections opened
            (by program, from log_connections), job rows updated (the status writes that arrived), WAL
            flushes and their time (pg_stat_database, pg_stat_user_tables, pg_stat_wal with track_wal_io_timing).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import fanout
import run as bench  # bench/run.py: process accounting, packages
from herald_postgres import PostgresCluster
from herald_stack import Stack, stop_process

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
SECTION = os.path.join(BENCH, "stores-result.md")
NOTES = os.path.join(BENCH, "stores-notes.md")
HEAD = "## PostgreSQL store beside the state directory"
NOOP = {"kinds": {"noop": {"command": ["/bin/true"]}}, "workers": 4}
RUNNING_GAP_MS = 25
AIM = 1.5  # issue 10: the PostgreSQL store's status-write -> browser p99 within 1.5x of the directory's
ENV = ("BENCH_STORES", "BENCH_STORES_N", "BENCH_STORES_ROWS", "BENCH_REPEATS", "BENCH_SUBMIT_JOBS",
       "BENCH_SUBMIT_CONNS", "BENCH_RUNNING_JOBS")
# Each store: None for the state directory, else the settings of its PostgreSQL database.
STORES = {"directory": None, "postgres": {}, "postgres-async": {"synchronous_commit": "off"}}
FANOUT_ONLY = {"postgres-async"}
# What a fan-out run cost PostgreSQL: (name, SQL for the counter); times in ms.
PG_COUNTERS = (("transactions", "(SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())"),
               ("connections", "(SELECT sessions FROM pg_stat_database WHERE datname = current_database())"),
               ("job_updates", "(SELECT n_tup_upd FROM pg_stat_user_tables WHERE schemaname = 'herald' AND relname = 'jobs')"),
               ("wal_flushes", "(SELECT wal_sync FROM pg_stat_wal)"),
               ("wal_flush_ms", "(SELECT wal_sync_time FROM pg_stat_wal)"))


def log(msg):
    print(f"[stores {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class TwoNodes:
    """One nginx with an upstream of two herald-fcgi nodes and (runner=True) one `herald-runner work`
    on one store: the state directory in workdir, or a fresh database in `pg` with `settings`,
    migrated first. Started by `with`; answers submit/json/request through nginx as a Stack does."""

    def __init__(self, bin_dir, workdir, pg: PostgresCluster | None, config_overrides: dict, runner: bool = True,
                 settings: dict | None = None):
        self.pg = pg
        self.socket_dir = tempfile.mkdtemp(prefix="herald-bench-")
        sockets = [os.path.join(self.socket_dir, f"node{i}.sock") for i in range(2)]
        database_url = None
        if pg:
            self.database = pg.create_database("bench")
            for name, value in (settings or {}).items():
                pg.sql(f"ALTER DATABASE {self.database} SET {name} = '{value}'")
            database_url = pg.conninfo(self.database)
        self.front = Stack(bin_dir, workdir, runner=runner, stop_grace=5, database_url=database_url,
                           upstream=sockets, config_overrides=config_overrides)
        self.sockets = sockets
        self.nodes = []

    def start(self):
        f = self.front
        try:
            os.makedirs(f.logs_dir, exist_ok=True)
            f.write_config()
            if f.database_url:
                f.migrate()
            else:
                f.ensure_state_layout()  # the nodes start before the runner would make it
            for i, sock in enumerate(self.sockets):
                self.nodes.append(f._spawn(f"node{i}", [f.fcgi_bin, "--config", f.config_path, "--socket", sock]))
            deadline = time.monotonic() + 20
            while not all(os.path.exists(s) for s in self.sockets):
                if time.monotonic() > deadline or any(n.poll() is not None for n in self.nodes):
                    raise RuntimeError("a herald-fcgi node did not start: " + f.log_tail("node0") + f.log_tail("node1"))
                time.sleep(0.02)
            f.start()
        except BaseException:
            self.stop()
            raise
        self.port = f.port
        return self

    def stop(self):
        self.front.stop()
        for node in self.nodes:
            stop_process(node, 5)
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def submit(self, kind, params=None):
        return self.front.submit(kind, params)

    def json(self, *args, **kw):
        return self.front.json(*args, **kw)

    def request(self, *args, **kw):
        return self.front.request(*args, **kw)

    def pg_counters(self):
        """PG_COUNTERS now (cumulative) and where the server's log ends, or None on the directory."""
        if not self.pg:
            return None
        values = self.pg.sql("SELECT " + ", ".join(sql for _, sql in PG_COUNTERS), database=self.database)
        out = dict(zip((name for name, _ in PG_COUNTERS), (float(v) for v in values.strip().split("|"))))
        out["log_offset"] = os.path.getsize(self.pg.log)
        return out

    def pg_cost_since(self, before):
        """What the store cost PostgreSQL since `before` (pg_counters): the counters' growth and the
        connections opened by each program (application_name in the log_connections lines)."""
        now = self.pg_counters()
        out = {name: now[name] - before[name] for name, _ in PG_COUNTERS}
        with open(self.pg.log, "rb") as f:
            f.seek(before["log_offset"])
            for m in re.finditer(rb"connection authorized: .*? database=" + self.database.encode() + rb" application_name=([\w-]+)",
                                 f.read()):
                key = "connections_" + m.group(1).decode()
                out[key] = out.get(key, 0) + 1
        return out

    def postmaster(self):
        with open(os.path.join(self.pg.data, "postmaster.pid")) as pid_file:
            return int(pid_file.readline())

    def processes(self):
        f = self.front
        out = {"nginx": bench.family([f.nginx_proc.pid]), "herald-fcgi": [n.pid for n in self.nodes]}
        if f.runner_proc is not None:
            out["herald-runner"] = [f.runner_proc.pid]
        if self.pg:
            out["postgres"] = bench.family([self.postmaster()])
        return out

    def cpu(self):
        """CPU seconds so far per group of processes; postgres counts the backends that ended too
        (the runner's pool opens and closes connections all the time), through the postmaster's
        children's CPU."""
        out = fanout.cpu_by_process(self.processes())
        if self.pg:
            out["postgres"] += bench.proc_children_cpu(self.postmaster())
        return out


class FanoutRows(fanout.HeraldRows):
    """bench/fanout.py's Herald rows (ticker jobs through `herald-runner work`) on TwoNodes."""

    def __init__(self, bin_dir, workdir, pg, settings):
        self.go_file = os.path.join(workdir, "go")
        self.stack = TwoNodes(bin_dir, workdir, pg, fanout.ticker_config(self.go_file), settings=settings)
        self.ids = []

    def processes(self):
        return self.stack.processes()

    def cpu(self):
        return self.stack.cpu()


def submitter(mode, port, args):
    r = subprocess.run([bench.VPY, os.path.join(BENCH, "submitter.py"), mode, "--port", str(port)] + args,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"submitter.py {mode}: exit {r.returncode}: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def submit_row(bin_dir, wd, pg, settings, jobs, conns):
    with TwoNodes(bin_dir, wd, pg, NOOP, runner=False, settings=settings) as s:
        cpu = DeltaCPU(s)
        out = submitter("throughput", s.port, ["--jobs", str(jobs), "--conns", str(conns)])
        out["cpu_s"] = cpu.since()
        return out


def running_row(bin_dir, wd, pg, settings, jobs):
    with TwoNodes(bin_dir, wd, pg, NOOP, settings=settings) as s:
        time.sleep(1)  # the runner settles into waiting
        return submitter("latency", s.port, ["--jobs", str(jobs), "--gap-ms", str(RUNNING_GAP_MS)])


def fanout_row(bin_dir, wd, pg, settings, n):
    system = FanoutRows(bin_dir, wd, pg, settings)
    with system:
        before = system.stack.pg_counters()
        r = fanout.measure(system, n, fanout.SPREAD_JOBS, os.path.join(wd, "run"))
    # Read once every connection has closed: a backend reports its counters when it exits, else up to 10 s late.
    if before:
        r["postgres"] = system.stack.pg_cost_since(before)
    return r


class DeltaCPU:
    """CPU seconds of each named group of a system's processes since construction."""

    def __init__(self, system):
        self.system = system
        self.start = fanout.system_cpu(system)

    def since(self):
        return {k: v - self.start[k] for k, v in fanout.system_cpu(self.system).items()}


def postgres_facts(pg):
    version = subprocess.run([os.path.join(pg.bin, "postgres"), "--version"], capture_output=True, text=True).stdout.strip()
    shown = pg.sql("SELECT name || '=' || setting FROM pg_settings WHERE name IN "
                   "('fsync', 'synchronous_commit', 'full_page_writes', 'shared_buffers', 'wal_level', 'max_connections') "
                   "ORDER BY name").split()
    return {"version": version, "settings": shown}


# ---------------------------------------------------------------------------
# the section


def spread(values, digits=1):
    return fanout.spread([v for v in values if v is not None], digits)


def median(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "–"


def table_rows(runs, stores):
    """(row label, measure, {store: [values]}, digits, higher is better) for the summary table."""
    def values(row, key, n=None):
        return {s: [r[key] if not callable(key) else key(r) for r in runs
                    if r["row"] == row and r["store"] == s and (n is None or r.get("n") == n)] for s in stores}

    out = []
    sub = [r for r in runs if r["row"] == "submit"]
    if sub:
        label = f"submit: {sub[0]['jobs']:,} × `POST /jobs`, {sub[0]['conns']} connections"
        out += [(label, "jobs/s", values("submit", "jobs_per_s"), 0),
                ("", "POST p50 / p99 ms", {s: (values("submit", "p50_ms")[s], values("submit", "p99_ms")[s]) for s in stores}, 1),
                ("", "non-201 answers", values("submit", "non201"), 0)]
    run_ = [r for r in runs if r["row"] == "running"]
    if run_:
        label = f"submit → running: {run_[0]['jobs']} jobs one at a time, runner waiting"
        out += [(label, "201 → `started_at` p50 / p99 ms",
                 {s: (values("running", "started_p50_ms")[s], values("running", "started_p99_ms")[s]) for s in stores}, 1),
                ("", "201 → started status on the stream p50 / p99 ms",
                 {s: (values("running", "seen_p50_ms")[s], values("running", "seen_p99_ms")[s]) for s in stores}, 1)]
    for n in sorted({r["n"] for r in runs if r["row"] == "fanout"}):
        label = f"fan-out: {n:,} streams over {fanout.SPREAD_JOBS} jobs, two nodes"
        out += [(label, "streams open", values("fanout", "opened", n), 0),
                ("", "status-write → browser p50 ms", values("fanout", "p50_ms", n), 1),
                ("", "status-write → browser p99 ms", values("fanout", "p99_ms", n), 1),
                ("", "states never seen / deliveries lost",
                 {s: (values("fanout", "never_seen", n)[s], values("fanout", "lost", n)[s]) for s in stores}, 0),
                ("", "CPU µs per delivered event", values("fanout", "us_per_event_total", n), 2)]
        for proc in ("nginx", "herald-fcgi", "herald-runner", "postgres"):
            per = values("fanout", lambda r, p=proc: r["us_per_event"].get(p), n)
            if any(v is not None for vs in per.values() for v in vs):
                out.append(("", f"… of which {proc}", per, 2))
        pg = {name: values("fanout", lambda r, k=name: r.get("postgres", {}).get(k), n) for name, _ in PG_COUNTERS}
        if any(v is not None for vs in pg["transactions"].values() for v in vs):
            apps = sorted({k for r in runs for k in r.get("postgres", {}) if k.startswith("connections_")})
            out += [("", "PostgreSQL transactions (reads too) / connections opened in the run",
                     {s: (pg["transactions"][s], pg["connections"][s]) for s in stores}, 0)]
            out += [("", f"… connections opened by {k.removeprefix('connections_')}",
                     values("fanout", lambda r, k=k: r.get("postgres", {}).get(k, 0) if r.get("postgres") else None, n), 0)
                    for k in apps]
            out.append(("", "job rows updated in the run (status writes that reached PostgreSQL)",
                        values("fanout", lambda r: r.get("postgres", {}).get("job_updates"), n), 0))
            out.append(("", "PostgreSQL WAL flushes / their time ms in the run",
                        {s: (pg["wal_flushes"][s], pg["wal_flush_ms"][s]) for s in stores}, 0))
    return out


def cell(v, digits):
    if isinstance(v, tuple):
        return " / ".join(spread(x, digits) for x in v)
    return spread(v, digits)


def verdicts(runs):
    """The aim at each N: p99 within AIM× of the directory's at the same load, which needs the
    PostgreSQL store to get (nearly) as many states to the browsers as the directory did."""
    out = []
    states = fanout.SPREAD_JOBS * fanout.STATES
    for n in sorted({r["n"] for r in runs if r["row"] == "fanout"}):
        def get(store, key):
            return median(r[key] for r in runs if r["row"] == "fanout" and r["store"] == store and r["n"] == n)
        d, p, a = get("directory", "p99_ms"), get("postgres", "p99_ms"), get("postgres-async", "p99_ms")
        if not d or p is None:
            continue
        seen_d, seen_p = states - get("directory", "never_seen"), states - get("postgres", "never_seen")
        same_load = seen_p >= 0.95 * seen_d
        met = same_load and p <= AIM * d
        why = "" if same_load else (f": not the same load, PostgreSQL got {seen_p:,.0f} of the {states:,} states to a browser, "
                                    f"the directory {seen_d:,.0f}")
        out.append(f"{n:,} streams: PostgreSQL p99 {p:.1f} ms vs the directory's {d:.1f} ms = {p / d:.2f}× "
                   f"→ **{'met' if met else 'not met'}** (aim ≤ {AIM:g}× at the same load){why}"
                   + (f"; with synchronous_commit off (postgres-async, a diagnostic) {a:.1f} ms = {a / d:.2f}×"
                      if a is not None else ""))
    return out


def write_section(state):
    runs, meta = state["runs"], state["meta"]
    stores = [s for s in STORES if any(r["store"] == s for r in runs)]
    compared = [s for s in stores if s != "directory"] if "directory" in stores else []
    repeats = max((r["repeat"] for r in runs), default=0)
    lines = []
    A = lines.append
    A(f"{HEAD} (issue 10)\n")
    A("Generated by `bench/run.py --rows stores` (`make bench ROWS=stores`, module `bench/stores.py`); the notes "
      "after the tables are written by hand. Each run started its deployment afresh; in each repeat the stores "
      f"took turns row by row ({repeats} repeats). Figures are the median, with the range over the repeats in "
      "brackets; the ratio is of the medians (of the second figure where a cell has two).\n")
    for m in meta:
        A(f"- {m['at']} UTC, git {m['git']}, load {' '.join(m['load'])} → {' '.join(m.get('load_end', ['?']))}: "
          f"`{m['command']}`")
    pg = next((m["postgres"] for m in reversed(meta) if m.get("postgres")), None)
    A("")
    A("Deployment, the same for both stores: one nginx (`upstream` of two herald-fcgi nodes on unix sockets, "
      "`least_conn`, as nginx/example-cluster.conf) and one `herald-runner work`, on one state directory or one "
      "PostgreSQL database (a private cluster on this machine's disk, unix socket"
      + (f"; {pg['version']}, {', '.join(pg['settings'])}" if pg else "") + "). "
      "**submit**: bench/submitter.py, asyncio + uvloop, keep-alive connections each sending its next POST when "
      "the last was answered; no runner. **submit → running**: `/bin/true` jobs, one submitted every "
      f"{RUNNING_GAP_MS} ms after the last was seen started; `started_at` is the runner's clock (ms), the stream "
      "is opened right after the 201. **fan-out**: bench/fanout.py's client and ticker: every job reports "
      f"{fanout.STATES} states on fd 3 at 10/s through `herald-runner work`; delay from the moment the job program "
      "reported a state to its receipt by the client; CPU per event over the window as in the fan-out rows "
      "(postgres = the postmaster and every backend). **postgres-async**: the same PostgreSQL with "
      "`synchronous_commit = off` for its database (a commit does not wait for its WAL flush).\n")

    def med(v):
        return median(v[-1] if isinstance(v, tuple) else v)

    A("| row | measure | " + " | ".join(stores) + "".join(f" | {s} / directory" for s in compared) + " |")
    A("| --- | --- | " + " | ".join("---:" for _ in stores + compared) + " |")
    for label, measure, vals, digits in table_rows(runs, stores):
        cells = [cell(vals[s], digits) for s in stores] + [ratio(med(vals[s]), med(vals["directory"])) for s in compared]
        A(f"| {label} | {measure} | " + " | ".join(cells) + " |")
    A("")
    v = verdicts(runs)
    if v:
        A("The aim (issue 10): the PostgreSQL store's status-write → browser p99 within "
          f"{AIM:g}× of the directory store's at the same load.\n")
        for line in v:
            A(f"- {line}")
        A("")
    A("<details><summary>Every run</summary>\n")
    A("| repeat | row | store | result | load |")
    A("| ---: | --- | --- | --- | --- |")
    for r in runs:
        if r["row"] == "submit":
            res = f"{r['jobs_per_s']:.0f} jobs/s, POST p99 {bench.fmt(r['p99_ms'])} ms, non-201 {r['non201']}"
        elif r["row"] == "running":
            res = (f"201 → started_at p50 {bench.fmt(r['started_p50_ms'])} p99 {bench.fmt(r['started_p99_ms'])} ms; "
                   f"seen p50 {bench.fmt(r['seen_p50_ms'])} p99 {bench.fmt(r['seen_p99_ms'])} max {bench.fmt(r['seen_max_ms'])} ms")
        else:
            per = ", ".join(f"{p} {x:.2f}" for p, x in r["us_per_event"].items() if x is not None)
            res = (f"{r['n']:,} streams ({r['opened']} open): p50 {bench.fmt(r['p50_ms'])} p99 {bench.fmt(r['p99_ms'])} "
                   f"max {bench.fmt(r['max_ms'])} ms, never seen {r['never_seen']}, lost {r['lost']}, "
                   f"CPU {bench.fmt(r['us_per_event_total'], 2)} µs/event ({per})")
            if r.get("postgres"):
                res += "; PostgreSQL " + ", ".join(f"{k} {v:,.0f}" for k, v in r["postgres"].items())
        A(f"| {r['repeat']} | {r['row']} | {r['store']} | {res} | {r['load'][0]} |")
    A("\n</details>\n")
    with open(SECTION, "w") as f:
        f.write("\n".join(lines))


def splice_section(doc):
    """Puts the section (and its hand-written notes) into docs/BENCHMARKS.md in place of the previous one."""
    section = open(SECTION).read().rstrip() + "\n" if os.path.exists(SECTION) else ""
    if os.path.exists(NOTES):
        section += "\n" + open(NOTES).read().rstrip() + "\n"
    if section:
        bench.splice_section(doc, HEAD, section)


def report(results_dir):
    """Rewrites the section from the recorded runs (run.py --report-only)."""
    path = os.path.join(results_dir, "stores.json")
    if os.path.exists(path):
        write_section(json.load(open(path)))


# ---------------------------------------------------------------------------
# the run


def main(bin_dir, results_dir, quick, argv, keep):
    """The store rows; writes their section."""
    stores = os.environ.get("BENCH_STORES", ",".join(STORES)).split(",")
    if not stores or set(stores) - set(STORES):
        raise SystemExit(f"BENCH_STORES: some of {', '.join(STORES)}, not {','.join(stores)}")
    wanted = os.environ.get("BENCH_STORES_ROWS", "submit,running,fanout").split(",")
    if not wanted or set(wanted) - {"submit", "running", "fanout"}:
        raise SystemExit(f"BENCH_STORES_ROWS: some of submit, running, fanout, not {','.join(wanted)}")
    ns = [int(x) for x in os.environ.get("BENCH_STORES_N", "200" if quick else "1000,5000").split(",") if x]
    repeats = int(os.environ.get("BENCH_REPEATS", "1" if quick else "3"))
    submit_jobs = int(os.environ.get("BENCH_SUBMIT_JOBS", "300" if quick else "3000"))
    submit_conns = int(os.environ.get("BENCH_SUBMIT_CONNS", "8"))
    running_jobs = int(os.environ.get("BENCH_RUNNING_JOBS", "30" if quick else "200"))
    out_file = os.path.join(results_dir, "stores.json")
    state = json.load(open(out_file)) if keep and os.path.exists(out_file) else {"runs": [], "meta": []}
    work = os.path.join(results_dir, "work")
    meta = {"at": time.strftime("%H:%M", time.gmtime()), "load": bench.loadavg(),
            "git": subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                                  text=True).stdout.strip(),
            "command": " ".join([f"{k}={os.environ[k]}" for k in ENV if k in os.environ] + ["/usr/bin/python3"] + argv)}
    rows = [("submit", None, lambda *a: submit_row(bin_dir, *a, submit_jobs, submit_conns)),
            ("running", None, lambda *a: running_row(bin_dir, *a, running_jobs))]
    rows += [("fanout", n, lambda *a, n=n: fanout_row(bin_dir, *a, n)) for n in ns]
    rows = [r for r in rows if r[0] in wanted]
    log(f"stores {stores}, rows {[(r, n) for r, n, _ in rows]} × {repeats}, load {' '.join(meta['load'])}")
    pg = PostgresCluster(durable=True).start() if any(STORES[s] is not None for s in stores) else None
    try:
        if pg:
            pg.sql("ALTER SYSTEM SET track_wal_io_timing = on")
            pg.sql("ALTER SYSTEM SET log_connections = on")
            pg.sql("SELECT pg_reload_conf()")
            meta["postgres"] = postgres_facts(pg)
            log(f"PostgreSQL: {meta['postgres']['version']}, {' '.join(meta['postgres']['settings'])}")
        for rep in range(repeats):
            for row, n, fn in rows:
                for store in stores:
                    if store in FANOUT_ONLY and row != "fanout":
                        continue
                    name = f"{row}{'-' + str(n) if n else ''}-{store}-{rep}"
                    wd = os.path.join(work, f"stores-{name}")
                    shutil.rmtree(wd, ignore_errors=True)
                    load = bench.loadavg()
                    try:
                        settings = STORES[store]
                        r = fn(wd, pg if settings is not None else None, settings)
                    except Exception as e:  # noqa: BLE001
                        log(f"{name}: FAILED: {e}")
                        continue
                    r.update({"row": row, "store": store, "repeat": rep + 1, "load": r.get("load", load)})
                    state["runs"].append(r)
                    log(f"{name}: " + json.dumps({k: v for k, v in r.items() if k not in ("syscalls_per_event", "cpu_s")},
                                                 default=str)[:600])
                    with open(out_file, "w") as f:
                        json.dump(state, f, indent=1)
                    time.sleep(2)  # TIME_WAIT and the load settle a little
    finally:
        if pg:
            pg.stop()
    meta["load_end"] = bench.loadavg()
    state["meta"].append(meta)
    with open(out_file, "w") as f:
        json.dump(state, f, indent=1)
    write_section(state)
    return state


if __name__ == "__main__":
    sys.exit("run it through bench/run.py --rows stores")
