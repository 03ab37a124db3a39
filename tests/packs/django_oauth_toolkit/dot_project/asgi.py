"""Django's ASGI application; ``DOT_HERA=wrapped`` puts HeraEvents around it whole."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from hera_middleware import HeraEvents

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dot_project.settings")

application = get_asgi_application()
if os.environ.get("DOT_HERA") == "wrapped":
    application = HeraEvents(application, rules="preset:django-oauth-toolkit")
