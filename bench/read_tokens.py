#!/usr/bin/python3
"""What checking a read token costs a request, through nginx, and how long 50 concurrent
POSTs with one Idempotency-Key take.

    /usr/bin/python3 bench/read_tokens.py --bin-dir "$(swift build --show-bin-path)" [-n 2000]

Starts the stack (require_read_token: true) in a temp dir and times N sequential
GET /jobs/ID over one keep-alive connection each way: with the submitter token (no JWT
work), with a read token in the herald_token cookie (parse + HMAC-SHA-256 + claims), and
with a forged one (refused 401). Prints median and p99 per request.
"""

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
sys.path.insert(0, os.path.join(REPO, "tests"))
from herald_stack import Stack  # noqa: E402
from support_herald import READ_SECRET, mint_read_token  # noqa: E402


def timed(stack, path, headers, n):
    conn = http.client.HTTPConnection(stack.host, stack.port, timeout=10)
    out, statuses = [], set()
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        out.append(time.perf_counter() - t)
        statuses.add(r.status)
    conn.close()
    out.sort()
    return statistics.median(out) * 1e6, out[int(len(out) * 0.99)] * 1e6, statuses


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", required=True)
    p.add_argument("-n", type=int, default=2000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="herald-bench-tokens-") as d:
        secret = os.path.join(d, "read.key")
        with open(secret, "w") as f:
            f.write(READ_SECRET + "\n")
        tokens = os.path.join(d, "tokens")
        with open(tokens, "w") as f:
            f.write("bench-submitter-token-0123456789\n")
        auth = {"Authorization": "Bearer bench-submitter-token-0123456789"}
        with Stack(args.bin_dir, os.path.join(d, "stack"), config_overrides={
                "read_token_secret_file": secret, "require_read_token": True,
                "allow_anonymous_submit": False, "submit_tokens_file": tokens}) as stack:
            job = stack.json("POST", "/jobs", {"kind": "demo", "params": {"steps": "1"}, "owner": "u"}, auth)[2]
            token = mint_read_token({"sub": "u", "exp": int(time.time()) + 3600})
            forged = mint_read_token({"sub": "u", "exp": int(time.time()) + 3600}, secret="x" * 40)
            path = f"/jobs/{job['id']}"
            timed(stack, path, auth, 200)  # warm up
            for name, headers in (("submitter token", auth), ("read token (cookie)", {"Cookie": f"herald_token={token}"}),
                                  ("forged read token", {"Cookie": f"herald_token={forged}"})):
                med, p99, statuses = timed(stack, path, headers, args.n)
                print(f"GET /jobs/ID with a {name:20s}: median {med:7.0f} µs, p99 {p99:7.0f} µs, statuses {sorted(statuses)}")
            body = {"kind": "demo", "params": {"steps": "1"}, "owner": "u"}
            t = time.perf_counter()
            with ThreadPoolExecutor(max_workers=50) as pool:
                answers = list(pool.map(lambda _: stack.json("POST", "/jobs", body, {**auth, "Idempotency-Key": "bench"}), range(50)))
            took = time.perf_counter() - t
            print(f"50 concurrent POST /jobs with one Idempotency-Key: {took * 1000:.0f} ms, statuses "
                  f"{sorted(a[0] for a in answers).count(201)}x201 {sorted(a[0] for a in answers).count(200)}x200, "
                  f"{len({a[2]['id'] for a in answers})} job")
    return 0


if __name__ == "__main__":
    sys.exit(main())
