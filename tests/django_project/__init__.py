"""A small Django project that the Django adapter tests run for real."""

from __future__ import annotations


def setup() -> None:
    """Configure Django in this process with the project's settings (once)."""
    import django
    from django.conf import settings

    from . import settings as project

    if not settings.configured:
        settings.configure(
            **{name: getattr(project, name) for name in dir(project) if name.isupper()}
        )
    django.setup()
