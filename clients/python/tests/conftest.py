"""The client's unit tests run against the source tree (no install, no Swift build)
and against fake HTTP servers on loopback (client_fakes.py) that play scripted answers."""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
sys.path.insert(0, HERE)

from client_fakes import FakeServer  # noqa: E402


@pytest.fixture
def fake_server():
    servers = []

    def make(*handlers):
        s = FakeServer(list(handlers))
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()
        assert not s.errors, s.errors
