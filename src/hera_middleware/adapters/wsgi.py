"""The pure WSGI middleware: tee the exchange, evaluate rules, emit events."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._diagnostics import internal_error
from .._types import Environ, StartResponse, WSGIApp
from ..exchange import Exchange
from ._engine import ACTIVE, Engine
from ._wrapped import wrapped_routes
from ._wsgi_tee import Facts, Tee, native_text

__all__ = ["Facts", "HeraEventsWSGI", "serve"]


class HeraEventsWSGI:
    """WSGI middleware that emits the documented audit events for an auth server.

    Wraps any WSGI app; with Flask (or use :class:`hera_middleware.flask.HeraEvents`)::

        app.wsgi_app = HeraEventsWSGI(app.wsgi_app, rules="hera.yaml")

    with Django: ``application = HeraEventsWSGI(get_wsgi_application(), rules=...)``.

    Args:
        wsgi_app: the WSGI application.
        rules: a rule file path (relative to the working directory), ``"preset:<name>"``,
            a list of those, a mapping, :class:`~hera_middleware.Rule` objects, or
            :class:`~hera_middleware.Rules` from :func:`~hera_middleware.load_rules`.
            Defaults to ``HERA_RULES``. ``route:`` rules need a route table: use the
            Flask extension (or the Django adapter) for them.
        domain: the ``domain`` written on every event (default ``"ciam"``).
        output: ``"stdout"`` (default), ``"stderr"``, ``"file:PATH"``, ``"logger:NAME"``,
            or a callable taking each event as a dict.
        on_full: ``"drop"`` (default: wait briefly, then drop and count) or ``"block"``.
        max_request_body: bytes of a request body copied for rules (default 65536).
        max_response_body: bytes of a response body copied for rules (default 65536).
        record: a file to append every exchange to, cleaned, in the JSON-lines format
            that ``hera-middleware replay --exchanges`` reads (default ``HERA_RECORD``;
            off when unset). For development and staging: see :mod:`hera_middleware.record`.

    A bad rule file raises :class:`~hera_middleware.HeraConfigError` here, so the
    server does not start with it.

    Rules see ``PATH_INFO``, the path below any ``SCRIPT_NAME`` mount; ``Location``
    paths under ``SCRIPT_NAME`` are made relative the same way. A request no rule
    names reaches the app with the very ``environ`` and ``start_response`` of the
    server, and its response is returned as is. Otherwise the app still gets the same
    ``environ`` dict, changed in one way only: when a rule needs the request body,
    ``environ["wsgi.input"]`` is a tee that passes each ``read``, ``readline``,
    iteration and ``readlines`` call to the server's stream unchanged and copies what
    the app read (``CONTENT_LENGTH`` is untouched, nothing is read ahead of the app).
    The response iterable is wrapped to copy and time the body: each chunk goes to
    the server as it comes, unchanged; rules are evaluated after the last chunk, when
    iteration raises, or when the server closes the response early; the app's
    ``close()`` is called exactly once. A ``wsgi.file_wrapper`` response is returned
    as is (so the server can use sendfile) unless a rule needs its body; its rules
    are evaluated when it is returned.
    """

    def __init__(
        self,
        wsgi_app: WSGIApp,
        *,
        rules: Any = None,
        domain: str | None = None,
        output: Any = None,
        on_full: str | None = None,
        max_request_body: int | None = None,
        max_response_body: int | None = None,
        record: str | None = None,
    ) -> None:
        self.app = wsgi_app
        given = {
            "domain": domain,
            "output": output,
            "on_full": on_full,
            "max_request_body": max_request_body,
            "max_response_body": max_response_body,
        }
        routes, resolver = wrapped_routes(wsgi_app)
        self._engine = Engine(rules, given, routes, record=record)
        self._facts: Facts | None = None
        if resolver is not None:

            def facts(environ: Environ, ex: Exchange) -> None:
                found = resolver(ex.path)
                if found is not None:
                    ex.route, ex.path_params = found

            self._facts = facts

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return serve(self._engine, self.app, environ, start_response, self._facts)


def serve(
    engine: Engine,
    app: WSGIApp,
    environ: Environ,
    start_response: StartResponse,
    facts: Facts | None = None,
) -> Iterable[bytes]:
    """Run one WSGI exchange through ``engine``: the body of every WSGI adapter."""
    active = ACTIVE.get()
    if engine.key in active:
        return app(environ, start_response)
    try:
        path = native_text(environ.get("PATH_INFO") or "/")
        candidates = engine.ruleset.candidates(environ.get("REQUEST_METHOD", "GET"), path)
        tee = None
        if candidates is not None:
            tee = Tee(engine, candidates, environ, path, facts, active | {engine.key})
    except Exception as exc:
        internal_error("request start", exc)
        tee = None
    if tee is None:
        return app(environ, start_response)
    return tee.run(app, start_response)
