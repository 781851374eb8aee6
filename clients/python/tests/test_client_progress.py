"""herald.progress: one fd-3 line per call (SPEC §6), a warned no-op outside Herald."""

import json
import os
import subprocess
import sys
import warnings

import pytest

import herald
import herald.reporting as reporting
from herald.reporting import progress_line

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


@pytest.mark.parametrize("args, line", [
    ((42,), b"42\n"),
    ((42.0,), b"42\n"),
    ((12.5,), b"12.5\n"),
    ((0,), b"0\n"),
    ((100,), b"100\n"),
])
def test_a_percent_alone_is_the_plain_form(args, line):
    assert progress_line(*args) == line


def test_a_message_or_result_is_the_json_form():
    assert json.loads(progress_line(42, "rendering page 4")) == {"progress": 42, "message": "rendering page 4"}
    assert json.loads(progress_line(100, result={"url": "/r.pdf"})) == {"progress": 100, "result": {"url": "/r.pdf"}}
    assert json.loads(progress_line(None, "only a message")) == {"message": "only a message"}
    # A newline in a message stays inside the one line.
    line = progress_line(5, "two\nlines")
    assert line.count(b"\n") == 1 and json.loads(line)["message"] == "two\nlines"


@pytest.mark.parametrize("args", [(-1,), (100.5,), (float("nan"),), (float("inf"),), (True,), ("42",), (None,),
                                  (5, 7), (5, None, object())])
def test_bad_values_are_refused(args):
    with pytest.raises(ValueError):
        progress_line(*args)


def test_a_result_over_64_kib_is_refused():
    with pytest.raises(ValueError, match="65536"):
        progress_line(100, result="x" * 65536)
    progress_line(100, result="x" * 65530)


def test_it_writes_to_the_fd_herald_names(monkeypatch):
    r, w = os.pipe()
    try:
        monkeypatch.setenv("HERALD_PROGRESS_FD", str(w))
        herald.progress(10)
        herald.progress(20, "step 2/10")
        herald.progress(100, result=[1, 2])
        os.close(w)
        w = -1
        lines = os.read(r, 65536).decode().splitlines()
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert lines == ["10", '{"progress":20,"message":"step 2/10"}', '{"progress":100,"result":[1,2]}']


def test_outside_herald_it_warns_once_and_does_nothing(monkeypatch):
    monkeypatch.delenv("HERALD_PROGRESS_FD", raising=False)
    monkeypatch.setattr(reporting, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        herald.progress(10)
        herald.progress(20, "again")
    assert len(caught) == 1
    assert "HERALD_PROGRESS_FD" in str(caught[0].message)


def test_a_job_program_reports_on_fd_3_as_the_runner_starts_it():
    # The runner's contract: fd 3 is a pipe, HERALD_PROGRESS_FD=3, stdout is the log.
    r, w = os.pipe()
    script = "import herald; print('working'); herald.progress(50, 'half'); herald.progress(100)"
    env = {**os.environ, "HERALD_PROGRESS_FD": "3", "PYTHONPATH": SRC}
    argv = ["/bin/bash", "-c", f'exec 3>&{w} {w}>&-; exec "$@"', "bash", sys.executable, "-W", "error", "-c", script]
    proc = subprocess.run(argv, env=env, capture_output=True, pass_fds=(w,), timeout=30)
    os.close(w)
    fd3 = os.read(r, 65536)
    os.close(r)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"working\n"
    assert fd3 == b'{"progress":50,"message":"half"}\n100\n'
