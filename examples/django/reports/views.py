"""The reports page: each user's jobs live from Herald, started by "Generate report".

The view submits with the server's submitter token (never sent to a browser), the
user as `owner`, and an idempotency key the page was rendered with, so a double
submit starts one job. The browser gets a short-lived read token for its own owner
in the HttpOnly `herald_token` cookie and watches all its jobs on one connection.
"""

from __future__ import annotations

import datetime
import re
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

import herald

KIND = "report"
COOKIE = "herald_token"
KEY_RE = re.compile(r"[0-9a-f]{32}")
MONTH_RE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")

_client: herald.Herald | None = None


def client() -> herald.Herald:
    """One client for the process: it holds no connection between calls."""
    global _client
    if _client is None:
        _client = herald.Herald(settings.HERALD_URL, token=settings.HERALD_SUBMIT_TOKEN)
    return _client


def owner_of(user) -> str:
    """The Herald owner of a Django user: stable (the primary key), and within owner's alphabet."""
    return f"user-{user.pk}"


def set_read_token(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """A read token for the user's own jobs, as the cookie Herald reads (only sent to /jobs)."""
    if not settings.HERALD_READ_TOKEN_SECRET_FILE:
        raise ImproperlyConfigured("HERALD_READ_TOKEN_SECRET_FILE is not set: name the file Herald's "
                                   "read_token_secret_file names")
    ttl = settings.HERALD_READ_TOKEN_TTL
    token = herald.read_token(herald.load_secret(settings.HERALD_READ_TOKEN_SECRET_FILE),
                              owner=owner_of(request.user), ttl=ttl)
    response.set_cookie(COOKIE, token, max_age=ttl, path=client().prefix, httponly=True,
                        samesite="Lax", secure=request.is_secure())
    return response


def recent_months(count: int = 6) -> list:
    day = datetime.date.today().replace(day=1)
    months = []
    for _ in range(count):
        months.append(day.strftime("%Y-%m"))
        day = (day - datetime.timedelta(days=1)).replace(day=1)
    return months


@require_GET
@login_required
def reports(request: HttpRequest) -> HttpResponse:
    jobs: list = []
    try:
        jobs = client().jobs(kind=KIND, owner=owner_of(request.user), limit=20)
    except herald.HeraldError as e:
        messages.error(request, f"Herald did not answer the job list: {e.message}")
    context = {"jobs": jobs, "months": recent_months(), "idempotency_key": uuid.uuid4().hex,
               "herald_prefix": client().prefix}
    return set_read_token(request, render(request, "reports/index.html", context))


@require_POST
@login_required
def generate(request: HttpRequest) -> HttpResponse:
    key = request.POST.get("idempotency_key", "")
    month = request.POST.get("month", "")
    if not KEY_RE.fullmatch(key):
        return HttpResponseBadRequest("idempotency_key must be the 32 hex digits the form was rendered with\n")
    if not MONTH_RE.fullmatch(month):
        return HttpResponseBadRequest("month must be YYYY-MM\n")
    owner = owner_of(request.user)
    try:
        # The key is scoped per user here, Herald scopes it per submitter token (this site).
        client().submit(KIND, {"month": month}, owner=owner, idempotency_key=f"{owner}:{key}")
    except herald.HeraldError as e:
        messages.error(request, f"Could not start the report: {e.message} ({e.code})")
    return redirect("reports")


@require_POST
@login_required
def token(request: HttpRequest) -> HttpResponse:
    """A fresh read token cookie: herald.js asks before it reconnects, so an expired token is renewed."""
    return set_read_token(request, HttpResponse(status=204))


class LogoutView(auth_views.LogoutView):
    """Django's logout, which also forgets the read token."""

    def post(self, request, *args, **kwargs):
        response = super().post(request, *args, **kwargs)
        response.delete_cookie(COOKIE, path=client().prefix, samesite="Lax")
        return response
