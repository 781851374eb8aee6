"""SPEC §3 through real nginx + herald-fcgi: every status code the API promises, and its bodies.

These tests are about herald-fcgi alone: the stack runs without herald-runner
(runner=False) and, where a test needs a job in some state, support_herald.StateWriter
plays the runner's part in the state directory.
"""

import json
import os
import re
import subprocess
import time

import pytest

from support_herald import ID_RE, StateWriter, assert_error, cancel_requests, waiting_submissions, metric, metrics_text, parse_time

TOKEN = "s3cret-token-for-tests"

KINDS = {
    "demo": {"builtin": "demo"},
    "report": {"command": ["/bin/true"], "params": {"month": "^[0-9]{4}-(0[1-9]|1[0-2])$", "n": "^[0-9]+$",
                                                   "flag": "^(true|false)$", "x": "^-?[0-9.eE+-]+$"}},
}
FCGI_ONLY = {"runner": False, "config_overrides": {"kinds": KINDS}}


def auth_overrides(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# submit tokens\n\nother-token\n{TOKEN}\n")
    return {"kinds": KINDS, "submit_tokens_file": str(tokens), "allow_anonymous_submit": False}


def submit(stack, kind="demo", params=None, headers=None):
    status, hdrs, job = stack.json("POST", "/jobs", {"kind": kind, "params": params or {}}, headers)
    assert status == 201, job
    return hdrs, job


# ---------------------------------------------------------------------------
# 201, 200


@pytest.mark.stack(**FCGI_ONLY)
def test_submit_answers_201_with_location_and_the_full_job(stack):
    before = time.time()
    status, hdrs, job = stack.json("POST", "/jobs", {"kind": "report", "params": {"month": "2026-10"}})
    assert status == 201, job
    assert hdrs["content-type"] == "application/json; charset=utf-8"
    jid = job["id"]
    assert ID_RE.match(jid), jid
    assert hdrs["location"] == f"/jobs/{jid}"
    assert set(job) == {"id", "kind", "state", "progress", "message", "params", "owner", "created_at", "started_at",
                        "finished_at", "updated_at", "attempt", "exit_code", "error", "result", "seq", "links"}
    assert job["kind"] == "report"
    assert job["state"] == "queued"
    assert job["progress"] == 0
    assert job["message"] is None
    assert job["owner"] is None  # none given (SPEC §9)
    assert job["params"] == {"month": "2026-10"}  # echoed as accepted, no defaults added
    for key in ("started_at", "finished_at", "exit_code", "error", "result"):
        assert job[key] is None, key
    assert job["attempt"] == 1
    assert isinstance(job["seq"], int) and job["seq"] >= 1
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    assert stamp.match(job["created_at"]) and stamp.match(job["updated_at"]), job
    assert before - 1 <= parse_time(job["created_at"]) <= time.time() + 1
    assert job["links"] == {"self": f"/jobs/{jid}", "events": f"/jobs/{jid}/events",
                            "log": f"/jobs/{jid}/log", "cancel": f"/jobs/{jid}/cancel"}
    # The ID's first 48 bits are the creation time in milliseconds.
    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    value = 0
    for c in jid[:10]:
        value = value * 32 + alphabet.index(c)
    assert abs(value / 1000 - parse_time(job["created_at"])) < 2


@pytest.mark.stack(**FCGI_ONLY)
def test_get_job_answers_200_with_the_job_as_submitted(stack):
    _, job = submit(stack, "demo", {"steps": "3"})
    status, hdrs, got = stack.json("GET", f"/jobs/{job['id']}")
    assert status == 200
    assert hdrs["content-type"] == "application/json; charset=utf-8"
    assert got == job


@pytest.mark.stack(**FCGI_ONLY)
def test_list_is_newest_first_filters_by_state_and_kind_and_pages_with_before_and_next(stack):
    writer = StateWriter(stack)
    ids = []
    for n in range(5):
        _, job = submit(stack, "demo" if n % 2 == 0 else "report", {"n": str(n)} if n % 2 else {"steps": "2"})
        ids.append(job["id"])
        time.sleep(0.002)  # distinct creation milliseconds: IDs sort by time only across milliseconds
    newest_first = list(reversed(ids))

    status, _, page = stack.json("GET", "/jobs")
    assert status == 200
    assert set(page) == {"jobs", "next"}
    assert [j["id"] for j in page["jobs"]] == newest_first
    assert page["next"] is None
    assert all("links" in j for j in page["jobs"])

    # Paging: limit=2 -> 2 + 2 + 1, following `next` through `before`.
    seen, before, pages = [], None, 0
    while True:
        q = "/jobs?limit=2" + (f"&before={before}" if before else "")
        status, _, page = stack.json("GET", q)
        assert status == 200, page
        assert len(page["jobs"]) <= 2
        seen += [j["id"] for j in page["jobs"]]
        pages += 1
        before = page["next"]
        if before is None:
            break
        assert before == page["jobs"][-1]["id"]
        assert pages < 5
    assert seen == newest_first

    status, _, page = stack.json("GET", "/jobs?kind=report")
    assert [j["id"] for j in page["jobs"]] == [ids[3], ids[1]]

    # Two jobs end, one runs: the state filter sees the runner's states.
    for jid in ids:
        writer.take(stack.json("GET", f"/jobs/{jid}")[2])
    writer.update(ids[0], state="running", progress=10.0)
    writer.update(ids[0], state="succeeded", progress=100.0)
    writer.update(ids[2], state="running")
    writer.update(ids[4], state="running")
    writer.update(ids[4], state="failed", exit_code=1, error={"code": "exit_status", "message": "exit status 1"})
    for state, expected in (("succeeded", [ids[0]]), ("running", [ids[2]]), ("failed", [ids[4]]),
                            ("queued", [ids[3], ids[1]]), ("canceled", [])):
        status, _, page = stack.json("GET", f"/jobs?state={state}")
        assert status == 200
        assert [j["id"] for j in page["jobs"]] == expected, state
    status, _, page = stack.json("GET", "/jobs?state=queued&kind=report&limit=1")
    assert [j["id"] for j in page["jobs"]] == [ids[3]] and page["next"] == ids[3]


# ---------------------------------------------------------------------------
# 400


@pytest.mark.stack(**FCGI_ONLY)
@pytest.mark.parametrize("body", [b"{", b"not json", b"[]", b'"kind"', b'{"kind": 5}', b'{"params": {}}',
                                  b'{"kind": "demo", "params": {}} trailing', b"\xff\xfe"])
def test_bad_json_body_answers_400(stack, body):
    status, hdrs, data = stack.request("POST", "/jobs", body, {"Content-Type": "application/json"})
    assert_error(status, hdrs, data, 400)


@pytest.mark.stack(**FCGI_ONLY)
@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=-1", "limit=ten", "state=bogus",
                                   "state=%zz", "kind=%E2%82", "before=not-an-id", "limit=%"])
def test_bad_list_query_answers_400(stack, query):
    status, hdrs, data = stack.request("GET", "/jobs?" + query)
    assert_error(status, hdrs, data, 400)


@pytest.mark.stack(**FCGI_ONLY)
def test_limit_bounds_1_and_500_are_accepted(stack):
    for q in ("limit=1", "limit=500"):
        status, _, page = stack.json("GET", "/jobs?" + q)
        assert status == 200, page


@pytest.mark.stack(**FCGI_ONLY)
def test_bad_log_offset_answers_400(stack):
    _, job = submit(stack)
    for q in ("offset=-1", "offset=x", "offset=%zz"):
        status, hdrs, data = stack.request("GET", f"/jobs/{job['id']}/log?{q}")
        assert_error(status, hdrs, data, 400)


# ---------------------------------------------------------------------------
# 401


def test_submitter_routes_answer_401_with_www_authenticate_without_or_with_a_wrong_token(make_stack, tmp_path):
    stack = make_stack(runner=False, config_overrides=auth_overrides(tmp_path))
    body = {"kind": "demo", "params": {}}
    cases = [
        ("POST", "/jobs", body, {}),
        ("POST", "/jobs", body, {"Authorization": "Bearer wrong"}),
        ("POST", "/jobs", body, {"Authorization": f"Bearer {TOKEN}x"}),
        ("POST", "/jobs", body, {"Authorization": f"Basic {TOKEN}"}),
        ("POST", "/jobs?access_token=wrong", body, {}),
        ("POST", "/jobs?access_token=", body, {}),
        ("GET", "/jobs", None, {}),
        ("GET", "/jobs?access_token=nope", None, {}),
        ("GET", "/jobs/events", None, {}),
    ]
    for method, path, b, headers in cases:
        status, hdrs, data = stack.request(method, path, b, headers)
        assert_error(status, hdrs, data, 401, leaks=(TOKEN,))
        assert hdrs.get("www-authenticate", "").startswith("Bearer"), (path, headers, hdrs)
    assert not waiting_submissions(stack), "a refused submission left something"


def test_submit_with_a_bearer_token_answers_201(make_stack, tmp_path):
    stack = make_stack(runner=False, config_overrides=auth_overrides(tmp_path))
    _, job1 = submit(stack, headers={"Authorization": f"Bearer {TOKEN}"})
    _, job2 = submit(stack, headers={"Authorization": "Bearer other-token"})
    _, job3 = submit(stack, headers={"Authorization": f"bearer {TOKEN}"})
    # Anyone with the ID may read the job; listing and cancelling need the token.
    assert stack.json("GET", f"/jobs/{job1['id']}")[0] == 200
    status, _, page = stack.json("GET", "/jobs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and {j["id"] for j in page["jobs"]} == {job1["id"], job2["id"], job3["id"]}
    status, hdrs, data = stack.request("POST", f"/jobs/{job1['id']}/cancel")
    assert_error(status, hdrs, data, 401)
    assert stack.request("POST", f"/jobs/{job1['id']}/cancel", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 202


# ---------------------------------------------------------------------------
# 404, 405


@pytest.mark.stack(**FCGI_ONLY)
@pytest.mark.parametrize("path", [
    "/jobs/01m896dd5ehfxqjj8w8e3jj7zq",           # well-formed, unknown
    "/jobs/01m896dd5ehfxqjj8w8e3jj7zq/events",
    "/jobs/01m896dd5ehfxqjj8w8e3jj7zq/log",
    "/jobs/01M896DD5EHFXQJJ8W8E3JJ7ZQ",           # uppercase
    "/jobs/01m896dd5ehfxqjj8w8e3jj7z",            # 25 characters
    "/jobs/01m896dd5ehfxqjj8w8e3jj7zqq",          # 27 characters
    "/jobs/" + "a" * 300,                         # far too long
    "/jobs/01m896dd5ehfxqjj8w8e3jj7zu",           # 'u' is not Crockford base32
    "/jobs/01m896dd5ehfxqjj8w8e3jj7z%C3%BC",      # unicode
    "/jobs/%C3%BC%C3%BC%C3%BC%C3%BC%C3%BC%C3%BC%C3%BC%C3%BC%C3%BC%C3%BC%C3%BC%C3%BC%C3%BC",
    "/jobs/..%2Fjobs",                            # traversal that stays inside /jobs for nginx
    "/jobs/01m896dd5ehfxqjj8w8e3jj7zq/nothing",   # unknown route under a job
    "/jobs/01m896dd5ehfxqjj8w8e3jj7zq/log/more",
    "/jobs/",
    "/jobsx",
])
def test_unknown_jobs_malformed_ids_and_unknown_routes_answer_404(stack, path):
    status, hdrs, data = stack.request("GET", path)
    assert_error(status, hdrs, data, 404)


@pytest.mark.stack(**FCGI_ONLY)
def test_traversal_that_climbs_above_the_root_never_reaches_the_application(stack):
    # nginx itself refuses a URI that climbs above the root (its own 400, before any location
    # is chosen, so not Herald's JSON); herald-fcgi never sees the request.
    # The same for traversals that leave /jobs after nginx normalises them, and for a NUL.
    for path in ("/jobs/..%2F..%2F..%2Fetc%2Fpasswd", "/jobs/../../etc/passwd", "/jobs/..%2F..%2Fjobs%2F..%2Fjobs",
                 "/jobs/.%2E%2Fstate%2Fjobs", "/jobs/%2e%2e", "/jobs/01m896dd5ehfxqjj8w8e3jj7zq%00"):
        status, hdrs, data = stack.request("GET", path)
        if status == 404 and hdrs.get("content-type", "").startswith("application/json"):
            assert_error(status, hdrs, data, 404)
        else:
            assert status in (302, 400, 404), (path, status, data)
    assert "herald_requests_total{route=\"unknown\"" not in metrics_text(stack)


@pytest.mark.stack(**FCGI_ONLY)
def test_malformed_ids_are_answered_without_touching_the_filesystem(stack):
    pid = stack.fcgi_proc.pid
    strace = subprocess.run(["which", "strace"], capture_output=True, text=True).stdout.strip()
    if not strace:
        pytest.skip("strace is not installed: cannot observe herald-fcgi's syscalls")
    out = os.path.join(stack.workdir, "strace.out")
    tracer = subprocess.Popen([strace, "-f", "-qq", "-e", "trace=%file", "-o", out, "-p", str(pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # strace attaches to every thread
        for path in ("/jobs/..%2Fjobs", "/jobs/ABCDEFGHJKMNPQRSTVWXYZ0123", "/jobs/" + "z" * 27 + "/events"):
            assert stack.request("GET", path)[0] == 404
        time.sleep(0.2)
    finally:
        tracer.terminate()
        tracer.wait(5)
    with open(out) as f:
        trace = f.read()
    assert "ABCDEFGHJKMNPQRSTVWXYZ0123" not in trace and "zzzzzzzzzz" not in trace and "..%2F" not in trace, trace


@pytest.mark.stack(**FCGI_ONLY)
@pytest.mark.parametrize("method,path,allow", [
    ("DELETE", "/jobs", "GET, POST"),
    ("PUT", "/jobs", "GET, POST"),
    ("PATCH", "/jobs", "GET, POST"),
    ("POST", "/jobs/events", "GET"),
    ("DELETE", "/jobs/01m896dd5ehfxqjj8w8e3jj7zq", "GET"),
    ("GET", "/jobs/01m896dd5ehfxqjj8w8e3jj7zq/cancel", "POST"),
    ("POST", "/jobs/01m896dd5ehfxqjj8w8e3jj7zq/log", "GET"),
    ("POST", "/healthz", "GET"),
])
def test_wrong_method_answers_405_with_allow(stack, method, path, allow):
    status, hdrs, data = stack.request(method, path)
    assert_error(status, hdrs, data, 405)
    assert hdrs.get("allow") == allow


# ---------------------------------------------------------------------------
# 202, 409


@pytest.mark.stack(**FCGI_ONLY)
def test_cancel_answers_202_with_the_job_and_is_idempotent(stack):
    _, job = submit(stack)
    for _ in range(2):
        status, hdrs, got = stack.json("POST", f"/jobs/{job['id']}/cancel")
        assert status == 202, got
        assert hdrs["content-type"] == "application/json; charset=utf-8"
        assert got["id"] == job["id"] and got["state"] == "queued" and "links" in got
    assert cancel_requests(stack) == [job["id"]]


@pytest.mark.stack(**FCGI_ONLY)
@pytest.mark.parametrize("final", ["succeeded", "failed", "canceled"])
def test_cancel_of_an_ended_job_answers_409(stack, final):
    writer = StateWriter(stack)
    _, job = submit(stack)
    writer.take(job)
    writer.update(job["id"], state="running")
    writer.update(job["id"], state=final)
    status, hdrs, data = stack.request("POST", f"/jobs/{job['id']}/cancel")
    err = assert_error(status, hdrs, data, 409)
    assert final in err["message"]
    assert not cancel_requests(stack)


@pytest.mark.stack(**FCGI_ONLY)
def test_cancel_of_an_unknown_job_answers_404(stack):
    status, hdrs, data = stack.request("POST", "/jobs/01m896dd5ehfxqjj8w8e3jj7zq/cancel")
    assert_error(status, hdrs, data, 404)
    assert not cancel_requests(stack)


# ---------------------------------------------------------------------------
# 413, 415


def test_body_over_max_body_bytes_answers_413_json_from_the_app_and_from_nginx(make_stack):
    # max_body_bytes below nginx's client_max_body_size (64k): herald-fcgi refuses from Content-Length.
    stack = make_stack(runner=False, config_overrides={"max_body_bytes": 1000})
    body = json.dumps({"kind": "demo", "params": {"steps": "1", "pad": "x" * 2000}})
    status, hdrs, data = stack.request("POST", "/jobs", body, {"Content-Type": "application/json"})
    err = assert_error(status, hdrs, data, 413)
    assert "1000" in err["message"]
    # Past nginx's own limit nginx refuses it (before reading it), with the same JSON shape.
    big = json.dumps({"kind": "demo", "params": {"pad": "x" * 70000}})
    status, hdrs, data = stack.request("POST", "/jobs", big, {"Content-Type": "application/json"})
    assert_error(status, hdrs, data, 413)
    # A declared length far beyond the limit, without the body: refused before it is read.
    import socket
    with socket.create_connection((stack.host, stack.port), timeout=5) as s:
        s.sendall(b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 10000000\r\nConnection: close\r\n\r\n{")
        s.settimeout(5)
        reply = b""
        while True:  # up to the end of the answer (nginx then lingers for the unsent body)
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            reply += chunk
            head, sep, rest = reply.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *([0-9]+)", head)
            if sep and length and len(rest) >= int(length.group(1)):
                break
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b'"status": 413' in reply or b'"status":413' in reply, reply
    assert not waiting_submissions(stack)


@pytest.mark.stack(**FCGI_ONLY)
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx"])
def test_body_that_is_not_json_answers_415(stack, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    status, hdrs, data = stack.request("POST", "/jobs", b'{"kind": "demo", "params": {}}', headers)
    assert_error(status, hdrs, data, 415)


@pytest.mark.stack(**FCGI_ONLY)
def test_json_content_type_with_charset_is_accepted(stack):
    status, _, job = stack.json("POST", "/jobs", b'{"kind": "demo", "params": {}}',
                                {"Content-Type": "application/json; charset=utf-8"})
    assert status == 201, job


# ---------------------------------------------------------------------------
# 422 and params


@pytest.mark.stack(**FCGI_ONLY)
@pytest.mark.parametrize("kind,params,named", [
    ("nope", {}, "nope"),
    ("report", {"colour": "red"}, "colour"),          # not in the allow-list
    ("report", {"month": "2026-13"}, "month"),
    ("report", {"month": "x2026-10"}, "month"),       # the regex must match the whole value
    ("report", {"n": "12\n"}, "n"),
    ("report", {"n": "12 "}, "n"),
    ("report", {"n": ""}, "n"),
    ("demo", {"steps": "0"}, "steps"),
    ("demo", {"steps": "10001"}, "steps"),
    ("demo", {"interval_ms": "60001"}, "interval_ms"),
    ("demo", {"steps": "-1"}, "steps"),
    ("demo", {"steps": "five"}, "steps"),
    ("demo", {"steps": 2.5}, "steps"),
    ("demo", {"fail_at": "0"}, "fail_at"),
    ("demo", {"colour": "red"}, "colour"),
    ("report", {"n": None}, "n"),                     # null, arrays and objects are refused
    ("report", {"n": [1]}, "n"),
    ("report", {"n": {"a": 1}}, "n"),
    ("demo", {"steps": None}, "steps"),
])
def test_unprocessable_kind_or_params_answer_422_naming_what_was_wrong(stack, kind, params, named):
    status, hdrs, data = stack.request("POST", "/jobs", {"kind": kind, "params": params})
    err = assert_error(status, hdrs, data, 422)
    assert named in err["message"], err
    assert not waiting_submissions(stack)


@pytest.mark.stack(**FCGI_ONLY)
def test_params_that_are_not_an_object_are_refused(stack):
    for params in ([], "steps=3", 5):
        status, hdrs, data = stack.request("POST", "/jobs", {"kind": "demo", "params": params})
        assert status in (400, 422), (params, status, data)
        assert_error(status, hdrs, data, status)


@pytest.mark.stack(**FCGI_ONLY)
def test_numbers_and_booleans_are_taken_as_their_json_text(stack):
    body = b'{"kind": "report", "params": {"n": 12, "flag": true, "x": -1.5e0, "month": "2026-01"}}'
    status, _, job = stack.json("POST", "/jobs", body, {"Content-Type": "application/json"})
    assert status == 201, job
    assert job["params"] == {"n": "12", "flag": "true", "x": "-1.5e0", "month": "2026-01"}
    status, _, job = stack.json("POST", "/jobs", {"kind": "demo", "params": {"steps": 7, "interval_ms": 0}})
    assert status == 201, job
    assert job["params"] == {"steps": "7", "interval_ms": "0"}  # echoed, no defaults added
    status, _, job = stack.json("POST", "/jobs", {"kind": "demo", "params": {"steps": "1", "interval_ms": "60000",
                                                                             "fail_at": "10000"}})
    assert status == 201, job


# ---------------------------------------------------------------------------
# log, healthz, metrics


@pytest.mark.stack(**FCGI_ONLY)
def test_log_answers_the_raw_bytes_from_the_offset(stack):
    writer = StateWriter(stack)
    _, job = submit(stack)
    jid = job["id"]
    status, hdrs, data = stack.request("GET", f"/jobs/{jid}/log")
    assert status == 200 and data == b""  # no output yet
    log = b"line one\r\nline two\rbare cr\n\xc3\xa9t\xc3\xa9 \x00\xff binary\n"
    writer.append_log(jid, log)
    status, hdrs, data = stack.request("GET", f"/jobs/{jid}/log")
    assert status == 200
    assert hdrs["content-type"].startswith("text/plain")
    assert data == log  # raw: CR, CRLF and invalid UTF-8 untouched
    for offset in (0, 1, 10, len(log) - 1, len(log), len(log) + 100):
        status, _, data = stack.request("GET", f"/jobs/{jid}/log?offset={offset}")
        assert status == 200
        assert data == log[offset:], offset


@pytest.mark.stack(**FCGI_ONLY)
def test_healthz_answers_ok_with_counts(stack):
    writer = StateWriter(stack)
    status, hdrs, health = stack.json("GET", "/healthz")
    assert status == 200 and hdrs["content-type"] == "application/json; charset=utf-8"
    assert health["ok"] is True
    _, a = submit(stack)
    _, b = submit(stack)
    writer.take(b)
    writer.update(b["id"], state="running")
    status, _, health = stack.json("GET", "/healthz")
    assert health["ok"] is True
    assert health["jobs"]["queued"] == 1 and health["jobs"]["running"] == 1, health
    assert health.get("streams") == 0, health


@pytest.mark.stack(**FCGI_ONLY)
def test_metrics_is_prometheus_text_with_the_named_series(stack):
    _, job = submit(stack)
    stack.request("GET", f"/jobs/{job['id']}")
    stack.request("GET", "/jobs/01m896dd5ehfxqjj8w8e3jj7zq")
    status, hdrs, data = stack.request("GET", "/metrics")
    assert status == 200
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4")
    text = data.decode()
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.e+]+$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    for name, kind in (("herald_open_streams", "gauge"), ("herald_events_sent_total", "counter"),
                       ("herald_stream_bytes_sent_total", "counter"), ("herald_slow_clients_dropped_total", "counter"),
                       ("herald_stream_unsent_bytes", "gauge"), ("herald_requests_total", "counter"), ("herald_jobs", "gauge")):
        assert f"# TYPE {name} {kind}" in text, name
    assert metric(stack, "herald_open_streams") == 0 and metric(stack, "herald_stream_unsent_bytes") == 0
    assert metric(stack, "herald_jobs", '{state="queued"}') == 1
    assert metric(stack, "herald_requests_total", '{route="submit",status="201"}') == 1
    assert metric(stack, "herald_requests_total", '{route="job",status="200"}') == 1
    assert metric(stack, "herald_requests_total", '{route="job",status="404"}') == 1


# ---------------------------------------------------------------------------
# 503


def _fill(directory: str) -> None:
    """Fills the filesystem of directory to the last block."""
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 1024)
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.mark.directory_only("a state directory herald-fcgi cannot write (on PostgreSQL: test_cluster.py's restart test answers 503)")
def test_unwritable_state_dir_answers_503_and_leaves_nothing_half_written(make_stack, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs as the state directory (chmod does not stop root)")
    workdir = tmp_path / "stack"
    state = workdir / "state"
    state.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(state)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needed to fill the state directory): {mounted.stderr.strip()}")
    try:
        stack = make_stack(workdir=workdir, runner=False)
        _, ok = submit(stack)  # writable at first
        _fill(str(state))
        for attempt in range(3):
            status, hdrs, data = stack.request("POST", "/jobs", {"kind": "demo", "params": {"steps": "3"}})
            assert_error(status, hdrs, data, 503, leaks=(str(state),))
        assert os.listdir(state / "tmp") == [], "a temp file was left behind"
        assert sorted(os.listdir(state / "new")) == [ok["id"] + ".json"], "a half-written submission was left"
        # Reading still works, and the service recovers once there is room again.
        assert stack.json("GET", f"/jobs/{ok['id']}")[0] == 200
        os.unlink(state / "filler")
        submit(stack)
        assert "state directory" in stack.read_log("herald-fcgi")  # the detail goes to the log only
    finally:
        # Stop the processes before unmounting (make_stack's teardown would stop them later).
        if "stack" in locals():
            stack.stop()
        subprocess.run(["umount", "-l", str(state)], capture_output=True)
