"""WSGI entry point: Django without the Django middleware, wrapped by HeraEventsWSGI."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "allauth_project.settings")
os.environ["ALLAUTH_HERA"] = "wrapped"

from django.core.wsgi import get_wsgi_application

from hera_middleware import HeraEventsWSGI

application = HeraEventsWSGI(get_wsgi_application(), rules="preset:django-allauth")
