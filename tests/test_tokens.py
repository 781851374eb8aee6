"""Owners, read tokens, idempotent submit (SPEC §9) and tokens kept out of URLs and logs
(SPEC §3 amended), through real nginx + herald-fcgi + herald-runner."""

import os
import secrets

from support_herald import assert_error, wait_until

SUBMIT_TOKEN = "submitter-" + "s" * 40


def submitter_overrides(tmp_path, **extra):
    tokens = tmp_path / "tokens"
    tokens.write_text(SUBMIT_TOKEN + "\n")
    return {"submit_tokens_file": str(tokens), "allow_anonymous_submit": False, **extra}


AUTH = {"Authorization": f"Bearer {SUBMIT_TOKEN}"}
BODY = {"kind": "demo", "params": {"steps": "1", "interval_ms": "0"}}


# ---------------------------------------------------------------------------
# the submitter token in the query string (issue 9 item 6)


def test_a_query_access_token_is_401_whatever_else_the_request_carries_naming_the_alternatives(make_stack, tmp_path):
    stack = make_stack(runner=False, config_overrides=submitter_overrides(tmp_path))
    job = stack.submit(params=BODY["params"], headers=AUTH)
    for method, path, body, headers in (
        ("POST", "/jobs", BODY, AUTH), ("GET", "/jobs", None, AUTH), ("GET", f"/jobs/{job['id']}", None, {}),
        ("GET", f"/jobs/{job['id']}/events", None, {}), ("GET", "/jobs/events", None, AUTH),
        ("POST", f"/jobs/{job['id']}/cancel", None, AUTH),
    ):
        for query in (f"access_token={SUBMIT_TOKEN}", "access_token=", f"x=1&access_token={SUBMIT_TOKEN}"):
            status, hdrs, data = stack.request(method, f"{path}?{query}", body, headers)
            err = assert_error(status, hdrs, data, 401, "unauthorized", leaks=(SUBMIT_TOKEN,))
            assert "Authorization" in err["message"] and "read token" in err["message"], err
            assert hdrs.get("www-authenticate", "").startswith("Bearer"), hdrs
    assert len(os.listdir(os.path.join(stack.state_dir, "new"))) == 1, "a refused submission left a job"


def test_no_token_from_the_query_string_reaches_the_access_log(make_stack, tmp_path):
    stack = make_stack(runner=False, config_overrides=submitter_overrides(tmp_path))
    job = stack.submit(params=BODY["params"], headers=AUTH)
    secret = secrets.token_hex(16)
    paths = [f"/jobs?access_token={secret}a", f"/jobs/{job['id']}?token={secret}b",
             f"/jobs/events?ids={job['id']}&token={secret}c&log=1", f"/jobs/{job['id']}/log?x=1&access_token={secret}d",
             f"/jobs?TOKEN={secret}e", f"/jobs?%74oken={secret}f", f"/jobs?token={secret}g&token={secret}h",
             f"/jobs/{job['id']}/events?last_event_id=1&token={secret}i"]
    for path in paths:
        try:
            stack.request("GET", path, timeout=2)
        except OSError:
            pass  # a stream that opened: nginx logs it when the client leaves
    wait_until(lambda: len(stack.requests_seen("GET", "/jobs")) >= len(paths), 5, what="nginx logged every request")
    log = stack.read_log("nginx-access")
    assert secret not in log, log
    assert f"/jobs/events?ids={job['id']}&[hidden]" in log, log


# ---------------------------------------------------------------------------
# owners and read tokens


SECRET = "read-token-secret-" + "r" * 40


def mint(claims: dict, secret: str = SECRET, header: dict | None = None) -> str:
    """An HS256 JWT with Python's stdlib (what an app's server side does)."""
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = b64(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def token_overrides(tmp_path, **extra):
    secret = tmp_path / "read.key"
    secret.write_text(SECRET + "\n")  # one trailing newline is not part of the secret
    return submitter_overrides(tmp_path, read_token_secret_file=str(secret), **extra)


def runner_cli(stack, *args):
    import subprocess
    return subprocess.run([stack.runner_bin, *args, "--config", stack.config_path],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)


def test_owner_on_submit_in_the_job_as_a_filter_and_from_the_cli(make_stack, tmp_path):
    stack = make_stack(runner=False, config_overrides=submitter_overrides(tmp_path))
    status, _, mine = stack.json("POST", "/jobs", {**BODY, "owner": "user-42"}, AUTH)
    assert status == 201 and mine["owner"] == "user-42", mine
    theirs = stack.json("POST", "/jobs", {**BODY, "owner": "user-7"}, AUTH)[2]
    nobody = stack.json("POST", "/jobs", BODY, AUTH)[2]
    assert nobody["owner"] is None and "owner" in nobody
    cli = runner_cli(stack, "submit", "demo", "-p", "steps=1", "--owner", "user-42", "--json")
    assert cli.returncode == 0, cli.stderr
    import json
    from_cli = json.loads(cli.stdout)
    assert from_cli["owner"] == "user-42"
    assert stack.json("GET", f"/jobs/{mine['id']}")[2]["owner"] == "user-42"
    status, _, page = stack.json("GET", "/jobs?owner=user-42", headers=AUTH)
    assert status == 200 and [j["id"] for j in page["jobs"]] == [from_cli["id"], mine["id"]], page
    assert theirs["id"] not in str(page)
    status, hdrs, data = stack.request("POST", "/jobs", {**BODY, "owner": "not an owner"}, AUTH)
    assert_error(status, hdrs, data, 422, "invalid_owner")
    bad = runner_cli(stack, "submit", "demo", "--owner", "a/b")
    assert bad.returncode == 64 and "--owner" in bad.stderr


def test_require_read_token_refuses_a_bare_id_and_lets_a_covering_token_read(make_stack, tmp_path):
    import time
    stack = make_stack(config_overrides=token_overrides(tmp_path, require_read_token=True))
    job = stack.json("POST", "/jobs", {**BODY, "owner": "user-42"}, AUTH)[2]
    exp = int(time.time()) + 300
    mine = mint({"sub": "user-42", "exp": exp})
    other = mint({"sub": "user-7", "exp": exp})
    for path in (f"/jobs/{job['id']}", f"/jobs/{job['id']}/log", f"/jobs/{job['id']}/events", f"/jobs/events?ids={job['id']}"):
        status, hdrs, data = stack.request("GET", path, timeout=5)
        assert_error(status, hdrs, data, 401)
        status, hdrs, data = stack.request("GET", path, headers={"Cookie": f"herald_token={other}"}, timeout=5)
        assert_error(status, hdrs, data, 401)
    assert stack.json("GET", f"/jobs/{job['id']}", headers={"Cookie": f"herald_token={mine}"})[0] == 200
    assert stack.json("GET", f"/jobs/{job['id']}", headers={"Authorization": f"Bearer {mine}"})[0] == 200
    assert stack.json("GET", f"/jobs/{job['id']}?token={mine}")[0] == 200
    assert stack.json("GET", f"/jobs/{job['id']}", headers=AUTH)[0] == 200
    listed = mint({"jobs": [job["id"]], "exp": exp})
    assert stack.json("GET", f"/jobs/{job['id']}/log?token={listed}")[0] == 200


def test_every_bad_read_token_is_401_naming_why_never_5xx(make_stack, tmp_path):
    import time
    stack = make_stack(runner=False, config_overrides=token_overrides(tmp_path))
    now = int(time.time())
    cases = [
        (mint({"all": True, "exp": now - 60}), "expired"),
        (mint({"all": True, "exp": now + 60, "nbf": now + 60}), "not yet valid"),
        (mint({"all": True, "exp": now + 60}, secret="another-secret-" + "x" * 40), "signature"),
        (mint({"all": True, "exp": now + 60}, header={"alg": "none"}).rsplit(".", 1)[0] + ".", "algorithm"),
        (mint({"all": True, "exp": now + 60}, header={"alg": "RS256"}), "algorithm"),
        (mint({"all": True, "exp": now + 60})[:-5], "signature"),
        ("x" * 5000, "malformed"),
        (mint({"all": "yes", "exp": now + 60}), "malformed"),
        ("a.b", "malformed"),
    ]
    for token, word in cases:
        for headers, query in (({"Authorization": f"Bearer {token}"}, ""), ({"Cookie": f"herald_token={token}"}, ""),
                               ({}, f"?token={token}")):
            status, hdrs, data = stack.request("GET", "/jobs/events" + query, headers=headers, timeout=5)
            err = assert_error(status, hdrs, data, 401)
            assert word in err["message"], (word, err)


def test_herald_runner_token_mints_what_herald_fcgi_accepts(make_stack, tmp_path):
    stack = make_stack(runner=False, config_overrides=token_overrides(tmp_path, require_read_token=True))
    job = stack.json("POST", "/jobs", {**BODY, "owner": "user-42"}, AUTH)[2]
    for args in (["--owner", "user-42"], ["--job", job["id"]], ["--all"]):
        r = runner_cli(stack, "token", *args, "--ttl", "10m")
        assert r.returncode == 0, r.stderr
        token = r.stdout.strip()
        assert token.count(".") == 2
        assert stack.json("GET", f"/jobs/{job['id']}", headers={"Cookie": f"herald_token={token}"})[0] == 200, args
    r = runner_cli(stack, "token", "--owner", "user-7")
    assert stack.request("GET", f"/jobs/{job['id']}", headers={"Authorization": f"Bearer {r.stdout.strip()}"})[0] == 401
    for bad in (["--owner", "a", "--all"], [], ["--all", "--ttl", "soon"], ["--job", "nope"]):
        r = runner_cli(stack, "token", *bad)
        assert r.returncode == 64, (bad, r.stderr)


def test_a_short_or_missing_secret_file_is_refused_at_start_with_78(bin_dir, tmp_path):
    import subprocess
    short = tmp_path / "short.key"
    short.write_text("x" * 31 + "\n")
    for path in (short, tmp_path / "absent.key"):
        cfg = tmp_path / "herald.yml"
        cfg.write_text(f"state_dir: {tmp_path}/state\nallow_anonymous_submit: true\nread_token_secret_file: {path}\n"
                       "kinds:\n  demo: {{builtin: demo}}\n".replace("{{", "{").replace("}}", "}"))
        r = subprocess.run([os.path.join(bin_dir, "herald-fcgi"), "--config", str(cfg), "--socket", str(tmp_path / "s.sock")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=20)
        assert r.returncode == 78 and "read_token_secret_file" in r.stdout, r.stdout
