"""Settings of the DOT test project, read from the environment of its server process.

- ``DOT_DB``: the sqlite file (each test server has its own, or shares one on purpose).
- ``DOT_PKCE_REQUIRED``: ``1`` (DOT's default) or ``0``.
- ``DOT_PKCE_S256_ONLY``: ``1`` sets ``COMPLIANT_BCP_RFC9700_PKCE_METHOD`` (DOT 3.4+),
  which refuses the ``plain`` method.
- ``DOT_HERA``: ``middleware`` (HeraEventsMiddleware in ``MIDDLEWARE``, the pack from
  ``HERA_RULES``) or ``wrapped`` (none here: ``wsgi.py``/``asgi.py`` wrap the whole app).
- ``DOT_LANGUAGE``: ``LANGUAGE_CODE`` (``LocaleMiddleware`` follows ``Accept-Language``).
- ``HERA_OUTPUT`` (the middleware's own variable): where the events go.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

SECRET_KEY = "dot-project-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "dot_project.urls"
USE_TZ = True
USE_I18N = True
LANGUAGE_CODE = os.environ.get("DOT_LANGUAGE", "en-us")
LANGUAGES = [("en", "English"), ("de", "German")]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
DATABASES: dict[str, Any] = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["DOT_DB"]}
}
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "oauth2_provider",
    "hera_middleware.django",
]
_HERA = ["hera_middleware.django.HeraEventsMiddleware"]
MIDDLEWARE = [
    *(_HERA if os.environ.get("DOT_HERA", "middleware") == "middleware" else []),
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
HERA_RULES = "preset:django-oauth-toolkit"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [HERE / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
LOGIN_URL = "login"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins

OAUTH2_PROVIDER: dict[str, Any] = {
    "PKCE_REQUIRED": os.environ.get("DOT_PKCE_REQUIRED", "1") == "1",
    "SCOPES": {"read": "Reading scope"},
}
if os.environ.get("DOT_PKCE_S256_ONLY") == "1":
    OAUTH2_PROVIDER["COMPLIANT_BCP_RFC9700_PKCE_METHOD"] = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "django.request": {"level": "CRITICAL"},
        "oauth2_provider": {"level": "CRITICAL"},
    },
}
