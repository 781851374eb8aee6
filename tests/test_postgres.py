"""The PostgreSQL store from the outside (SPEC §8): `herald-runner migrate`, the two roles, and a
runner that gives its liveness session up. Runs whatever HERALD_TEST_STORE says (it makes its own
databases). Several nodes and runners, restarts, kill -9 and cut-off hosts: tests/test_cluster.py."""

import os
import subprocess
import time

import pytest

from support_herald import wait_until
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


def test_one_shot_commands_still_exit_69_at_once_when_postgresql_is_unreachable(bin_dir, tmp_path):
    """Only the daemons (herald-fcgi, `work`: test_cluster.py) wait for the database."""
    config = write_config(tmp_path, f"host={tmp_path}/nothing dbname=x")
    for args in (["run"], ["submit", "demo"], ["list"], ["gc"], ["status", "01kav9ft01m5kgrc5ph3cm60ta"]):
        started = time.monotonic()
        r = runner(bin_dir, config, *args)
        assert r.returncode == 69 and "PostgreSQL" in r.stderr, (args, r)
        assert time.monotonic() - started < 10, args


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


def start_runner(bin_dir, config: str, log_path) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
    return subprocess.Popen([os.path.join(bin_dir, "herald-runner"), "work", "--config", config],
                            env=clean, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True)


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
