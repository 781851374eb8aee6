"""The runner's status write path under load (issue 11): one `herald-runner work` running JOBS
command jobs at once, each program (bench/fd3_reporter.c) writing RATE progress lines a second on
fd 3, each line carrying the wall-clock time it was written.

A reader on inotify (what herald-fcgi's watcher does) timestamps every rename into STATE/jobs/,
reads the status and takes write → visible delay = receipt − the reported time in its message.
In a WINDOW-second steady window (every job running) it measures:

    reports/s   fd-3 lines the runner took in (from the report numbers of the states it wrote)
    writes/s    status files written (renames into jobs/ seen)
    CPU µs      herald-runner's utime+stime (/proc/PID/stat) per status write and per report
    delay       p50 / p99 / max of write → visible, ms

Each configuration runs REPEAT times on a fresh state directory under /var/tmp (the real disk);
the summary gives the median and the range. Prints a Markdown table; --json writes the raw runs.

    /usr/bin/python3 bench/runner_writes.py --bin-dir .build-release/release --jobs 100 --rate 100
    /usr/bin/python3 bench/runner_writes.py --bin-dir .build-release/release --jobs 100 --rate 10
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time

IN_MOVED_TO = 0x80
IN_CLOSE_WRITE = 0x08
IN_NONBLOCK = 0o4000
HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")


class Inotify:
    """One inotify watch on a directory, read without blocking (ctypes: stdlib only)."""

    def __init__(self, path: str, mask: int):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK)
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, path.encode(), mask) < 0:
            raise OSError(ctypes.get_errno(), "inotify")

    def names(self) -> list[str]:
        out = []
        try:
            data = os.read(self.fd, 1 << 20)
        except BlockingIOError:
            return out
        i = 0
        while i < len(data):
            _, _, _, length = struct.unpack_from("iIII", data, i)
            out.append(data[i + 16:i + 16 + length].rstrip(b"\0").decode())
            i += 16 + length
        return out


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def run_once(bin_dir: str, reporter: str, jobs: int, rate: float, window: float, warmup: float) -> dict:
    state = tempfile.mkdtemp(prefix="herald-writes-", dir="/var/tmp")
    seconds = warmup + window + 8
    config = os.path.join(state, "herald.yml")
    with open(config, "w") as f:
        f.write(f"state_dir: {state}/state\nworkers: {jobs}\nkinds:\n  bench:\n"
                f"    command: [{reporter}, '{rate}', '{seconds}']\n")
    runner = os.path.join(bin_dir, "herald-runner")
    env = dict(os.environ, HERALD_CONFIG=config)
    proc = None
    try:
        subprocess.run([runner, "check-config"], env=env, check=True, stdout=subprocess.DEVNULL)
        # `run` on an empty queue creates the layout; jobs submitted before `work` starts all start at once.
        subprocess.run([runner, "run"], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(jobs):
            subprocess.run([runner, "submit", "bench"], env=env, check=True, stdout=subprocess.DEVNULL)
        watch = Inotify(f"{state}/state/jobs", IN_MOVED_TO)
        proc = subprocess.Popen([runner, "work", "--workers", str(jobs)], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(state, "runner.log"), "w"))
        started: set[str] = set()
        last_report: dict[str, int] = {}
        begin = end = None
        cpu0 = cpu1 = 0.0
        reports0: dict[str, int] = {}
        writes = 0
        delays: list[float] = []
        deadline = time.monotonic() + seconds + 30
        poller = select.poll()
        poller.register(watch.fd, select.POLLIN)
        while time.monotonic() < deadline:
            poller.poll(100)
            now = time.monotonic()
            for name in watch.names():
                received = time.time_ns()
                if not name.endswith(".json"):
                    continue
                try:
                    with open(f"{state}/state/jobs/{name}", "rb") as f:
                        job = json.loads(f.read())
                except (OSError, ValueError):
                    continue
                parts = (job.get("message") or "").split()
                if job.get("state") != "running" or len(parts) != 2:
                    continue
                started.add(name)
                last_report[name] = int(parts[0])
                if begin is not None and end is None:
                    writes += 1
                    delays.append((received - int(parts[1])) / 1e6)
            if begin is None and len(started) == jobs:
                begin = now + warmup
            if begin is not None and not reports0 and now >= begin:
                begin, cpu0, reports0 = now, cpu_seconds(proc.pid), dict(last_report)
                writes, delays = 0, []
            if reports0 and end is None and now >= begin + window:
                end, cpu1 = now, cpu_seconds(proc.pid)
                break
        if end is None:
            raise RuntimeError(f"no steady window: {len(started)} of {jobs} jobs seen running; see {state}/runner.log")
        elapsed = end - begin
        reports = sum(last_report[n] - reports0.get(n, 0) for n in last_report)
        cpu = cpu1 - cpu0
        return {
            "jobs": jobs, "rate": rate, "window_s": round(elapsed, 2),
            "reports_per_s": round(reports / elapsed, 1), "writes_per_s": round(writes / elapsed, 1),
            "cpu_s": round(cpu, 3), "cpu_percent": round(100 * cpu / elapsed, 1),
            "cpu_us_per_write": round(1e6 * cpu / max(writes, 1), 1),
            "cpu_us_per_report": round(1e6 * cpu / max(reports, 1), 1),
            "delay_p50_ms": round(percentile(delays, 50), 2), "delay_p99_ms": round(percentile(delays, 99), 2),
            "delay_max_ms": round(max(delays, default=float("nan")), 2),
        }
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(state, ignore_errors=True)


COLUMNS = ["reports_per_s", "writes_per_s", "cpu_percent", "cpu_us_per_write", "cpu_us_per_report",
           "delay_p50_ms", "delay_p99_ms", "delay_max_ms"]


def summary(runs: list[dict]) -> str:
    def cell(key):
        values = [r[key] for r in runs]
        med = statistics.median(values)
        return f"{med:g} ({min(values):g}–{max(values):g})" if len(values) > 1 else f"{med:g}"
    head = "| jobs × rate | " + " | ".join(COLUMNS) + " |"
    rule = "| --- |" + " ---: |" * len(COLUMNS)
    row = f"| {runs[0]['jobs']} × {runs[0]['rate']:g}/s | " + " | ".join(cell(k) for k in COLUMNS) + " |"
    return "\n".join([head, rule, row])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin-dir", default=os.environ.get("HERALD_BIN_DIR", ".build-release/release"))
    p.add_argument("--jobs", type=int, default=100)
    p.add_argument("--rate", type=float, default=100.0, help="fd-3 reports a second per job")
    p.add_argument("--window", type=float, default=10.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds after every job runs before measuring")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", help="write the runs here")
    args = p.parse_args()
    build = tempfile.mkdtemp(prefix="herald-reporter-")
    reporter = os.path.join(build, "fd3_reporter")
    try:
        subprocess.run(["cc", "-O2", "-o", reporter, os.path.join(HERE, "fd3_reporter.c")], check=True)
        runs = []
        for i in range(args.repeat):
            run = run_once(args.bin_dir, reporter, args.jobs, args.rate, args.window, args.warmup)
            print(json.dumps(run), file=sys.stderr)
            runs.append(run)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(runs, f, indent=1)
    print(summary(runs))


if __name__ == "__main__":
    main()
