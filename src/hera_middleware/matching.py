"""The compiled rule set: candidate rules by method and path, then evaluation.

Path templates are compiled once into a segment trie, so finding the candidates of a
request is a dict lookup per path segment however many rules there are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._diagnostics import internal_error
from .exchange import Exchange
from .rules.model import CompiledRule

__all__ = ["Candidates", "RuleSet", "Template", "compile_template"]

_PARAM = re.compile(
    r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}|<(?:([A-Za-z_]+):)?([A-Za-z_][A-Za-z0-9_]*)>"
)
_CONVERTERS = {
    "str": r"[^/]+",
    "string": r"[^/]+",
    "int": r"[0-9]+",
    "float": r"[0-9]+(?:\.[0-9]+)?",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "slug": r"[-a-zA-Z0-9_]+",
    "path": r".*",
}


@dataclass(frozen=True)
class _Segment:
    static: str | None
    pattern: re.Pattern[str] | None = None
    rest: str | None = None  # name of a {x:path} parameter consuming the rest


@dataclass(frozen=True)
class Template:
    """A compiled path template such as ``/login/{provider}/callback``."""

    text: str
    segments: tuple[_Segment, ...]
    names: tuple[str, ...]


def compile_template(text: str) -> Template:
    """Compile a path template; raise ValueError saying what is wrong."""
    if not text.startswith("/"):
        raise ValueError(f"the path {text!r} must start with '/'")
    parts = text[1:].split("/")
    segments: list[_Segment] = []
    names: list[str] = []
    if "?" in text or "#" in text:
        raise ValueError(f"the path {text!r} has a query or fragment; test query.NAME in `if:`")
    for i, part in enumerate(parts):
        if part in (".", "..") or (not part and i < len(parts) - 1):
            raise ValueError(f"the path {text!r} has an empty, '.' or '..' segment")
        pieces: list[str] = []
        literals: list[str] = []
        pos = 0
        rest_name: str | None = None
        for m in _PARAM.finditer(part):
            name = m.group(1) or m.group(4)
            converter = (m.group(2) or m.group(3) or "str").lower()
            if converter not in _CONVERTERS:
                raise ValueError(
                    f"unknown converter {converter!r} in {text!r}; converters are "
                    + ", ".join(sorted(_CONVERTERS))
                )
            if name in names:
                raise ValueError(f"the parameter {name!r} appears twice in {text!r}")
            names.append(name)
            if converter == "path":
                if i != len(parts) - 1 or m.start() != 0 or m.end() != len(part):
                    raise ValueError(f"a path parameter must be the whole last segment: {text!r}")
                rest_name = name
            literals.append(part[pos : m.start()])
            pieces.append(re.escape(part[pos : m.start()]))
            pieces.append(f"(?P<{name}>{_CONVERTERS[converter]})")
            pos = m.end()
        literals.append(part[pos:])
        if any(c in lit for lit in literals for c in "{}<>"):
            raise ValueError(f"unbalanced braces in {text!r}")
        if rest_name is not None:
            segments.append(_Segment(None, rest=rest_name))
        elif not pieces:
            segments.append(_Segment(part))
        else:
            pieces.append(re.escape(part[pos:]))
            segments.append(_Segment(None, re.compile("".join(pieces))))
    return Template(text, tuple(segments), tuple(names))


@dataclass(eq=False)
class _Node:
    static: dict[str, _Node] = field(default_factory=dict)
    dynamic: list[tuple[re.Pattern[str], _Node]] = field(default_factory=list)
    rest: list[tuple[str, int]] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)

    def insert(self, segments: Sequence[_Segment], rule: int) -> None:
        node = self
        for seg in segments:
            if seg.rest is not None:
                node.rest.append((seg.rest, rule))
                return
            if seg.static is not None:
                node = node.static.setdefault(seg.static, _Node())
            else:
                assert seg.pattern is not None
                for pattern, child in node.dynamic:
                    if pattern.pattern == seg.pattern.pattern:
                        node = child
                        break
                else:
                    child = _Node()
                    node.dynamic.append((seg.pattern, child))
                    node = child
        node.entries.append(rule)

    def lookup(
        self,
        parts: list[str],
        i: int,
        params: dict[str, str],
        out: list[tuple[int, dict[str, str]]],
    ) -> None:
        for name, rule in self.rest:
            out.append((rule, {**params, name: "/".join(parts[i:])}))
        if i == len(parts):
            out.extend((rule, params) for rule in self.entries)
            return
        part = parts[i]
        child = self.static.get(part)
        if child is not None:
            child.lookup(parts, i + 1, params, out)
        for pattern, node in self.dynamic:
            m = pattern.fullmatch(part)
            if m is not None:
                node.lookup(parts, i + 1, {**params, **m.groupdict()}, out)


@dataclass(frozen=True, eq=False)
class Candidates:
    """The rules that may fire for one request, in rule order, and what they need."""

    matches: tuple[tuple[CompiledRule, dict[str, str]], ...]
    request_body: bool
    response_body: bool


def _candidates(
    rules: Sequence[CompiledRule], found: Iterable[tuple[int, dict[str, str]]]
) -> Candidates | None:
    # A rule whose templates overlap is found once; the hit with most params wins.
    best: dict[int, dict[str, str]] = {}
    for i, params in found:
        if i not in best or len(params) > len(best[i]):
            best[i] = params
    matches = tuple((rules[i], best[i]) for i in sorted(best))
    if not matches:
        return None
    return Candidates(
        matches,
        request_body=any(r.request_body for r, _ in matches),
        response_body=any(r.response_body for r, _ in matches),
    )


class RuleSet:
    """Rules indexed by method and path template.

    ``templates_of(rule)`` gives each rule's ``(methods, path template)`` pairs (from
    ``match:``, or from the framework's route table for ``route:`` rules); ``None``
    methods means any method.
    """

    def __init__(
        self,
        rules: Sequence[CompiledRule],
        templates_of: Callable[[CompiledRule], Sequence[tuple[frozenset[str] | None, str]]],
    ) -> None:
        self.rules = tuple(rules)
        self._pos = {id(rule): i for i, rule in enumerate(self.rules)}
        self._tries: dict[str, _Node] = {}
        by_method: dict[tuple[str, str], list[int]] = {}
        any_method: dict[str, list[int]] = {}
        for i, rule in enumerate(self.rules):
            for methods, text in templates_of(rule):
                template = compile_template(text)
                if all(s.static is not None for s in template.segments):
                    if methods is None:
                        any_method.setdefault(text, []).append(i)
                    for method in methods or ():
                        by_method.setdefault((method, text), []).append(i)
                else:
                    for method in sorted(methods) if methods else ["*"]:
                        self._tries.setdefault(method, _Node()).insert(template.segments, i)
        # Static paths are looked up whole: one dict probe per request.
        self._static: dict[tuple[str, str], Candidates | None] = {}
        for (method, path), found in by_method.items():
            merged: list[tuple[int, dict[str, str]]] = [
                (i, {}) for i in sorted({*found, *any_method.get(path, ())})
            ]
            self._static[(method, path)] = _candidates(self.rules, merged)
        self._any: dict[str, Candidates | None] = {
            path: _candidates(self.rules, [(i, {}) for i in found])
            for path, found in any_method.items()
        }

    def candidates(self, method: str, path: str) -> Candidates | None:
        """The candidate rules for a request, or None for a pure pass-through."""
        static = self._static.get((method, path))
        if static is None:
            static = self._any.get(path)
        tries = self._tries
        if not tries:
            return static
        by_method = tries.get(method)
        any_method = tries.get("*")
        if by_method is None and any_method is None:  # no template for this method
            return static
        found: list[tuple[int, dict[str, str]]] = []
        parts = path[1:].split("/")
        if by_method is not None:
            by_method.lookup(parts, 0, {}, found)
        if any_method is not None:
            any_method.lookup(parts, 0, {}, found)
        if not found:
            return static
        if static is not None:
            found.extend((self._pos[id(r)], {}) for r, _ in static.matches)
        return _candidates(self.rules, found)


def evaluate(
    candidates: Candidates,
    ex: Exchange,
    emit: Callable[[CompiledRule, list[tuple[str, Any]]], None],
) -> None:
    """Run each candidate rule on the finished exchange; emit those that hold.

    A failing rule is counted and skipped; the rules after it still run.
    """
    for rule, params in candidates.matches:
        try:
            ex.template_params = params
            if rule.route and ex.route is not None and ex.route not in rule.route:
                continue
            if rule.condition is not None and rule.condition(ex) is not True:
                continue
            emit(rule, [(name, get(ex)) for name, get in rule.fields])
        except Exception as exc:
            internal_error(f"rule {rule.id}", exc)
            continue
        if rule.stop:
            break
