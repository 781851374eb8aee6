"""Submit load for the store rows (bench/stores.py): POST /jobs through nginx on raw sockets
(asyncio + uvloop when available), one JSON object on stdout.

    submitter.py throughput --port P --jobs N --conns C --kind K
        N submissions over C keep-alive connections, each sending its next POST when the last
        answered: jobs/s = N / wall time from the first send to the last answer; p50/p99 of a POST.
    submitter.py latency --port P --jobs N --gap-ms G --kind K
        N submissions one at a time, G ms apart, with `herald-runner work` waiting: for each, the
        time from the 201 to (a) the job's `started_at` and (b) the first status event on
        GET /jobs/ID/events (opened right after the 201) whose job has started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime

try:
    import uvloop  # from PyPI, in bench/.venv
except ImportError:
    uvloop = None


class HTTPConnection:
    """One keep-alive HTTP/1.1 connection to nginx on 127.0.0.1."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def open(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    def close(self):
        if self.writer is not None:
            self.writer.close()

    def send(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    async def head(self) -> tuple[int, dict]:
        """The status and headers (names lower-cased) of the next response."""
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return status, headers

    async def chunks(self, headers: dict):
        """The body's pieces as they arrive (chunked or Content-Length)."""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    return
                data = await self.reader.readexactly(size + 2)
                yield data[:-2]
        else:
            yield await self.reader.readexactly(int(headers.get("content-length", "0")))

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        self.send(method, path, body)
        status, headers = await self.head()
        return status, b"".join([c async for c in self.chunks(headers)])


def percentile(values, q):
    vals = sorted(values)
    return vals[min(len(vals) - 1, int(q * len(vals)))] if vals else None


def job_body(kind: str) -> bytes:
    return json.dumps({"kind": kind}).encode()


async def throughput(port: int, jobs: int, conns: int, kind: str) -> dict:
    body = job_body(kind)
    left = [jobs]
    statuses: dict = {}
    latencies = []

    async def worker():
        c = HTTPConnection(port)
        await c.open()
        try:
            while left[0] > 0:
                left[0] -= 1
                t = time.perf_counter()
                status, _ = await c.request("POST", "/jobs", body)
                latencies.append((time.perf_counter() - t) * 1000)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            c.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    wall = time.perf_counter() - t0
    return {"jobs": jobs, "conns": conns, "wall_s": wall, "jobs_per_s": statuses.get(201, 0) / wall,
            "statuses": {str(k): v for k, v in statuses.items()}, "non201": jobs - statuses.get(201, 0),
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99)}


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def first_started(port: int, job_id: str, timeout: float) -> tuple[float, dict]:
    """Follows the job's events until a status whose job has started; (receipt time, that job)."""
    c = HTTPConnection(port)
    await c.open()
    try:
        c.send("GET", f"/jobs/{job_id}/events", headers={"Accept": "text/event-stream"})
        status, headers = await c.head()
        if status != 200:
            raise RuntimeError(f"GET /jobs/{job_id}/events: HTTP {status}")
        buf = b""

        async def scan():
            nonlocal buf
            async for piece in c.chunks(headers):
                buf += piece
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    lines = event.split(b"\n")
                    if b"event: status" not in lines:
                        continue
                    data = b"".join(line[6:] for line in lines if line.startswith(b"data: "))
                    job = json.loads(data)
                    if job.get("started_at"):
                        return time.time(), job
            raise RuntimeError(f"the stream of {job_id} ended before the job started")

        return await asyncio.wait_for(scan(), timeout)
    finally:
        c.close()


async def latency(port: int, jobs: int, gap_ms: int, kind: str) -> dict:
    body = job_body(kind)
    to_started, to_seen = [], []
    c = HTTPConnection(port)
    await c.open()
    try:
        for _ in range(jobs):
            status, answer = await c.request("POST", "/jobs", body)
            t201 = time.time()
            if status != 201:
                raise RuntimeError(f"POST /jobs: HTTP {status}: {answer[:200]!r}")
            seen, job = await first_started(port, json.loads(answer)["id"], 30)
            to_started.append((epoch(job["started_at"]) - t201) * 1000)
            to_seen.append((seen - t201) * 1000)
            await asyncio.sleep(gap_ms / 1000)
    finally:
        c.close()
    return {"jobs": jobs, "gap_ms": gap_ms,
            "started_p50_ms": percentile(to_started, 0.5), "started_p99_ms": percentile(to_started, 0.99),
            "seen_p50_ms": percentile(to_seen, 0.5), "seen_p99_ms": percentile(to_seen, 0.99),
            "seen_max_ms": max(to_seen)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=("throughput", "latency"))
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--gap-ms", type=int, default=25)
    p.add_argument("--kind", default="noop")
    a = p.parse_args()
    if uvloop is not None:
        uvloop.install()
    if a.mode == "throughput":
        out = asyncio.run(throughput(a.port, a.jobs, a.conns, a.kind))
    else:
        out = asyncio.run(latency(a.port, a.jobs, a.gap_ms, a.kind))
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
