"""The pure ASGI middleware: tee the exchange, evaluate rules, emit events."""

from __future__ import annotations

import asyncio
import contextvars
import os
from collections.abc import Callable, Sequence
from typing import Any

from .. import policy
from .._diagnostics import internal_error
from .._emitter import write_summary
from .._types import ASGIApp, Message, Receive, Scope, Send
from ..emit import Emitter, flush, get_emitter, send_event
from ..errors import HeraConfigError, Problem, did_you_mean
from ..exchange import BodyState, Exchange
from ..matching import Candidates, RuleSet, evaluate
from ..options import Options, resolve_options
from ..rules.loader import load_rules
from ..rules.model import CompiledRule, Rules
from ._routes import RouteTable, starlette_routes

__all__ = ["HeraEvents"]

# Keys of the instances already handling this request, so a second instance with the
# same configuration stands down instead of emitting twice.
_ACTIVE: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "hera_middleware_active", default=frozenset()
)


class Engine:
    """What an adapter needs at run time: candidates, evaluation, emission."""

    def __init__(
        self,
        rules: Any,
        given: dict[str, Any],
        routes: tuple[RouteTable, dict[int, str]] | None,
        framework: dict[str, Any] | None = None,
        framework_name: str = "framework config",
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
        self.route_table = routes[0] if routes else None
        self.endpoint_names = routes[1] if routes else {}
        self.ruleset = RuleSet(self.rules.rules, self._templates_of())
        self.emitter: Emitter = get_emitter(self.options.output, self.options.on_full)
        self.domain = self.options.domain
        self.allow = self.rules.allow
        self.key = f"{self.rules.fingerprint}|{self.domain}|{self.options.output!r}"

    def _templates_of(
        self,
    ) -> Callable[[CompiledRule], Sequence[tuple[frozenset[str] | None, str]]]:
        problems: list[Problem] = []
        resolved: dict[int, list[tuple[frozenset[str] | None, str]]] = {}
        for rule in self.rules.rules:
            out: list[tuple[frozenset[str] | None, str]] = []
            for text in rule.templates:
                method, _, path = text.partition(" ")
                out.append((None if method == "*" else frozenset(method.split("|")), path))
            file, line, col = rule.source["_at"]
            for name in rule.route:
                if self.route_table is None:
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
                elif name not in self.route_table:
                    problems.append(
                        Problem(
                            file,
                            line,
                            col,
                            "unknown-route",
                            f"the app has no route named {name!r}",
                            did_you_mean(name, self.route_table),
                        )
                    )
                else:
                    out.extend(self.route_table[name])
            resolved[id(rule)] = out
        if problems:
            raise HeraConfigError(problems)
        return lambda rule: resolved[id(rule)]

    def route_name(self, scope: Scope) -> str | None:
        route = scope.get("route")
        if route is not None:
            known = self.endpoint_names.get(id(route))
            if known is not None:
                return known
            name = getattr(route, "name", None)
            if isinstance(name, str):
                return name
        endpoint = scope.get("endpoint")
        if endpoint is not None:
            return self.endpoint_names.get(id(endpoint))
        return None

    def emit(self, rule: CompiledRule, fields: list[tuple[str, Any]]) -> None:
        allow = self.allow
        clean = policy.clean_value
        send_event(
            rule.event.name,
            {name: clean(name, value, allow.get(name)) for name, value in fields},
            domain=self.domain,
            emitter=self.emitter,
        )

    def finish(self, candidates: Candidates, ex: Exchange) -> None:
        """Evaluate and emit; never raises (fail open)."""
        try:
            evaluate(candidates, ex, self.emit)
        except Exception as exc:
            internal_error("rule evaluation", exc)


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def app_relative_path(path: str, root_path: str) -> str:
    """``path`` with ``root_path`` removed when it starts with it."""
    root_path = root_path.rstrip("/")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if not rest or rest[0] == "/":
            return rest or "/"
    return path


class HeraEvents:
    """ASGI middleware that emits the documented audit events for an auth server.

    Wraps any ASGI app; with Starlette or FastAPI::

        app.add_middleware(HeraEvents, rules="hera.yaml")

    or ``app = HeraEvents(app, rules="hera.yaml")``.

    Args:
        app: the ASGI application.
        rules: a rule file path (relative to the working directory), ``"preset:<name>"``,
            a list of those, a mapping, :class:`~hera_middleware.Rule` objects, or
            :class:`~hera_middleware.Rules` from :func:`~hera_middleware.load_rules`.
            Defaults to ``HERA_RULES``.
        domain: the ``domain`` written on every event (default ``"ciam"``).
        output: ``"stdout"`` (default), ``"stderr"``, ``"file:PATH"``, ``"logger:NAME"``,
            or a callable taking each event as a dict.
        on_full: ``"drop"`` (default: wait briefly, then drop and count) or ``"block"``.
        max_request_body: bytes of a request body copied for rules (default 65536).
        max_response_body: bytes of a response body copied for rules (default 65536).

    A bad rule file raises :class:`~hera_middleware.HeraConfigError` here; when the
    middleware is built while the server already runs (Starlette builds its
    middleware stack on the first ASGI call), the error is reported through the
    lifespan protocol so the server refuses to start.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        rules: Any = None,
        domain: str | None = None,
        output: Any = None,
        on_full: str | None = None,
        max_request_body: int | None = None,
        max_response_body: int | None = None,
    ) -> None:
        self.app = app
        self._error: HeraConfigError | None = None
        given = {
            "domain": domain,
            "output": output,
            "on_full": on_full,
            "max_request_body": max_request_body,
            "max_response_body": max_response_body,
        }
        try:
            self._engine: Engine | None = Engine(rules, given, starlette_routes(app))
        except HeraConfigError as exc:
            if not _in_running_loop():
                raise
            # Raising here would be swallowed by a server's lifespan "auto" mode.
            self._engine = None
            self._error = exc

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        engine = self._engine
        if engine is None:
            raise self._error  # type: ignore[misc]
        active = _ACTIVE.get()
        if engine.key in active:
            await self.app(scope, receive, send)
            return
        try:
            path = app_relative_path(scope["path"], scope.get("root_path", ""))
            candidates = engine.ruleset.candidates(scope["method"], path)
            tee = None if candidates is None else _Tee(engine, candidates, scope, path)
        except Exception as exc:
            internal_error("request start", exc)
            tee = None
        if tee is None:
            await self.app(scope, receive, send)
            return
        token = _ACTIVE.set(active | {engine.key})
        try:
            await tee.run(self.app, receive, send)
        finally:
            _ACTIVE.reset(token)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._error is not None:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send(
                    {
                        "type": "lifespan.startup.failed",
                        "message": f"hera-middleware: invalid configuration:\n{self._error}",
                    }
                )
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                try:
                    await asyncio.get_running_loop().run_in_executor(None, _shutdown)
                except Exception as exc:
                    internal_error("flush at shutdown", exc)
            await send(message)

        await self.app(scope, receive, send_wrapper)


def _shutdown() -> None:
    flush()
    write_summary()


class _Tee:
    """Per-request state: copies what the app reads and sends, up to the caps."""

    __slots__ = (
        "candidates",
        "done",
        "engine",
        "ex",
        "request_room",
        "response_room",
        "scope",
        "send_failed",
    )

    def __init__(self, engine: Engine, candidates: Candidates, scope: Scope, path: str) -> None:
        self.engine = engine
        self.candidates = candidates
        self.scope = scope
        ex = self.ex = Exchange(
            scope["method"],
            path,
            scope.get("query_string", b""),
            scope.get("headers") or [],
            scope.get("root_path", ""),
        )
        self.request_room = engine.options.max_request_body
        self.response_room = engine.options.max_response_body
        self.done = False
        self.send_failed = False
        if candidates.request_body:
            ex.body_state = BodyState.INCOMPLETE if ex.request_has_body() else BodyState.EMPTY

    async def run(self, app: ASGIApp, receive: Receive, send: Send) -> None:
        tee_receive: Receive = receive
        if self.candidates.request_body and self.ex.body_state == BodyState.INCOMPLETE:

            async def tee_receive() -> Message:
                message = await receive()
                try:
                    self.on_request(message)
                except Exception as exc:
                    internal_error("request copy", exc)
                return message

        async def tee_send(message: Message) -> None:
            final = False
            try:
                final = self.on_response(message)
            except Exception as exc:
                internal_error("response copy", exc)
            try:
                await send(message)
            except BaseException:
                self.send_failed = True
                raise
            # A 500 may be an error page sent by a middleware that re-raises next
            # (Starlette's ServerErrorMiddleware): wait for the app to return or raise.
            if final and self.ex.status != 500:
                self.finish()

        try:
            await app(self.scope, tee_receive, tee_send)
        except BaseException as exc:
            if not self.done:
                ex = self.ex
                if self.send_failed or isinstance(exc, asyncio.CancelledError):
                    if ex.response_state != BodyState.NOT_TEED:
                        ex.response_state = BodyState.INCOMPLETE
                else:
                    ex.raised = True
                    ex.status = 500
                    ex.response_state = BodyState.UNREADABLE
                self.finish()
            raise
        if not self.done:
            if self.ex.response_state not in (BodyState.NOT_TEED, BodyState.COMPLETE):
                self.ex.response_state = BodyState.INCOMPLETE
            self.finish()

    def on_request(self, message: Message) -> None:
        ex = self.ex
        if message["type"] != "http.request" or ex.body_state != BodyState.INCOMPLETE:
            return
        body = message.get("body", b"")
        if body:
            room = self.request_room - len(ex.body)
            if len(body) <= room:
                ex.body += body
            else:
                if room > 0:
                    ex.body += body[:room]
                self.request_room = -1  # marks the copy as cut
        if not message.get("more_body", False):
            ex.body_state = BodyState.TRUNCATED if self.request_room < 0 else BodyState.COMPLETE

    def on_response(self, message: Message) -> bool:
        """Copy what rules need; return True for the response's final message."""
        ex = self.ex
        kind = message["type"]
        if kind == "http.response.start":
            ex.status = message["status"]
            ex.response_headers = list(message.get("headers") or ())
            if self.candidates.response_body:
                ex.response_state = BodyState.INCOMPLETE
            return False
        if kind == "http.response.body":
            if ex.response_state == BodyState.INCOMPLETE:
                body = message.get("body", b"")
                if body:
                    room = self.response_room - len(ex.response_body)
                    if len(body) <= room:
                        ex.response_body += body
                    else:
                        if room > 0:
                            ex.response_body += body[:room]
                        self.response_room = -1
                if not message.get("more_body", False):
                    ex.response_state = (
                        BodyState.TRUNCATED if self.response_room < 0 else BodyState.COMPLETE
                    )
            return not message.get("more_body", False)
        if kind == "http.response.pathsend":
            if ex.response_state == BodyState.INCOMPLETE:
                ex.response_state = BodyState.UNREADABLE
            return True
        return False

    def finish(self) -> None:
        self.done = True
        ex = self.ex
        try:
            scope = self.scope
            ex.route = self.engine.route_name(scope)
            params = scope.get("path_params")
            if isinstance(params, dict):
                ex.path_params = params
        except Exception as exc:
            internal_error("route facts", exc)
        self.engine.finish(self.candidates, ex)
