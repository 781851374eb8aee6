#!/usr/bin/python3
"""Soak: 10,000 concurrent streams for several minutes with jobs finishing throughout.

nginx + herald-fcgi + `herald-runner work` (scripts/herald_stack.py). The load client
(bench/client.py --soak) runs groups of 50 subscribers: each group submits a demo job
(10–40 steps of 500 ms), follows it until `event: end`, checks that every stream saw the
terminal status and the end event, then submits the next job. Meanwhile herald-fcgi's
descriptors, RSS and thread count are sampled every 5 s; after the clients leave we
check they return to where they started. Too heavy for CI.

    /usr/bin/python3 bench/soak.py [--minutes 2] [--streams 10000]

Writes bench/results/soak.json and bench/soak-result.md (included in docs/BENCHMARKS.md).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import run  # noqa: E402


def sample(system):
    pid = system.fcgi_pid()
    rss, _ = run.proc_mem(pid)
    return {"t": time.time(), "fds": run.proc_fds(pid), "rss_mb": rss / 2**20, "threads": run.proc_threads(pid),
            "total_rss_mb": sum(run.proc_mem(p)[0] for p in system.pids()) / 2**20}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=2)
    p.add_argument("--streams", type=int, default=10000)
    p.add_argument("--group-size", type=int, default=50)
    args = p.parse_args()
    run.ensure_packages()
    run.raise_nofile()
    bin_dir = run.build_herald()
    os.makedirs(run.RESULTS, exist_ok=True)
    wd = os.path.join(run.WORK, "soak")
    import shutil
    shutil.rmtree(wd, ignore_errors=True)
    groups = args.streams // args.group_size
    procs = max(1, math.ceil(args.streams / 6000))
    load_start = run.loadavg()
    samples, clients = [], []
    system = run.HeraldSystem(bin_dir, wd, runner=True)
    system.stack.config_overrides = {"workers": groups + 20}
    with system:
        time.sleep(1)
        base = sample(system)
        samples.append({**base, "phase": "before"})
        try:
            per = args.streams // procs
            for i in range(procs):
                clients.append(subprocess.Popen(
                    [run.VPY, os.path.join(BENCH, "client.py"), "--soak", "--port", str(system.port), "--index", str(i),
                     "--streams", str(per), "--group-size", str(args.group_size), "--duration", str(args.minutes * 60),
                     "--out", os.path.join(run.RESULTS, f"soak-client{i}.json"), "--first-event-timeout", "60"],
                    stdin=subprocess.DEVNULL, start_new_session=True))
            deadline = time.time() + args.minutes * 60 + 180
            while any(c.poll() is None for c in clients) and time.time() < deadline:
                time.sleep(5)
                samples.append({**sample(system), "phase": "load"})
        finally:
            for c in clients:
                if c.poll() is None:
                    c.kill()
                    c.wait()
        for _ in range(4):  # clients gone: descriptors and memory should come back
            time.sleep(5)
            samples.append({**sample(system), "phase": "after"})
        st, _, health = system.stack.json("GET", "/healthz")
    results = [json.load(open(os.path.join(run.RESULTS, f"soak-client{i}.json"))) for i in range(len(clients))]
    tally = {}
    for r in results:
        for k, v in r["tally"].items():
            tally[k] = tally.get(k, 0) + v
    errors = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    load = [s for s in samples if s["phase"] == "load"]
    after = [s for s in samples if s["phase"] == "after"]
    peak_open = max((sum(x[1] for x in pts) for pts in zip(*[r["open_samples"] for r in results])), default=0)
    out = {"minutes": args.minutes, "streams": args.streams, "tally": tally, "errors": errors, "samples": samples,
           "peak_open": peak_open, "load_start": load_start, "load_end": run.loadavg(), "healthz": health,
           "client_cpu_s": sum(r["cpu_s"] for r in results), "out_of_order": sum(r["out_of_order"] for r in results)}
    with open(os.path.join(run.RESULTS, "soak.json"), "w") as f:
        json.dump(out, f, indent=1)
    threads = sorted({s["threads"] for s in samples})
    lines = [
        "## Soak (`bench/soak.py`)\n",
        f"{args.streams} streams wanted at once for {args.minutes:g} min, in groups of {args.group_size} on one demo job "
        "each (10–40 steps × 500 ms); a group follows its job to `event: end`, then submits the next. "
        f"Load average at start {' '.join(load_start)}, at end {' '.join(out['load_end'])}.\n",
        f"- jobs followed to the end: {tally.get('jobs', 0)}; streams: {tally.get('streams', 0)}, of which "
        f"{tally.get('ok', 0)} saw the terminal status and `event: end`; **lost final status: {tally.get('no_final', 0)}**, "
        f"terminal status without end: {tally.get('no_end', 0)}, could not open: {tally.get('open_failed', 0)} "
        f"(errors {errors or 'none'}); out-of-order events: {out['out_of_order']}; submit failures: {tally.get('submit_failed', 0)}.",
        f"- streams open at once (client's count, 5 s samples): peak {peak_open}.",
        f"- herald-fcgi descriptors: before {base['fds']}, peak {max(s['fds'] for s in load) if load else '–'}, "
        f"after the clients left {after[-1]['fds'] if after else '–'}.",
        f"- herald-fcgi RSS: before {base['rss_mb']:.0f} MB, peak {max(s['rss_mb'] for s in load) if load else 0:.0f} MB, "
        f"after {after[-1]['rss_mb'] if after else 0:.0f} MB (samples after: "
        f"{', '.join('%.0f' % s['rss_mb'] for s in after)}); whole system (nginx + herald-fcgi + runner) peak "
        f"{max(s['total_rss_mb'] for s in load) if load else 0:.0f} MB.",
        f"- herald-fcgi threads seen: {threads} ({'constant' if len(threads) == 1 else 'changed'}).",
        "",
    ]
    with open(os.path.join(BENCH, "soak-result.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
