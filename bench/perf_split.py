"""Where each process's CPU goes, from a fan-out run's perf.data (BENCH_PERF=1, bench/fanout.py).

    /usr/bin/python3 bench/perf_split.py RUN_DIR/perf.data [--us-per-event COMM=US ...]

Each sample's call chain is put in one bucket: the system call it is in, with the loopback TCP receive that the sender's writev runs in softirq
(`net_rx_action`) split out as "tcp receive (client side)", other kernel work, or user space
by library. Prints each process's buckets as shares of its samples, and, given the process's
µs per event from the bench (--us-per-event nginx=6.6), as µs per event.
"""
import argparse
import collections
import subprocess
import sys


def buckets(path):
    out = subprocess.run(["perf", "script", "-i", path, "-F", "comm,ip,sym,dso"], capture_output=True, text=True,
                         check=True).stdout
    counts = collections.defaultdict(collections.Counter)
    for block in out.split("\n\n"):
        lines = [line.strip() for line in block.strip().splitlines()]
        if not lines:
            continue
        comm = lines[0].split()[0]
        frames = [line.split(None, 1)[1] if " " in line else line for line in lines[1:]]
        syms = [f.split(" (")[0].split("+0x")[0] for f in frames]
        # The frame called by do_syscall_64 is the system call (`__x64_sys_recvfrom`, or `do_writev`
        # and `ksys_write` where the wrapper was inlined).
        at = syms.index("do_syscall_64") if "do_syscall_64" in syms else -1
        syscall = syms[at - 1] if at > 0 else None
        if any(s in ("net_rx_action", "__napi_poll", "process_backlog") for s in syms):
            bucket = "tcp receive (client side, softirq)"
        elif syscall:
            name = syscall
            for prefix in ("__x64_sys_", "__se_sys_", "__do_sys_", "ksys_", "do_", "__sys_"):
                name = name.removeprefix(prefix)
            bucket = "sys " + name
        elif frames and "kernel" in frames[0]:
            bucket = "kernel, outside system calls"
        else:
            dso = frames[0].rsplit("(", 1)[-1].rstrip(")") if frames else "?"
            bucket = "user " + dso.rsplit("/", 1)[-1]
        counts[comm][bucket] += 1
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("perf_data")
    p.add_argument("--us-per-event", nargs="*", default=[], help="COMM=US: the process's µs per event in that run")
    args = p.parse_args()
    us = {k: float(v) for k, v in (x.split("=", 1) for x in args.us_per_event)}
    counts = buckets(args.perf_data)
    for comm, c in sorted(counts.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(c.values())
        scale = us.get(comm)
        print(f"{comm}: {total} samples" + (f", {scale:.2f} µs/event" if scale else ""))
        for bucket, n in c.most_common():
            if n / total < 0.01:
                continue
            print(f"  {bucket:45s} {100 * n / total:5.1f} %" + (f"  {scale * n / total:6.2f} µs" if scale else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
