"""Read route names and path templates from what a framework exposes."""

from __future__ import annotations

import re
from typing import Any

from ..matching import compile_template

__all__ = ["RouteTable", "starlette_routes", "werkzeug_routes"]

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


# A Werkzeug rule variable: <name>, <converter:name>, <converter(args):name>.
_WERKZEUG_VARIABLE = re.compile(
    r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\((?P<args>.*?)\))?:)?"
    r"(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>"
)
# Werkzeug converters our templates have too; any other matches one segment or more.
_SAME_CONVERTERS = frozenset({"int", "float", "uuid", "path"})


def _werkzeug_template(rule: str, converters: Any) -> str:
    """A Werkzeug rule as a path template matching at least what the rule matches.

    Converters with arguments (``int(signed=True)``, ``any(a, b)``) and custom ones
    become ``str`` (or ``path`` when they can match a slash); the router's own
    decision (the endpoint) is checked again when the rules are evaluated.
    """

    def convert(m: re.Match[str]) -> str:
        converter, args, name = m.group("converter"), m.group("args"), m.group("name")
        if converter in _SAME_CONVERTERS and (args is None or converter == "path"):
            return f"<{converter}:{name}>"
        cls = converters.get(converter) if converter else None
        if cls is not None and not getattr(cls, "part_isolating", True):
            return f"<path:{name}>"
        return f"<{name}>"

    template = _WERKZEUG_VARIABLE.sub(convert, rule)
    try:
        compile_template(template)
    except ValueError:
        # A slash-matching variable before the last segment: match the whole rest.
        parts = template.split("/")
        first = next(i for i, part in enumerate(parts) if "<path:" in part)
        template = "/".join(parts[:first]) + "/<path:_hera_rest>"
    return template


def werkzeug_routes(url_map: Any) -> tuple[RouteTable, dict[int, str]]:
    """The route table of a Werkzeug ``Map`` (Flask's ``app.url_map``): endpoint -> rules.

    Flask's automatic OPTIONS answers are no requests to the endpoint, so they are
    left out; HEAD stays with GET (as Starlette routes have it).
    """
    table: RouteTable = {}
    converters = getattr(url_map, "converters", {})
    for rule in url_map.iter_rules():
        if getattr(rule, "build_only", False) or not isinstance(rule.endpoint, str):
            continue
        methods = None if rule.methods is None else set(rule.methods)
        if methods is not None and getattr(rule, "provide_automatic_options", False):
            methods.discard("OPTIONS")
        entry = (
            None if methods is None else frozenset(methods),
            _werkzeug_template(rule.rule, converters),
        )
        table.setdefault(rule.endpoint, []).append(entry)
    return table, {}
