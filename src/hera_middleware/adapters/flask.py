"""The Flask extension: the WSGI middleware around ``app.wsgi_app``, with Flask's routes."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

try:
    from flask import got_request_exception, request, request_started
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "hera_middleware.flask needs Flask: pip install 'hera-middleware[flask]'"
    ) from exc

from .._diagnostics import internal_error
from .._types import Environ, StartResponse, WSGIApp
from ..errors import HeraConfigError
from ..exchange import BodyState, Exchange
from ..options import Options
from ..rules.model import Rules
from ._engine import Engine
from ._routes import werkzeug_routes
from .wsgi import serve

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["RAISED_KEY", "ROUTE_KEY", "HeraEvents", "HeraState"]

#: environ key where the extension leaves Flask's ``(endpoint, view_args)`` for a request.
ROUTE_KEY = "hera_middleware.route"
#: environ key set to True when Flask met an unhandled exception (and answered 500).
RAISED_KEY = "hera_middleware.raised"

_OPTIONS = ("rules", "domain", "output", "on_full", "max_request_body", "max_response_body")


class HeraEvents:
    """Flask extension that emits the documented audit events for an auth server.

    Wire it in one line, or in an app factory::

        hera = HeraEvents(app, rules="hera.yaml")

        hera = HeraEvents()
        def create_app():
            app = Flask(__name__)
            app.config["HERA_RULES"] = "hera.yaml"
            hera.init_app(app)
            return app

    Options (keyword arguments, all optional) are those of
    :class:`~hera_middleware.HeraEventsWSGI`: ``rules``, ``domain``, ``output``,
    ``on_full``, ``max_request_body``, ``max_response_body``. Each one not given is
    read from the environment (``HERA_RULES``, ``HERA_DOMAIN``, ...), else from
    ``app.config`` under the same ``HERA_*`` names, else from the rule file, else its
    default. A bad rule file raises :class:`~hera_middleware.HeraConfigError` from
    :meth:`init_app`.

    :meth:`init_app` wraps ``app.wsgi_app`` with the WSGI middleware, so each event
    is written after the last chunk of the response (streamed responses and
    ``send_file`` included) and the body is never read through ``get_data()``. The
    endpoint Flask chose is the ``route`` fact and its ``view_args`` are the path
    parameters; ``route: auth.authorize`` rules are resolved to the rule paths of
    ``app.url_map`` at the first request, when every blueprint is registered (an
    unknown name then fails every request with HeraConfigError). An unhandled
    exception (Flask's 500 answer) makes ``raised`` true. The extension keeps its
    state in ``app.extensions["hera"]`` (its ``rules`` and ``options``), never on itself, so
    one instance serves several apps.
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise TypeError(
                f"HeraEvents() got unknown options: {', '.join(unknown)}"
                f" (options are {', '.join(_OPTIONS)})"
            )
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Load the rules for ``app``, wrap its ``wsgi_app`` and watch its requests.

        Raises HeraConfigError for a bad rule file or option, RuntimeError when
        ``app`` already has a HeraEvents extension.
        """
        if "hera" in app.extensions:
            raise RuntimeError("a HeraEvents extension is already registered on this Flask app")
        given = {name: self.options.get(name) for name in _OPTIONS if name != "rules"}
        engine = Engine(
            self.options.get("rules"),
            given,
            None,
            app.config,
            "Flask config",
            defer_routes=True,
        )
        state = HeraState(self, engine, app.url_map)
        app.extensions["hera"] = state
        app.wsgi_app = _FlaskMiddleware(app.wsgi_app, state)  # type: ignore[method-assign]
        request_started.connect(_record_route, app)
        got_request_exception.connect(_record_raise, app)


class HeraState:
    """What ``app.extensions["hera"]`` holds for an app: its rules and options."""

    def __init__(self, extension: HeraEvents, engine: Engine, url_map: Any) -> None:
        self.extension = extension
        self.engine = engine
        self._url_map = url_map
        self._indexed = not engine.needs_routes
        self._error: HeraConfigError | None = None
        self._lock = threading.Lock()

    @property
    def rules(self) -> Rules:
        """The loaded rules."""
        return self.engine.rules

    @property
    def options(self) -> Options:
        """The options in effect, with where each came from (``options.origins``)."""
        return self.engine.options

    def index_routes(self) -> None:
        """Resolve ``route:`` rules against the app's ``url_map`` once; raise if one is unknown."""
        if not self._indexed:
            with self._lock:
                if not self._indexed and self._error is None:
                    try:
                        self.engine.index_routes(werkzeug_routes(self._url_map))
                    except HeraConfigError as exc:
                        self._error = exc
                    else:
                        self._indexed = True
        if self._error is not None:
            raise HeraConfigError(self._error.problems)


class _FlaskMiddleware:
    """``app.wsgi_app`` wrapped: the WSGI middleware with Flask's route facts."""

    __slots__ = ("app", "state")

    def __init__(self, app: WSGIApp, state: HeraState) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        state = self.state
        if not state._indexed:
            state.index_routes()
        return serve(state.engine, self.app, environ, start_response, _flask_facts)


def _record_route(sender: Any, **extra: Any) -> None:
    # request_started: Flask has matched the URL; before_request hooks have not run.
    try:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_KEY] = (rule.endpoint, dict(request.view_args or {}))
    except Exception as exc:
        internal_error("flask route", exc)


def _record_raise(sender: Any, **extra: Any) -> None:
    try:
        request.environ[RAISED_KEY] = True
    except Exception as exc:
        internal_error("flask exception", exc)


def _flask_facts(environ: Environ, ex: Exchange) -> None:
    found = environ.get(ROUTE_KEY)
    if found is not None:
        ex.route, ex.path_params = found
    if environ.get(RAISED_KEY):
        ex.raised = True
        ex.status = 500
        ex.response_state = BodyState.UNREADABLE
