"""WSGI entry point: Django with HeraEventsMiddleware from the settings."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "allauth_project.settings")

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
