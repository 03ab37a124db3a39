"""The Django adapter: a middleware for ``settings.MIDDLEWARE``, its settings and check.

The middleware builds the exchange from Django's own objects once the view is done:
the request body only as far as the view read it, the response body from
``content`` (or teed from ``streaming_content`` as the server sends it), the route
from ``request.resolver_match``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import got_request_exception
from django.http import HttpRequest

from .._diagnostics import internal_error
from .._emitter import chain_sigterm, exit_signalled, flush_after_signal
from ..errors import HeraConfigError
from ..exchange import BodyState, copy_capped
from ..matching import Candidates
from ._django_config import build_engine
from ._django_facts import request_body, request_exchange, response_headers
from ._engine import ACTIVE, Engine, flush_after_signal_async

__all__ = ["HeraEventsMiddleware", "HeraRouteMiddleware"]

# Set on a request by got_request_exception: an exception Django turned into its 500 page.
_RAISED = "_hera_middleware_raised"


def _on_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    if request is not None:
        request.__dict__[_RAISED] = True


got_request_exception.connect(_on_exception, dispatch_uid="hera_middleware.raised")


class HeraEventsMiddleware:
    """Django middleware that emits the documented audit events for an auth server.

    Add it to ``settings.MIDDLEWARE`` (after any ``GZipMiddleware`` when rules read
    response bodies) and point ``HERA_RULES`` at a rule file::

        MIDDLEWARE = [..., "hera_middleware.django.HeraEventsMiddleware"]
        HERA_RULES = BASE_DIR / "hera.yaml"   # a path, "preset:<name>", or a list

    Settings (each overridden by the environment variable of the same name):
    ``HERA_RULES``, ``HERA_DOMAIN`` (default ``"ciam"``), ``HERA_OUTPUT``
    (``"stdout"``, ``"stderr"``, ``"file:PATH"``, ``"logger:NAME"`` or a callable),
    ``HERA_ON_FULL`` (``"drop"`` or ``"block"``), ``HERA_MAX_REQUEST_BODY`` and
    ``HERA_MAX_RESPONSE_BODY`` (bytes copied for rules, default 65536). They beat the
    rule file's own options.

    ``route:`` rules name views as ``resolver_match.view_name`` does
    (``"account_login"``, ``"headless:browser:account:login"``); they are resolved
    to path templates from the URLconf at start-up. The ``route`` fact is the view
    name Django resolved, ``path.*`` its captured kwargs, ``path`` is
    ``request.path_info``.

    The request body is never read ahead of the view: form and JSON facts come from
    what the view read (``request.body``, or ``request.POST`` of a multipart form);
    otherwise they are unknown. Streaming responses and file responses are teed
    chunk by chunk as the server sends them, and rules run after the last chunk. An
    exception that Django turns into its 500 page gives ``raised: true`` and status
    500; an exception that propagates is re-raised unchanged.

    A bad rule file raises ``ImproperlyConfigured`` when Django loads its middleware
    (server start-up); with ``hera_middleware.django`` in ``INSTALLED_APPS``,
    ``manage.py check`` reports it too.

    Django's ASGI handler takes no part in the lifespan protocol, and uvicorn ends a
    SIGTERM by raising it again with the default handler, so atexit never runs: the
    middleware chains a SIGTERM handler onto the one in place when it is built (in the
    main thread), which flushes the queued events before handing the signal on, and
    requests that finish during the graceful shutdown wait for their events' flush.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        try:
            self._engine = build_engine()
        except HeraConfigError as exc:
            raise ImproperlyConfigured(f"hera-middleware: invalid configuration:\n{exc}") from exc
        chain_sigterm()

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        tee = _start(self._engine, request)
        if tee is None:
            return self.get_response(request)
        token = ACTIVE.set(tee.active)
        listening = tee.listen()
        try:
            response = self.get_response(request)
        except BaseException as exc:
            tee.stop(raised=isinstance(exc, Exception))
            raise
        finally:
            ACTIVE.reset(token)
            tee.unlisten(listening)
        response = tee.respond(response)
        if tee.done and exit_signalled():
            flush_after_signal()
        return response

    async def _acall(self, request: HttpRequest) -> Any:
        tee = _start(self._engine, request)
        if tee is None:
            return await self.get_response(request)
        token = ACTIVE.set(tee.active)
        listening = tee.listen()
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            tee.stop(raised=isinstance(exc, Exception))
            raise
        finally:
            ACTIVE.reset(token)
            tee.unlisten(listening)
        response = tee.respond(response)
        if tee.done and exit_signalled():
            await flush_after_signal_async()
        return response


class HeraRouteMiddleware:
    """Django middleware that tells a HeraEvents wrapped around Django which view ran.

    For ``application = HeraEvents(get_asgi_application(), rules=...)`` (Django's
    whole ASGI application wrapped, instead of HeraEventsMiddleware): with it in
    ``settings.MIDDLEWARE`` the ``route`` fact is the view name Django resolved and
    ``path.*`` its captured kwargs, as under Starlette. It leaves them where ASGI
    routers do, in the request's scope (``scope["route"]``, whose ``name`` is the
    view name, and ``scope["path_params"]``), once the view has answered. It reads
    nothing else and changes no request or response; under WSGI it does nothing.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        response = self.get_response(request)
        _publish_route(request)
        return response

    async def _acall(self, request: HttpRequest) -> Any:
        response = await self.get_response(request)
        _publish_route(request)
        return response


class _Route:
    """What ``scope["route"]`` holds for the ASGI adapter: the view name, the pattern."""

    __slots__ = ("name", "path")

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path


def _publish_route(request: HttpRequest) -> None:
    try:
        match = request.resolver_match
        scope = getattr(request, "scope", None)
        if match is None or not isinstance(scope, dict):
            return
        kwargs = getattr(match, "captured_kwargs", None)
        params = dict(match.kwargs if kwargs is None else kwargs)
        scope["route"] = _Route(match.view_name, str(match.route))
        scope["path_params"] = {**(scope.get("path_params") or {}), **params}
    except Exception as exc:
        internal_error("route facts", exc)


def _start(engine: Engine, request: HttpRequest) -> _Tee | None:
    active = ACTIVE.get()
    if engine.key in active:
        return None  # the same configuration already handles this request
    try:
        candidates = engine.ruleset.candidates(request.method or "GET", request.path_info)
        if candidates is None:
            return None
        return _Tee(engine, candidates, request, active | {engine.key})
    except Exception as exc:
        internal_error("request start", exc)
        return None


class _Tee:
    """Per-request state: the exchange, filled from Django's request and response."""

    __slots__ = ("active", "candidates", "done", "engine", "ex", "request", "response_room")

    def __init__(
        self, engine: Engine, candidates: Candidates, request: HttpRequest, active: frozenset[str]
    ) -> None:
        self.engine = engine
        self.candidates = candidates
        self.request = request
        self.active = active
        self.done = False
        self.ex = request_exchange(request)
        self.response_room = engine.options.max_response_body

    def listen(self) -> Any:
        """Record the declared signals sent in this context into the exchange."""
        watch = self.engine.signals
        return None if watch is None else watch.enter(self.ex)

    def unlisten(self, token: Any) -> None:
        if token is not None:
            self.engine.signals.leave(token)  # type: ignore[union-attr]

    def respond(self, response: Any) -> Any:
        """Record the response; return it as it is (teed when it streams)."""
        try:
            ex = self.ex
            ex.status = response.status_code
            ex.response_headers = response_headers(response)
            if self.request.__dict__.get(_RAISED):
                self.stop(raised=True)  # Django turned an exception into its 500 page
                return response
            wants_body = self.candidates.response_body
            if not response.streaming:
                if wants_body:
                    ex.response_state = BodyState.INCOMPLETE
                    if getattr(response, "is_rendered", True):
                        self.copy(response.content)
                        self.complete()
                        return response
                self.finish()
                return response
            if not wants_body and getattr(response, "file_to_stream", None) is not None:
                self.finish()  # keep the file for wsgi.file_wrapper (sendfile)
                return response
            if wants_body:
                ex.response_state = BodyState.INCOMPLETE
            inner = response.streaming_content
            response.streaming_content = (
                _AsyncChunks(self, inner) if response.is_async else _Chunks(self, inner)
            )
        except Exception as exc:
            internal_error("response", exc)
            self.finish()
        return response

    def copy(self, chunk: bytes) -> None:
        ex = self.ex
        if ex.response_state != BodyState.INCOMPLETE or not chunk:
            return
        if not copy_capped(ex.response_body, chunk, self.response_room):
            self.response_room = -1  # marks the copy as cut

    def complete(self) -> None:
        """The whole body reached the server."""
        self.ex.end_response(cut=self.response_room < 0)
        self.finish()

    def stop(self, *, raised: bool) -> None:
        """The exchange ended early: the app raised, or the client went away."""
        if self.done:
            return
        self.ex.end_early(raised=raised)
        self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        ex = self.ex
        try:
            if self.candidates.request_body:
                request_body(ex, self.request, self.engine.options.max_request_body)
            match = self.request.resolver_match
            if match is not None:
                ex.route = match.view_name
                kwargs = getattr(match, "captured_kwargs", None)
                ex.path_params = dict(match.kwargs if kwargs is None else kwargs)
        except Exception as exc:
            internal_error("request facts", exc)
        self.engine.finish(self.candidates, ex)


class _Chunks:
    """A streaming response's iterator, teed: chunks pass through as they come."""

    __slots__ = ("_inner", "_tee")

    def __init__(self, tee: _Tee, inner: Any) -> None:
        self._tee = tee
        self._inner: Iterator[bytes] = iter(inner)

    def __iter__(self) -> _Chunks:
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self._inner)
        except StopIteration:
            _safely(self._tee.complete)
            if exit_signalled():
                flush_after_signal()
            raise
        except BaseException as exc:
            _safely(self._tee.stop, raised=isinstance(exc, Exception))
            raise
        _safely(self._tee.copy, chunk)
        return chunk

    def close(self) -> None:
        """Django's ``response.close()``: the server let go before the last chunk, if not done."""
        _safely(self._tee.stop, raised=False)


class _AsyncChunks:
    """An async streaming response's iterator, teed."""

    __slots__ = ("_inner", "_tee")

    def __init__(self, tee: _Tee, inner: Any) -> None:
        self._tee = tee
        self._inner = inner.__aiter__()

    def __aiter__(self) -> _AsyncChunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk: bytes = await self._inner.__anext__()
        except StopAsyncIteration:
            _safely(self._tee.complete)
            if exit_signalled():
                await flush_after_signal_async()
            raise
        except BaseException as exc:
            _safely(self._tee.stop, raised=isinstance(exc, Exception))
            raise
        _safely(self._tee.copy, chunk)
        return chunk

    def close(self) -> None:
        _safely(self._tee.stop, raised=False)


def _safely(step: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    try:
        step(*args, **kwargs)
    except Exception as exc:
        internal_error("response end", exc)
