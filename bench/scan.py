#!/usr/bin/python3
"""What kept jobs cost the read routes: /healthz, /metrics and a filtered list with many ended jobs.

Starts nginx + herald-fcgi (scripts/herald_stack.py, no runner) on a temp state directory,
submits --jobs jobs through the API, ends all but 10 of them the way a runner does (jobs/ID.json
replaced by rename), then times each route --rounds times from one client.

    /usr/bin/python3 bench/scan.py [--jobs 10000] [--rounds 50] [--bin-dir .build/release]

Prints the figures and writes bench/scan-result.md (included in docs/BENCHMARKS.md by
`bench/run.py --report-only`).
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
ROUTES = ("/healthz", "/metrics", "/jobs?state=queued&limit=100")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from herald_stack import Stack  # noqa: E402


def end_jobs(state_dir, jobs):
    """Moves each submission into jobs/ as `succeeded`, as herald-runner would after running it."""
    for job in jobs:
        job = {k: v for k, v in job.items() if k != "links"}
        job.update(state="succeeded", seq=job["seq"] + 2, progress=100.0, exit_code=0,
                   started_at=job["created_at"], finished_at=job["created_at"])
        tmp = os.path.join(state_dir, "tmp", job["id"] + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps(job) + "\n")
        os.rename(tmp, os.path.join(state_dir, "jobs", job["id"] + ".json"))
        os.unlink(os.path.join(state_dir, "new", job["id"] + ".json"))


def timed(stack, path, rounds):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        status, _, _ = stack.request("GET", path)
        times.append((time.perf_counter() - t0) * 1000)
        assert status == 200, (path, status)
    return {"first_ms": round(times[0], 2), "median_ms": round(statistics.median(times), 2),
            "max_ms": round(max(times), 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--bin-dir", default=os.path.join(ROOT, ".build", "release"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="herald-scan-") as work:
        stack = Stack(args.bin_dir, work, runner=False).start()
        try:
            submitted = []
            for _ in range(args.jobs):
                status, _, data = stack.request("POST", "/jobs", {"kind": "demo", "params": {"steps": "1"}})
                assert status == 201, status
                submitted.append(json.loads(data))
            end_jobs(stack.state_dir, submitted[:-10])
            result = {"jobs": args.jobs, "ended": args.jobs - 10, "rounds": args.rounds}
            for path in ROUTES:
                result[path] = timed(stack, path, args.rounds)
        finally:
            stack.stop()
    print(json.dumps(result, indent=2))
    write_markdown(result, " ".join(sys.argv[1:]))


def write_markdown(result, argv):
    command = f"/usr/bin/python3 bench/scan.py {argv}".strip()
    lines = ["## Kept jobs and the read routes (`bench/scan.py`)\n",
             f"{result['jobs']:,} jobs in the state directory, {result['ended']:,} of them ended; one client, "
             f"{result['rounds']} requests a route, through nginx (`{command}`). "
             "The first request reads every status file once; later ones read only the jobs not yet ended "
             "(the store remembers ended ones: their files never change again).\n",
             "| route | first | median | max |", "| --- | --- | --- | --- |"]
    for path in ROUTES:
        r = result[path]
        lines.append(f"| `{path}` | {r['first_ms']:.1f} ms | {r['median_ms']:.1f} ms | {r['max_ms']:.1f} ms |")
    with open(os.path.join(BENCH, "scan-result.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
