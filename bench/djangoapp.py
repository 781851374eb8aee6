"""The classic Django SSE recipe Herald replaces, in one module (settings, views, apps).

A view returns a StreamingHttpResponse whose generator polls Django's cache every
100 ms for the task's status (a Celery-style task writes it there) and sends it when
its seq changed. `wsgi` runs under gunicorn (sync or gthread workers), `asgi` (an async
generator view, awaiting cache.aget) under uvicorn. The cache is Redis through
django-redis (BENCH_REDIS, a redis:// or unix:// URL).
"""
import asyncio
import json
import os
import time

# Settings live in this module (DJANGO_SETTINGS_MODULE=djangoapp).
DEBUG = False
SECRET_KEY = "herald-bench"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
MIDDLEWARE = []
INSTALLED_APPS = []
USE_TZ = True
CACHES = {"default": {
    "BACKEND": "django_redis.cache.RedisCache",
    "LOCATION": os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0"),
    "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
}}
os.environ.setdefault("DJANGO_SETTINGS_MODULE", __name__)

from django.core.cache import cache  # noqa: E402
from django.http import StreamingHttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

POLL = 0.1
TERMINAL = ("succeeded", "failed", "canceled")


def _event(raw: str, last):
    job = json.loads(raw)
    if job["seq"] == last:
        return None, last, False
    text = f"event: status\nid: {job['seq']}\ndata: {raw}\n\n"
    return text, job["seq"], job["state"] in TERMINAL


def _response(gen):
    r = StreamingHttpResponse(gen, content_type="text/event-stream; charset=utf-8")
    r["Cache-Control"] = "no-store"
    r["X-Accel-Buffering"] = "no"
    return r


def events(request, key):
    def gen():
        yield "retry: 3000\n\n"
        last = None
        while True:
            raw = cache.get("job:" + key)
            if raw is not None:
                text, last, done = _event(raw, last)
                if text:
                    yield text
                if done:
                    yield 'event: end\ndata: {}\n\n'
                    return
            time.sleep(POLL)
    return _response(gen())


async def aevents(request, key):
    async def gen():
        yield "retry: 3000\n\n"
        last = None
        while True:
            raw = await cache.aget("job:" + key)
            if raw is not None:
                text, last, done = _event(raw, last)
                if text:
                    yield text
                if done:
                    yield 'event: end\ndata: {}\n\n'
                    return
            await asyncio.sleep(POLL)
    return _response(gen())


urlpatterns = [
    path("dj/sync/<str:key>/events", events),
    path("dj/async/<str:key>/events", aevents),
]

from django.core.asgi import get_asgi_application  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

wsgi = get_wsgi_application()
asgi = get_asgi_application()
