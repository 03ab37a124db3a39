"""Route tables and route facts of framework apps wrapped whole by the ASGI/WSGI middleware.

Starlette and FastAPI leave the matched route in the scope; Django's handlers leave
nothing the middleware can see, so for them the route table comes from the URLconf
and the route of an exchange from ``django.urls.resolve`` on its app-relative path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ._routes import RouteTable, starlette_routes

__all__ = ["RouteResolver", "wrapped_routes"]

#: path -> (view name, captured kwargs), or None when the path resolves to no view.
RouteResolver = Callable[[str], "tuple[str, dict[str, Any]] | None"]


def _is_django_handler(app: Any) -> bool:
    if "django" not in sys.modules:  # nothing Django can be wrapped before Django is imported
        return False
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler

    return isinstance(app, (ASGIHandler, WSGIHandler))


def _resolve(path: str) -> tuple[str, dict[str, Any]] | None:
    from django.urls import Resolver404, resolve

    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match.view_name, dict(match.kwargs)


def wrapped_routes(
    app: Any,
) -> tuple[tuple[RouteTable, dict[int, str]] | None, RouteResolver | None]:
    """The route table found in ``app`` and, for Django, how to resolve one path."""
    found = starlette_routes(app)
    if found is not None:
        return found, None
    if _is_django_handler(app):
        from ._django_routes import django_routes

        return (django_routes().table, {}), _resolve
    return None, None
