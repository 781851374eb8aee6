"""Settings of the Herald example site, all from the environment (scripts/herald_stack.py sets them).

    HERALD_URL                     where the server side reaches Herald (the site root; same nginx)
    HERALD_SUBMIT_TOKEN_FILE       the submitter token (one line), never sent to browsers
    HERALD_READ_TOKEN_SECRET_FILE  the secret Herald checks read tokens with (read_token_secret_file)
    HERALD_READ_TOKEN_TTL          seconds a browser's read token lives (default 600)
    DJANGO_SECRET_KEY, DJANGO_DEBUG, DJANGO_ALLOWED_HOSTS, DJANGO_DB_PATH
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _secret(name: str) -> str:
    path = os.environ.get(name)
    if not path:
        return ""
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or "insecure-example-key-" + "x" * 40
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "reports",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "reportsite.urls"
WSGI_APPLICATION = "reportsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB_PATH") or str(BASE_DIR / "db.sqlite3"),
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "reports"
LOGOUT_REDIRECT_URL = "login"

# nginx in front says whether the browser came over TLS (then cookies get Secure).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = os.environ.get("DJANGO_HTTPS", "") == "1"

HERALD_URL = os.environ.get("HERALD_URL", "http://127.0.0.1:8080")
HERALD_SUBMIT_TOKEN = _secret("HERALD_SUBMIT_TOKEN_FILE") or None
HERALD_READ_TOKEN_SECRET_FILE = os.environ.get("HERALD_READ_TOKEN_SECRET_FILE", "")
HERALD_READ_TOKEN_TTL = int(os.environ.get("HERALD_READ_TOKEN_TTL", "600"))

LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
}
