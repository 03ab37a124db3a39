"""Run recorded exchanges through the real ASGI adapter, as raw ASGI messages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._types import Message, Receive, Scope, Send
from ..adapters._signals import SignalLog, offline
from ..adapters.asgi import HeraEvents
from ..exchange import Exchange
from ..matching import Candidates
from ..rules.loader import load_rules
from ..rules.model import CompiledRule, Rules
from ..testing import capture_events
from ._formats import Recorded

__all__ = ["Fired", "Outcome", "Replayer"]

_ENVELOPE = ("type", "domain", "ts")


@dataclass(frozen=True)
class Fired:
    """One event a rule emitted: the rule, and the event without ``type``/``domain``/``ts``."""

    rule: CompiledRule
    event: dict[str, Any]


@dataclass
class Outcome:
    """What replaying one exchange gave: the events in order, with the rules that fired.

    ``exchange`` and ``candidates`` are what the adapter evaluated (None when no rule
    named the request's method and path).
    """

    recorded: Recorded
    fired: list[Fired] = field(default_factory=list)
    exchange: Exchange | None = None
    candidates: Candidates | None = None

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events, each ``{"event": ..., <fields>}`` in catalog key order."""
        return [f.event for f in self.fired]

    def as_expected(self) -> bool | None:
        """Whether the events are one of the recording's accepted lists (key order
        included); None when the recording has no ``expected_events``."""
        if self.recorded.expected is None:
            return None
        got = [list(e.items()) for e in self.events]
        return any(
            got == [list(e.items()) for e in accepted] for accepted in self.recorded.expected
        )


class _Route:
    """A route the router chose, as Starlette leaves it in ``scope["route"]``."""

    def __init__(self, name: str, method: str, path: str) -> None:
        self.name = name
        self.path = path
        self.methods = {method}
        self.endpoint = self


class _Server:
    """The recorded server: reads the whole request body, then sends the recorded answer.

    ``router.routes`` holds one route per (route name, method, path) seen in the
    recordings, so ``route:`` rules resolve as under a framework with a route table.
    """

    def __init__(self, routes: list[_Route]) -> None:
        self.router = self
        self.routes = routes
        self.current: Recorded | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        recorded = self.current
        assert recorded is not None
        more = scope["type"] == "http"
        while more:
            message = await receive()
            more = message["type"] == "http.request" and bool(message.get("more_body"))
        await send(
            {
                "type": "http.response.start",
                "status": recorded.status,
                "headers": list(recorded.response_headers),
            }
        )
        await send({"type": "http.response.body", "body": recorded.response_body})


def _scope(recorded: Recorded, route: _Route | None) -> Scope:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": recorded.method,
        "scheme": "http",
        "path": recorded.path,
        "raw_path": recorded.path.encode("utf-8"),
        "root_path": recorded.root_path,
        "query_string": recorded.query_string,
        "headers": list(recorded.headers),
        "client": ("127.0.0.1", 51000),
        "server": ("127.0.0.1", 8000),
    }
    if route is not None:
        scope["route"] = route
    return scope


def _app_path(recorded: Recorded) -> str:
    root = recorded.root_path.rstrip("/")
    if root and recorded.path.startswith(root + "/"):
        return recorded.path[len(root) :]
    return recorded.path


def _signal_log(signals: dict[str, dict[str, Any]]) -> SignalLog:
    """The recorded signals as the log a live request fills (then sealed by finish)."""
    log = SignalLog()
    log.update((name, dict(kept)) for name, kept in signals.items())
    return log


def _discard(event: dict[str, object]) -> None:
    """The output of replayed events: they are read through capture_events instead."""


class Replayer:
    """Replays recorded exchanges through :class:`~hera_middleware.HeraEvents`.

    Each exchange becomes an http scope, its request body one ``http.request``
    message, and an app that reads the body and sends the recorded response; the
    middleware tees and evaluates them exactly as it would a live server's. No signal
    is imported or connected: a record's ``signals`` are the exchange's signal facts,
    and without them every signal fact is unknown.

    Args:
        rules: what ``HeraEvents(rules=...)`` takes (a path, ``"preset:<name>"``,
            a list, :class:`~hera_middleware.Rules`).
        recordings: the exchanges to be replayed, needed up front only for
            ``route:`` rules: each ``route`` name recorded with a path becomes a
            route of that path.

    Example::

        replayer = Replayer("hera.yaml")
        for outcome in replayer.run_all(read_recordings("login.har")):
            print(outcome.events)
    """

    def __init__(self, rules: Any, recordings: Iterable[Recorded] = ()) -> None:
        self.rules: Rules = load_rules(rules)
        routes: dict[tuple[str, str, str], _Route] = {}
        for recorded in recordings:
            if recorded.route:
                key = (recorded.route, recorded.method, _app_path(recorded))
                routes.setdefault(key, _Route(*key))
        self._routes = {(r.name, r.path, next(iter(r.methods))): r for r in routes.values()}
        recorded_names = {name for name, _, _ in routes}
        table = list(routes.values())
        for rule in self.rules.rules:
            for name in rule.route:
                if name not in recorded_names:
                    # Never requested in these recordings: a route no request reaches.
                    recorded_names.add(name)
                    table.append(_Route(name, "GET", f"/-/hera-replay/unrecorded/{len(table)}"))
        self._server = _Server(table)
        with offline():  # none imported or connected: the recording gives the signal facts
            self.middleware = HeraEvents(self._server, rules=self.rules, output=_discard)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def replay(self, recorded: Recorded) -> Outcome:
        """Replay one exchange and say what it emitted."""
        engine = self.middleware._engine
        assert engine is not None  # a bad configuration raised in __init__
        outcome = Outcome(recorded)
        real_emit, real_finish = engine.emit, engine.finish

        def emit(rule: CompiledRule, fields: list[tuple[str, Any]]) -> None:
            before = len(captured)
            real_emit(rule, fields)
            for event in captured[before:]:
                stripped = {k: v for k, v in event.items() if k not in _ENVELOPE}
                outcome.fired.append(Fired(rule, stripped))

        def finish(candidates: Candidates, ex: Exchange) -> None:
            outcome.candidates, outcome.exchange = candidates, ex
            # What the record says was sent (hera's own recordings), else unknown.
            signals = recorded.signals
            ex.signals = None if signals is None else _signal_log(signals)
            real_finish(candidates, ex)

        route = self._routes.get((recorded.route or "", _app_path(recorded), recorded.method))
        messages: list[Message] = [{"type": "http.request", "body": recorded.body}]

        async def receive() -> Message:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            pass

        self._server.current = recorded
        # The engine is this replayer's own: route its two calls through the recorders.
        setattr(engine, "emit", emit)  # noqa: B010
        setattr(engine, "finish", finish)  # noqa: B010
        try:
            with capture_events() as captured:
                await self.middleware(_scope(recorded, route), receive, send)
        finally:
            del engine.emit, engine.finish
        return outcome

    def run(self, recorded: Recorded) -> Outcome:
        """:meth:`replay` from synchronous code (not inside a running event loop)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self.replay(recorded))

    def run_all(self, recordings: Iterable[Recorded]) -> Iterator[Outcome]:
        """:meth:`run` each exchange in turn."""
        try:
            for recorded in recordings:
                yield self.run(recorded)
        finally:
            self.close()

    def close(self) -> None:
        """Close the event loop :meth:`run` made."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None
