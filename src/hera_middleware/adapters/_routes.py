"""Read route names and path templates from what a framework exposes."""

from __future__ import annotations

from typing import Any

__all__ = ["RouteTable", "starlette_routes"]

# name -> [(methods or None, path template)]
RouteTable = dict[str, list[tuple[frozenset[str] | None, str]]]


def _collect(
    routes: Any, prefix: str, scope: str, table: RouteTable, names: dict[int, str]
) -> None:
    for route in routes:
        path = getattr(route, "path", None)
        if not isinstance(path, str):
            continue
        name = getattr(route, "name", None)
        children = getattr(route, "routes", None)
        if getattr(route, "endpoint", None) is None and children is not None:
            inner = f"{scope}{name}:" if name else scope
            _collect(children, prefix + path.rstrip("/"), inner, table, names)
            continue
        methods = getattr(route, "methods", None)
        if methods is None or not name:
            continue  # websocket routes and unnamed routes
        full = f"{scope}{name}"
        table.setdefault(full, []).append((frozenset(methods), prefix + path))
        # Routers leave the route object (Starlette 1.x, FastAPI) or the endpoint in the
        # scope; both map to the qualified name ("mount:name").
        names.setdefault(id(route), full)
        endpoint = getattr(route, "endpoint", None)
        if endpoint is not None:
            names.setdefault(id(endpoint), full)


def _is_router(obj: Any) -> bool:
    try:
        from starlette.routing import Router
    except ImportError:  # no Starlette installed: no Starlette router either
        return False
    return isinstance(obj, Router)


def starlette_routes(app: Any) -> tuple[RouteTable, dict[int, str]] | None:
    """The route table of a Starlette/FastAPI app found inside ``app``, or None.

    Follows ``.app`` through middleware (at most 32 levels) to a router.
    """
    obj = app
    for _ in range(32):
        if obj is None:
            break
        router = getattr(obj, "router", None)
        routes = getattr(router, "routes", None) if router is not None else None
        if routes is None and _is_router(obj):
            routes = getattr(obj, "routes", None)
        if isinstance(routes, list):
            table: RouteTable = {}
            names: dict[int, str] = {}
            _collect(routes, "", "", table, names)
            return table, names
        obj = getattr(obj, "app", None)
    return None
