"""The PostgreSQL store from the outside (SPEC §8): `herald-runner migrate`, the two roles, and a
stack that rides out a PostgreSQL restart. Runs whatever HERALD_TEST_STORE says (it makes its own databases)."""

import os
import subprocess
import threading
import time

import pytest

from support_herald import EventStream, statuses, wait_until
from support_postgres import psql


def write_config(tmp_path, database_url: str | None) -> str:
    path = tmp_path / "herald.yml"
    text = "allow_anonymous_submit: true\nkinds:\n  demo:\n    builtin: demo\n"
    if database_url:
        text = f"database_url: '{database_url}'\n" + text
    path.write_text(text)
    return str(path)


def runner(bin_dir, config: str, *args, env=None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return subprocess.run([os.path.join(bin_dir, "herald-runner"), *args, "--config", config], env={**clean, **(env or {})},
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)


def test_migrate_creates_the_schema_once_and_again_finds_nothing_to_do(bin_dir, tmp_path, postgres_database):
    _, _, url = postgres_database
    config = write_config(tmp_path, url)
    first = runner(bin_dir, config, "migrate")
    assert first.returncode == 0, first.stderr
    assert "from version 0 to 1" in first.stdout
    again = runner(bin_dir, config, "migrate")
    assert again.returncode == 0 and "already at version 1" in again.stdout, again


def test_migrate_from_two_processes_at_once(bin_dir, tmp_path, postgres_database):
    _, _, url = postgres_database
    config = write_config(tmp_path, url)
    argv = [os.path.join(bin_dir, "herald-runner"), "migrate", "--config", config]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sum("from version 0" in out for out, _ in outs) == 1, outs
    assert psql(url, "SELECT version FROM herald.schema_version").split() == ["1"]


def test_programs_refuse_a_schema_of_another_version_naming_migrate(bin_dir, tmp_path, postgres_database):
    _, _, url = postgres_database
    config = write_config(tmp_path, url)
    before = runner(bin_dir, config, "list")
    assert before.returncode == 78 and "herald-runner migrate" in before.stderr, before
    assert runner(bin_dir, config, "migrate").returncode == 0
    assert runner(bin_dir, config, "list").returncode == 0
    psql(url, "UPDATE herald.schema_version SET version = 99")
    newer = runner(bin_dir, config, "migrate")
    assert newer.returncode == 78 and "newer" in newer.stderr, newer
    fcgi = subprocess.run([os.path.join(bin_dir, "herald-fcgi"), "--config", config, "--socket", str(tmp_path / "s.sock")],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    assert fcgi.returncode == 78 and "newer" in fcgi.stderr, fcgi


def test_migrate_exits_69_when_unreachable_and_78_when_misconfigured(bin_dir, tmp_path):
    unreachable = runner(bin_dir, write_config(tmp_path, f"host={tmp_path}/nothing dbname=x"), "migrate")
    assert unreachable.returncode == 69 and "PostgreSQL" in unreachable.stderr, unreachable
    bad = runner(bin_dir, write_config(tmp_path, "postgresql://x/y?no_such_option=1"), "migrate")
    assert bad.returncode == 78 and "no_such_option" in bad.stderr, bad
    directory = runner(bin_dir, write_config(tmp_path, None), "migrate")
    assert directory.returncode == 78 and "database_url" in directory.stderr, directory


def test_the_web_role_may_submit_and_read_but_never_write_job_state(bin_dir, tmp_path, postgres_database):
    cluster, name, url = postgres_database
    role = f"web_{os.getpid()}_{int(time.monotonic() * 1000)}"
    cluster.sql(f"CREATE ROLE {role} LOGIN")
    config = write_config(tmp_path, url)
    unknown = runner(bin_dir, config, "migrate", "--web-role", "no_such_role")
    assert unknown.returncode == 78 and "no_such_role" in unknown.stderr, unknown
    granted = runner(bin_dir, config, "migrate", "--web-role", role)
    assert granted.returncode == 0, granted.stderr
    submitted = runner(bin_dir, config, "submit", "demo", "-p", "steps=1")
    assert submitted.returncode == 0, submitted.stderr
    jid = submitted.stdout.strip()
    web = cluster.conninfo(name, user=role)
    assert psql(web, f"SELECT state FROM herald.jobs WHERE id = '{jid}'").split() == ["queued"]
    for sql in (f"UPDATE herald.jobs SET state = 'succeeded' WHERE id = '{jid}'", "DELETE FROM herald.jobs",
                f"INSERT INTO herald.job_logs (job_id, start, data) VALUES ('{jid}', 0, 'x')"):
        with pytest.raises(Exception, match="permission denied"):
            psql(web, sql)
    psql(web, f"SELECT herald.request_cancel('{jid}')")
    assert psql(url, f"SELECT cancel_requested FROM herald.jobs WHERE id = '{jid}'").split() == ["t"]


def test_a_postgres_restart_answers_503_meanwhile_and_streams_end_with_the_true_final_status(make_stack, postgres):
    stack = make_stack(database_url=postgres.conninfo(postgres.create_database()), config_overrides={"heartbeat": "1s"})
    _, _, job = stack.json("POST", "/jobs", {"kind": "demo", "params": {"steps": "40", "interval_ms": "100"}})
    with EventStream(stack, f"/jobs/{job['id']}/events", timeout=60) as stream:
        assert stream.wait_headers() == 200
        wait_until(lambda: stack.json("GET", f"/jobs/{job['id']}")[2]["state"] == "running", 10, what="the job running")
        postgres.stop_server()
        try:
            status, _, body = stack.request("POST", "/jobs", {"kind": "demo", "params": {"steps": "1"}})
            assert status == 503, body
        finally:
            postgres.start_server()
        wait_until(lambda: stack.request("POST", "/jobs", {"kind": "demo", "params": {"steps": "1"}})[0] == 201, 15,
                   what="submits accepted again")
        blocks = stream.read_all(timeout=60)
    final = stack.wait_job(job["id"])
    seen = statuses(blocks)
    assert seen and seen[-1]["state"] == final["state"] and seen[-1]["seq"] == final["seq"], (seen[-1:], final)
    assert final["state"] == "succeeded", final  # the runner kept its claim across the restart
    seqs = [s["seq"] for s in seen]
    assert seqs == sorted(set(seqs)), seqs


def start_runner(bin_dir, config: str, log_path) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return subprocess.Popen([os.path.join(bin_dir, "herald-runner"), "work", "--config", config],
                            env=clean, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


def test_a_runner_killed_mid_job_is_recovered_by_the_other_with_no_second_copy_at_once(bin_dir, tmp_path, postgres_database):
    from herald_stack import stop_process
    _, _, url = postgres_database
    marks = tmp_path / "marks"
    script = (f"p={tmp_path}/pid; if [ -f $p ] && [ -d /proc/$(cat $p) ] && ! grep -q zombie /proc/$(cat $p)/status; "
              f"then echo overlap >> {marks}; fi; echo $$ > $p; echo start $HERALD_ATTEMPT >> {marks}; sleep $((HERALD_ATTEMPT == 1 ? 12 : 1)); "
              f"echo end $HERALD_ATTEMPT >> {marks}")
    config = tmp_path / "herald.yml"
    config.write_text(f"database_url: '{url}'\nallow_anonymous_submit: true\nkinds:\n  slow:\n"
                      f"    command: ['/bin/sh', '-c', {script!r}]\n    retries: 1\n")
    assert runner(bin_dir, str(config), "migrate").returncode == 0
    first = start_runner(bin_dir, str(config), tmp_path / "runner1.log")
    second = None
    try:
        jid = runner(bin_dir, str(config), "submit", "slow").stdout.strip()
        wait_until(lambda: marks.exists() and "start 1" in marks.read_text(), 15, what="attempt 1 running")
        second = start_runner(bin_dir, str(config), tmp_path / "runner2.log")
        time.sleep(1)
        killed_at = time.monotonic()
        os.kill(first.pid, 9)
        first.wait(timeout=10)
        wait_until(lambda: "start 2" in marks.read_text(), 30, what="attempt 2 started by the other runner")
        assert time.monotonic() - killed_at < 30
        wait_until(lambda: "end 2" in marks.read_text(), 15, what="attempt 2 ended")
        status = runner(bin_dir, str(config), "status", jid, "--json")
        assert '"succeeded"' in status.stdout and '"attempt":2' in status.stdout.replace(" ", ""), status.stdout
        lines = marks.read_text().split()
        assert "overlap" not in lines, marks.read_text()
        assert "end 1" not in marks.read_text(), marks.read_text()  # attempt 1's program was killed, not finished
    finally:
        stop_process(first, 5)
        stop_process(second, 5)


def test_a_kinds_concurrency_holds_across_two_runners_as_the_programs_see_it(bin_dir, tmp_path, postgres_database):
    from herald_stack import stop_process
    _, _, url = postgres_database
    marks = tmp_path / "marks"
    script = f"echo \"+ $(date +%s%N)\" >> {marks}; sleep 0.4; echo \"- $(date +%s%N)\" >> {marks}"
    config = tmp_path / "herald.yml"
    config.write_text(f"database_url: '{url}'\nallow_anonymous_submit: true\nworkers: 4\nkinds:\n  limited:\n"
                      f"    command: ['/bin/sh', '-c', {script!r}]\n    concurrency: 2\n")
    assert runner(bin_dir, str(config), "migrate").returncode == 0
    runners = [start_runner(bin_dir, str(config), tmp_path / f"runner{k}.log") for k in range(2)]
    try:
        ids = [runner(bin_dir, str(config), "submit", "limited").stdout.strip() for _ in range(8)]
        wait_until(lambda: marks.exists() and marks.read_text().count("-") == 8, 60, what="8 jobs done")
        events = sorted((int(t), 1 if sign == "+" else -1) for sign, t in (line.split() for line in marks.read_text().splitlines()))
        running, most = 0, 0
        for _, delta in events:
            running += delta
            most = max(most, running)
        assert most == 2, marks.read_text()
        listed = runner(bin_dir, str(config), "list", "--json").stdout
        assert listed.count('"succeeded"') == 8 and all(i in listed for i in ids)
    finally:
        for r in runners:
            stop_process(r, 5)


def test_a_runner_that_loses_its_liveness_session_for_good_stops_its_program(bin_dir, tmp_path, postgres_database):
    """A cut-off runner must stop its programs before another runner may take its jobs over."""
    from herald_stack import stop_process
    cluster, _, url = postgres_database
    marks = tmp_path / "marks"
    script = f"echo start $HERALD_ATTEMPT $$ >> {marks}; sleep 60; echo end $HERALD_ATTEMPT >> {marks}"
    config = tmp_path / "herald.yml"
    config.write_text(f"database_url: '{url}'\nallow_anonymous_submit: true\nkinds:\n  slow:\n"
                      f"    command: ['/bin/sh', '-c', {script!r}]\n    retries: 1\n")
    assert runner(bin_dir, str(config), "migrate").returncode == 0
    work = start_runner(bin_dir, str(config), tmp_path / "runner.log")
    holder = None
    try:
        runner(bin_dir, str(config), "submit", "slow")
        wait_until(lambda: marks.exists() and "start 1" in marks.read_text(), 15, what="attempt 1 running")
        program = int(marks.read_text().split()[2])
        lock = psql(url, "SELECT objid, pid FROM pg_locks WHERE locktype = 'advisory' AND classid = 1213352961 "
                         "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").split("|")
        runner_id, session = int(lock[0]), int(lock[1])
        # As a recovery would: end the session and hold its lock, so the runner cannot take it back.
        holder = subprocess.Popen([os.path.join(os.path.dirname(cluster.bin), "bin", "psql"), "-X", "-q", "-d", url],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        holder.stdin.write(f"SELECT pg_terminate_backend({session}); SELECT pg_advisory_lock(1213352961, {runner_id});\n")
        holder.stdin.flush()
        wait_until(lambda: not os.path.exists(f"/proc/{program}") or "zombie" in open(f"/proc/{program}/status").read(),
                   20, what="the program stopped after the runner gave its session up")
        assert "end 1" not in marks.read_text()
    finally:
        if holder:
            holder.stdin.close()
            holder.wait(timeout=10)
        stop_process(work, 5)
