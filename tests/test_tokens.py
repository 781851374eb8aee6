"""Owners, read tokens, idempotent submit (SPEC §9) and tokens kept out of URLs and logs
(SPEC §3 amended), through real nginx + herald-fcgi + herald-runner."""

import os
import secrets

from support_herald import (READ_SECRET as SECRET, age_idempotency_records, assert_error, idempotency_records,
                           mint_read_token as mint, stored_jobs, wait_until)

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
    assert stored_jobs(stack) == 1, "a refused submission left a job"


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


# ---------------------------------------------------------------------------
# idempotent submit


def test_fifty_concurrent_posts_with_one_idempotency_key_create_exactly_one_job(make_stack, tmp_path):
    from concurrent.futures import ThreadPoolExecutor
    stack = make_stack(runner=False, config_overrides=submitter_overrides(tmp_path))
    headers = {**AUTH, "Idempotency-Key": "order-1234/report"}
    body = {"kind": "demo", "params": {"steps": "3"}, "owner": "user-42"}
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(lambda _: stack.json("POST", "/jobs", body, headers, timeout=30), range(50)))
    statuses = sorted(a[0] for a in answers)
    assert statuses == [200] * 49 + [201], statuses
    assert len({a[2]["id"] for a in answers}) == 1, {a[2]["id"] for a in answers}
    assert all(a[1].get("location") == f"/jobs/{answers[0][2]['id']}" for a in answers)
    assert stored_jobs(stack) == 1
    # Equal as JSON: member order and spacing do not matter.
    same = b'{ "owner": "user-42", "params": {"steps": "3"}, "kind": "demo" }'
    status, _, data = stack.request("POST", "/jobs", same, {**headers, "Content-Type": "application/json"})
    assert status == 200 and answers[0][2]["id"] in data.decode()
    # Another body with the same key: 422, nothing submitted.
    status, hdrs, data = stack.request("POST", "/jobs", {**body, "params": {"steps": "4"}}, headers)
    assert_error(status, hdrs, data, 422, "idempotency_key_reused")
    # Scoped to the submitter: another token, or none, is another scope.
    assert stored_jobs(stack) == 1
    # The key and the token are stored nowhere.
    records = idempotency_records(stack)
    assert len(records) == 1, records
    for text in records:
        assert "order-1234" not in text and SUBMIT_TOKEN not in text
    for bad in ("", "x" * 256, "caf\u00e9", "a b"):
        status, hdrs, data = stack.request("POST", "/jobs", body, {**AUTH, "Idempotency-Key": bad.encode("utf-8").decode("latin-1")})
        assert_error(status, hdrs, data, 400)


def test_idempotency_keys_are_scoped_to_the_submitter_token(make_stack, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{SUBMIT_TOKEN}\nsecond-{SUBMIT_TOKEN}\n")
    stack = make_stack(runner=False, config_overrides={"submit_tokens_file": str(tokens), "allow_anonymous_submit": False})
    one = stack.json("POST", "/jobs", BODY, {**AUTH, "Idempotency-Key": "k"})
    two = stack.json("POST", "/jobs", BODY, {"Authorization": f"Bearer second-{SUBMIT_TOKEN}", "Idempotency-Key": "k"})
    assert one[0] == two[0] == 201 and one[2]["id"] != two[2]["id"]


def test_herald_runner_submit_idempotency_key_across_processes_and_gc(make_stack, tmp_path):
    import subprocess
    stack = make_stack(runner=False, config_overrides=submitter_overrides(tmp_path))
    argv = [stack.runner_bin, "submit", "demo", "-p", "steps=2", "--idempotency-key", "nightly-2026-12-02", "--config", stack.config_path]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(12)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert len({o[0].strip() for o in outs}) == 1, outs
    assert stored_jobs(stack) == 1
    other = subprocess.run(argv[:4] + ["steps=3"] + argv[5:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert other.returncode == 65 and "idempotency-key" in other.stderr
    # gc forgets keys older than 24 h.
    assert len(idempotency_records(stack)) == 1
    age_idempotency_records(stack, 86400 + 60)
    gc = runner_cli(stack, "gc")
    assert gc.returncode == 0 and "idempotency" in gc.stdout, gc
    assert idempotency_records(stack) == []


# ---------------------------------------------------------------------------
# the owner stream


def test_the_owner_stream_gets_every_change_of_its_owners_jobs_and_none_of_anothers(make_stack, tmp_path):
    import json
    import time
    from support_herald import EventStream
    stack = make_stack(config_overrides=token_overrides(tmp_path, require_read_token=True, workers=4))
    slow = {"steps": "4", "interval_ms": "150"}
    before = stack.json("POST", "/jobs", {"kind": "demo", "params": {"steps": "60", "interval_ms": "100"}, "owner": "alice"}, AUTH)[2]
    exp = int(time.time()) + 300
    with EventStream(stack, "/jobs/events", headers={"Cookie": f"herald_token={mint({'sub': 'alice', 'exp': exp})}"}) as s:
        s.wait_headers(5)
        assert s.status == 200, s.status
        first = json.loads(s.next_event(5)["data"])
        assert first["id"] == before["id"], "the owner stream starts with the owner's jobs not yet ended"
        theirs = stack.json("POST", "/jobs", {"kind": "demo", "params": slow, "owner": "bob"}, AUTH)[2]
        later = stack.json("POST", "/jobs", {"kind": "demo", "params": slow, "owner": "alice"}, AUTH)[2]
        unowned = stack.json("POST", "/jobs", {"kind": "demo", "params": slow}, AUTH)[2]
        stack.request("POST", f"/jobs/{before['id']}/cancel", headers=AUTH)
        seen = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(seen.get(j, {}).get("state") in ("succeeded", "canceled")
                                                        for j in (before["id"], later["id"])):
            block = s.next_event(max(0.1, deadline - time.monotonic()))
            job = json.loads(block["data"])
            assert job["owner"] == "alice", f"another owner's job on alice's stream: {job}"
            assert job["seq"] > seen.get(job["id"], {}).get("seq", 0), "a state repeated or went back"
            seen[job["id"]] = job
        assert seen[later["id"]]["state"] == "succeeded" and seen[later["id"]]["progress"] == 100.0, seen
        assert seen[before["id"]]["state"] == "canceled", seen
        assert theirs["id"] not in seen and unowned["id"] not in seen
    # An all token is the dashboard: every owner's jobs; a jobs-only token is refused there.
    with EventStream(stack, f"/jobs/events?token={mint({'all': True, 'exp': exp})}") as s:
        running = stack.json("POST", "/jobs", {"kind": "demo", "params": slow, "owner": "bob"}, AUTH)[2]
        ids = set()
        while running["id"] not in ids:
            ids.add(json.loads(s.next_event(5)["data"])["id"])
    status, hdrs, data = stack.request("GET", f"/jobs/events?token={mint({'jobs': [theirs['id']], 'exp': exp})}")
    assert_error(status, hdrs, data, 403)
