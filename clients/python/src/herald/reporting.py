"""Progress reports from a job program (SPEC §6): one line on the fd Herald names.

Herald runs a command job with ``HERALD_PROGRESS_FD=3``; each line written there
updates the job: ``42`` for a percent alone, or a JSON object with any of
``progress``, ``message`` and ``result`` (at most 64 KiB of JSON).
"""

from __future__ import annotations

import errno
import json
import math
import os
import threading
import warnings
from typing import Any, Dict, Optional

MAX_RESULT_BYTES = 64 * 1024
ENV = "HERALD_PROGRESS_FD"

_lock = threading.Lock()
_warned = False


def progress_line(percent: Optional[float], message: Optional[str] = None, result: Any = None) -> bytes:
    """The fd-3 line for a report (LF-terminated); raises ValueError for a bad percent, message or result."""
    if percent is not None:
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not math.isfinite(percent) \
                or not 0 <= percent <= 100:
            raise ValueError(f"percent must be a number from 0 to 100, not {percent!r}")
    if message is not None and not isinstance(message, str):
        raise ValueError(f"message must be a string, not {type(message).__name__}")
    if message is None and result is None:
        if percent is None:
            raise ValueError("progress() needs a percent, a message or a result")
        return (_number(percent) + "\n").encode("ascii")
    report: Dict[str, Any] = {}
    if percent is not None:
        report["progress"] = percent
    if message is not None:
        report["message"] = message
    if result is not None:
        try:
            encoded = json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"result must be JSON-serialisable: {e}") from None
        if len(encoded.encode("utf-8")) > MAX_RESULT_BYTES:
            raise ValueError(f"result is over {MAX_RESULT_BYTES} bytes of JSON")
        report["result"] = result
    return (json.dumps(report, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _warn_once(text: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(text, RuntimeWarning, stacklevel=3)


def progress(percent: Optional[float], message: Optional[str] = None, result: Any = None) -> None:
    """Report progress (0-100), and optionally a message and a result, to the Herald runner.

    Outside Herald (no ``HERALD_PROGRESS_FD``) it does nothing and warns once, so a
    program can be run by hand. Bad values raise ValueError either way.
    """
    line = progress_line(percent, message, result)
    name = os.environ.get(ENV)
    if name is None:
        _warn_once(f"herald.progress: {ENV} is not set (not run by Herald); progress reports are ignored")
        return
    try:
        fd = int(name)
    except ValueError:
        _warn_once(f"herald.progress: {ENV}={name!r} is not a file descriptor; progress reports are ignored")
        return
    with _lock:
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError as e:
            if e.errno not in (errno.EBADF, errno.EPIPE):
                raise
            _warn_once(f"herald.progress: cannot write to fd {fd} ({os.strerror(e.errno)}); "
                       "progress reports are ignored")
