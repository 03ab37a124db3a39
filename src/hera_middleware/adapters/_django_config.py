"""The Django adapter's configuration: ``settings.HERA_*``, the engine, the system check."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from ..errors import HeraConfigError, Problem
from ..rules.loader import load_rules
from ._django_routes import DjangoRoutes, django_routes
from ._engine import Engine

__all__ = ["SETTINGS", "build_engine", "check_settings"]

#: The settings the middleware reads (each also an environment variable, which wins).
SETTINGS = (
    "HERA_RULES",
    "HERA_DOMAIN",
    "HERA_OUTPUT",
    "HERA_ON_FULL",
    "HERA_MAX_REQUEST_BODY",
    "HERA_MAX_RESPONSE_BODY",
)
_ORIGIN = "Django settings"


def _settings() -> dict[str, Any]:
    return {name: getattr(settings, name) for name in SETTINGS if hasattr(settings, name)}


def build_engine() -> Engine:
    """The engine ``settings.HERA_*`` (and ``HERA_*`` in the environment) describe.

    Raises HeraConfigError with every problem, located in its rule file.
    """
    framework = _settings()
    source = os.environ.get("HERA_RULES") or framework.get("HERA_RULES")
    if not source:
        raise HeraConfigError(
            [
                Problem(
                    f"<{_ORIGIN}>",
                    1,
                    1,
                    "missing-rules",
                    "HeraEventsMiddleware has no rules",
                    "set HERA_RULES in settings (a rule file path, 'preset:<name>' or a list"
                    " of them)",
                )
            ]
        )
    rules = load_rules(source)
    routes = DjangoRoutes({}, {})
    if any(rule.route for rule in rules.rules):
        routes = django_routes()
    try:
        return Engine(rules, {}, (routes.table, {}), framework, _ORIGIN)
    except HeraConfigError as exc:
        raise _explain_unconvertible(exc, routes.unconvertible) from None


def _explain_unconvertible(
    exc: HeraConfigError, unconvertible: Mapping[str, str]
) -> HeraConfigError:
    """Say why a route that exists has no template, instead of "no route named"."""
    if not unconvertible:
        return exc
    problems: list[Problem] = []
    for p in exc.problems:
        name = _unknown_route(p, unconvertible)
        if name is not None:
            p = Problem(
                p.file,
                p.line,
                p.col,
                "route-not-convertible",
                f"the URL pattern of {name!r} has no path template: {unconvertible[name]}",
                "write `match: METHOD /path/{param}` for it instead",
                p.keys,
            )
        problems.append(p)
    return HeraConfigError(problems)


def _unknown_route(problem: Problem, names: Mapping[str, str]) -> str | None:
    if problem.code != "unknown-route":
        return None
    for name in names:
        if problem.message.endswith(f" {name!r}"):
            return name
    return None


def _in_middleware() -> bool:
    from .django import HeraEventsMiddleware

    for entry in getattr(settings, "MIDDLEWARE", None) or ():
        try:
            cls = import_string(entry)
        except Exception:  # Django reports broken entries itself
            continue
        if isinstance(cls, type) and issubclass(cls, HeraEventsMiddleware):
            return True
    return False


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Django system check: the rules and options the middleware would load are valid.

    Registered by the ``hera_middleware.django`` app; runs when HeraEventsMiddleware is
    in ``MIDDLEWARE`` or ``HERA_RULES`` is set. One error per problem, each
    ``file:line:col: code: message``.
    """
    if not (_in_middleware() or getattr(settings, "HERA_RULES", None)):
        return []
    try:
        build_engine()
    except HeraConfigError as exc:
        return [
            checks.Error(
                f"{p.file}:{p.line}:{p.col}: {p.code}: {p.message}",
                hint=p.hint,
                id="hera_middleware.E001",
            )
            for p in exc.problems
        ]
    except Exception:  # a broken URLconf: Django's own URL checks report it
        return []
    return []
