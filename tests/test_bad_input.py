"""Hostile and malformed input, hand-written, always through nginx as a client
would send it. The rule everywhere: a refusal is a 4xx with Herald's JSON error
body (or nginx's own 4xx before the application is reached), never a 5xx and
never a crash; herald-fcgi stays healthy after each group of cases.

docs/RELIABILITY.md lists every case with what was observed.
"""

from __future__ import annotations

import json
import re
import os
import secrets
import socket
import stat
import threading
import time
import uuid

import pytest

from support_herald import psql, stored_jobs

UNKNOWN_ID = "01m896dd5ehfxqjj8w8e3jj7zq"
ID_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


# ---------------------------------------------------------------------------
# helpers


def raw(stack, data: bytes, timeout=10.0, source=None, half_close=False) -> bytes:
    """Sends raw bytes to nginx and reads the answer until the server closes (or timeout).
    Without half_close the write side stays open: nginx takes a client's EOF for an abort."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect((stack.host, stack.port))
    try:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError, socket.timeout):
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def statuses(answer: bytes) -> list:
    """The status codes of every HTTP response in answer (pipelined requests give several)."""
    found = []
    for part in answer.split(b"HTTP/1.1 ")[1:]:
        try:
            found.append(int(part[:3]))
        except ValueError:
            pass
    return found


def body_of(answer: bytes) -> bytes:
    return answer.partition(b"\r\n\r\n")[2]


def assert_json_error(status, headers, body, expected):
    assert status == expected, (status, body[:300])
    assert headers.get("content-type", "").startswith("application/json"), headers
    err = json.loads(body)["error"]
    assert err["status"] == expected and err["code"] and err["message"], err
    for leak in ("/tmp/", "/var/", "/work/", "state/", ".swift", "Fatal"):
        assert leak not in err["message"], err
    return err


def assert_healthy(stack):
    assert stack.fcgi_proc.poll() is None, f"herald-fcgi exited {stack.fcgi_proc.returncode}\n{stack.log_tail('herald-fcgi')}"
    status, _, health = stack.json("GET", "/healthz")
    assert status == 200 and health["ok"] is True, health
    app_5xx = [line for line in stack.access_log() if _upstream_5xx(line)]
    assert not app_5xx, f"herald-fcgi answered 5xx: {app_5xx[:5]}"
    log = stack.read_log("herald-fcgi")
    assert "Fatal error" not in log and "fatal" not in log.lower(), stack.log_tail("herald-fcgi")


def _upstream_5xx(line: str) -> bool:
    """An access-log line whose answer came from herald-fcgi with a 5xx. nginx's own 502s
    while the stack starts (GET /healthz before herald-fcgi listens) do not count."""
    upstream = line.rsplit('"', 2)[-2] if line.count('"') >= 4 else "-"
    codes = [int(c) for c in upstream.replace(",", " ").replace(":", " ").split() if c.isdigit()]
    return any(c >= 500 for c in codes) and "GET /healthz " not in line


def _epoch(rfc3339: str) -> float:
    from datetime import datetime, timezone
    return datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def submit_raw(stack, body: bytes, content_type="application/json", headers=None):
    return stack.request("POST", "/jobs", body, {"Content-Type": content_type, **(headers or {})})


# ---------------------------------------------------------------------------
# IDs and paths


ODD_IDS = [
    "..", "%2e%2e", "%2E%2E", ".", "%00", UNKNOWN_ID + "%00", "%00" + UNKNOWN_ID[:23],
    UNKNOWN_ID.upper(), UNKNOWN_ID[:25], UNKNOWN_ID + "q", "z" * 2000,
    UNKNOWN_ID[:24] + "%C3%A9", "%E2%80%AE" + UNKNOWN_ID[:23], UNKNOWN_ID[:25] + "%20", "%20" + UNKNOWN_ID[:25],
    UNKNOWN_ID[:25] + "%0A", UNKNOWN_ID[:25] + "%0D%0A", UNKNOWN_ID[:25] + "i", UNKNOWN_ID[:25] + "l",
    UNKNOWN_ID[:25] + "o", UNKNOWN_ID[:25] + "u", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", UNKNOWN_ID[:13] + "%2F" + UNKNOWN_ID[13:],
    "*", "~", "$(id)", "%24(id)", "%60id%60", "jobs.lock", "queue.lock", "..%5C..%5C",
]


def test_odd_ids_in_every_id_position_answer_404_and_never_reach_a_file(stack):
    """`..`, encoded dots, NUL, uppercase, 25/27 characters, unicode, letters outside
    Crockford base32, encoded slashes, shell syntax: in /jobs/ID, /events, /log, /cancel,
    the multi-job `ids=` and `before=`. The app answers 404 (400 for a malformed
    query value), or nginx refuses the URI itself with 400; never 2xx or 5xx."""
    answered = {}
    for odd in ODD_IDS:
        for method, path in (("GET", f"/jobs/{odd}"), ("GET", f"/jobs/{odd}/events"), ("GET", f"/jobs/{odd}/log"),
                             ("POST", f"/jobs/{odd}/cancel"), ("GET", f"/jobs/events?ids={odd}"),
                             ("GET", f"/jobs/events?ids={UNKNOWN_ID},{odd}")):
            status, hdrs, body = stack.request(method, path)
            answered[(method, path)] = status
            if hdrs.get("content-type", "").startswith("application/json"):
                assert_json_error(status, hdrs, body, 404 if status == 404 else 400)
            else:
                # nginx's own answer: 400 for a URI it refuses; where `..` normalises the
                # path out of /jobs, whatever the site answers there (302 from `location = /`,
                # a static 404). Never the application's.
                assert status in (302, 400, 404) and b"nginx" in body, (method, path, status, body[:200])
        status, hdrs, body = stack.request("GET", f"/jobs?before={odd}")
        assert_json_error(status, hdrs, body, 400) if status != 200 else None
        assert status in (400, 200), (odd, status)  # 200 only where nginx normalised nothing odd away
    assert all(s in (302, 400, 404) for s in answered.values()), answered
    # The multi-job list: empty members, too many members.
    for ids in (",", f"{UNKNOWN_ID},", ",".join([UNKNOWN_ID] * 65), "%2C"):
        status, hdrs, body = stack.request("GET", f"/jobs/events?ids={ids}")
        assert status in (400, 404), (ids, status)
        assert_json_error(status, hdrs, body, status)
    # Nothing odd was created in the store.
    if stack.database_url:
        assert psql(stack.database_url, "SELECT id FROM herald.jobs WHERE id !~ '^[0-9a-hjkmnp-tv-z]{26}$'") == ""
    for sub in os.listdir(stack.state_dir) if not stack.database_url else ():
        path = os.path.join(stack.state_dir, sub)
        if os.path.isdir(path):
            for name in os.listdir(path):
                assert name[:26].isalnum() or name in ("queue.lock",), f"{sub}/{name}"
    assert_healthy(stack)


def test_localhost_only_routes_stay_closed_to_other_addresses_also_through_traversal(stack):
    """nginx serves /healthz and /metrics to 127.0.0.1 only. From 127.0.0.2 (another
    loopback address), neither they nor any spelling that normalises to them through
    /jobs gives their content: the location is chosen from the normalised URI, and the
    app routes by the raw REQUEST_URI, so a mismatch can only end in 404."""
    for path in ("/healthz", "/metrics", "/jobs/../metrics", "/jobs/%2e%2e/metrics", "/jobs/..%2Fmetrics",
                 "/herald/../healthz", "//metrics", "/metrics/", "/metrics?x=1", "/jobs/../healthz?x",
                 "/jobs/%2e%2e/healthz", "/jobs/%2E%2E%2Fhealthz"):
        answer = raw(stack, f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode(),
                     source="127.0.0.2")
        got = statuses(answer)
        assert got and got[0] in (400, 403, 404), (path, answer[:300])
        body = body_of(answer)
        assert b"herald_open_streams" not in body and b'"ok"' not in body, (path, body[:300])
        if got[0] == 403:
            assert b'"code": "forbidden"' in body, body
    # From 127.0.0.1 they work.
    assert stack.request("GET", "/metrics")[0] == 200


# ---------------------------------------------------------------------------
# bodies: size, lies about size, malformed JSON


def test_content_length_lies_and_odd_framing_never_reach_the_app_as_5xx(make_stack):
    stack = make_stack(runner=False, config_overrides={"max_body_bytes": 4096})
    good = b'{"kind": "demo", "params": {"steps": "1"}}'
    head = b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    # Shorter than the body: the app gets a cut body (400 bad_json); the rest is the start
    # of a next request that never completes (nginx drops it after its header timeout).
    answer = raw(stack, head + b"Content-Length: 10\r\n\r\n" + good, timeout=2)
    got = statuses(answer)
    assert got and set(got) == {400} and b'"bad_json"' in answer, answer[:300]
    # Longer than the body, then the client sends no more: nginx waits for the rest
    # (client_body_timeout) and the application never sees the request.
    answer = raw(stack, head + b"Content-Length: 200\r\n\r\n" + good, timeout=2)
    assert statuses(answer) == [], answer[:200]
    # Over max_body_bytes (4096) but under nginx's 64k, with the whole body sent: the app
    # refuses it from the declared length (413 body_too_large), before reading it.
    padded = b'{"kind": "demo", "params": {"pad": "' + b"x" * 5000 + b'"}}'
    answer = raw(stack, head + f"Content-Length: {len(padded)}\r\nConnection: close\r\n\r\n".encode() + padded, timeout=3)
    assert statuses(answer) == [413] and b'"body_too_large"' in answer, answer[:300]
    # Negative, non-numeric, duplicated Content-Length, Content-Length with chunked: nginx
    # 400; a transfer coding nginx does not know: nginx 501. herald-fcgi never sees them.
    for bad, expect in ((b"Content-Length: -1\r\n", 400), (b"Content-Length: abc\r\n", 400),
                        (b"Content-Length: 43\r\nContent-Length: 44\r\n", 400),
                        (b"Content-Length: 43\r\nTransfer-Encoding: chunked\r\n", 400),
                        (b"Transfer-Encoding: gzip\r\n", 501)):
        got = statuses(raw(stack, head + bad + b"Connection: close\r\n\r\n" + good, timeout=3))
        assert got == [expect], (bad, got)
    # nginx's own 501 is in its access log too; what matters is that herald-fcgi answered no 5xx.
    assert not re.search(r'herald_requests_total\{[^}]*status="5', stack.request("GET", "/metrics")[2].decode())
    # Chunked transfer encoding of a good body: nginx de-chunks it; accepted.
    chunked = f"{len(good):x}\r\n".encode() + good + b"\r\n0\r\n\r\n"
    answer = raw(stack, head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked)
    assert statuses(answer) == [201], answer[:300]
    # Chunked and over the limit: 413, whoever says it.
    big = b'{"kind": "demo", "params": {"pad": "' + b"x" * 70000 + b'"}}'
    chunked = f"{len(big):x}\r\n".encode() + big + b"\r\n0\r\n\r\n"
    got = statuses(raw(stack, head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked))
    assert got == [413], got
    # A GET with a body is answered as a GET.
    assert statuses(raw(stack, b"GET /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")) == [200]
    assert stored_jobs(stack) == 1  # only the chunked good one
    assert_healthy(stack)


MALFORMED = {
    "empty": b"",
    "nest-arrays-10000": b"[" * 10000 + b"]" * 10000,
    "nest-objects-10000": b'{"a":' * 10000 + b"1" + b"}" * 10000,
    "nest-in-params-10000": b'{"kind":"demo","params":{"x":' + b"[" * 10000 + b"]" * 10000 + b"}}",
    "unclosed-nest-60000": b"[" * 60000,
    "invalid-utf8": b'{"kind":"demo\xff","params":{}}',
    "invalid-utf8-in-param": b'{"kind":"demo","params":{"steps":"\xc3\x28"}}',
    "overlong-utf8-slash": b'{"kind":"demo","params":{"steps":"\xc0\xaf"}}',
    "cesu-surrogate-bytes": b'{"kind":"demo","params":{"steps":"\xed\xa0\x80"}}',
    "lone-high-surrogate": b'{"kind":"demo","params":{"steps":"\\ud800"}}',
    "lone-low-surrogate": b'{"kind":"demo","params":{"steps":"\\udc00x"}}',
    "reversed-surrogates": b'{"kind":"demo","params":{"steps":"\\udc00\\ud800"}}',
    "utf8-bom": b'\xef\xbb\xbf{"kind":"demo","params":{}}',
    "utf16-body": '{"kind":"demo","params":{}}'.encode("utf-16"),
    "nul-in-body": b'{"kind":"demo"\x00,"params":{}}',
    "trailing-garbage": b'{"kind":"demo","params":{}}xyz',
    "two-documents": b'{"kind":"demo","params":{}}{"kind":"demo"}',
    "single-quotes": b"{'kind':'demo'}",
    "comment": b'{"kind":"demo" /* hi */}',
    "trailing-comma": b'{"kind":"demo","params":{},}',
    "nan": b'{"kind":"demo","params":{"steps":NaN}}',
    "infinity": b'{"kind":"demo","params":{"steps":Infinity}}',
    "bad-escape": b'{"kind":"demo\\x41"}',
    "control-char-in-string": b'{"kind":"de\x01mo"}',
    "unterminated-string": b'{"kind":"demo',
    "not-an-object": b'"demo"',
    "array": b'[{"kind":"demo"}]',
    "null": b"null",
    "kind-number": b'{"kind":1}',
    "kind-null": b'{"kind":null}',
    "kind-object": b'{"kind":{"$ne":""}}',
}


def test_malformed_json_answers_400_and_herald_fcgi_survives(make_stack):
    """Deep nesting (10,000 levels, and 60,000 unclosed), invalid UTF-8, overlong and
    CESU-8 encodings, lone surrogates, a BOM, UTF-16, NUL, trailing data, JSON5-isms."""
    stack = make_stack(runner=False)
    for name, body in MALFORMED.items():
        status, hdrs, data = submit_raw(stack, body)
        # A UTF-8 BOM is not JSON (RFC 8259 §8.1: senders must not add one): refused like the rest.
        assert_json_error(status, hdrs, data, 400)
    assert stored_jobs(stack) == 0
    assert_healthy(stack)


def test_huge_number_of_keys_huge_numbers_and_duplicate_keys_are_handled(make_stack):
    stack = make_stack(runner=False, config_overrides={"kinds": {"cmd": {"command": ["/bin/true"],
                                                                         "params": {"month": "^[0-9]{4}-[0-9]{2}$"}}}})
    # 5,000 keys within max_body_bytes: refused as params the demo does not know (422), quickly.
    many = ("{" + ",".join(f'"k{i}":"v"' for i in range(5000)) + "}").encode()
    started = time.monotonic()
    status, hdrs, data = submit_raw(stack, b'{"kind":"demo","params":' + many + b"}")
    assert_json_error(status, hdrs, data, 422)
    assert time.monotonic() - started < 2
    # Numbers beyond any range are kept as text, then refused by the demo's ranges.
    for n in (b"1e999999", b"-0", b"123456789012345678901234567890", b"1.0e-400"):
        status, hdrs, data = submit_raw(stack, b'{"kind":"demo","params":{"steps":' + n + b"}}")
        assert_json_error(status, hdrs, data, 422)
    # Duplicate keys: the last one wins, and it is the one that was validated.
    status, _, job = stack.json("POST", "/jobs", b'{"kind":"nope","kind":"cmd","params":{"month":"$(id)","month":"2026-01"}}',
                                {"Content-Type": "application/json"})
    assert status == 201 and job["kind"] == "cmd" and job["params"] == {"month": "2026-01"}, job
    status, hdrs, data = submit_raw(stack, b'{"kind":"cmd","params":{"month":"2026-01","month":"$(id)"}}')
    assert_json_error(status, hdrs, data, 422)
    # NUL inside a param value (escaped, valid JSON) never reaches a command.
    status, hdrs, data = submit_raw(stack, b'{"kind":"cmd","params":{"month":"2026-01\\u0000"}}')
    assert_json_error(status, hdrs, data, 422)
    assert_healthy(stack)


# ---------------------------------------------------------------------------
# headers and query strings at and over the limits


def test_headers_and_query_strings_at_and_over_nginx_limits_never_give_a_5xx(make_stack, tmp_path):
    """nginx: large_client_header_buffers 4 8k (the default). A request line or one header
    line over 8k is refused by nginx (414 / 400); just under it reaches the app, which
    answers normally (a long bogus token: 401; a long query value: 400 or 200)."""
    tokens = tmp_path / "tokens"
    token = secrets.token_hex(32)
    tokens.write_text(token + "\n")
    stack = make_stack(runner=False, config_overrides={"allow_anonymous_submit": False, "submit_tokens_file": str(tokens)})
    auth = {"Authorization": f"Bearer {token}"}
    # Query strings.
    for n, expect in ((7000, (200,)), (9000, (414,)), (100_000, (414,))):
        status, _, body = stack.request("GET", "/jobs?kind=" + "k" * n, headers=auth)
        assert status in expect, (n, status, body[:200])
    status, hdrs, body = stack.request("GET", "/jobs?limit=" + "9" * 7000, headers=auth)
    assert_json_error(status, hdrs, body, 400)
    status, hdrs, body = stack.request("GET", "/jobs?" + "&".join(["state=queued"] * 500), headers=auth)
    assert status == 200, body[:200]
    status, hdrs, body = stack.request("GET", "/jobs?%ZZ=1&kind=%", headers=auth)
    assert_json_error(status, hdrs, body, 400)
    status, hdrs, body = stack.request("GET", "/jobs?kind=%FF%FE", headers=auth)
    assert_json_error(status, hdrs, body, 400)
    # One header just under and over the 8k buffer.
    status, hdrs, body = stack.request("GET", "/jobs", headers={"Authorization": "Bearer " + "t" * 7900})
    assert_json_error(status, hdrs, body, 401)
    status, _, body = stack.request("GET", "/jobs", headers={"X-Filler": "f" * 9000, **auth})
    assert status == 400, body[:200]  # nginx: Request Header Or Cookie Too Large
    # Many headers: 30 of 1k fit in 4 x 8k; 60 do not.
    many = {f"X-H{i}": "h" * 1000 for i in range(30)}
    assert stack.request("GET", "/jobs", headers={**many, **auth})[0] == 200
    many = {f"X-H{i}": "h" * 1000 for i in range(60)}
    assert stack.request("GET", "/jobs", headers={**many, **auth})[0] == 400
    # A Last-Event-ID of 7k garbage is ignored (the current state comes), not an error.
    job = stack.submit("demo", {"steps": "1"}, headers=auth)
    answer = raw(stack, (f"GET /jobs/{job['id']}/events HTTP/1.0\r\nLast-Event-ID: {'9' * 7000}\r\n\r\n").encode(), timeout=1.5)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"event: status" in answer
    assert_healthy(stack)


# ---------------------------------------------------------------------------
# shell injection through params


INJECTIONS = [
    "$(touch {pwn})", "`touch {pwn}`", "; touch {pwn}", "| touch {pwn}", "&& touch {pwn}", "\ntouch {pwn}\n",
    "'; touch {pwn}; '", '"; touch {pwn}; "', "$(touch${{IFS}}{pwn})", "${{PATH}}", "%0atouch {pwn}",
    "-rf /", "--help", "' OR 1=1 --", "\x1b[2J", "\u202etxt.exe", "x" * 4000,
]


def test_params_crafted_for_shell_injection_reach_the_program_verbatim_and_run_nothing(make_stack, tmp_path):
    """A command kind whose regex allows anything: every value reaches the program as
    HERALD_PARAM_V and in the stdin JSON byte for byte, and no shell ever runs it."""
    out_dir = tmp_path / "got"
    out_dir.mkdir()
    pwn = f"/tmp/herald-pwned-{uuid.uuid4().hex}"
    script = tmp_path / "capture.sh"
    # The program itself only copies what it got; "$VAR" in sh is never re-evaluated.
    script.write_text(f"""#!/bin/sh
printf '%s' "$HERALD_PARAM_V" > '{out_dir}'/"$HERALD_JOB_ID.env"
cat > '{out_dir}'/"$HERALD_JOB_ID.stdin"
printf '%s\\n' "$@" > '{out_dir}'/"$HERALD_JOB_ID.argv"
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    stack = make_stack(config_overrides={"workers": 8, "kinds": {"echo": {"command": [str(script), "--fixed"],
                                                                          "params": {"v": r"^[\s\S]*$"}}}})
    jobs = {}
    for template in INJECTIONS:
        value = template.format(pwn=pwn)
        status, _, job = stack.json("POST", "/jobs", {"kind": "echo", "params": {"v": value}})
        assert status == 201, job
        assert job["params"] == {"v": value}
        jobs[job["id"]] = value
    for jid, value in jobs.items():
        final = stack.wait_job(jid)
        assert final["state"] == "succeeded", final
        assert (out_dir / f"{jid}.env").read_bytes() == value.encode(), value
        assert json.loads((out_dir / f"{jid}.stdin").read_bytes()) == {"v": value}
        assert (out_dir / f"{jid}.argv").read_text() == "--fixed\n", "params must never become arguments"
    assert not os.path.exists(pwn), "a param value was run by a shell"
    assert not [p for p in os.listdir("/tmp") if p.startswith("herald-pwned")]


# ---------------------------------------------------------------------------
# tokens in the wrong place


def test_a_token_anywhere_but_authorization_bearer_is_refused_401(make_stack, tmp_path):
    token = secrets.token_hex(32)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# submitters\n{token}\n")
    os.chmod(tokens, 0o640)
    stack = make_stack(runner=False, config_overrides={"allow_anonymous_submit": False, "submit_tokens_file": str(tokens)})
    body = {"kind": "demo", "params": {"steps": "1"}}
    wrong = [
        ({"X-Auth-Token": token}, ""), ({"Token": token}, ""), ({"X-Access-Token": token}, ""),
        ({"Authorization": f"Token {token}"}, ""), ({"Authorization": token}, ""),
        ({"Authorization": "Basic " + __import__("base64").b64encode(f"x:{token}".encode()).decode()}, ""),
        ({"Authorization": f"Bearer {token[:-1]}"}, ""), ({"Authorization": f"Bearer {token}x"}, ""),
        ({"Authorization": f"Bearer {token} {token}"}, ""), ({"Authorization": f"Bearer {token.upper()}"}, ""),
        ({"Authorization": "Bearer "}, ""), ({"Authorization": "Bearer # submitters"}, ""),
        ({"Authorization": "Bearer #"}, ""), ({"Cookie": f"access_token={token}"}, ""),
        ({}, f"?token={token}"), ({}, f"?ACCESS_TOKEN={token}"), ({}, f"?access_token={token[:32]}"),
        ({}, "?access_token="), ({}, f"?access_token=%20{token}%00"), ({}, f"?access_token={token}"),
        # The query access_token is refused whatever else the request carries (SPEC §3, amended).
        ({"Authorization": "Bearer wrong"}, f"?access_token={token}"),
        ({"Authorization": f"Bearer {token}"}, f"?access_token={token}"),
    ]
    for headers, query in wrong:
        for method, path, payload in (("POST", "/jobs", body), ("GET", "/jobs", None),
                                      ("POST", f"/jobs/{UNKNOWN_ID}/cancel", None), ("GET", "/jobs/events", None)):
            status, hdrs, data = stack.request(method, path + query, payload, headers)
            assert_json_error(status, hdrs, data, 401)
            assert hdrs.get("www-authenticate", "").startswith("Bearer"), hdrs
    # The token in the body is not a token.
    status, hdrs, data = stack.request("POST", "/jobs", {**body, "access_token": token, "token": token})
    assert_json_error(status, hdrs, data, 401)
    assert stored_jobs(stack) == 0
    # The one right place works; the scheme word is case-insensitive (RFC 9110 §11.1).
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert stack.request("POST", "/jobs", body, {"Authorization": f"{scheme} {token}"})[0] == 201
    assert_healthy(stack)


# ---------------------------------------------------------------------------
# slow clients


def test_slowloris_headers_byte_by_byte_do_not_hold_up_herald_fcgi(stack):
    """50 connections dribble a request's headers one byte every 50 ms. nginx holds
    them (client_header_timeout); herald-fcgi sees none of them, and other requests
    are answered at once."""
    job = stack.submit("demo", {"steps": "1", "interval_ms": "0"})
    stop = threading.Event()
    request = f"GET /jobs/{job['id']} HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".encode() + b"a" * 10000

    def dribble():
        try:
            with socket.create_connection((stack.host, stack.port), timeout=5) as s:
                for b in request:
                    if stop.is_set():
                        return
                    s.send(bytes([b]))
                    time.sleep(0.05)
        except OSError:
            pass

    threads = [threading.Thread(target=dribble) for _ in range(50)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        took = []
        for _ in range(40):
            started = time.monotonic()
            assert stack.request("GET", f"/jobs/{job['id']}", timeout=5)[0] == 200
            took.append(time.monotonic() - started)
        # Held-up accepting threads would make requests wait for seconds (or time out at 5 s);
        # one scheduler stall among 40 requests and 50 dribbling threads on 2 cores is not that.
        took.sort()
        assert took[len(took) // 2] < 0.1 and took[-1] < 2.0, \
            f"requests took {took} s while slowloris clients were connected"
        health = stack.json("GET", "/healthz")[2]
        assert health["streams"] == 0
    finally:
        stop.set()
        for t in threads:
            t.join(5)
    assert_healthy(stack)


def test_twenty_log_followers_that_never_read_do_not_delay_another_jobs_stream(make_stack, tmp_path):
    """20 clients follow a loud job's log (?log=1, 60 x 200 kB) and never read; a client
    of another job must still get every one of its states (300 ms apart), none of them late.

    (Before the hub served log followers a chunk per round, such a client waited seconds.)"""
    script = tmp_path / "loud.sh"
    script.write_text("#!/bin/sh\ni=0\nwhile [ $i -lt 60 ]; do i=$((i+1)); head -c 200000 /dev/zero | tr '\\0' x; echo; "
                      "echo $((i * 100 / 60)) >&3; sleep 0.1; done\n")
    script.chmod(0o755)
    stack = make_stack(config_overrides={"heartbeat": "1s", "kinds": {"loud": {"command": [str(script)]}}})
    loud = stack.submit("loud")
    sockets = []
    for _ in range(20):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect((stack.host, stack.port))
        s.sendall(f"GET /jobs/{loud['id']}/events?log=1 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sockets.append(s)
    # 300 ms a step: with the demo's fixed timetable a late step shortens the next state,
    # and SPEC §4 promises only the states that last 100 ms or more.
    quiet = stack.submit("demo", {"steps": "12", "interval_ms": "300"})
    try:
        reader = socket.create_connection((stack.host, stack.port), timeout=15)
        reader.sendall(f"GET /jobs/{quiet['id']}/events HTTP/1.0\r\n\r\n".encode())
        buffer, lags, progress, final = b"", [], set(), None
        while final is None:
            chunk = reader.recv(65536)
            if not chunk:
                break
            now = time.time()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b'data: {"id"'):
                    state = json.loads(line[6:])
                    # How long after the runner wrote the state did this client get it?
                    lags.append(now - _epoch(state["updated_at"]))
                    progress.add(round(state["progress"], 6))
                elif line.startswith(b'data: {"state"'):
                    final = json.loads(line[6:])["state"]
        reader.close()
        assert final == "succeeded", final
        # Every step's state lasts about 300 ms: SPEC §4 says the client sees every one of them.
        missing = {round(100 * k / 12, 6) for k in range(1, 13)} - progress
        assert not missing and max(lags) < 2.0, \
            f"steps missing at progress {sorted(missing)}; the latest state {max(lags):.2f}s late"
    finally:
        for s in sockets:
            s.close()
    assert_healthy(stack)


# ---------------------------------------------------------------------------
# the web side's write access: forged submissions in new/


@pytest.mark.directory_only("files forged into new/, the directory's submission channel (on PostgreSQL the web role "
                            "can only call herald.submit(), which takes fresh jobs only: Tests/HeraldPostgresTests/RoleTests)")
def test_forged_submissions_in_new_cannot_rewrite_a_job_or_skip_param_checks(make_stack, tmp_path):
    """herald-fcgi (user herald-web) may write new/, so a compromised web process could
    drop any JSON there. The runner ingests only fresh queued jobs under an unused ID whose
    params pass their kind's checks; it removes anything else and logs why (a fresh job whose
    params are refused is kept as failed: it may have been accepted under an older config). So
    the web side cannot rewrite a job's state (not even by reusing its ID), invent a finished
    job, or run a command with params its regex refuses."""
    ran = tmp_path / "ran"
    script = tmp_path / "mark.sh"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$HERALD_PARAM_MONTH\" >> '{ran}'\n")
    script.chmod(0o755)
    stack = make_stack(config_overrides={"kinds": {"report": {"command": [str(script)],
                                                              "params": {"month": "^[0-9]{4}-(0[1-9]|1[0-2])$"}}}})
    done = stack.wait_job(stack.submit("report", {"month": "2026-01"})["id"])
    assert done["state"] == "succeeded" and ran.read_text() == "2026-01\n"
    new_dir = os.path.join(stack.state_dir, "new")

    def forge(job):  # as herald-fcgi submits: through tmp/ (a runner removes anything else in new/)
        path = os.path.join(new_dir, job["id"] + ".json")
        temp = os.path.join(stack.state_dir, "tmp", job["id"] + ".tmp")
        with open(temp, "w") as f:
            json.dump({k: v for k, v in job.items() if k != "links"}, f)
        os.rename(temp, path)

    fresh = dict(done, state="queued", progress=0.0, message=None, started_at=None, finished_at=None,
                 exit_code=None, error=None, result=None, seq=1, attempt=1)
    # 1. An existing job's ID, to overwrite it with a forged result (and run it again).
    forge(dict(done, result={"forged": True}, message="forged", seq=done["seq"] + 1))
    forge_again = dict(fresh)  # the same ID as a fresh submission: would run it twice
    # 2. A new ID, already "succeeded".
    fake_id = "01m89" + "".join(secrets.choice(ID_ALPHABET) for _ in range(21))
    forge(dict(fresh, id=fake_id, state="succeeded", progress=100.0, seq=9, result={"forged": True}))
    # 3. A new ID, fresh, with params the kind's regex refuses.
    bad_id = "01m89" + "".join(secrets.choice(ID_ALPHABET) for _ in range(21))
    forge(dict(fresh, id=bad_id, params={"month": "../../etc/passwd"}))
    wait_for_empty = time.monotonic() + 10
    while os.listdir(new_dir) and time.monotonic() < wait_for_empty:
        time.sleep(0.05)
    forge(forge_again)
    while os.listdir(new_dir) and time.monotonic() < wait_for_empty + 5:
        time.sleep(0.05)
    assert os.listdir(new_dir) == []
    time.sleep(1.5)  # a runner pass or two
    assert stack.json("GET", f"/jobs/{done['id']}")[2] == done, "a forged submission rewrote a job"
    assert stack.json("GET", f"/jobs/{fake_id}")[0] == 404
    # A fresh job whose params its kind refuses may have been answered 201 under an older config:
    # it is kept, failed with the reason, and never run.
    status, _, refused = stack.json("GET", f"/jobs/{bad_id}")
    assert status == 200 and refused["state"] == "failed", refused
    assert refused["error"]["code"] == "spawn_failed" and "param 'month'" in refused["error"]["message"], refused
    assert ran.read_text() == "2026-01\n", "a forged submission ran"
    log = stack.read_log("herald-runner")
    assert log.count("refused the submission") == 4, log
    assert "exists already" in log and "not a fresh queued job" in log and "params are refused" in log
    # A genuine submission still goes through.
    assert stack.wait_job(stack.submit("report", {"month": "2026-02"})["id"])["state"] == "succeeded"
