"""The Python client (clients/python) against the real stack through nginx: wait() across a
herald-fcgi restart, its read tokens accepted by herald-fcgi, owners and idempotent submit."""

import os
import sys
import threading
import time

import pytest
from support_herald import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "clients", "python", "src"))

from herald import Herald, HeraldError, read_token  # noqa: E402

SECRET = b"a-read-token-secret-of-at-least-32-bytes"
SUBMIT_TOKEN = "submit-token-for-the-client-tests"


def token_stack(make_stack, tmp_path, **overrides):
    """A stack that asks for a submitter token and a read token for every read."""
    (tmp_path / "secret").write_bytes(SECRET + b"\n")
    (tmp_path / "tokens").write_text(SUBMIT_TOKEN + "\n")
    config = {"allow_anonymous_submit": False, "submit_tokens_file": str(tmp_path / "tokens"),
              "read_token_secret_file": str(tmp_path / "secret"), "require_read_token": True}
    config.update(overrides)
    return make_stack(config_overrides=config)


GATED_PROGRAM = """
import os, sys, time
sys.path.insert(0, {src!r})
import herald
gates, phases = sys.argv[1], int(sys.argv[2])
for i in range(1, phases + 1):
    herald.progress(100 * i // (phases + 1), f"phase {{i}}")
    while not os.path.exists(os.path.join(gates, f"go{{i}}")):
        time.sleep(0.02)
"""


@pytest.mark.parametrize("fcgi_mode", ["socket", "systemd"])
def test_wait_follows_a_job_through_a_fcgi_restart_without_a_repeated_or_missing_state(make_stack, tmp_path, fcgi_mode):
    """A job program (Python, herald.progress) moves to its next phase only when the test opens a
    gate, so every state is known: herald-fcgi stops mid-job, the job moves on while it is down,
    and wait() must still deliver every phase once, in order, then the final state.
    socket: nginx answers 502 while herald-fcgi is down; systemd: connections wait in the backlog."""
    phases = 6
    gates = tmp_path / "gates"
    gates.mkdir()
    program = tmp_path / "gated.py"
    program.write_text(GATED_PROGRAM.format(src=os.path.join(REPO, "clients", "python", "src")))
    stack = make_stack(fcgi_mode=fcgi_mode, config_overrides={"kinds": {"gated": {
        "command": [sys.executable, str(program), str(gates), str(phases)], "timeout": "2m"}}})
    h = Herald(stack.url)
    job = h.submit("gated", {})
    seen, outcome = [], {}

    def follow():
        try:
            outcome["final"] = h.wait(job["id"], on_status=seen.append, timeout=90)
        except BaseException as e:  # reported below
            outcome["error"] = e

    def reached(phase):
        wait_until(lambda: any(j.get("message") == f"phase {phase}" for j in seen) or outcome, 30,
                   what=f"wait() to deliver phase {phase}")

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        reached(1)
        (gates / "go1").touch()
        reached(2)
        stack.stop_fcgi()
        # The job moves on while nobody can stream it: phase 3 is written during the outage.
        (gates / "go2").touch()
        status_file = os.path.join(stack.state_dir, "jobs", job["id"] + ".json")
        wait_until(lambda: "phase 3" in open(status_file).read(), 20, what="phase 3 written during the outage")
        if fcgi_mode == "socket":
            # Down until wait() has been refused at least once (nginx: 502), however long its retry.
            wait_until(lambda: [r for r in stack.requests_seen("GET", f"/jobs/{job['id']}/events") if r[2] == 502],
                       30, what="a reconnect refused while herald-fcgi is down")
        else:
            time.sleep(1.5)  # connections wait in the socket's backlog meanwhile
        stack.start_fcgi()
        stack.wait_healthy()
        for phase in range(3, phases + 1):
            reached(phase)
            (gates / f"go{phase}").touch()
    finally:
        for phase in range(1, phases + 1):
            (gates / f"go{phase}").touch()
        thread.join(100)
    assert "error" not in outcome, outcome
    final = outcome["final"]
    assert final["state"] == "succeeded" and final["exit_code"] == 0, final
    assert seen[-1] == final
    seqs = [j["seq"] for j in seen]
    assert seqs == sorted(set(seqs)), f"a state repeated or went back: {seqs}"
    phases_seen = [j["message"] for j in seen if j["state"] == "running" and j.get("message")]
    assert phases_seen == [f"phase {i}" for i in range(1, phases + 1)], phases_seen
    assert stack.wait_job(job["id"], timeout=5)["seq"] == final["seq"]


def test_wait_after_the_end_gets_the_final_job(stack):
    h = Herald(stack.url)
    job = h.submit("demo", {"steps": 2, "interval_ms": 0})
    stack.wait_job(job["id"])
    seen = []
    final = h.wait(job["id"], on_status=seen.append, timeout=20)
    assert final["state"] == "succeeded" and seen == [final]


def test_wait_and_job_raise_herald_error_for_an_unknown_job(stack):
    h = Herald(stack.url)
    for call in (h.job, h.wait):
        with pytest.raises(HeraldError) as e:
            call("0" * 26)
        assert e.value.status == 404 and e.value.code and e.value.message


def test_submit_errors_carry_the_api_code(stack):
    with pytest.raises(HeraldError) as e:
        Herald(stack.url).submit("no-such-kind", {})
    assert (e.value.status, e.value.code) == (422, "unknown_kind")
    assert "no-such-kind" in e.value.message


def test_read_tokens_minted_in_python_are_accepted_by_herald(make_stack, tmp_path):
    stack = token_stack(make_stack, tmp_path)
    submitter = Herald(stack.url, token=SUBMIT_TOKEN)
    mine = submitter.submit("demo", {"steps": 1, "interval_ms": 0}, owner="user-1")
    theirs = submitter.submit("demo", {"steps": 1, "interval_ms": 0}, owner="user-2")

    with pytest.raises(HeraldError) as e:
        Herald(stack.url).job(mine["id"])
    assert e.value.status == 401, "require_read_token: a bare id must not be enough"

    for token in (read_token(SECRET, owner="user-1", ttl=60), read_token(SECRET, jobs=[mine["id"]], ttl=60),
                  read_token(SECRET, all=True, ttl=60)):
        reader = Herald(stack.url, token=token)
        assert reader.job(mine["id"])["owner"] == "user-1"
        assert reader.wait(mine["id"], timeout=20)["state"] == "succeeded"

    with pytest.raises(HeraldError) as e:
        Herald(stack.url, token=read_token(SECRET, owner="user-1", ttl=60)).job(theirs["id"])
    assert e.value.status == 401

    expired = read_token(SECRET, owner="user-1", ttl=1, now=time.time() - 3600)
    with pytest.raises(HeraldError) as e:
        Herald(stack.url, token=expired).job(mine["id"])
    assert e.value.status == 401 and "expired" in e.value.message

    forged = read_token(b"another-secret-of-at-least-32-bytes!!", owner="user-1", ttl=60)
    with pytest.raises(HeraldError) as e:
        Herald(stack.url, token=forged).job(mine["id"])
    assert e.value.status == 401 and "signature" in e.value.message


def test_owner_filter_and_idempotent_submit_through_the_client(make_stack, tmp_path):
    stack = token_stack(make_stack, tmp_path)
    h = Herald(stack.url, token=SUBMIT_TOKEN)
    first = h.submit("demo", {"steps": 1, "interval_ms": 0}, owner="user-7", idempotency_key="form-1")
    again = h.submit("demo", {"steps": 1, "interval_ms": 0}, owner="user-7", idempotency_key="form-1")
    assert again["id"] == first["id"] and first["owner"] == "user-7"
    with pytest.raises(HeraldError) as e:
        h.submit("demo", {"steps": 2, "interval_ms": 0}, owner="user-7", idempotency_key="form-1")
    assert (e.value.status, e.value.code) == (422, "idempotency_key_reused")
    other = h.submit("demo", {"steps": 1, "interval_ms": 0}, owner="user-8")
    assert [j["id"] for j in h.jobs(owner="user-7")] == [first["id"]]
    assert {j["id"] for j in h.iter_jobs(page_size=1)} == {first["id"], other["id"]}
    assert h.wait(first["id"], timeout=20)["state"] == "succeeded"
