#!/usr/bin/python3
"""How many times herald-fcgi opens a job's log to stream it (`?log=1`), counted with strace.

    /usr/bin/python3 bench/log_opens.py --bin-dir "$(swift build --show-bin-path)" [--mib 4]

Starts the stack (nginx + herald-fcgi, no runner) in a temp dir, writes an ended job with a
log of N MiB, follows it with one client and prints the log events received and the openat
calls on the log. With 64 KiB chunks a 4 MiB log is 64 events; one open per event is the floor.
Needs strace (Debian package `strace`).
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
sys.path.insert(0, os.path.join(REPO, "tests"))
from herald_stack import Stack  # noqa: E402
from support_herald import EventStream, StateWriter  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", required=True)
    p.add_argument("--mib", type=int, default=4)
    args = p.parse_args()
    trace = os.path.join(tempfile.mkdtemp(), "strace.out")
    with Stack(args.bin_dir, tempfile.mkdtemp(prefix="herald-log-opens-"), runner=False) as stack:
        writer = StateWriter(stack)
        job = writer.take(stack.json("POST", "/jobs", {"kind": "demo", "params": {}})[2])
        with open(os.path.join(stack.state_dir, "logs", job["id"] + ".log"), "wb") as f:
            f.write((b"x" * 1023 + b"\n") * (1024 * args.mib))
        writer.update(job["id"], state="running")
        writer.update(job["id"], state="succeeded")
        tracer = subprocess.Popen(["strace", "-f", "-e", "trace=openat", "-o", trace, "-p", str(stack.fcgi_proc.pid)],
                                  stderr=subprocess.DEVNULL)
        time.sleep(1)
        try:
            with EventStream(stack, f"/jobs/{job['id']}/events?log=1", timeout=60) as s:
                blocks = s.read_all(60)
            time.sleep(0.5)
        finally:
            tracer.terminate()
            tracer.wait()
    with open(trace) as f:
        opens = sum(1 for line in f if "/logs/" in line)
    print(f"{args.mib} MiB log: {sum(1 for b in blocks if b['event'] == 'log')} log events, {opens} opens of the log")
    return 0


if __name__ == "__main__":
    sys.exit(main())
