"""The one exception the client raises for every failed request."""

from __future__ import annotations

import json
from typing import Any, Optional


class HeraldError(Exception):
    """A request Herald refused or could not answer.

    status   the HTTP status (0 when no answer came: connection refused, timeout)
    code     the API's error code (``unknown_kind``, ``idempotency_key_reused`` …),
             ``http_<status>`` when the body was not Herald's JSON error, or
             ``connection_error`` / ``timeout`` when no answer came
    message  the API's message, naming what was wrong
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def from_response(cls, status: int, body: bytes) -> "HeraldError":
        """The error of an answer: Herald's ``{"error": {...}}`` body, or the start of whatever came."""
        try:
            parsed: Any = json.loads(body.decode("utf-8"))
            err = parsed["error"]
            return cls(int(err.get("status", status)), str(err["code"]), str(err["message"]))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            text = body[:200].decode("utf-8", "replace").strip()
            return cls(status, f"http_{status}", text or f"HTTP {status} with no body")


def describe(exc: Optional[BaseException]) -> str:
    """A short text for a low-level failure (the errno name and message, never a traceback)."""
    if exc is None:
        return "unknown error"
    return f"{type(exc).__name__}: {exc}"
