"""hera-middleware for Django: a middleware for ``settings.MIDDLEWARE``.

::

    INSTALLED_APPS = [..., "hera_middleware.django"]   # optional: `manage.py check`
    MIDDLEWARE = [..., "hera_middleware.django.HeraEventsMiddleware"]
    HERA_RULES = BASE_DIR / "hera.yaml"

Settings: ``HERA_RULES``, ``HERA_DOMAIN``, ``HERA_OUTPUT``, ``HERA_ON_FULL``,
``HERA_MAX_REQUEST_BODY``, ``HERA_MAX_RESPONSE_BODY`` (the environment variables of
the same names win). Django's WSGI and ASGI applications can also be wrapped whole
with :class:`hera_middleware.HeraEventsWSGI` and :class:`hera_middleware.HeraEvents`
(``match:`` rules); under ASGI, :class:`HeraRouteMiddleware` in ``MIDDLEWARE`` gives
the wrapper the ``route`` fact and path parameters.
"""

from __future__ import annotations

from ..adapters.django import HeraEventsMiddleware, HeraRouteMiddleware

__all__ = ["HeraEventsMiddleware", "HeraRouteMiddleware"]
