"""Django's ASGI application wrapped whole in hera_middleware.HeraEvents."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from hera_middleware import HeraEvents

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")

application = HeraEvents(get_asgi_application(), rules=os.environ["WRAP_RULES"])
