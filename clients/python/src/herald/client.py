"""The HTTP client: submit, read, list and cancel jobs, and follow a job's event stream."""

from __future__ import annotations

import http.client
import json
import random
import socket
import time
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote, urlencode, urlsplit

from .errors import HeraldError, describe
from .sse import SSEParser

Job = Dict[str, Any]
TERMINAL = frozenset(("succeeded", "failed", "canceled"))
# Answers that mean "not now" rather than "no": nginx while herald-fcgi restarts, overload.
_RETRYABLE = frozenset((429, 502, 503, 504))
_DEFAULT_RETRY_MS = 3000
_MAX_BACKOFF_S = 30.0
_USER_AGENT = "herald-python/0.1"


class Herald:
    """A Herald site. ``base_url`` is the site root (``https://example.com``), ``prefix`` the
    API's ``url_prefix``. ``token`` is sent as ``Authorization: Bearer``: a submitter token
    for submit, list and cancel, or a read token for reading; a function returning one is
    called before every request, so a long ``wait()`` can renew a short-lived read token.
    ``timeout`` bounds each request."""

    def __init__(self, base_url: str, token: Union[str, Callable[[], str], None] = None, prefix: str = "/jobs",
                 timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http:// or https:// URL of the site root, not {base_url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"base_url must not carry a query or fragment: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._root = parts.path.rstrip("/")
        self.prefix = "/" + prefix.strip("/")
        self.token = token
        self.timeout = timeout

    # -- requests -----------------------------------------------------------------

    def _path(self, *segments: str, query: Optional[Mapping[str, Any]] = None) -> str:
        path = self._root + self.prefix + "".join("/" + quote(s, safe="") for s in segments)
        pairs = [(k, v) for k, v in (query or {}).items() if v is not None]
        return path + ("?" + urlencode(pairs) if pairs else "")

    def _connection(self, timeout: Optional[float]) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, extra: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
        headers = {"User-Agent": _USER_AGENT, "Accept": "application/json"}
        token = self.token() if callable(self.token) else self.token
        if token:
            headers["Authorization"] = "Bearer " + token
        headers.update(extra or {})
        return headers

    def _request(self, method: str, path: str, body: Any = None,
                 headers: Optional[Mapping[str, str]] = None) -> Tuple[int, bytes]:
        data = None
        all_headers = self._headers(headers)
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        conn = self._connection(self.timeout)
        try:
            conn.request(method, path, body=data, headers=all_headers)
            res = conn.getresponse()
            return res.status, res.read()
        except socket.timeout:
            raise HeraldError(0, "timeout", f"{method} {path}: no answer within {self.timeout}s") from None
        except (OSError, http.client.HTTPException) as e:
            raise HeraldError(0, "connection_error", f"{method} {path}: {describe(e)}") from None
        finally:
            conn.close()

    def _json(self, method: str, path: str, body: Any = None, ok: Tuple[int, ...] = (200,),
              headers: Optional[Mapping[str, str]] = None) -> Any:
        status, data = self._request(method, path, body, headers)
        if status not in ok:
            raise HeraldError.from_response(status, data)
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise HeraldError(status, "bad_response", f"{method} {path}: the answer is not JSON") from None

    # -- the API ------------------------------------------------------------------

    def submit(self, kind: str, params: Optional[Mapping[str, Any]] = None, owner: Optional[str] = None,
               idempotency_key: Optional[str] = None) -> Job:
        """Submit a job; returns it. With ``idempotency_key`` a repeat of the same request
        (a double click, a retried POST) returns the job the first one created."""
        body: Dict[str, Any] = {"kind": kind, "params": dict(params or {})}
        if owner is not None:
            body["owner"] = owner
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        job: Job = self._json("POST", self._path(), body, ok=(200, 201), headers=headers)
        return job

    def job(self, job_id: str) -> Job:
        """The job's current state."""
        job: Job = self._json("GET", self._path(job_id))
        return job

    def jobs(self, state: Optional[str] = None, kind: Optional[str] = None, owner: Optional[str] = None,
             limit: Optional[int] = None, before: Optional[str] = None) -> List[Job]:
        """One page of jobs, newest first (the server's default page size unless ``limit``, at
        most 500). It does not follow ``next``: pass the last job's id as ``before`` for the
        next page, or use :meth:`iter_jobs`, which does."""
        return self._page(state, kind, owner, limit, before)[0]

    def iter_jobs(self, state: Optional[str] = None, kind: Optional[str] = None, owner: Optional[str] = None,
                  page_size: Optional[int] = None) -> Iterator[Job]:
        """Every matching job, newest first, fetching page after page by following ``next``."""
        before: Optional[str] = None
        while True:
            page, before = self._page(state, kind, owner, page_size, before)
            yield from page
            if not before:
                return

    def _page(self, state: Optional[str], kind: Optional[str], owner: Optional[str], limit: Optional[int],
              before: Optional[str]) -> Tuple[List[Job], Optional[str]]:
        query = {"state": state, "kind": kind, "owner": owner, "limit": limit, "before": before}
        body = self._json("GET", self._path(query=query))
        return list(body["jobs"]), body.get("next")

    def cancel(self, job_id: str) -> Job:
        """Ask for the job's cancellation; returns the job. A job that already ended: HeraldError 409."""
        job: Job = self._json("POST", self._path(job_id, "cancel"), ok=(200, 202))
        return job

    def log(self, job_id: str, offset: int = 0) -> bytes:
        """The job's output (stdout and stderr) from byte ``offset``."""
        path = self._path(job_id, "log", query={"offset": offset or None})
        status, data = self._request("GET", path, headers={"Accept": "text/plain"})
        if status != 200:
            raise HeraldError.from_response(status, data)
        return data

    def wait(self, job_id: str, on_status: Optional[Callable[[Job], None]] = None, *,
             timeout: Optional[float] = None, idle_timeout: float = 60.0) -> Job:
        """Follow the job's event stream until it ends; returns the final job.

        ``on_status(job)`` is called for each new state, in order, never twice for one
        ``seq``. A dropped connection (herald-fcgi restarting, nginx answering 502/503/504,
        no byte for ``idle_timeout`` seconds, more than the heartbeat) is resumed with
        ``Last-Event-ID`` after the server's ``retry:`` delay, so no state is repeated or
        lost; a ``204`` (the end was already seen) fetches the job. ``timeout`` bounds the
        whole wait (HeraldError code ``timeout``); errors such as 404 or 401 raise at once.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        follow = _Follow(on_status)
        retry_ms = _DEFAULT_RETRY_MS
        failures = 0
        while True:
            outcome = self._follow_once(job_id, follow, idle_timeout, deadline)
            if isinstance(outcome, dict):
                return outcome
            if outcome is not None:
                retry_ms = outcome
                failures = 0
            else:
                failures += 1
            # Each failure in a row doubles the wait, up to 30 s; the server's retry is the base.
            delay = min(retry_ms / 1000.0 * (2 ** min(max(failures - 1, 0), 5)), max(_MAX_BACKOFF_S, retry_ms / 1000.0))
            delay *= random.uniform(0.9, 1.1) if failures else 1.0
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HeraldError(0, "timeout", f"job {job_id} did not end within {timeout}s")
                delay = min(delay, left)
            time.sleep(delay)

    def _follow_once(self, job_id: str, follow: "_Follow", idle_timeout: float,
                     deadline: Optional[float]) -> Any:
        """One connection to the job's stream: the final job when it ended, else the retry (ms) the
        stream asked for, or None when no stream was opened (so the caller backs off)."""
        if deadline is not None:
            idle_timeout = max(0.1, min(idle_timeout, deadline - time.monotonic()))
        headers = self._headers({"Accept": "text/event-stream", "Cache-Control": "no-store"})
        if follow.last_event_id:
            headers["Last-Event-ID"] = follow.last_event_id
        path = self._path(job_id, "events")
        conn = self._connection(idle_timeout)
        try:
            try:
                conn.request("GET", path, headers=headers)
                res = conn.getresponse()
            except (OSError, http.client.HTTPException):
                return None
            if res.status == 204:
                return follow.deliver(self.job(job_id))
            if res.status in _RETRYABLE:
                return None
            if res.status != 200:
                raise HeraldError.from_response(res.status, res.read())
            parser = SSEParser()
            parser.last_event_id = follow.last_event_id
            try:
                while True:
                    chunk = res.read1(65536)
                    if not chunk:
                        break
                    for event in parser.feed(chunk):
                        if event.event == "status":
                            follow.last_event_id = event.id
                            follow.deliver(json.loads(event.data))
                        elif event.event == "end":
                            if follow.latest is not None and follow.latest.get("state") in TERMINAL:
                                return follow.latest
                            return follow.deliver(self.job(job_id))
            except (OSError, http.client.HTTPException):
                pass
            return parser.retry if parser.retry is not None else _DEFAULT_RETRY_MS
        finally:
            conn.close()


class _Follow:
    """What wait() has seen so far: the last event id and the newest job, by seq."""

    def __init__(self, on_status: Optional[Callable[[Job], None]]) -> None:
        self.on_status = on_status
        self.last_event_id = ""
        self.latest: Optional[Job] = None

    def deliver(self, job: Job) -> Job:
        if self.latest is None or int(job.get("seq", 0)) > int(self.latest.get("seq", 0)):
            self.latest = job
            if self.on_status is not None:
                self.on_status(job)
        return self.latest
