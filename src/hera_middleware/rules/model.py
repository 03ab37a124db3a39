"""Rule objects: what users write in Python, and what the loader compiles them to."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..catalog import EventType
from ..exchange import Exchange
from ._signals import SignalSpec
from ._yaml import caller_location

__all__ = ["CompiledRule", "FieldGetter", "Rule", "Rules"]

FieldGetter = Callable[[Exchange], Any]


@dataclass(frozen=True)
class Rule:
    """One rule, for users who prefer Python to YAML.

    The arguments take the same shapes as the YAML keys; ``when`` is YAML's ``if``
    (a reserved word in Python)::

        Rule(
            id="pkce-authorize",
            event="pkce_authorize",
            match="GET /oauth/authorize",
            when={"query.code_challenge": "present", "response.status": 302},
            fields={"client_id": "params.client_id"},
        )

    Errors in a rule object are reported at the file and line that built it.
    """

    event: str
    match: str | Sequence[str] | None = None
    route: str | Sequence[str] | None = None
    when: Mapping[str, Any] | Sequence[Any] | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None
    stop: bool = False
    origin: tuple[str, int] = field(default_factory=lambda: caller_location(), compare=False)

    def as_mapping(self) -> dict[str, Any]:
        """The rule as the mapping a rule file would hold."""
        out: dict[str, Any] = {"event": self.event}
        for key, value in (
            ("id", self.id),
            ("match", self.match),
            ("route", self.route),
            ("if", self.when),
        ):
            if value is not None:
                out[key] = value
        if self.fields:
            out["fields"] = dict(self.fields)
        if self.stop:
            out["stop"] = True
        return out


@dataclass(frozen=True, eq=False)
class CompiledRule:
    """A validated rule: where it came from, what it matches, what it emits."""

    id: str
    origin: str
    event: EventType
    methods: frozenset[str] | None
    templates: tuple[str, ...]
    route: tuple[str, ...]
    condition: Callable[[Exchange], bool | None] | None
    fields: tuple[tuple[str, FieldGetter], ...]
    stop: bool
    request_body: bool
    response_body: bool
    source: Mapping[str, Any]
    index: int = 0


@dataclass(frozen=True, eq=False)
class Rules:
    """A loaded, validated rule set with its options.

    Made by :func:`hera_middleware.load_rules`; pass it as ``rules=`` to the
    middleware. ``options`` maps option names to ``(value, origin)``; ``signals``
    maps the names of the declared framework signals to their declarations.
    """

    rules: tuple[CompiledRule, ...]
    options: Mapping[str, tuple[Any, str]]
    events: Mapping[str, EventType]
    allow: Mapping[str, frozenset[str]]
    sources: tuple[str, ...]
    fingerprint: str
    signals: Mapping[str, SignalSpec] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Any:
        return iter(self.rules)
