"""Django's WSGI application; ``DOT_HERA=wrapped`` puts HeraEventsWSGI around it whole."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from hera_middleware import HeraEventsWSGI

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dot_project.settings")

application = get_wsgi_application()
if os.environ.get("DOT_HERA") == "wrapped":
    application = HeraEventsWSGI(application, rules="preset:django-oauth-toolkit")
