"""Read tokens (SPEC §9): HS256 JSON Web Tokens minted with the standard library.

The output is what PyJWT's ``jwt.encode(claims, secret, algorithm="HS256")`` gives
for the same claims in the same order: header ``{"alg":"HS256","typ":"JWT"}``,
compact JSON, base64url without padding.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import time
from typing import Any, Dict, Iterable, Optional, Union

OWNER_RE = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
MIN_SECRET_BYTES = 32
_HEADER = b'{"alg":"HS256","typ":"JWT"}'

Secret = Union[str, bytes]
TTL = Union[int, float, datetime.timedelta]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_secret(path: str) -> bytes:
    """The secret as Herald reads ``read_token_secret_file``: the file's bytes with one trailing newline removed."""
    with open(path, "rb") as f:
        data = f.read()
    return data[:-1] if data.endswith(b"\n") else data


def read_token(secret: Secret, *, owner: Optional[str] = None, jobs: Optional[Iterable[str]] = None,
               all: bool = False, ttl: TTL = 3600, now: Optional[float] = None) -> str:
    """A read token for one owner (``sub``), a list of job ids (``jobs``) or every job (``all``).

    Exactly one of owner, jobs and all=True. ttl is in seconds (or a timedelta);
    the token carries ``iat`` and ``exp``. secret is at least 32 bytes (a str is UTF-8 encoded).
    """
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"read token secret is {len(key)} bytes; Herald needs at least {MIN_SECRET_BYTES}")
    chosen = [name for name, given in (("owner", owner is not None), ("jobs", jobs is not None), ("all", all)) if given]
    if len(chosen) != 1:
        raise ValueError("read_token needs exactly one of owner=, jobs= or all=True"
                         + (f" (got {', '.join(chosen)})" if chosen else ""))
    seconds = ttl.total_seconds() if isinstance(ttl, datetime.timedelta) else ttl
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"ttl must be a positive number of seconds, not {ttl!r}")
    issued = int(time.time() if now is None else now)
    claims: Dict[str, Any] = {"iat": issued, "exp": issued + int(seconds)}
    if owner is not None:
        if not isinstance(owner, str) or not OWNER_RE.fullmatch(owner):
            raise ValueError(f"owner {owner!r} is not 1-128 characters of [A-Za-z0-9._:@-]")
        claims["sub"] = owner
    elif jobs is not None:
        if isinstance(jobs, (str, bytes)):
            raise ValueError("jobs must be a list of job ids, not one string")
        ids = list(jobs)
        if not ids or not _all_strings(ids):
            raise ValueError("jobs must be a non-empty list of job id strings")
        claims["jobs"] = ids
    else:
        claims["all"] = True
    payload = json.dumps(claims, separators=(",", ":")).encode("utf-8")
    signing_input = _b64url(_HEADER) + "." + _b64url(payload)
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64url(signature)


def _all_strings(values: Iterable[Any]) -> bool:
    return all(isinstance(v, str) and v for v in values)
