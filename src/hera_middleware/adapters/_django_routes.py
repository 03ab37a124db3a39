"""Django's URL resolver as a route table: view names -> path templates.

Each ``path()`` / ``re_path()`` of the URLconf becomes a path template under its
view name as ``resolver_match.view_name`` spells it (namespaces joined with ``:``,
the view's dotted path for unnamed patterns). Converters map one to one; a pattern
that has no template equivalent (most regexes, ``<path:p>`` before the last segment,
custom converters, translated routes) is listed with the reason instead, so a rule
naming it fails at load with a hint to use ``match:``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..matching import compile_template
from ._routes import RouteTable

__all__ = ["DjangoRoutes", "django_routes", "func_path"]

_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# Converter regexes (Django's own, and their usual spellings in re_path) -> template converter.
_BY_REGEX = {
    "[0-9]+": "int",
    r"\d+": "int",
    "[^/]+": "str",
    "[-a-zA-Z0-9_]+": "slug",
    "[a-zA-Z0-9_-]+": "slug",
    _UUID: "uuid",
    ".+": "path",
    ".*": "path",
}
_ROUTE_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<parameter>[^>]+)>")
_GROUP = re.compile(r"\(\?P<([A-Za-z_][A-Za-z0-9_]*)>([^()]*)\)")
_META = frozenset(".^$*+?{}[]\\|()")
_TEMPLATE_SYNTAX = frozenset("{}<>")


@dataclass(frozen=True)
class DjangoRoutes:
    """The route table, and the view names whose patterns have no template (with why)."""

    table: RouteTable
    unconvertible: dict[str, str]


class _NoTemplate(Exception):
    """A URL pattern with no path-template equivalent; the message says why."""


def django_routes(urlconf: str | None = None) -> DjangoRoutes:
    """Build the route table of ``urlconf`` (default ``settings.ROOT_URLCONF``)."""
    from django.urls import get_resolver

    table: RouteTable = {}
    unconvertible: dict[str, str] = {}
    _walk(get_resolver(urlconf).url_patterns, [""], None, (), table, unconvertible)
    for name in unconvertible:
        table.pop(name, None)  # half a route would silently miss the other half
    return DjangoRoutes(table, unconvertible)


def func_path(view: Any) -> str:
    """A view's dotted path, as Django's ResolverMatch names unnamed patterns."""
    view = getattr(view, "view_class", view)
    if not hasattr(view, "__name__"):
        return f"{type(view).__module__}.{type(view).__name__}"
    return f"{view.__module__}.{view.__name__}"


def _walk(
    patterns: Iterable[Any],
    prefixes: list[str],
    broken: str | None,
    namespaces: tuple[str, ...],
    table: RouteTable,
    unconvertible: dict[str, str],
) -> None:
    from django.urls import URLPattern, URLResolver

    for entry in patterns:
        reason = broken
        fragments: list[str] = []
        if reason is None:
            try:
                fragments = _fragments(entry.pattern, endpoint=isinstance(entry, URLPattern))
            except _NoTemplate as exc:
                reason = str(exc)
        joined = [p + f for p in prefixes for f in fragments]
        if isinstance(entry, URLResolver):
            inner = (*namespaces, entry.namespace) if entry.namespace else namespaces
            _walk(entry.url_patterns, joined, reason, inner, table, unconvertible)
            continue
        if not isinstance(entry, URLPattern):
            continue
        name = ":".join((*namespaces, entry.name or func_path(entry.callback)))
        if reason is None:
            try:
                # Locale prefixes are plain literals: checking one variant checks them all.
                compile_template("/" + joined[0])
            except ValueError as exc:
                reason = str(exc)
        if reason is not None:
            unconvertible.setdefault(name, reason)
            continue
        entries = table.setdefault(name, [])
        entries.extend((None, "/" + path) for path in joined)


def _fragments(pattern: Any, *, endpoint: bool) -> list[str]:
    """The template fragments (alternatives) one pattern matches."""
    from django.urls.resolvers import LocalePrefixPattern, RegexPattern, RoutePattern

    if isinstance(pattern, RoutePattern):
        return [_route_fragment(pattern)]
    if isinstance(pattern, RegexPattern):
        return [_regex_fragment(pattern._regex, endpoint=endpoint)]  # type: ignore[attr-defined]
    if isinstance(pattern, LocalePrefixPattern):
        return _locale_fragments(pattern)
    raise _NoTemplate(f"a {type(pattern).__name__} pattern has no path template")


def _literal(text: str, whole: str) -> str:
    if _TEMPLATE_SYNTAX.intersection(text):
        raise _NoTemplate(f"the route {whole!r} has a literal brace or angle bracket")
    return text


def _route_fragment(pattern: Any) -> str:
    route = pattern._route
    if not isinstance(route, str):
        raise _NoTemplate("a translated route (gettext_lazy) differs per language")
    out: list[str] = []
    end = 0
    for m in _ROUTE_PARAM.finditer(route):
        out.append(_literal(route[end : m.start()], route))
        name = m.group("parameter")
        converter = pattern.converters.get(name)
        kind = _BY_REGEX.get(getattr(converter, "regex", ""))
        if kind is None:
            raise _NoTemplate(
                f"the converter {m.group('converter')!r} of {route!r} is no built-in"
                " (int, str, slug, uuid, path)"
            )
        out.append(f"{{{name}:{kind}}}")
        end = m.end()
    out.append(_literal(route[end:], route))
    return "".join(out)


def _regex_fragment(regex: Any, *, endpoint: bool) -> str:
    """The template of a simple regex: ``^`` literals and named groups of known classes ``$``."""
    if not isinstance(regex, str):
        raise _NoTemplate("a translated regex (gettext_lazy) differs per language")
    if not regex.startswith("^"):
        raise _NoTemplate(f"the regex '{regex}' does not start with '^' (it matches anywhere)")
    body = regex[1:]
    if body.endswith(r"\Z"):
        body, anchored = body[:-2], True
    elif body.endswith("$") and not body.endswith(r"\$"):
        body, anchored = body[:-1], True
    else:
        anchored = False
    if endpoint and not anchored:
        raise _NoTemplate(f"the regex '{regex}' does not end with '$' (it matches any longer path)")
    if not endpoint and anchored:
        raise _NoTemplate(f"the include() regex '{regex}' ends with '$'")
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "(":
            m = _GROUP.match(body, i)
            kind = _BY_REGEX.get(m.group(2)) if m else None
            if m is None or kind is None or body[m.end() : m.end() + 1] in ("*", "+", "?", "{"):
                raise _NoTemplate(
                    f"the regex '{regex}' has a group other than a named group of digits,"
                    " [^/]+, a slug, a uuid or .+"
                )
            out.append(f"{{{m.group(1)}:{kind}}}")
            i = m.end()
            continue
        if c == "\\" and i + 1 < len(body) and not body[i + 1].isalnum():
            c = body[i + 1]
            i += 1
        elif c in _META:
            raise _NoTemplate(f"the regex '{regex}' uses {c!r}, which no path template can say")
        if c in _TEMPLATE_SYNTAX:
            raise _NoTemplate(f"the regex '{regex}' has a literal brace or angle bracket")
        out.append(c)
        i += 1
    return "".join(out)


def _locale_fragments(pattern: Any) -> list[str]:
    """``i18n_patterns``: one prefix per language of ``settings.LANGUAGES``."""
    from django.conf import settings

    out: list[str] = []
    for code, _name in settings.LANGUAGES:
        if code == settings.LANGUAGE_CODE and not pattern.prefix_default_language:
            out.append("")
        else:
            out.append(_literal(f"{code}/", code))
    if not out:
        raise _NoTemplate("settings.LANGUAGES is empty")
    return out
