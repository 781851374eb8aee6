"""Several hosts on one PostgreSQL (SPEC §8): two herald-fcgi nodes behind one nginx, two
runners, one database, and the faults that only several hosts have.

Runners that must be "another host" run in a network namespace of their own and reach
PostgreSQL over TCP through a veth pair the test made (support_cluster.NetHost); cutting that
link partitions the host while its processes live on. The job program is test_faults'
attempts script: it records every start (with its PID) and end, and an `overlap` line when
it starts while an earlier attempt of its job is still alive — so "no second copy at once" is
read from the programs themselves, not from Herald's view.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time

import pytest

from support_cluster import Cluster, can_make_namespaces
from support_herald import wait_until
from test_faults import SSEClient, attempts_of, check_clients_saw_final, job_script, raise_nofile

PG_BIN = "/usr/lib/postgresql/15/bin"

pytestmark = pytest.mark.skipif(not os.path.exists(f"{PG_BIN}/initdb"),
                                reason=f"PostgreSQL is not installed ({PG_BIN}/initdb; make test-deps installs it)")


@pytest.fixture
def make_cluster(bin_dir, tmp_path, request):
    clusters = []

    def make(**kwargs):
        c = Cluster(bin_dir, tmp_path / f"cluster{len(clusters)}", **kwargs)
        clusters.append(c)
        return c.start()

    yield make
    for c in clusters:
        failed = any(getattr(getattr(request.node, "rep_" + w, None), "failed", False) for w in ("setup", "call"))
        if failed:
            print(f"\n===== cluster in {c.workdir} =====\n{c.diagnostics()}")
        c.stop()


@pytest.fixture
def namespaces():
    why = can_make_namespaces()
    if why:
        pytest.skip(why)


def stream_clients(cluster, job_ids, per_job, seconds):
    """per_job EventSource-like clients on each job through the front nginx, run on a thread."""
    deadline = time.monotonic() + seconds
    by_job = {jid: [SSEClient(cluster.front.host, cluster.front.port, f"/jobs/{jid}/events", deadline)
                    for _ in range(per_job)] for jid in job_ids}
    clients = [c for group in by_job.values() for c in group]
    loop = asyncio.new_event_loop()

    async def run_all():
        await asyncio.gather(*(c.run() for c in clients))

    thread = threading.Thread(target=loop.run_until_complete, args=(run_all(),), daemon=True)
    thread.start()
    return by_job, clients, thread


def assert_nothing_repeated(clients):
    """Across every reconnect a client saw each state once, in order (seq strictly grows)."""
    bad = [c.states for c in clients if any(b[0] <= a[0] for a, b in zip(c.states, c.states[1:]))]
    assert not bad, f"{len(bad)} clients saw a state twice or out of order, e.g. {bad[0]}"


def task_kind(script, **extra):
    return {"command": [script], "params": {"steps": "^[0-9]+$"}, **extra}


def two_nodes_streaming(make_cluster, tmp_path, steps: int, seconds: float):
    """Two nodes and two runners; 10 jobs of `steps` tenths of a second, each followed by 20 streams
    through the front, all open and a second in."""
    raise_nofile(4096)
    script, attempts = job_script(tmp_path)
    cluster = make_cluster(kinds={"task": task_kind(script)}, nodes=2, runners=2)
    jobs = [cluster.submit("task", {"steps": str(steps)})["id"] for _ in range(10)]
    by_job, clients, thread = stream_clients(cluster, jobs, per_job=20, seconds=seconds)
    wait_until(lambda: all(c.connected.is_set() for c in clients), 20, what="200 streams open")
    time.sleep(1.0)
    return cluster, attempts, jobs, by_job, clients, thread


# ---------------------------------------------------------------------------


def test_two_nodes_serve_200_streams_and_those_of_a_killed_node_resume_on_the_other(make_cluster, tmp_path):
    cluster, attempts, jobs, by_job, clients, thread = two_nodes_streaming(make_cluster, tmp_path, steps=60, seconds=90)
    cluster.kill_node(0)
    thread.join(100)
    truth = check_clients_saw_final(cluster, clients, by_job)
    assert set(truth.values()) == {"succeeded"}, truth
    resumed = [c for c in clients if c.connects > 1]
    # Round robin put about half the streams on the killed node: they all came back through the other.
    assert len(resumed) >= 50, f"only {len(resumed)} of 200 clients reconnected: was node 0 serving any?"
    assert_nothing_repeated(clients)
    for jid in jobs:
        assert [a for a in attempts_of(attempts, jid) if a[0] == "overlap"] == []


def a_job_running_on_another_host(make_cluster, tmp_path, host: str, steps: int):
    """A cluster whose runner 0 runs in network namespace `host` (runner 1 not started yet), and a job
    of `steps` steps already making progress there: (cluster, attempts file, job id)."""
    script, attempts = job_script(tmp_path)
    cluster = make_cluster(kinds={"task": task_kind(script, retries=1)}, nodes=1, runners=2,
                           runner_hosts=[host], idle_runners=[1])
    jid = cluster.submit("task", {"steps": str(steps)})["id"]
    wait_until(lambda: (cluster.json("GET", f"/jobs/{jid}")[2] or {}).get("progress", 0) > 0, 20,
               what=f"the job runs on the runner in {host}")
    return cluster, attempts, jid


def took_over_within_30s(cluster, jid: str, since: float, what: str, timeout: float) -> None:
    """Starts runner 1 and asserts it took the job over (attempt 2) within 30 s of `since` (monotonic)."""
    cluster.start_runner(1)
    wait_until(lambda: (cluster.json("GET", f"/jobs/{jid}")[2] or {}).get("attempt") == 2, timeout,
               what="the other runner takes the job over")
    took = time.monotonic() - since
    print(f"{what}: taken over after {took:.1f} s")
    assert took <= 30, f"{what}: taken over {took:.1f} s after"


def test_kill_9_of_a_runner_on_another_host_is_recovered_within_30s_without_a_second_copy(make_cluster, tmp_path, namespaces):
    cluster, attempts, jid = a_job_running_on_another_host(make_cluster, tmp_path, "far", steps=150)
    cluster.kill_runner(0)
    took_over_within_30s(cluster, jid, time.monotonic(), "kill -9 of the far runner", timeout=35)
    job = cluster.wait_job(jid, timeout=60)
    assert job["state"] == "succeeded" and job["attempt"] == 2, job
    lines = attempts_of(attempts, jid)
    assert not [a for a in lines if a[0] == "overlap"], lines
    assert [a for a in lines if a[0] == "start"] == [["start", "1"], ["start", "2"]], lines


def test_concurrency_holds_across_both_runners_as_the_programs_see_it(make_cluster, tmp_path):
    marks = tmp_path / "running"
    marks.mkdir()
    gate = tmp_path / "gate"
    script = tmp_path / "limited.sh"
    # Each run leaves a file while it runs: the most files at once is what the programs saw. Runs
    # wait for the gate, so the test decides when slots free up (no race decides who claims what).
    script.write_text(f"""#!/bin/sh
touch '{marks}'/$HERALD_JOB_ID
ls '{marks}' | wc -l >> '{tmp_path}/seen'
while [ ! -e '{gate}' ]; do sleep 0.05; done
sleep 0.4
ls '{marks}' | wc -l >> '{tmp_path}/seen'
rm '{marks}'/$HERALD_JOB_ID
""")
    script.chmod(0o755)
    cluster = make_cluster(kinds={"limited": {"command": [str(script)], "concurrency": 2}}, nodes=1, runners=2,
                           idle_runners=[1], runner_args=["--workers", "4"])
    running = lambda: len(list(marks.iterdir()))
    first = [cluster.submit("limited")["id"] for _ in range(2)]
    wait_until(lambda: running() == 2, 30, what="runner0 runs the first two jobs")
    # Runner 1, with 4 free workers, sees the next submits (its watcher) and rescans every second,
    # while runner 0 holds both slots of the kind.
    cluster.start_runner(1)
    pid = cluster.runners[1].pid
    wait_until(lambda: f"|{pid}|" in cluster.pg.sql(f"SELECT '|' || pid || '|' FROM herald.runners", database=cluster.database),
               20, interval=0.1, what="runner1 registered in the database")
    rest = [cluster.submit("limited")["id"] for _ in range(6)]
    time.sleep(2.5)
    assert running() == 2, "a job started on runner1 while runner0 held both slots of the kind"
    # Runner 0 stops claiming (SIGTERM) and ends its two runs once the gate opens: the rest go to runner 1.
    os.kill(cluster.runners[0].pid, signal.SIGTERM)
    gate.touch()
    cluster.runners[0].wait(30)
    for jid in first + rest:
        assert cluster.wait_job(jid, timeout=60)["state"] == "succeeded"
    seen = [int(x) for x in (tmp_path / "seen").read_text().split()]
    assert max(seen) <= 2, f"up to {max(seen)} ran at once"
    ran = {name: cluster.log(name).count("started") for name in ("runner0", "runner1")}
    assert max(seen) == 2, "never two at once: the test would not notice a broken limit"
    assert ran == {"runner0": 2, "runner1": 6}, ran


def submit_once_postgresql_is_back(cluster, steps: int) -> str:
    """Submits a `task` until PostgreSQL, just started, takes it (503 meanwhile, nothing else); its id."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status, _, body = cluster.json("POST", "/jobs", {"kind": "task", "params": {"steps": str(steps)}})
        if status == 201:
            return body["id"]
        assert status == 503, (status, body)
        time.sleep(0.2)
    raise AssertionError("no submit succeeded within 20 s of PostgreSQL's return\n" + cluster.diagnostics())


def test_postgresql_restarting_under_200_streams_loses_no_final_state_and_submits_get_503_meanwhile(make_cluster, tmp_path):
    cluster, attempts, jobs, by_job, clients, thread = two_nodes_streaming(make_cluster, tmp_path, steps=50, seconds=120)
    cluster.pg.stop_server()
    status, _, body = cluster.json("POST", "/jobs", {"kind": "task", "params": {"steps": "1"}})
    assert status == 503, (status, body)
    time.sleep(2.0)
    cluster.pg.start_server()
    late = submit_once_postgresql_is_back(cluster, steps=1)
    thread.join(120)
    truth = check_clients_saw_final(cluster, clients, by_job)
    assert set(truth.values()) == {"succeeded"}, truth
    assert_nothing_repeated(clients)
    assert cluster.wait_job(late)["state"] == "succeeded"
    # Each running job says once that its status could not be written, not at every progress write.
    for name in ("runner0", "runner1"):
        failed = cluster.log(name).count("status not written")
        assert failed <= len(jobs), f"{name} logged {failed} failed status writes for {len(jobs)} jobs"


def test_a_cut_off_runner_loses_its_job_and_its_later_writes_are_refused(make_cluster, tmp_path, namespaces):
    cluster, attempts, jid = a_job_running_on_another_host(make_cluster, tmp_path, "cut", steps=200)
    cluster.hosts["cut"].cut()
    took_over_within_30s(cluster, jid, time.monotonic(), "runner cut off", timeout=40)
    # The link comes back: the cut-off runner, alive all along, now reaches the database again.
    cluster.hosts["cut"].heal()
    seen_attempts = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = cluster.json("GET", f"/jobs/{jid}")[2]
        seen_attempts.add(job["attempt"])
        if job["state"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(0.1)
    assert job["state"] == "succeeded" and job["attempt"] == 2, job
    assert seen_attempts == {2}, f"the cut-off runner's attempt overwrote its successor: saw attempts {seen_attempts}"
    lines = attempts_of(attempts, jid)
    assert not [a for a in lines if a[0] == "overlap"], f"two copies ran at once: {lines}"
    assert "claim" in cluster.log("runner0").lower(), cluster.log("runner0")[-2000:]


def restart_while_postgresql_is_down(cluster):
    """Node 0 and runner 0 started with PostgreSQL stopped: both stay up (SPEC §8: they reconnect by themselves)."""
    cluster.kill_node(0, signal.SIGTERM)
    cluster.pg.stop_server()
    cluster.start_node(0)
    cluster.start_runner(0)
    time.sleep(4.0)
    assert cluster.nodes[0].poll() is None, f"herald-fcgi exited {cluster.nodes[0].returncode}\n" + cluster.log("node0")
    assert cluster.runners[0].poll() is None, f"herald-runner work exited {cluster.runners[0].returncode}\n" + cluster.log("runner0")


def test_both_programs_started_while_postgresql_is_down_answer_503_and_work_once_it_is_back(make_cluster, tmp_path):
    script, attempts = job_script(tmp_path)
    cluster = make_cluster(kinds={"task": task_kind(script)}, nodes=1, runners=1, idle_runners=[0])
    restart_while_postgresql_is_down(cluster)
    status, _, body = cluster.json("POST", "/jobs", {"kind": "task", "params": {"steps": "1"}})
    assert status == 503 and body["error"]["code"] == "unavailable", (status, body)
    for name, says in (("node0", "serving 503"), ("runner0", "waiting")):
        log = cluster.log(name)
        assert log.count("PostgreSQL unreachable") == 1 and says in log, log
    # One line for the outage, not one per pass (a pass a second).
    assert cluster.log("runner0").count("store unavailable") <= 1, cluster.log("runner0")
    node, work = cluster.nodes[0].pid, cluster.runners[0].pid
    cluster.pg.start_server()
    job = submit_once_postgresql_is_back(cluster, steps=20)
    by_job, clients, thread = stream_clients(cluster, [job], per_job=1, seconds=60)
    thread.join(60)
    assert check_clients_saw_final(cluster, clients, by_job) == {job: "succeeded"}
    assert [p.pid for p in cluster.nodes + cluster.runners] == [node, work]
    assert cluster.nodes[0].poll() is None and cluster.runners[0].poll() is None


def test_programs_started_while_postgresql_is_down_refuse_a_schema_of_another_version_once_it_is_back(make_cluster, tmp_path):
    script, _ = job_script(tmp_path)
    cluster = make_cluster(kinds={"task": task_kind(script)}, nodes=1, runners=1, idle_runners=[0])
    cluster.pg.sql("UPDATE herald.schema_version SET version = 0", database=cluster.database)
    restart_while_postgresql_is_down(cluster)
    cluster.pg.start_server()
    assert cluster.runners[0].wait(20) == 78, cluster.log("runner0")
    assert "herald-runner migrate" in cluster.log("runner0"), cluster.log("runner0")
    status, _, body = cluster.json("POST", "/jobs", {"kind": "task", "params": {"steps": "1"}})
    assert status == 503 and body["error"]["code"] == "unavailable", (status, body)
    assert cluster.pg.sql("SELECT count(*) FROM herald.jobs", database=cluster.database).split() == ["0"]
    assert "herald-runner migrate" in cluster.log("node0"), cluster.log("node0")
    assert cluster.nodes[0].poll() is None, cluster.log("node0")
    # The schema put right, the node serves without a restart.
    cluster.pg.sql("UPDATE herald.schema_version SET version = 1", database=cluster.database)
    status, _, body = cluster.json("POST", "/jobs", {"kind": "task", "params": {"steps": "1"}})
    assert status == 201, (status, body)
