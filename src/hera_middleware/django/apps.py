"""The ``hera_middleware.django`` app: a system check for the rule file and options."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks

from ..adapters._django_config import check_settings


class HeraConfig(AppConfig):
    """Registers the check that makes ``manage.py check`` (and runserver) fail on bad rules."""

    name = "hera_middleware.django"
    label = "hera_middleware"
    verbose_name = "hera-middleware"

    def ready(self) -> None:
        checks.register(check_settings)
