"""Herald's Python client.

    from herald import Herald, HeraldError, read_token, progress

    h = Herald("https://example.com", token=SUBMIT_TOKEN)
    job = h.submit("report", {"month": "2026-11"}, owner="user-42", idempotency_key=key)
    final = h.wait(job["id"], on_status=lambda j: print(j["progress"]))

    token = read_token(SECRET, owner="user-42", ttl=600)   # for the herald_token cookie

    # in a job program run by herald-runner:
    progress(42, "rendering page 4")
"""

from .client import TERMINAL, Herald, Job
from .errors import HeraldError
from .reporting import progress
from .sse import Event, SSEParser
from .tokens import load_secret, read_token

__all__ = ["Herald", "HeraldError", "Job", "TERMINAL", "read_token", "load_secret", "progress", "SSEParser", "Event"]
__version__ = "0.1.0"
