"""herald.Herald against a fake server: requests as the API expects them, errors as HeraldError,
and wait() following a stream through drops, 5xx answers, a 204 and a silent server."""

import json
import time

import pytest

import herald.client as client_module
from client_fakes import respond, stream
from herald import Herald, HeraldError

JOB_ID = "01kbc8x0000000000000000000"


def job(seq, state="running", progress=0.0):
    return {"id": JOB_ID, "kind": "report", "state": state, "progress": progress, "seq": seq}


def status(seq, state="running", progress=0.0, event_id=None):
    return f"event: status\nid: {event_id or seq}\ndata: {json.dumps(job(seq, state, progress))}\n\n"


END = 'event: end\ndata: {"state": "succeeded"}\n\n'


@pytest.fixture
def sleeps(monkeypatch):
    """Records wait()'s sleeps instead of sleeping."""
    recorded = []
    monkeypatch.setattr(client_module.time, "sleep", lambda s: recorded.append(s))
    return recorded


def test_submit_sends_kind_params_owner_key_and_token(fake_server):
    server = fake_server(respond(201, json.dumps(job(1, "queued")).encode()))
    h = Herald(server.url + "/", token="s3cret")
    got = h.submit("report", {"month": "2026-11", "pages": 3}, owner="user-42", idempotency_key="k-1")
    assert got["id"] == JOB_ID
    req = server.requests[0]
    assert (req.method, req.path) == ("POST", "/jobs")
    assert json.loads(req.body) == {"kind": "report", "params": {"month": "2026-11", "pages": 3}, "owner": "user-42"}
    assert req.headers["authorization"] == "Bearer s3cret"
    assert req.headers["idempotency-key"] == "k-1"
    assert req.headers["content-type"] == "application/json"


def test_a_repeated_submit_answered_200_returns_the_job(fake_server):
    server = fake_server(respond(200, json.dumps(job(3)).encode()))
    assert Herald(server.url).submit("report", idempotency_key="k")["seq"] == 3
    assert "owner" not in json.loads(server.requests[0].body)


def test_api_errors_carry_status_code_and_message(fake_server):
    body = b'{"error": {"status": 422, "code": "idempotency_key_reused", "message": "key k was used with another body"}}'
    server = fake_server(respond(422, body))
    with pytest.raises(HeraldError) as e:
        Herald(server.url).submit("report", {}, idempotency_key="k")
    assert (e.value.status, e.value.code, e.value.message) == (422, "idempotency_key_reused", "key k was used with another body")
    assert "idempotency_key_reused" in str(e.value)


def test_a_non_json_error_still_names_the_status(fake_server):
    server = fake_server(respond(502, b"<html>Bad Gateway</html>", "text/html"))
    with pytest.raises(HeraldError) as e:
        Herald(server.url).job(JOB_ID)
    assert (e.value.status, e.value.code) == (502, "http_502")
    assert "Bad Gateway" in e.value.message


def test_no_server_is_status_0():
    h = Herald("http://127.0.0.1:9", timeout=2)
    with pytest.raises(HeraldError) as e:
        h.job(JOB_ID)
    assert e.value.status == 0 and e.value.code == "connection_error"


def test_paths_prefix_and_quoting(fake_server):
    server = fake_server(respond(200, b'{"jobs": [], "next": null}'), respond(202, json.dumps(job(2)).encode()),
                         respond(200, b"log text", "text/plain"), respond(200, json.dumps(job(2)).encode()))
    h = Herald(server.url + "/app", prefix="api/jobs/")
    assert h.jobs(state="running", owner="user-42", limit=5) == []
    assert h.cancel(JOB_ID)["seq"] == 2
    assert h.log(JOB_ID, offset=10) == b"log text"
    h.job("../x?y")
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/app/api/jobs?state=running&owner=user-42&limit=5"),
        ("POST", f"/app/api/jobs/{JOB_ID}/cancel"),
        ("GET", f"/app/api/jobs/{JOB_ID}/log?offset=10"),
        ("GET", "/app/api/jobs/..%2Fx%3Fy"),
    ]


def test_iter_jobs_follows_next(fake_server):
    a, b, c = (dict(job(1), id=x * 26) for x in "abc")
    server = fake_server(respond(200, json.dumps({"jobs": [a, b], "next": b["id"]}).encode()),
                         respond(200, json.dumps({"jobs": [c], "next": None}).encode()))
    assert [j["id"] for j in Herald(server.url).iter_jobs(kind="report", page_size=2)] == [a["id"], b["id"], c["id"]]
    assert server.requests[1].path == f"/jobs?kind=report&limit=2&before={b['id']}"


@pytest.mark.parametrize("base", ["ftp://x", "example.com", "http://x/?q=1"])
def test_bad_base_urls_are_refused(base):
    with pytest.raises(ValueError):
        Herald(base)


def test_wait_resumes_with_last_event_id_after_a_drop_and_honours_retry(fake_server, sleeps):
    server = fake_server(
        stream("retry: 1234\n\n", status(1, "queued"), status(2, progress=10.0), close_with_end_chunk=False),
        stream("retry: 2222\n\n", status(2, progress=10.0), status(3, progress=50.0), ": ping\n\n",
               status(4, "succeeded", 100.0), END),
    )
    seen = []
    final = Herald(server.url, token="t").wait(JOB_ID, on_status=lambda j: seen.append(j["seq"]))
    assert final["state"] == "succeeded" and final["seq"] == 4
    assert seen == [1, 2, 3, 4], "a state repeated by the server is delivered once"
    assert "last-event-id" not in server.requests[0].headers
    assert server.requests[1].headers["last-event-id"] == "2"
    assert server.requests[1].headers["accept"] == "text/event-stream"
    assert server.requests[1].headers["authorization"] == "Bearer t"
    assert sleeps == [1.234]


def test_a_token_function_is_called_for_every_connection(fake_server, sleeps):
    server = fake_server(stream(status(1), close_with_end_chunk=False), stream(status(2, "succeeded", 100.0), END))
    tokens = iter(["first", "second"])
    assert Herald(server.url, token=lambda: next(tokens)).wait(JOB_ID)["seq"] == 2
    assert [r.headers["authorization"] for r in server.requests] == ["Bearer first", "Bearer second"]


def test_wait_keeps_the_last_id_when_a_stream_ends_without_events(fake_server, sleeps):
    server = fake_server(stream(status(5, progress=5.0, event_id="e5")),
                         stream("retry: 10\n\n"),
                         stream(status(6, "succeeded", 100.0, event_id="e6"), END))
    assert Herald(server.url).wait(JOB_ID)["seq"] == 6
    assert [r.headers.get("last-event-id") for r in server.requests] == [None, "e5", "e5"]
    assert sleeps == [3.0, 0.01]


def test_wait_retries_502_and_refused_connections_with_backoff(fake_server, sleeps):
    server = fake_server(respond(502, b'{"error": {"status": 502, "code": "bad_gateway", "message": "down"}}'),
                         respond(503, b""),
                         stream(status(9, "failed", 40.0), END))
    assert Herald(server.url).wait(JOB_ID)["state"] == "failed"
    assert len(sleeps) == 2 and 2.7 <= sleeps[0] <= 3.3 and 5.4 <= sleeps[1] <= 6.6


def test_wait_after_a_204_fetches_the_job(fake_server, sleeps):
    server = fake_server(stream(status(7, progress=70.0), close_with_end_chunk=False),
                         respond(204),
                         respond(200, json.dumps(job(8, "canceled", 70.0)).encode()))
    seen = []
    final = Herald(server.url).wait(JOB_ID, on_status=lambda j: seen.append(j["state"]))
    assert final["state"] == "canceled" and seen == ["running", "canceled"]
    assert server.requests[1].headers["last-event-id"] == "7"
    assert server.requests[2].path == f"/jobs/{JOB_ID}"


def test_wait_raises_at_once_on_404(fake_server, sleeps):
    server = fake_server(respond(404, b'{"error": {"status": 404, "code": "not_found", "message": "no job with id x"}}'))
    with pytest.raises(HeraldError) as e:
        Herald(server.url).wait(JOB_ID)
    assert e.value.status == 404 and e.value.code == "not_found"
    assert sleeps == []


def test_wait_reconnects_when_the_server_goes_silent(fake_server, sleeps):
    server = fake_server(stream(status(1, progress=1.0), hold=1.5),
                         stream(status(2, "succeeded", 100.0), END))
    started = time.monotonic()
    assert Herald(server.url).wait(JOB_ID, idle_timeout=0.5)["seq"] == 2
    assert time.monotonic() - started < 1.4, "the silent stream was not given up after idle_timeout"
    assert server.requests[1].headers["last-event-id"] == "1"


def test_wait_gives_up_at_its_timeout(fake_server):
    server = fake_server(stream(status(1), hold=3))
    with pytest.raises(HeraldError) as e:
        Herald(server.url).wait(JOB_ID, timeout=0.5)
    assert e.value.code == "timeout"
