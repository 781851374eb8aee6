"""1,000 concurrent event streams on one job, through nginx (SPEC §5: parked streams cost no thread).

Asserted: every stream receives the terminal status and the end; herald-fcgi's thread count
stays under 20 throughout; after the streams close (job ended, or clients hung up) its open
descriptors return to their earlier count within a second.

Measured and printed, not asserted: the delivery delay (receive time minus the job's
`updated_at`, which is when the state was written) and herald-fcgi's RSS.

The job's changes are written by support_herald.StateWriter (runner=False) so that they start
only once all 1,000 streams are open and their publish times are exact.
"""

import asyncio
import json
import resource
import statistics
import threading
import time

import pytest

from support_herald import (BlockParser, ChunkedDecoder, StateWriter, fcgi_fds, fcgi_rss_kib, fcgi_threads,
                            metric, parse_time, wait_until)

STREAMS = 1000
UPDATES = 10
MAX_THREADS = 20


@pytest.fixture
def many_files():
    """RLIMIT_NOFILE raised to the hard limit, for this process and the stack it starts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if target < 2 * STREAMS + 200:
        pytest.skip(f"the hard RLIMIT_NOFILE ({hard}) is too low for {STREAMS} streams")
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class ThreadWatch:
    """Samples herald-fcgi's thread count every 10 ms in the background."""

    def __init__(self, stack):
        self.stack = stack
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(fcgi_threads(self.stack))
            except (OSError, AssertionError):
                pass
            self._stop.wait(0.01)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


class Client:
    """One raw-socket stream: parses the chunked body into SSE blocks, stamping each with its receive time."""

    def __init__(self):
        self.status = None
        self.blocks = []
        self.first_event = asyncio.Event()
        self.ended = False
        self.writer = None

    async def run(self, host, port, path, connect_gate):
        async with connect_gate:
            reader, self.writer = await asyncio.open_connection(host, port)
            self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n".encode())
            await self.writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
        self.status = int(head.split(b" ", 2)[1])
        decoder, parser = ChunkedDecoder(), BlockParser()
        pending = b""
        while not decoder.done:
            data = await reader.read(65536)
            now = time.time()
            if not data:
                break
            pending += decoder.feed(data)
            # Cut at a UTF-8 boundary: job JSON is ASCII here, so every byte is one.
            text, pending = pending.decode("ascii"), b""
            for block in parser.feed(text):
                block["t"] = now
                self.blocks.append(block)
                if block["data"] is not None:
                    self.first_event.set()
                    if block["event"] == "end":
                        self.ended = True
        self.first_event.set()

    def close(self):
        if self.writer is not None:
            self.writer.transport.abort()

    def statuses(self):
        return [(b["t"], json.loads(b["data"])) for b in self.blocks if b["event"] == "status"]


def percentiles(values):
    values = sorted(values)

    def p(q):
        return values[min(len(values) - 1, int(q * len(values)))]
    return (f"n={len(values)} min={1000 * values[0]:.1f} median={1000 * statistics.median(values):.1f} "
            f"p90={1000 * p(0.90):.1f} p99={1000 * p(0.99):.1f} max={1000 * values[-1]:.1f} ms")


async def open_streams(stack, path, n):
    gate = asyncio.Semaphore(200)  # connects in flight at once: stay inside the listen backlogs
    clients = [Client() for _ in range(n)]
    tasks = [asyncio.create_task(c.run(stack.host, stack.port, path, gate)) for c in clients]
    waiting = [asyncio.create_task(c.first_event.wait()) for c in clients]
    done, _ = await asyncio.wait(waiting, timeout=60)
    assert len(done) == n, f"only {len(done)} of {n} streams got their first event within 60 s"
    failed = [t.exception() for t in tasks if t.done() and t.exception()]
    assert not failed, failed[:3]
    assert all(c.status == 200 for c in clients), {c.status for c in clients}
    return clients, tasks


def baseline_fds(stack):
    # One plain request first, so lazily opened descriptors are already counted.
    stack.request("GET", "/healthz")
    time.sleep(0.1)
    return fcgi_fds(stack)


def wait_fds(stack, before, what, since=None):
    """Seconds from `since` (now by default) until herald-fcgi's fds are back to `before`: at most 1.

    Polled for up to 5 s, so a slow machine reports how slow rather than a bare timeout."""
    t0 = time.monotonic() if since is None else since
    wait_until(lambda: fcgi_fds(stack) <= before, 5.0, interval=0.01, what=f"herald-fcgi's fds back to {before} {what}")
    took = time.monotonic() - t0
    assert took < 1.0, f"herald-fcgi's fds took {took:.2f}s to return to {before} {what} (SPEC: at once)"
    return took


LOAD_STACK = {"runner": False, "config_overrides": {"max_streams": 20000}}


def test_1000_streams_on_one_job_all_get_the_terminal_status_with_few_threads_and_no_leaked_fds(many_files, make_stack):
    stack = make_stack(**LOAD_STACK)  # after many_files: herald-fcgi inherits the raised limit
    writer = StateWriter(stack)
    submitted = stack.json("POST", "/jobs", {"kind": "demo", "params": {}})[2]
    job = writer.take(submitted)
    jid = job["id"]
    fds_before = baseline_fds(stack)
    rss_before = fcgi_rss_kib(stack)

    async def scenario():
        with ThreadWatch(stack) as watch:
            t0 = time.monotonic()
            clients, tasks = await open_streams(stack, f"/jobs/{jid}/events", STREAMS)
            connect_s = time.monotonic() - t0
            open_now = metric(stack, "herald_open_streams")
            rss_peak = fcgi_rss_kib(stack)
            fds_peak = fcgi_fds(stack)
            published = []
            for n in range(1, UPDATES + 1):
                published.append(writer.update(jid, state="running", progress=100.0 * n / (UPDATES + 1),
                                               message=f"step {n}"))
                await asyncio.sleep(0.15)
            published.append(writer.update(jid, state="succeeded", progress=100.0))
            done, pending = await asyncio.wait(tasks, timeout=30)
            end_s = time.monotonic() - t0
        for c in clients:
            c.close()
        return clients, done, pending, watch.samples, connect_s, end_s, open_now, rss_peak, fds_peak, published

    clients, done, pending, threads, connect_s, end_s, open_now, rss_peak, fds_peak, published = asyncio.run(scenario())
    assert not pending, f"{len(pending)} streams did not end within 30 s of the last change"
    assert open_now == STREAMS, f"herald_open_streams was {open_now} with {STREAMS} clients connected"

    final_seq = published[-1]["seq"]
    missing = [c for c in clients if not c.statuses() or c.statuses()[-1][1]["state"] != "succeeded"
               or c.statuses()[-1][1]["seq"] != final_seq or not c.ended]
    assert not missing, f"{len(missing)} of {STREAMS} streams did not receive the terminal status and the end"

    delays, merged = [], 0
    publish_seqs = {j["seq"] for j in published}
    for c in clients:
        seqs = [j["seq"] for _, j in c.statuses()]
        assert seqs == sorted(set(seqs)), seqs  # never older than one seen
        merged += len(publish_seqs - set(seqs))
        for t, j in c.statuses():
            if j["seq"] in publish_seqs:
                delays.append(t - parse_time(j["updated_at"]))

    assert threads and max(threads) < MAX_THREADS, f"herald-fcgi used up to {max(threads)} threads"
    wait_s = wait_fds(stack, fds_before, "after every stream ended")
    print(f"\n[load] {STREAMS} streams connected in {connect_s:.2f} s; ended {end_s:.2f} s after the first connect")
    print(f"[load] delivery delay (receive - updated_at), {len(published)} changes x {STREAMS} streams: {percentiles(delays)}")
    print(f"[load] changes merged away (client behind): {merged}")
    print(f"[load] herald-fcgi threads max {max(threads)} ({len(threads)} samples); "
          f"fds {fds_before} -> {fds_peak} -> back in {1000 * wait_s:.0f} ms")
    print(f"[load] herald-fcgi VmRSS {rss_before} kB idle, {rss_peak} kB with {STREAMS} streams, "
          f"{fcgi_rss_kib(stack)} kB after")


def test_1000_streams_whose_clients_hang_up_release_every_descriptor_within_a_second(many_files, make_stack):
    stack = make_stack(**LOAD_STACK)
    writer = StateWriter(stack)
    job = writer.take(stack.json("POST", "/jobs", {"kind": "demo", "params": {}})[2])
    writer.update(job["id"], state="running", progress=1.0)
    fds_before = baseline_fds(stack)

    async def scenario():
        with ThreadWatch(stack) as watch:
            clients, tasks = await open_streams(stack, f"/jobs/{job['id']}/events", STREAMS)
            fds_peak = fcgi_fds(stack)
            for c in clients:
                c.close()
            await asyncio.wait(tasks, timeout=5)
            # From when the last client has hung up (closing 1,000 sockets from Python is not herald's time).
            hung_up = time.monotonic()
            released = await asyncio.get_running_loop().run_in_executor(
                None, lambda: wait_fds(stack, fds_before, "after 1,000 hang-ups", since=hung_up))
        return fds_peak, released, watch.samples

    fds_peak, released, threads = asyncio.run(scenario())
    assert fds_peak >= fds_before + STREAMS, (fds_before, fds_peak)
    wait_until(lambda: metric(stack, "herald_open_streams") == 0, 5, what="the gauge back to 0")
    assert max(threads) < MAX_THREADS, max(threads)
    print(f"\n[load] {STREAMS} hang-ups: fds {fds_before} -> {fds_peak} -> {fcgi_fds(stack)} in {1000 * released:.0f} ms; "
          f"threads max {max(threads)}")
