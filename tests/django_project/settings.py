"""Settings of the test project (also used by the uvicorn subprocess tests).

``DJANGO_PROJECT_MIDDLEWARE=0`` leaves HeraEventsMiddleware out (and ``=route`` puts
HeraRouteMiddleware in its place), for the tests that wrap Django's whole ASGI
application instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

SECRET_KEY = "django-project-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "django_project.urls"
USE_TZ = True
DATABASES: dict[str, Any] = {}
INSTALLED_APPS = ["hera_middleware.django"]
MIDDLEWARE = {
    "0": [],
    "route": ["hera_middleware.django.HeraRouteMiddleware"],
}.get(
    os.environ.get("DJANGO_PROJECT_MIDDLEWARE", ""),
    ["hera_middleware.django.HeraEventsMiddleware"],
)
HERA_RULES = str(HERE / "hera.yaml")


def discard(event: dict[str, Any]) -> None:
    """The output of the in-process tests, which capture events instead."""


HERA_OUTPUT = discard  # the server tests set HERA_OUTPUT=file:... in the environment
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("de", "German")]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django.request": {"level": "CRITICAL"}},
}
