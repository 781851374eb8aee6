"""PostgreSQL for the integration tests: one private cluster per test session, a database per use.

    postgres            the session's scripts/herald_postgres.PostgresCluster (started once, stopped at the end,
                        even when tests fail); fails the test with the reason when PostgreSQL is not installed
    postgres_database   a fresh database in it: (cluster, name, conninfo)

`HERALD_TEST_STORE=postgres` runs the stack-based tests on the PostgreSQL store (conftest.py).
"""

import os

import pytest

from herald_postgres import ClusterError, PostgresCluster, server_binaries  # noqa: F401

STORE = os.environ.get("HERALD_TEST_STORE", "directory")


@pytest.fixture(scope="session")
def postgres():
    if server_binaries() is None:
        pytest.fail("PostgreSQL server binaries missing: apt-get install postgresql (make test-deps does)", pytrace=False)
    # Its own directory under /tmp (pytest's tmp dirs are root-only: the server runs as nobody).
    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_database(postgres):
    name = postgres.create_database()
    return postgres, name, postgres.conninfo(name)


def psql(conninfo: str, statements: str) -> str:
    """Runs SQL on a database as its conninfo's user (the tests' superuser); unaligned rows."""
    import subprocess
    bin_dir = server_binaries()
    # On stdin, not in argv: a log chunk's hex may be longer than an argument may be.
    r = subprocess.run([f"{bin_dir}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", "-"],
                       input=statements.encode(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        raise ClusterError(f"psql: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout.decode()


def sql_text(text: str) -> str:
    """`text` as a SQL literal (dollar-quoted, so JSON needs no escaping)."""
    tag = "$herald$"
    assert tag not in text
    return tag + text + tag
