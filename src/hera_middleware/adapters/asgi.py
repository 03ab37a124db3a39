"""The pure ASGI middleware: tee the exchange, evaluate rules, emit events."""

from __future__ import annotations

import asyncio
from typing import Any

from .._diagnostics import internal_error
from .._emitter import chain_sigterm, exit_signalled, write_summary
from .._types import ASGIApp, Message, Receive, Scope, Send
from ..emit import flush
from ..errors import HeraConfigError, Problem
from ..exchange import BodyState, Exchange, copy_capped
from ..matching import Candidates
from ._engine import ACTIVE, Engine, app_relative_path, flush_after_signal_async
from ._wrapped import wrapped_routes

__all__ = ["HeraEvents", "app_relative_path"]


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


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
        record: a file to append every exchange to, cleaned, in the JSON-lines format
            that ``hera-middleware replay --exchanges`` reads (default ``HERA_RECORD``;
            off when unset). For development and staging: see :mod:`hera_middleware.record`.

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
        record: str | None = None,
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
            routes, resolver = wrapped_routes(app)
            self._engine: Engine | None = Engine(rules, given, routes, record=record)
            self._engine.route_resolver = resolver
            # Under `uvicorn --lifespan off` no lifespan shutdown flushes, and uvicorn
            # ends a SIGTERM without atexit: flush when the signal arrives.
            chain_sigterm()
        except HeraConfigError as exc:
            self._fail(exc)
        except (TypeError, ValueError, RecursionError) as exc:
            # Not located in a file, but still a configuration that must not serve.
            problem = Problem(
                "<configuration>", 1, 1, "bad-configuration", f"{type(exc).__name__}: {exc}"
            )
            error = HeraConfigError([problem])
            error.__cause__ = exc
            self._fail(error)

    def _fail(self, exc: HeraConfigError) -> None:
        if not _in_running_loop():
            raise exc
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
        active = ACTIVE.get()
        if engine.key in active:
            await self.app(scope, receive, send)
            return
        try:
            path = scope["path"]
            root_path = scope.get("root_path")
            if root_path:
                path = app_relative_path(path, root_path)
            candidates = engine.ruleset.candidates(scope["method"], path)
            tee = None if candidates is None else _Tee(engine, candidates, scope, path)
        except Exception as exc:
            internal_error("request start", exc)
            tee = None
        if tee is None:
            await self.app(scope, receive, send)
            return
        token = ACTIVE.set((active | {engine.key}) if active else engine.active_alone)
        watch = engine.signals
        listening = None if watch is None else watch.enter(tee.ex)
        try:
            await tee.run(self.app, receive, send)
        finally:
            ACTIVE.reset(token)
            if listening is not None:
                watch.leave(listening)  # type: ignore[union-attr]
            if exit_signalled():
                # Finished during the server's graceful shutdown: the server waits for
                # this request, so its events are written before the process ends.
                await flush_after_signal_async()

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
            # As Starlette's router does after a failed startup: the server (and
            # TestClient) then stops instead of waiting for more lifespan messages.
            raise self._error

        async def send_wrapper(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                try:
                    await asyncio.get_running_loop().run_in_executor(None, _shutdown)
                except Exception as exc:
                    internal_error("flush at shutdown", exc)
            await send(message)

        received = False

        async def receive_wrapper() -> Message:
            nonlocal received
            received = True
            return await receive()

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except Exception:
            if received:
                raise  # the app took part in the protocol, then failed: the server's to judge
        else:
            if received:
                return
        # The app does not support lifespan (Django's ASGIHandler raises at once): answer
        # for it, so that the server's shutdown still flushes the queue (uvicorn's
        # SIGTERM ends without atexit).
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        if message["type"] == "lifespan.shutdown":
            await send_wrapper({"type": "lifespan.shutdown.complete"})


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
        headers = scope.get("headers") or []
        if not isinstance(headers, list):
            # ASGI allows any iterable; a one-shot one must stay readable for the app.
            headers = list(headers)
            if not isinstance(scope.get("headers"), tuple):
                scope["headers"] = headers
        ex = self.ex = Exchange(
            scope["method"],
            path,
            scope.get("query_string", b""),
            headers,
            scope.get("root_path", ""),
            str(scope.get("http_version", "1.1")),
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
                gone = self.send_failed or isinstance(exc, asyncio.CancelledError)
                self.ex.end_early(raised=not gone)
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
        if body and not copy_capped(ex.body, body, self.request_room):
            self.request_room = -1  # marks the copy as cut
        if not message.get("more_body", False):
            ex.body_state = BodyState.TRUNCATED if self.request_room < 0 else BodyState.COMPLETE

    def on_response(self, message: Message) -> bool:
        """Copy what rules need; return True for the response's final message."""
        ex = self.ex
        kind = message["type"]
        if self.done:
            return False
        if kind == "http.response.start":
            ex.status = message["status"]
            headers = message.get("headers") or ()
            if not isinstance(headers, (list, tuple)):
                headers = message["headers"] = list(headers)  # keep one-shot iterables whole
            ex.response_headers = list(headers)
            if self.candidates.response_body:
                ex.response_state = BodyState.INCOMPLETE
            return False
        if kind == "http.response.body":
            more = message.get("more_body", False)
            if ex.response_state == BodyState.INCOMPLETE:
                body = message.get("body", b"")
                if body and not copy_capped(ex.response_body, body, self.response_room):
                    self.response_room = -1
                if not more:
                    ex.end_response(cut=self.response_room < 0)
            return not more
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
            ex.route = self.engine.route_name(scope.get("route"), scope.get("endpoint"))
            params = scope.get("path_params")
            if isinstance(params, dict):
                ex.path_params = params
            resolver = self.engine.route_resolver
            if ex.route is None and resolver is not None:
                found = resolver(ex.path)
                if found is not None:
                    ex.route, ex.path_params = found
        except Exception as exc:
            internal_error("route facts", exc)
        self.engine.finish(self.candidates, ex)
