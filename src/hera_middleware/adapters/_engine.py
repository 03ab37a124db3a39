"""The framework-neutral runtime that every adapter drives.

An :class:`Engine` is made once per middleware instance: it loads and indexes the
rules, resolves the options, and emits the events of a finished exchange.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Callable, Sequence
from typing import Any

from .. import policy
from .._diagnostics import internal_error
from .._emitter import flush_after_signal
from ..emit import Emitter, get_emitter, send_event, set_default_target
from ..errors import HeraConfigError, Problem, did_you_mean
from ..exchange import Exchange
from ..matching import Candidates, RuleSet, compile_template, evaluate
from ..options import Options, resolve_options
from ..record import Recorder, RecordingRuleSet
from ..rules.loader import load_rules
from ..rules.model import CompiledRule, Rules
from ._routes import RouteTable
from ._signals import SignalWatch, is_offline, seal

__all__ = ["ACTIVE", "Engine", "app_relative_path", "flush_after_signal_async"]

# Keys of the instances already handling this request, so a second instance with the
# same configuration stands down instead of emitting twice.
ACTIVE: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "hera_middleware_active", default=frozenset()
)


class Engine:
    """What an adapter needs at run time: candidates, evaluation, emission.

    ``routes`` is the framework's route table (or None). With ``defer_routes`` an
    adapter whose route table is complete only later (Flask app factories) calls
    :meth:`index_routes` before the first request; until then nothing is a candidate.
    """

    def __init__(
        self,
        rules: Any,
        given: dict[str, Any],
        routes: tuple[RouteTable, dict[int, str]] | None,
        framework: dict[str, Any] | None = None,
        framework_name: str = "framework config",
        *,
        defer_routes: bool = False,
        record: str | None = None,
    ) -> None:
        if rules is None:
            rules = os.environ.get("HERA_RULES") or (framework or {}).get("HERA_RULES")
            if not rules:
                raise HeraConfigError(
                    [
                        Problem(
                            "<arguments>",
                            1,
                            1,
                            "missing-rules",
                            "no rules given: pass rules='hera.yaml' (or 'preset:<name>'),"
                            " or set HERA_RULES",
                        )
                    ]
                )
        self.rules: Rules = load_rules(rules)
        self.options: Options = resolve_options(self.rules, given, framework, framework_name)
        self.needs_routes = any(rule.route for rule in self.rules.rules)
        self.route_table: RouteTable | None = None
        self.endpoint_names: dict[int, str] = {}
        self.ruleset: RuleSet | RecordingRuleSet = RuleSet((), lambda rule: ())
        record = record if record is not None else os.environ.get("HERA_RECORD")
        self.recorder: Recorder | None = Recorder(record) if record else None
        if not (defer_routes and self.needs_routes):
            self.index_routes(routes)
        self.emitter: Emitter = get_emitter(self.options.output, self.options.on_full)
        # emit_event() from the app's own code writes where the middleware writes.
        set_default_target(self.options.domain, self.emitter)
        self.domain = self.options.domain
        self.allow = self.rules.allow
        self.key = f"{self.rules.fingerprint}|{self.domain}|{self.options.output!r}"
        #: ACTIVE while this instance handles a request that no other instance handles.
        self.active_alone = frozenset({self.key})
        #: For wrapped apps that leave no route in the scope (Django): path -> route facts.
        self.route_resolver: Callable[[str], tuple[str, dict[str, Any]] | None] | None = None
        #: The declared framework signals, connected (None when the rules declare none,
        #: and in replay, where signal facts are then unknown).
        self.signals: SignalWatch | None = (
            SignalWatch(self, self.rules.signals)
            if self.rules.signals and not is_offline()
            else None
        )

    def index_routes(self, routes: tuple[RouteTable, dict[int, str]] | None) -> None:
        """Resolve ``route:`` rules against ``routes`` and (re)build the candidate index.

        Raises HeraConfigError for a route name the table lacks (or for any ``route:``
        rule when there is no table); the previous index stays in place then.
        """
        table = routes[0] if routes else None
        ruleset = RuleSet(self.rules.rules, self._templates_of(table))
        self.route_table = table
        self.endpoint_names = routes[1] if routes else {}
        self.ruleset = ruleset if self.recorder is None else self.recorder.wrap(ruleset)

    def _templates_of(
        self, route_table: RouteTable | None
    ) -> Callable[[CompiledRule], Sequence[tuple[frozenset[str] | None, str]]]:
        problems: list[Problem] = []
        resolved: dict[int, list[tuple[frozenset[str] | None, str]]] = {}
        for rule in self.rules.rules:
            out: list[tuple[frozenset[str] | None, str]] = []
            for text in rule.templates:
                method, _, path = text.partition(" ")
                out.append((None if method == "*" else frozenset(method.split("|")), path))
            file, line, col = rule.source["_route_at"]
            for name in rule.route:
                if route_table is None:
                    problems.append(
                        Problem(
                            file,
                            line,
                            col,
                            "no-route-table",
                            f"`route: {name}` needs the framework's route table,"
                            " and this app has none",
                            "write `match: METHOD /path` instead, or wrap the Starlette/FastAPI"
                            " app itself (or use the Flask or Django adapter)",
                        )
                    )
                elif name not in route_table:
                    problems.append(
                        Problem(
                            file,
                            line,
                            col,
                            "unknown-route",
                            f"the app has no route named {name!r}",
                            did_you_mean(name, route_table),
                        )
                    )
                else:
                    for methods, template in route_table[name]:
                        try:
                            compile_template(template)
                        except ValueError as exc:
                            problems.append(
                                Problem(
                                    file,
                                    line,
                                    col,
                                    "bad-route-template",
                                    f"the path of route {name!r} cannot be matched: {exc}",
                                    "write `match: METHOD /path` for this route instead",
                                )
                            )
                        else:
                            out.append((methods, template))
            resolved[id(rule)] = out
        if problems:
            raise HeraConfigError(problems)
        return lambda rule: resolved[id(rule)]

    def route_name(self, route: Any, endpoint: Any = None) -> str | None:
        """The qualified name of the route object (or endpoint) a router chose."""
        if route is not None:
            known = self.endpoint_names.get(id(route))
            if known is not None:
                return known
            name = getattr(route, "name", None)
            if isinstance(name, str):
                return name
        if endpoint is not None:
            return self.endpoint_names.get(id(endpoint))
        return None

    def emit(self, rule: CompiledRule, fields: list[tuple[str, Any]]) -> None:
        allow = self.allow
        clean = policy.clean_value
        cleaned: dict[str, object] = {}
        for name, value in fields:  # a loop: a comprehension is a call of its own in 3.11
            cleaned[name] = clean(name, value, allow.get(name))
        send_event(rule.event.name, cleaned, domain=self.domain, emitter=self.emitter)

    def finish(self, candidates: Candidates, ex: Exchange) -> None:
        """Evaluate and emit; never raises (fail open)."""
        if ex.signals is not None:
            seal(ex)
        recorder = self.recorder
        if recorder is not None:
            self._finish_recorded(recorder, candidates, ex)
            return
        try:
            evaluate(candidates, ex, self.emit)
        except Exception as exc:
            internal_error("rule evaluation", exc)

    def _finish_recorded(self, recorder: Recorder, candidates: Candidates, ex: Exchange) -> None:
        fired: list[dict[str, Any]] = []

        def emit(rule: CompiledRule, fields: list[tuple[str, Any]]) -> None:
            self.emit(rule, fields)
            clean = policy.clean_value
            cleaned = {name: clean(name, value, self.allow.get(name)) for name, value in fields}
            fired.append({"event": rule.event.name, **cleaned})

        try:
            evaluate(candidates, ex, emit)
        except Exception as exc:
            internal_error("rule evaluation", exc)
        recorder.record(ex, fired)


def app_relative_path(path: str, root_path: str) -> str:
    """``path`` with ``root_path`` removed when it starts with it."""
    root_path = root_path.rstrip("/")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if not rest or rest[0] == "/":
            return rest or "/"
    return path


async def flush_after_signal_async() -> None:
    """:func:`flush_after_signal` off the event loop, for a request that finished after
    SIGTERM: the server waits for the request, so its events are written before it exits."""
    try:
        await asyncio.get_running_loop().run_in_executor(None, flush_after_signal)
    except Exception as exc:
        internal_error("flush after SIGTERM", exc)
