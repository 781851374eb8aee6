"""SSE load client: holds many EventSource-style streams on raw sockets (asyncio +
uvloop when available) and records, for every subscriber and event, the delay from
the publish time inside the status (`updated_at`, RFC 3339 ms) to receipt.

One process; bench/run.py starts several for large N. Protocol with the driver:

    stdout  {"ready": ...}  once every stream is open (or failed / timed out)
    stdin   "T0 T1\\n"      the measurement window (epoch seconds of publish time)
    then at T1 + grace the process writes its results to --out and exits.

Only events published inside [T0, T1) count; a subscriber counts towards the
expected deliveries only if it was open before T0 and still open at T1. An event whose
message is `sK tMS` (the fan-out rows, K ≥ 1) counts as state K published at MS (epoch ms),
whenever it was published: with --states K the client waits after T1, up to --grace-max
seconds, until every open subscriber has state K, so a late publisher or an overloaded
system shows up as delay, not as states left out. Any other event counts as its `seq`
published at its `updated_at`. Receipt times go to OUT.received (beside OUT.delays).
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import re
import resource
import sys
import time
from datetime import datetime

try:
    import uvloop  # from PyPI, in bench/.venv
except ImportError:  # plain asyncio works, a little slower
    uvloop = None

SEQ_RE = re.compile(rb'"seq"\s*:\s*(\d+)')
TS_RE = re.compile(rb'"updated_at"\s*:\s*"([^"]+)"')
STATE_RE = re.compile(rb'"state"\s*:\s*"([a-z]+)"')
# A state tagged by its reporter (bench/ticker.py, publish.py --tag, relay-floor): state K, reported at MS.
TAG_RE = re.compile(rb'"message"\s*:\s*"s(\d+) t(\d+)"')

_ts_cache: dict = {}


def parse_ts(raw: bytes) -> float:
    t = _ts_cache.get(raw)
    if t is None:
        t = datetime.fromisoformat(raw.decode().replace("Z", "+00:00")).timestamp()
        if len(_ts_cache) > 100_000:
            _ts_cache.clear()
        _ts_cache[raw] = t
    return t


class Stats:
    def __init__(self):
        self.t0 = None
        self.t1 = None
        self.delays = array.array("d")
        self.received = array.array("d")  # receipt time of each delay
        self.counts: dict = {}  # (job index << 32 | seq) -> receipts in window
        self.events = 0
        self.out_of_order = 0
        self.errors: dict = {}

    def error(self, what: str):
        self.errors[what] = self.errors.get(what, 0) + 1


class Sub(asyncio.Protocol):
    __slots__ = ("stats", "job", "request", "transport", "raw", "headers_done", "chunked", "left", "skip",
                 "sse", "opened_at", "started_at", "first_at", "closed_at", "last_seq", "last_tag", "status", "ended",
                 "final_state", "done", "on_end", "end_event")

    def __init__(self, stats: Stats, job: int, request: bytes, done: asyncio.Future, on_end=None):
        self.stats = stats
        self.job = job
        self.request = request
        self.transport = None
        self.raw = b""
        self.headers_done = False
        self.chunked = False
        self.left = 0
        self.skip = 0
        self.sse = b""
        self.started_at = time.time()
        self.first_at = None
        self.closed_at = None
        self.last_seq = 0
        self.last_tag = 0
        self.status = 0
        self.ended = False
        self.final_state = None
        self.end_event = False
        self.done = done  # resolved at the first status event (or failure)
        self.on_end = on_end

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc):
        self.closed_at = time.time()
        if not self.done.done():
            self.done.set_result(False)
        if self.on_end:
            self.on_end(self)

    def _dechunk(self, buf: bytes) -> bytes:
        out = []
        pos = 0
        n = len(buf)
        while pos < n:
            if self.left:
                take = min(self.left, n - pos)
                out.append(buf[pos:pos + take])
                pos += take
                self.left -= take
                if self.left:
                    break
                self.skip = 2
            if self.skip:
                take = min(self.skip, n - pos)
                pos += take
                self.skip -= take
                if self.skip:
                    break
            i = buf.find(b"\r\n", pos)
            if i < 0:
                break
            size = int(buf[pos:i].split(b";")[0], 16)
            pos = i + 2
            if size == 0:
                self.ended = True
                pos = n
                break
            self.left = size
        self.raw = buf[pos:]
        return b"".join(out) if len(out) != 1 else out[0]

    def data_received(self, data: bytes):
        now = time.time()
        if not self.headers_done:
            self.raw += data
            i = self.raw.find(b"\r\n\r\n")
            if i < 0:
                return
            head = self.raw[:i].lower()
            self.status = int(head[9:12])
            self.chunked = b"transfer-encoding: chunked" in head
            self.headers_done = True
            data = self.raw[i + 4:]
            self.raw = b""
            if self.status != 200:
                self.stats.error(f"http_{self.status}")
                self.transport.close()
                return
        if self.chunked:
            data = self._dechunk(self.raw + data if self.raw else data)
            if self.ended:  # the response is complete: close, as EventSource does
                self.transport.close()
        if not data:
            return
        sse = self.sse + data if self.sse else data
        if b"\n\n" not in sse:
            self.sse = sse
            return
        blocks = sse.split(b"\n\n")
        self.sse = blocks.pop()
        st = self.stats
        for block in blocks:
            if b"data:" not in block:
                continue  # retry:, : ping
            if block.startswith(b"event: end") or b"\nevent: end" in block:
                self.end_event = True
                continue
            m = SEQ_RE.search(block)
            t = TS_RE.search(block)
            if m is None or t is None:
                continue
            seq = int(m.group(1))
            if seq < self.last_seq:
                st.out_of_order += 1
            self.last_seq = seq
            if self.on_end is not None:
                s = STATE_RE.search(block)
                if s:
                    self.final_state = s.group(1).decode()
            st.events += 1
            if self.first_at is None:
                self.first_at = now
                if not self.done.done():
                    self.done.set_result(True)
            tag = TAG_RE.search(block)
            if tag and tag.group(1) != b"0":
                state, pub = int(tag.group(1)), int(tag.group(2)) / 1000
                self.last_tag = state
                counts = st.t0 is not None
            else:
                state, pub = seq, parse_ts(t.group(1))
                counts = st.t0 is not None and st.t0 <= pub < st.t1
            if counts:
                st.delays.append(now - pub)
                st.received.append(now)
                key = (self.job << 32) | state
                st.counts[key] = st.counts.get(key, 0) + 1


def build_request(host: str, port: int, path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: text/event-stream\r\n"
            f"Cache-Control: no-cache\r\nUser-Agent: herald-bench\r\n\r\n").encode()


async def open_stream(loop, stats, host, port, path, job, local, timeout, on_end=None):
    done = loop.create_future()
    sub = Sub(stats, job, build_request(host, port, path), done, on_end)
    try:
        await asyncio.wait_for(loop.create_connection(lambda: sub, host, port, local_addr=(local, 0)), timeout)
        ok = await asyncio.wait_for(done, timeout)
        if not ok:
            stats.error("closed_before_first_event")
    except asyncio.TimeoutError:
        stats.error("timeout_first_event")
        if sub.transport:
            sub.transport.abort()  # no stream: do not hold the connection
        sub.closed_at = sub.closed_at or time.time()
    except OSError as e:
        stats.error(f"connect_{e.errno}")
        sub.closed_at = time.time()
    return sub


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def load(args):
    loop = asyncio.get_running_loop()
    stats = Stats()
    paths = [line.split() for line in open(args.targets) if line.strip()]  # "JOBINDEX PATH"
    mine = paths[args.index::args.procs]
    sem = asyncio.Semaphore(args.concurrency)
    deadline = time.monotonic() + args.setup_timeout

    async def one(i, job, path):
        async with sem:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stats.error("setup_deadline")
                return None
            local = f"127.0.{(args.index * 7 + i // 200) % 250 + 1}.{i % 200 + 2}"
            return await open_stream(loop, stats, args.host, args.port, path, job, local,
                                     min(args.first_event_timeout, remaining))

    t_start = time.time()
    cpu_start = cpu_seconds()
    subs = await asyncio.gather(*(one(i, int(j), p) for i, (j, p) in enumerate(mine)))
    subs = [s for s in subs if s is not None]
    opened = [s for s in subs if s.first_at is not None and s.closed_at is None]
    t_ready = time.time()
    setup_s = (max(s.first_at for s in opened) - t_start) if opened else None
    print(json.dumps({"ready": True, "index": args.index, "requested": len(mine), "opened": len(opened),
                      "setup_s": setup_s, "setup_cpu_s": cpu_seconds() - cpu_start,
                      "errors": stats.errors}), flush=True)

    line = await loop.run_in_executor(None, sys.stdin.readline)
    t0, t1 = map(float, line.split())
    stats.t0, stats.t1 = t0, t1
    await asyncio.sleep(max(0.0, t0 - time.time()))
    cpu0 = cpu_seconds()
    await asyncio.sleep(max(0.0, t1 - time.time()))
    cpu1 = cpu_seconds()
    await asyncio.sleep(args.grace if not args.states else 0.2)
    if args.states:
        until = time.time() + args.grace_max
        while time.time() < until and any(s.last_tag < args.states and s.closed_at is None for s in opened):
            await asyncio.sleep(0.1)
    full = [s for s in opened if s.closed_at is None or s.closed_at >= t1]
    # Per job: subscribers open for the whole window (the expected receivers of each event).
    per_job: dict = {}
    for s in full:
        per_job[s.job] = per_job.get(s.job, 0) + 1
    dropped = len(opened) - len(full)
    for s in subs:
        if s.transport:
            s.transport.abort()
    with open(args.out + ".delays", "wb") as f:
        stats.delays.tofile(f)
    with open(args.out + ".received", "wb") as f:
        stats.received.tofile(f)
    result = {
        "index": args.index, "requested": len(mine), "opened": len(opened), "setup_s": setup_s,
        "t_start": t_start, "t_ready": t_ready, "window_cpu_s": cpu1 - cpu0, "window_s": t1 - t0,
        "events": stats.events, "in_window": len(stats.delays), "out_of_order": stats.out_of_order,
        "dropped_during_window": dropped, "subs_per_job": per_job,
        "counts": {str(k): v for k, v in stats.counts.items()}, "errors": stats.errors,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)


# ---------------------------------------------------------------------------
# soak mode: groups of subscribers follow a demo job each until it ends, then
# the group submits a new job and follows that one; checks every stream saw the
# terminal status and the end event.

async def post_job(loop, host, port, body: bytes) -> str | None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"POST /jobs HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        data = await asyncio.wait_for(reader.read(-1), 30)
    finally:
        writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    if b" 201 " not in head.split(b"\r\n")[0]:
        return None
    if b"transfer-encoding: chunked" in head.lower():
        s = Sub(Stats(), 0, b"", loop.create_future())
        payload = s._dechunk(payload)
    return json.loads(payload)["id"]


async def soak(args):
    loop = asyncio.get_running_loop()
    stats = Stats()
    end_at = time.time() + args.duration
    tally = {"jobs": 0, "streams": 0, "ok": 0, "no_final": 0, "no_end": 0, "open_failed": 0, "submit_failed": 0}
    open_now = [0]
    samples = []
    local_i = [0]

    async def group(g):
        import random
        rnd = random.Random(g * 7919 + args.index)
        while time.time() < end_at:
            steps = rnd.randint(args.steps_min, args.steps_max)
            body = json.dumps({"kind": "demo", "params": {"steps": str(steps), "interval_ms": str(args.interval_ms)}}).encode()
            try:
                job_id = await post_job(loop, args.host, args.port, body)
            except (OSError, asyncio.TimeoutError):
                job_id = None
            if job_id is None:
                tally["submit_failed"] += 1
                await asyncio.sleep(1)
                continue
            tally["jobs"] += 1
            finished = []
            all_done = loop.create_future()

            def on_end(sub, finished=finished, all_done=all_done):
                finished.append(sub)
                open_now[0] -= 1
                if len(finished) == args.group_size and not all_done.done():
                    all_done.set_result(True)

            async def one(k):
                local_i[0] += 1
                i = local_i[0]
                local = f"127.0.{(args.index * 7 + (i // 200)) % 250 + 1}.{i % 200 + 2}"
                open_now[0] += 1
                return await open_stream(loop, stats, args.host, args.port, f"/jobs/{job_id}/events", 0, local,
                                         args.first_event_timeout, on_end)

            subs = await asyncio.gather(*(one(k) for k in range(args.group_size)))
            try:
                await asyncio.wait_for(all_done, steps * args.interval_ms / 1000 + 60)
            except asyncio.TimeoutError:
                pass
            for s in subs:
                tally["streams"] += 1
                if s.first_at is None:
                    tally["open_failed"] += 1
                elif s.final_state not in ("succeeded", "failed", "canceled"):
                    tally["no_final"] += 1
                elif not s.end_event:
                    tally["no_end"] += 1
                else:
                    tally["ok"] += 1
                if s.transport and s.closed_at is None:
                    s.transport.abort()

    async def sampler():
        while time.time() < end_at + 5:
            samples.append((time.time(), open_now[0]))
            await asyncio.sleep(5)

    groups = args.streams // args.group_size
    smp = asyncio.ensure_future(sampler())
    await asyncio.gather(*(group(g) for g in range(groups)))
    smp.cancel()
    with open(args.out, "w") as f:
        json.dump({"tally": tally, "errors": stats.errors, "open_samples": samples, "events": stats.events,
                   "out_of_order": stats.out_of_order, "cpu_s": cpu_seconds()}, f)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--targets", help="file of lines 'JOBINDEX PATH' (load mode)")
    p.add_argument("--index", type=int, default=0)
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--concurrency", type=int, default=200, help="connections being opened at once")
    p.add_argument("--setup-timeout", type=float, default=60)
    p.add_argument("--first-event-timeout", type=float, default=15)
    p.add_argument("--grace", type=float, default=3)
    p.add_argument("--states", type=int, default=0, help="wait after T1 until every stream has tagged state K")
    p.add_argument("--grace-max", type=float, default=30, help="the longest wait for --states")
    p.add_argument("--out", required=True)
    p.add_argument("--soak", action="store_true")
    p.add_argument("--duration", type=float, default=120)
    p.add_argument("--streams", type=int, default=10000)
    p.add_argument("--group-size", type=int, default=50)
    p.add_argument("--steps-min", type=int, default=10)
    p.add_argument("--steps-max", type=int, default=40)
    p.add_argument("--interval-ms", type=int, default=500)
    args = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if uvloop is not None:
        uvloop.install()
    asyncio.run(soak(args) if args.soak else load(args))


if __name__ == "__main__":
    main()
