"""Faults: processes killed or restarted mid-job, nginx reloaded under open
streams, a full or read-only state directory. Each test is named after what it
proves; docs/RELIABILITY.md lists them with what was observed.

The job program used here is a shell script (run directly, never through a
shell by Herald) that appends `start ATTEMPT PID` to an attempts file when it
starts, reports progress on fd 3 every 100 ms, and appends `end ATTEMPT` when
it finishes; on start it also appends `overlap` if the previous attempt's
process is still alive. So the attempts file shows every run of every attempt,
whether one was lost, and whether two ran at once.

Clients are a small asyncio Server-Sent Events client that behaves like
EventSource: it honours `retry:`, resumes with `Last-Event-ID`, stops on
`event: end` or 204, and records every answer that was not a stream (a refused
connection, a 502) as a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import stat
import subprocess
import threading
import time

import pytest

from support_herald import wait_until

TERMINAL = ("succeeded", "failed", "canceled")


# ---------------------------------------------------------------------------
# helpers


def job_script(tmp_path, name="attempt.sh"):
    """The job program described above; returns (path, attempts file)."""
    attempts = tmp_path / f"{name}.attempts"
    script = tmp_path / name
    script.write_text(f"""#!/bin/sh
LOG='{attempts}'
if [ -s "$LOG" ]; then
    prev=$(grep "^start .* $HERALD_JOB_ID " "$LOG" | tail -1 | cut -d' ' -f4)
    # Alive and not a zombie (an orphan's zombie may linger where nothing reaps it).
    st=$( [ -n "$prev" ] && sed 's/.*) //' /proc/$prev/stat 2>/dev/null | cut -d' ' -f1)
    if [ -n "$st" ] && [ "$st" != Z ]; then echo "overlap $HERALD_JOB_ID $prev" >> "$LOG"; fi
fi
echo "start $HERALD_ATTEMPT $HERALD_JOB_ID $$" >> "$LOG"
steps=${{HERALD_PARAM_STEPS:-30}}
i=0
while [ $i -lt $steps ]; do
    i=$((i+1))
    echo "$((i * 100 / steps)) step $i/$steps" >&3
    echo "tick $i"
    sleep 0.1
done
echo "end $HERALD_ATTEMPT $HERALD_JOB_ID $$" >> "$LOG"
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(script), attempts


def attempts_of(attempts_file, job_id):
    if not os.path.exists(attempts_file):
        return []
    return [line.split()[0:2] for line in open(attempts_file).read().splitlines() if job_id in line]


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def job_pids(attempts_file, job_id):
    return [int(line.split()[3]) for line in open(attempts_file).read().splitlines()
            if line.startswith("start ") and job_id in line]


def raise_nofile(need):
    """Streams are fds here, in nginx and in herald-fcgi (which inherits this limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class SSEClient:
    """One EventSource-like client for one stream path (see the module docstring)."""

    def __init__(self, host, port, path, deadline):
        self.host, self.port, self.path, self.deadline = host, port, path, deadline
        self.last_id = None
        self.retry_ms = 3000
        self.states = []          # (seq, state) of every status event, in order
        self.end = None           # the parsed data of `event: end`
        self.failures = []        # answers that were not a stream: refused, 5xx, ...
        self.connects = 0
        self.got_204 = False
        self.connected = asyncio.Event()

    @property
    def final_state(self):
        return self.states[-1][1] if self.states else None

    async def run(self):
        while time.monotonic() < self.deadline:
            if await self._once():
                return
            await asyncio.sleep(self.retry_ms / 1000)
        self.failures.append("deadline passed before the stream ended")

    async def _once(self) -> bool:
        """One connection; True when the client is done for good."""
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 10)
        except (OSError, asyncio.TimeoutError) as e:
            self.failures.append(f"connect: {e!r}")
            return False
        self.connects += 1
        try:
            head = f"GET {self.path} HTTP/1.0\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
            if self.last_id is not None:
                head += f"Last-Event-ID: {self.last_id}\r\n"
            writer.write((head + "\r\n").encode())
            await writer.drain()
            status_line = await reader.readline()
            if not status_line:
                self.failures.append("connection closed before a status line")
                return False
            status = int(status_line.split()[1])
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            if status == 204:
                self.got_204 = True
                return True
            if status != 200:
                body = await reader.read(500)
                self.failures.append(f"HTTP {status}: {body[:200]!r}")
                return False
            self.connected.set()
            event, data, ev_id = None, [], None
            while True:
                remaining = self.deadline - time.monotonic()
                if remaining <= 0:
                    return False
                line = await asyncio.wait_for(reader.readline(), remaining)
                if not line:
                    return False  # the server ended the stream without `end`: resume
                line = line.decode().rstrip("\n")
                if line == "":
                    if ev_id is not None:
                        self.last_id = ev_id
                    if event == "status":
                        job = json.loads("\n".join(data))
                        if self.states and job["seq"] < self.states[-1][0]:
                            self.failures.append(f"went back: seq {job['seq']} after {self.states[-1][0]}")
                        self.states.append((job["seq"], job["state"]))
                    elif event == "end":
                        self.end = json.loads("\n".join(data))
                        return True
                    event, data, ev_id = None, [], None
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        event = value
                    elif field == "data":
                        data.append(value)
                    elif field == "id":
                        ev_id = value
                    elif field == "retry" and value.isdigit():
                        self.retry_ms = int(value)
        except (OSError, asyncio.TimeoutError, ValueError, IndexError) as e:
            # A reset mid-stream is a normal end of a connection (the client resumes);
            # only answers that refuse a new request count as failures.
            if isinstance(e, (ValueError, IndexError)):
                self.failures.append(f"unparsable answer: {e!r}")
            return False
        finally:
            writer.close()


def check_clients_saw_final(stack, clients, by_job):
    """Every client ended with the job's true final state, and none was refused."""
    truth = {}
    for job_id in by_job:
        status, _, job = stack.json("GET", f"/jobs/{job_id}")
        assert status == 200 and job["state"] in TERMINAL, job
        truth[job_id] = job["state"]
    problems = []
    for job_id, group in by_job.items():
        for c in group:
            if c.failures:
                problems.append(f"{job_id}: {c.failures[:3]}")
            elif c.final_state != truth[job_id]:
                problems.append(f"{job_id}: ended with {c.final_state}, truth {truth[job_id]} (204: {c.got_204})")
            elif not c.got_204 and (c.end or {}).get("state") != truth[job_id]:
                problems.append(f"{job_id}: end event {c.end}, truth {truth[job_id]}")
    assert not problems, f"{len(problems)} of {len(clients)} clients wrong:\n" + "\n".join(problems[:20])
    return truth


# ---------------------------------------------------------------------------
# herald-runner killed or stopped mid-job


@pytest.mark.parametrize("retries", [0, 1])
def test_kill_9_of_the_runner_mid_job_is_recovered_by_the_next_runner_without_a_duplicate_run(make_stack, tmp_path, retries):
    script, attempts = job_script(tmp_path)
    stack = make_stack(config_overrides={"kinds": {"task": {"command": [script], "params": {"steps": "^[0-9]+$"},
                                                            "retries": retries}}})
    job = stack.submit("task", {"steps": "30"})
    jid = job["id"]
    watcher_loop = asyncio.new_event_loop()
    watcher = SSEClient(stack.host, stack.port, f"/jobs/{jid}/events", time.monotonic() + 60)
    watch = threading.Thread(target=watcher_loop.run_until_complete, args=(watcher.run(),))
    watch.start()
    try:
        wait_until(lambda: stack.json("GET", f"/jobs/{jid}")[2]["progress"] > 0, 15, what="the job reports progress")
        first_pid = job_pids(attempts, jid)[0]
        os.kill(stack.runner_proc.pid, signal.SIGKILL)
        stack.runner_proc.wait(5)
        # Orphaned, the program dies of SIGPIPE at its next fd-3 report (docs/PROTOCOL.md, Recovery).
        wait_until(lambda: not alive(first_pid), 5, what="the orphaned attempt dies of SIGPIPE")
        assert stack.json("GET", f"/jobs/{jid}")[2]["state"] == "running"  # as the dead runner left it
        stack.start_runner()
        final = stack.wait_job(jid, timeout=30)
    finally:
        watch.join(60)
    runs = attempts_of(attempts, jid)
    assert ["overlap", jid] not in runs and not any(r[0] == "overlap" for r in runs), runs
    if retries == 0:
        assert final["state"] == "failed", final
        assert final["error"]["code"] == "runner_lost", final
        assert final["attempt"] == 1
        assert runs == [["start", "1"]], f"the job ran again or more than once: {runs}"
    else:
        assert final["state"] == "succeeded", final
        assert final["attempt"] == 2
        assert runs == [["start", "1"], ["start", "2"], ["end", "2"]], runs
    # A client watching throughout saw the recovery and ends with the true final status.
    assert not watcher.failures, watcher.failures
    assert watcher.final_state == final["state"] and watcher.end == {"state": final["state"]}, (watcher.states, watcher.end)


def test_sigterm_of_work_requeues_running_jobs_with_the_attempt_unchanged_and_the_next_runner_finishes_them(make_stack, tmp_path):
    script, attempts = job_script(tmp_path)
    stack = make_stack(runner_args=["--shutdown-grace", "300ms"],
                       config_overrides={"workers": 4, "kinds": {"task": {"command": [script], "params": {"steps": "^[0-9]+$"},
                                                                          "retries": 0}}})
    ids = [stack.submit("task", {"steps": "40"})["id"] for _ in range(3)]
    for jid in ids:
        wait_until(lambda: stack.json("GET", f"/jobs/{jid}")[2]["progress"] > 0, 15, what=f"job {jid} runs")
    seq_before = {jid: stack.json("GET", f"/jobs/{jid}")[2]["seq"] for jid in ids}
    stack.runner_proc.send_signal(signal.SIGTERM)
    assert stack.runner_proc.wait(10) == 0, stack.log_tail("herald-runner")
    for jid in ids:
        job = stack.json("GET", f"/jobs/{jid}")[2]
        assert job["state"] == "queued" and job["attempt"] == 1 and job["error"] is None, job
        assert job["seq"] > seq_before[jid], "the requeue is a new state (seq rises)"
        assert job["progress"] == 0.0 or job["progress"] <= 100, job
        if not stack.database_url:  # the directory store's queue is marker files; in PostgreSQL the row's state is the queue
            assert os.path.exists(os.path.join(stack.state_dir, "queue", jid)), "requeued without a queue marker"
        for pid in job_pids(attempts, jid):
            assert not alive(pid), f"the interrupted program {pid} outlived the runner"
    stack.start_runner()
    for jid in ids:
        final = stack.wait_job(jid, timeout=30)
        assert final["state"] == "succeeded" and final["attempt"] == 1, final
        runs = attempts_of(attempts, jid)
        assert runs == [["start", "1"], ["start", "1"], ["end", "1"]], runs  # interrupted once, then whole


# ---------------------------------------------------------------------------
# herald-fcgi restarted under 1,000 streams; nginx reloaded


N_STREAMS = 1000


def test_restart_of_herald_fcgi_under_1000_streams_refuses_nothing_and_every_client_ends_with_the_final_status(make_stack):
    raise_nofile(8192)
    # fd-3 handover (systemd's protocol): the stack keeps the listening socket while
    # herald-fcgi is down, so connections wait in the backlog (1024) instead of failing.
    stack = make_stack(fcgi_mode="systemd", config_overrides={"workers": 20, "heartbeat": "2s", "retry": "1s",
                                                               "max_streams": 5000})
    # 20 s jobs: connecting 1,000 clients on a busy debug build must not outlast them.
    jobs = [stack.submit("demo", {"steps": "40", "interval_ms": "500"})["id"] for _ in range(20)]
    by_job = {}
    plain = {"ok": 0, "bad": []}
    stop_plain = threading.Event()

    def plain_requests():
        # Non-stream requests keep coming during the restart: each must be answered normally.
        i = 0
        while not stop_plain.is_set():
            i += 1
            try:
                if i % 10 == 0:
                    status, _, _ = stack.request("POST", "/jobs", {"kind": "demo", "params": {"steps": "1", "interval_ms": "0"}})
                    ok = status == 201
                else:
                    status, _, _ = stack.request("GET", f"/jobs/{jobs[i % len(jobs)]}")
                    ok = status == 200
            except OSError as e:
                status, ok = repr(e), False
            if ok:
                plain["ok"] += 1
            else:
                plain["bad"].append(status)
            time.sleep(0.02)

    async def main():
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + 90
        clients = []
        for n in range(N_STREAMS):
            jid = jobs[n % len(jobs)]
            c = SSEClient(stack.host, stack.port, f"/jobs/{jid}/events", deadline)
            clients.append(c)
            by_job.setdefault(jid, []).append(c)
        tasks = [asyncio.create_task(c.run()) for c in clients]
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), 60)
        open_before = stack.json("GET", "/healthz")[2]["streams"]
        states = {stack.json("GET", f"/jobs/{j}")[2]["state"] for j in jobs}
        plain_thread = threading.Thread(target=plain_requests)
        plain_thread.start()
        started = time.monotonic()
        old_pid = stack.fcgi_proc.pid
        await loop.run_in_executor(None, lambda: stack.restart_fcgi(wait=False))
        restart_took = time.monotonic() - started
        await asyncio.gather(*tasks)
        stop_plain.set()
        await loop.run_in_executor(None, plain_thread.join)
        return clients, open_before, states, restart_took, old_pid

    clients, open_before, states_at_restart, restart_took, old_pid = asyncio.run(main())
    print(f"streams open before the restart: {open_before}; restart took {restart_took:.2f}s; "
          f"connections {sum(c.connects for c in clients)}; plain requests answered {plain['ok']}, refused {len(plain['bad'])}")
    assert open_before >= N_STREAMS, f"only {open_before} streams open before the restart"
    assert states_at_restart <= {"queued", "running"}, f"every job must still progress during the restart: {states_at_restart}"
    assert stack.fcgi_proc.pid != old_pid
    assert restart_took < 6, f"herald-fcgi took {restart_took:.1f}s to stop (SPEC: within 5 s)"
    check_clients_saw_final(stack, clients, by_job)
    assert sum(c.connects for c in clients) >= 2 * N_STREAMS, "every client had to reconnect once at least"
    assert not plain["bad"], f"requests refused during the restart: {plain['bad'][:10]}"
    assert plain["ok"] > 20
    errors = [r for r in stack.requests_seen() if r[2] >= 500]
    assert not errors, f"nginx logged {len(errors)} 5xx during the restart: {errors[:5]}"
    assert "signal" in stack.read_log("herald-fcgi") and "draining" in stack.read_log("herald-fcgi")


def test_nginx_reload_with_open_streams_clients_resume_and_end_with_the_final_status(make_stack):
    stack = make_stack(config_overrides={"workers": 10, "heartbeat": "1s", "retry": "1s"})
    # 15 s jobs: they must outlast the set-up and the old workers' worker_shutdown_timeout (5 s).
    jobs = [stack.submit("demo", {"steps": "30", "interval_ms": "500"})["id"] for _ in range(10)]
    by_job = {}

    async def main():
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + 60
        clients = []
        for n in range(100):
            jid = jobs[n % len(jobs)]
            c = SSEClient(stack.host, stack.port, f"/jobs/{jid}/events", deadline)
            clients.append(c)
            by_job.setdefault(jid, []).append(c)
        tasks = [asyncio.create_task(c.run()) for c in clients]
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), 30)
        r = await loop.run_in_executor(None, lambda: subprocess.run(
            [stack.nginx_bin, "-p", stack.workdir, "-c", "nginx.conf", "-e", stack.log_path("nginx-error"), "-s", "reload"],
            capture_output=True, text=True))
        assert r.returncode == 0, r.stderr
        states = await loop.run_in_executor(None, lambda: {stack.json("GET", f"/jobs/{j}")[2]["state"] for j in jobs})
        assert states <= {"queued", "running"}, f"the jobs must outlast the reload: {states}"
        await asyncio.gather(*tasks)
        return clients

    clients = asyncio.run(main())
    print(f"connections: {sum(c.connects for c in clients)} for {len(clients)} clients")
    check_clients_saw_final(stack, clients, by_job)
    # The old workers closed their streams within worker_shutdown_timeout (5 s), before the jobs ended (15 s),
    # so the clients did resume on the new workers.
    assert sum(c.connects for c in clients) > len(clients), "no client was disconnected by the reload"
    assert "reconfiguring" in stack.read_log("nginx-error")


# ---------------------------------------------------------------------------
# a full or read-only state directory


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs to be the state directory (root only); unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "stack" / "state"
    mnt.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=4096,mode=0755", "herald-test", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def leftovers(state):
    """Temp files (web's tmp/, runners' runner-tmp/) and submissions in new/ that are not complete JSON jobs."""
    bad = [f"{d}/{n}" for d in ("tmp", "runner-tmp") if (state / d).exists() for n in os.listdir(state / d)]
    for n in os.listdir(state / "new"):
        try:
            json.loads((state / "new" / n).read_bytes())["id"]
        except (ValueError, KeyError):
            bad.append(f"new/{n}")
    return bad


def fcgi_log_since(stack, offset):
    return stack.read_log("herald-fcgi")[offset:]


@pytest.mark.directory_only("a full filesystem under the state directory (on PostgreSQL a store that cannot be "
                            "reached answers 503 too: test_cluster.py's PostgreSQL restart test)")
@pytest.mark.parametrize("exhaust", ["blocks", "inodes"])
def test_a_full_state_directory_answers_503_with_a_log_line_and_recovers_with_nothing_half_written(make_stack, small_tmpfs, exhaust):
    """blocks: the temp file opens but its write fails (it must be unlinked);
    inodes: the temp file cannot even be created."""
    state = small_tmpfs
    stack = make_stack(workdir=state.parent, config_overrides={"workers": 2})
    try:
        done = stack.wait_job(stack.submit("demo", {"steps": "1", "interval_ms": "0"})["id"])
        assert done["state"] == "succeeded"
        mark = len(stack.read_log("herald-fcgi"))
        with open(state / "filler", "wb", buffering=0) as f:
            for chunk in (65536, 4096, 1):
                try:
                    while True:
                        f.write(b"\0" * chunk)
                except OSError:
                    pass
        n = 0
        if exhaust == "inodes":
            try:
                while True:
                    (state / f"inode{n}").touch()
                    n += 1
            except OSError:
                pass
        answers = []

        def submit():
            status, hdrs, body = stack.request("POST", "/jobs", {"kind": "demo", "params": {"steps": "1", "interval_ms": "0"}})
            answers.append((status, hdrs, body))
        threads = [threading.Thread(target=submit) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for status, hdrs, body in answers:
            assert status == 503, (status, body)
            assert hdrs["content-type"].startswith("application/json")
            err = json.loads(body)["error"]
            assert err["code"] == "unavailable" and str(state) not in err["message"] and "/" not in err["message"], err
        # Reading still works.
        assert stack.json("GET", f"/jobs/{done['id']}")[0] == 200
        log = fcgi_log_since(stack, mark)
        lines = [line for line in log.splitlines() if "state directory" in line]
        assert len(lines) >= len(answers), log
        assert all("error" in line and "POST /jobs" in line for line in lines), lines
        assert any("No space left" in line for line in lines), lines
        assert leftovers(state) == [], leftovers(state)
        # Room again: submissions are accepted and run (the runner lived through it).
        os.unlink(state / "filler")
        for i in range(n):
            os.unlink(state / f"inode{i}")
        assert stack.runner_proc.poll() is None, stack.log_tail("herald-runner")
        job = stack.submit("demo", {"steps": "1", "interval_ms": "0"})
        assert stack.wait_job(job["id"])["state"] == "succeeded"
        assert leftovers(state) == []
    finally:
        stack.stop()


@pytest.mark.directory_only("a read-only state directory (on PostgreSQL a store that cannot be reached answers "
                            "503 too: test_cluster.py's PostgreSQL restart test)")
def test_a_read_only_state_directory_answers_503_on_submit_and_cancel_and_recovers(make_stack, small_tmpfs):
    state = small_tmpfs
    stack = make_stack(workdir=state.parent, runner=False)  # no runner: a queued job stays cancelable
    queued = stack.submit("demo", {"steps": "1", "interval_ms": "0"})
    mark = len(stack.read_log("herald-fcgi"))
    r = subprocess.run(["mount", "-o", "remount,ro", str(state)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        status, hdrs, body = stack.request("POST", "/jobs", {"kind": "demo", "params": {}})
        assert status == 503, body
        assert json.loads(body)["error"]["code"] == "unavailable"
        status, _, body = stack.request("POST", f"/jobs/{queued['id']}/cancel")
        assert status == 503, body
        # Reads are unaffected.
        assert stack.json("GET", f"/jobs/{queued['id']}")[0] == 200
        assert stack.json("GET", "/healthz")[0] == 200
        log = fcgi_log_since(stack, mark)
        lines = [line for line in log.splitlines() if "state directory" in line]
        assert len(lines) >= 2 and any("Read-only" in line or "EROFS" in line for line in lines), log
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(state)], capture_output=True)
    assert leftovers(state) == []
    assert not os.listdir(state / "cancel")
    status, _, body = stack.request("POST", f"/jobs/{queued['id']}/cancel")
    assert status == 202, body
    assert stack.submit("demo", {})["state"] == "queued"
    stack.stop()
