"""Clients that never read a plain answer must delay nobody (SPEC §5).

herald-fcgi answers plain requests on a few accepting threads. If nginx relayed those
answers unbuffered, a client that sends `GET /jobs/ID/log` for a big log and never reads
would keep a thread writing for as long as it stays; a dozen of them froze the whole API
(issue 9, item 1). Two layers keep that from happening, and each is tested here:

- nginx buffers every plain answer (herald-fcgi sends `X-Accel-Buffering: yes` on them),
  so it reads the whole answer at once whatever its client does;
- herald-fcgi bounds every blocking write of a plain answer, so even a FastCGI peer that
  stops reading (a stuck or misconfigured web server) frees the thread within the bound.
"""

import os
import socket
import struct
import time

import pytest

from support_herald import StateWriter, metric, wait_until

LOG_BYTES = 3 * 1024 * 1024
# herald-fcgi gives up on a plain answer whose write makes no progress for this long.
WRITE_BOUND_S = 10.0
ACCEPTING_THREADS = 8


def finished_job_with_big_log(stack) -> str:
    writer = StateWriter(stack)
    job = writer.take(stack.submit("demo", {"steps": 1}))
    line = b"x" * 1023 + b"\n"
    writer.append_log(job["id"], line * (LOG_BYTES // len(line)))
    writer.update(job["id"], state="running")
    writer.update(job["id"], state="succeeded")
    return job["id"]


def never_reading_client(stack, path: str) -> socket.socket:
    """Sends a GET over a socket with a tiny receive buffer and then never reads it."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((stack.host, stack.port))
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return s


def timed(fn):
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


@pytest.mark.stack(runner=False)
def test_clients_that_never_read_a_big_log_delay_no_other_request(stack):
    job_id = finished_job_with_big_log(stack)
    hogs = [never_reading_client(stack, f"/jobs/{job_id}/log") for _ in range(12)]
    try:
        time.sleep(1.0)  # every hog's request is in herald-fcgi by now
        for _ in range(3):
            (status, _, _), took = timed(lambda: stack.request("GET", f"/jobs/{job_id}", timeout=5))
            assert status == 200
            assert took < 1.0, f"GET /jobs/ID took {took:.2f}s while 12 clients sat on a log answer"
            (status, _, _), took = timed(lambda: stack.request(
                "POST", "/jobs", body={"kind": "demo", "params": {"steps": 1}}, timeout=5))
            assert status == 201
            assert took < 1.0, f"POST /jobs took {took:.2f}s while 12 clients sat on a log answer"
    finally:
        for s in hogs:
            s.close()


# --- a FastCGI peer that stops reading (no nginx in between) -------------------------


def fcgi_record(kind: int, request_id: int, content: bytes) -> bytes:
    return struct.pack(">BBHHBB", 1, kind, request_id, len(content), 0, 0) + content


def fcgi_params(params: dict) -> bytes:
    out = b""
    for k, v in params.items():
        kb, vb = k.encode(), v.encode()
        for n in (len(kb), len(vb)):
            out += bytes([n]) if n < 128 else struct.pack(">I", n | 0x80000000)
        out += kb + vb
    return out


def stuck_fcgi_peer(socket_path: str, path: str) -> socket.socket:
    """Asks herald-fcgi itself for `path`, with a tiny receive buffer, and then never reads."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(socket_path)
    params = fcgi_params({"REQUEST_METHOD": "GET", "REQUEST_URI": path, "DOCUMENT_URI": path,
                          "QUERY_STRING": "", "CONTENT_LENGTH": "", "SERVER_PROTOCOL": "HTTP/1.1"})
    s.sendall(fcgi_record(1, 1, struct.pack(">HB5x", 1, 0))  # BEGIN_REQUEST, responder, no keep-conn
              + fcgi_record(4, 1, params) + fcgi_record(4, 1, b"")  # PARAMS
              + fcgi_record(5, 1, b""))  # empty STDIN
    return s


@pytest.mark.stack(runner=False)
def test_a_fastcgi_peer_that_stops_reading_holds_a_thread_only_until_the_write_bound(stack):
    job_id = finished_job_with_big_log(stack)
    # As many as herald-fcgi's accepting threads: without a bound every one of them is stuck.
    stuck = [stuck_fcgi_peer(stack.socket_path, f"/jobs/{job_id}/log") for _ in range(ACCEPTING_THREADS)]
    try:
        time.sleep(0.5)
        (status, _, _), took = timed(lambda: stack.request("GET", f"/jobs/{job_id}", timeout=WRITE_BOUND_S + 10))
        assert status == 200
        assert took < WRITE_BOUND_S + 5, f"GET /jobs/ID waited {took:.1f}s for a thread"
        # Nothing was read from the stuck peers so far: each answer is given up (their bounds ran
        # out one after another, as their writes stalled), none completed.
        wait_until(lambda: metric(stack, "herald_plain_answers_abandoned_total") == len(stuck), 5.0,
                   what=f"all {len(stuck)} stuck answers given up")
        # And their connections are closed: after what sits in the buffers comes EOF.
        deadline = time.monotonic() + WRITE_BOUND_S + 5
        for s in stuck:
            s.setblocking(False)
        closed = set()
        while len(closed) < len(stuck) and time.monotonic() < deadline:
            for i, s in enumerate(stuck):
                if i in closed:
                    continue
                try:
                    while True:  # drain what sits in the buffer until EOF or EAGAIN
                        if not s.recv(1 << 20):
                            closed.add(i)
                            break
                except BlockingIOError:
                    pass
                except OSError:
                    closed.add(i)
            time.sleep(0.2)
        assert len(closed) == len(stuck), f"only {len(closed)} of {len(stuck)} stuck connections were closed"
    finally:
        for s in stuck:
            s.close()
