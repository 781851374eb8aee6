"""Helpers for Herald's API and stream tests (stdlib only).

    EventStream   one Server-Sent Events request through nginx on a raw socket:
                  status and headers, then the stream as parsed blocks (event, id,
                  data, retry, comments), with the receive time of each.
    ChunkedDecoder / parse_blocks   the incremental pieces EventStream is built from,
                  reused by the asyncio load test.
    StateWriter   plays the runner's part in the state directory for tests that are
                  about herald-fcgi alone (runner=False): moves a submission from new/
                  to jobs/, rewrites its status file by temp + rename, appends to its log.
    assert_error  checks SPEC §3's error body and that it leaks no path.
    metric        reads one sample from /metrics.
    mint_read_token   an HS256 read token (SPEC §9) with the stdlib, as an app's server side mints it.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import hmac
import json
import os
import re
import select
import socket
import time
from datetime import datetime, timezone

from support_postgres import psql, sql_text

ID_RE = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}$")
TERMINAL = ("succeeded", "failed", "canceled")


# ---------------------------------------------------------------------------
# read tokens


READ_SECRET = "read-token-secret-" + "r" * 40


def mint_read_token(claims: dict, secret: str = READ_SECRET, header: dict | None = None) -> str:
    """An HS256 JWT with Python's stdlib (what an app's server side does)."""
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


# ---------------------------------------------------------------------------
# errors and metrics


def assert_error(status, headers, body, expected_status, code=None, *, leaks=()):
    """body (bytes or parsed) is `{"error": {"status", "code", "message"}}` with expected_status,
    JSON content type, and no filesystem path or stack in it."""
    assert status == expected_status, f"expected {expected_status}, got {status}: {body!r}"
    assert headers.get("content-type", "").startswith("application/json"), headers
    if isinstance(body, (bytes, bytearray)):
        text = body.decode("utf-8")
        parsed = json.loads(text)
    else:
        parsed = body
        text = json.dumps(body)
    assert set(parsed) == {"error"}, parsed
    err = parsed["error"]
    assert set(err) == {"status", "code", "message"}, err
    assert err["status"] == expected_status, err
    assert isinstance(err["code"], str) and err["code"], err
    assert isinstance(err["message"], str) and err["message"], err
    if code is not None:
        assert err["code"] == code, err
    for needle in ("/tmp/", "/var/", "/work/", "/home/", "/etc/", ".swift", "Fatal error", "state/"):
        assert needle not in text, f"error body leaks {needle!r}: {text}"
    for needle in leaks:
        assert needle not in text, f"error body leaks {needle!r}: {text}"
    return err


def metrics_text(stack) -> str:
    status, _, body = stack.request("GET", "/metrics")
    assert status == 200, body
    return body.decode()


def metric(stack, name: str, labels: str = "") -> float:
    """The value of `name{labels}` in /metrics (labels as written, e.g. '{state="queued"}')."""
    for line in metrics_text(stack).splitlines():
        if line.startswith(name + labels + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no sample {name}{labels} in /metrics")


def parse_time(text: str) -> float:
    """RFC 3339 UTC with milliseconds -> seconds since the epoch."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def now_rfc3339(t: float | None = None) -> str:
    t = time.time() if t is None else t
    ms = int(round(t * 1000))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def wait_until(predicate, timeout: float, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(interval)


# ---------------------------------------------------------------------------
# Server-Sent Events over a raw socket


class ChunkedDecoder:
    """Incremental HTTP/1.1 chunked transfer decoding: feed() bytes, get body bytes; `done` after the last chunk."""

    def __init__(self):
        self.buf = b""
        self.state = "size"
        self.remaining = 0
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.buf += data
        out = bytearray()
        while not self.done:
            if self.state == "size":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    break
                size = int(self.buf[:end].split(b";")[0], 16)
                self.buf = self.buf[end + 2:]
                if size == 0:
                    self.done = True
                    break
                self.remaining, self.state = size, "data"
            elif self.state == "data":
                if not self.buf:
                    break
                take = min(self.remaining, len(self.buf))
                out += self.buf[:take]
                self.buf = self.buf[take:]
                self.remaining -= take
                if self.remaining == 0:
                    self.state = "crlf"
            else:
                if len(self.buf) < 2:
                    break
                self.buf = self.buf[2:]
                self.state = "size"
        return bytes(out)


class BlockParser:
    """Splits an event stream into blocks at blank lines (the SSE dispatch points)."""

    def __init__(self):
        self.text = ""

    def feed(self, text: str) -> list:
        self.text += text
        blocks = []
        while True:
            end = self.text.find("\n\n")
            if end < 0:
                break
            raw = self.text[:end]
            self.text = self.text[end + 2:]
            blocks.append(parse_block(raw))
        return blocks


def parse_block(raw: str) -> dict:
    block = {"event": None, "id": None, "data": None, "retry": None, "comments": [], "raw": raw}
    data = []
    for line in raw.split("\n"):
        if line.startswith(":"):
            block["comments"].append(line[1:].strip())
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            block["event"] = value
        elif name == "id":
            block["id"] = value
        elif name == "data":
            data.append(value)
        elif name == "retry":
            block["retry"] = int(value)
    if data:
        block["data"] = "\n".join(data)
    return block


class EventStream:
    """One GET through nginx on a raw socket; read blocks with next_block()/read_all().

    Each block carries `t`, the time.time() it was received. Always close() (or use `with`).
    """

    def __init__(self, stack, path: str, headers: dict | None = None, timeout: float = 10.0, rcvbuf: int | None = None):
        self.path = path
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((stack.host, stack.port))
        lines = [f"GET {path} HTTP/1.1", f"Host: {stack.host}:{stack.port}", "Accept: text/event-stream"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.status = None
        self.headers: dict = {}
        self.body = b""        # the decoded body so far (all of it)
        self.blocks: list = []  # every block parsed so far
        self._pending: list = []
        self._raw = b""
        self._decoder = None
        self._length = None   # a body with Content-Length (or none at all: 204)
        self._parser = BlockParser()
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.eof = False       # the response ended (last chunk, or connection closed)
        self.closed_by_server = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv(self, timeout: float) -> bool:
        """Reads once; False on timeout."""
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return False
        data = self.sock.recv(65536)
        now = time.time()
        if not data:
            self.eof = True
            self.closed_by_server = True
            return True
        if self.status is None:
            self._raw += data
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return True
            head, data = self._raw[:end].decode("latin-1"), self._raw[end + 4:]
            first, *rest = head.split("\r\n")
            self.status = int(first.split()[1])
            for line in rest:
                k, _, v = line.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                self._decoder = ChunkedDecoder()
            elif self.status in (204, 304) or 100 <= self.status < 200:
                self._length = 0
            elif "content-length" in self.headers:
                self._length = int(self.headers["content-length"])
        body = self._decoder.feed(data) if self._decoder else data
        if self._decoder and self._decoder.done:
            self.eof = True
        if self._length is not None:
            body = body[:max(0, self._length - len(self.body))]
            if len(self.body) + len(body) >= self._length:
                self.eof = True
        self.body += body
        for block in self._parser.feed(self._utf8.decode(body)) if body else []:
            block["t"] = now
            self.blocks.append(block)
            self._pending.append(block)
        return True

    def wait_headers(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while self.status is None:
            if self.eof:
                raise AssertionError(f"connection closed before a response to {self.path}")
            if not self._recv(deadline - time.monotonic()) and time.monotonic() > deadline:
                raise AssertionError(f"no response headers for {self.path} within {timeout}s")
        return self.status

    def next_block(self, timeout: float = 10.0) -> dict | None:
        """The next block, or None when the response ended; raises on timeout."""
        deadline = time.monotonic() + timeout
        self.wait_headers(timeout)
        while not self._pending:
            if self.eof:
                return None
            if not self._recv(deadline - time.monotonic()) and time.monotonic() > deadline:
                raise AssertionError(f"no event on {self.path} within {timeout}s; so far: {self.blocks[-5:]}")
        return self._pending.pop(0)

    def next_event(self, timeout: float = 10.0) -> dict | None:
        """The next block that is an event (has data); skips retry-only blocks and comments."""
        while True:
            block = self.next_block(timeout)
            if block is None or block["data"] is not None:
                return block

    def read_all(self, timeout: float = 30.0) -> list:
        """Every remaining block until the response ends (raises if it does not within timeout)."""
        deadline = time.monotonic() + timeout
        out = []
        while True:
            block = self.next_block(max(0.0, deadline - time.monotonic()))
            if block is None:
                return out
            out.append(block)

    def events(self, name: str | None = None) -> list:
        return [b for b in self.blocks if b["data"] is not None and (name is None or b["event"] == name)]


def statuses(blocks) -> list:
    """The job JSON of every `status` event in blocks."""
    return [json.loads(b["data"]) for b in blocks if b["event"] == "status"]


# ---------------------------------------------------------------------------
# the runner's side of the state directory, for herald-fcgi-only tests


def waiting_submissions(stack) -> list:
    """What the web side submitted and no runner took yet: new/ of the state directory, queued rows in PostgreSQL."""
    if stack.database_url:
        return psql(stack.database_url, "SELECT id FROM herald.jobs WHERE state = 'queued' ORDER BY id").split()
    return sorted(os.listdir(os.path.join(stack.state_dir, "new")))


def cancel_requests(stack) -> list:
    """The ids of jobs someone asked to cancel and no runner dealt with yet."""
    if stack.database_url:
        return psql(stack.database_url, "SELECT id FROM herald.jobs WHERE cancel_requested ORDER BY id").split()
    return sorted(os.listdir(os.path.join(stack.state_dir, "cancel")))


class StateWriter:
    """Writes job state the way herald-runner does (docs/PROTOCOL.md): tmp/ then rename into jobs/,
    or, on the PostgreSQL store, the row and its NOTIFY in one transaction.

    Only for tests about herald-fcgi alone, with the stack started with runner=False.
    """

    def __init__(self, stack):
        self.state_dir = stack.state_dir
        self.database_url = stack.database_url
        self.jobs = {}

    def _write_row(self, job: dict) -> None:
        finished = "NULL"
        if job["state"] in TERMINAL and job.get("finished_at"):
            finished = str(int(parse_time(job["finished_at"]) * 1000))
        claim = "coalesce(claim, nextval('herald.claims'))" if job["state"] == "running" else "NULL"
        psql(self.database_url, f"""BEGIN;
            UPDATE herald.jobs SET state = '{job["state"]}', seq = {job["seq"]}, job = {sql_text(json.dumps(job))}::json,
                claim = {claim}, runner = NULL, finished_ms = {finished} WHERE id = '{job["id"]}';
            SELECT pg_notify('herald_jobs', 'j {job["id"]}'); COMMIT;""")

    def _replace(self, path: str, data: bytes) -> None:
        tmp = os.path.join(self.state_dir, "tmp", f"test.{os.getpid()}.{time.monotonic_ns()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, path)

    def take(self, job: dict) -> dict:
        """Claims a submitted job: new/ID.json becomes jobs/ID.json (still queued)."""
        job = {k: v for k, v in job.items() if k != "links"}
        jid = job["id"]
        if not self.database_url:  # in PostgreSQL a submission is its row already
            os.rename(os.path.join(self.state_dir, "new", jid + ".json"), os.path.join(self.state_dir, "jobs", jid + ".json"))
        self.jobs[jid] = job
        return job

    def update(self, jid: str, **changes) -> dict:
        """Writes the next state of the job (seq + 1, updated_at now, and `changes`)."""
        job = dict(self.jobs[jid])
        now = now_rfc3339()
        if changes.get("state") == "running" and job.get("started_at") is None:
            job["started_at"] = now
        if changes.get("state") in TERMINAL:
            job["finished_at"] = now
            if changes["state"] == "succeeded":
                job.setdefault("progress", 100.0)
                job["exit_code"] = 0
        job.update(changes)
        job["seq"] = job["seq"] + 1
        job["updated_at"] = now
        self.jobs[jid] = job
        self.rewrite(jid)
        return job

    def rewrite(self, jid: str) -> None:
        """Replaces the job's file with the same state again: a second notice of an unchanged seq."""
        if self.database_url:
            return self._write_row(self.jobs[jid])
        self._replace(os.path.join(self.state_dir, "jobs", jid + ".json"), (json.dumps(self.jobs[jid]) + "\n").encode())

    def append_log(self, jid: str, data: bytes) -> None:
        if self.database_url:
            psql(self.database_url, f"""BEGIN;
                INSERT INTO herald.job_logs (job_id, start, data)
                    SELECT id, log_size, decode('{data.hex()}', 'hex') FROM herald.jobs WHERE id = '{jid}';
                UPDATE herald.jobs SET log_size = log_size + {len(data)} WHERE id = '{jid}';
                SELECT pg_notify('herald_jobs', 'l {jid}'); COMMIT;""")
            return
        with open(os.path.join(self.state_dir, "logs", jid + ".log"), "ab") as f:
            f.write(data)


def stored_jobs(stack) -> int:
    """How many jobs a stack without a runner holds: submissions in new/, or rows of herald.jobs."""
    if stack.database_url:
        return int(psql(stack.database_url, "SELECT count(*) FROM herald.jobs"))
    return len(os.listdir(os.path.join(stack.state_dir, "new")))


def idempotency_records(stack) -> list:
    """Each stored Idempotency-Key record as text: a file's name and contents, or a row of herald.idempotency_keys."""
    if stack.database_url:
        return psql(stack.database_url, "SELECT key_hash || ' ' || body_hash || ' ' || job_id FROM herald.idempotency_keys").splitlines()
    keys = os.path.join(stack.state_dir, "idempotency")
    return [name + " " + open(os.path.join(keys, name)).read() for name in os.listdir(keys)]


def age_idempotency_records(stack, seconds: float) -> None:
    """Makes every Idempotency-Key record `seconds` older."""
    if stack.database_url:
        psql(stack.database_url, f"UPDATE herald.idempotency_keys SET created = created - interval '{seconds} seconds'")
        return
    keys = os.path.join(stack.state_dir, "idempotency")
    for name in os.listdir(keys):
        path = os.path.join(keys, name)
        t = os.stat(path).st_mtime - seconds
        os.utime(path, (t, t))


def fcgi_threads(stack) -> int:
    with open(f"/proc/{stack.fcgi_proc.pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError("no Threads: line")


def fcgi_rss_kib(stack) -> int:
    with open(f"/proc/{stack.fcgi_proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS: line")


def fcgi_fds(stack) -> int:
    return len(os.listdir(f"/proc/{stack.fcgi_proc.pid}/fd"))
