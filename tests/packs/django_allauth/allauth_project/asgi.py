"""ASGI entry point: Django with HeraEventsMiddleware from the settings."""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "allauth_project.settings")

from django.core.asgi import get_asgi_application

application = get_asgi_application()
