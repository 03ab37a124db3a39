"""ASGI entry point: Django without the Django middleware, wrapped by HeraEvents."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "allauth_project.settings")
os.environ["ALLAUTH_HERA"] = "wrapped"

from django.core.asgi import get_asgi_application

from hera_middleware import HeraEvents

application = HeraEvents(get_asgi_application(), rules="preset:django-allauth")
