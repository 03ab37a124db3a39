"""The apps under test: a token endpoint on Starlette (ASGI) and on Flask (WSGI), bare
and wrapped in each middleware the comparison needs.

The endpoint reads an urlencoded form and answers JSON, as an OAuth token endpoint does;
``/oauth/token`` is a path of the example rule file, ``/api/token`` (the same endpoint)
is one no rule names.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = str(ROOT / "examples" / "fastapi_app" / "hera.yaml")

TOKEN_PATH = "/oauth/token"
OTHER_PATH = "/api/token"
BODY = (
    b"grant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA"
    b"&redirect_uri=https%3A%2F%2Fspa.example.test%2Fcallback&client_id=web-app"
    b"&code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)
TOKEN_JSON = {
    "access_token": "2YotnFZFEjr1zCsicMWpAA",
    "token_type": "Bearer",
    "expires_in": 3600,
}


# --- ASGI -------------------------------------------------------------------------------


def starlette_app(middleware: list[Any] | None = None) -> Any:
    """The bare Starlette token app (``middleware`` as Starlette's own list)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def token(request: Request) -> JSONResponse:
        form = await request.form()
        if not form.get("code_verifier"):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        return JSONResponse(TOKEN_JSON, headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route(TOKEN_PATH, token, methods=["POST"]),
            Route(OTHER_PATH, token, methods=["POST"]),
        ],
        middleware=middleware,
    )


class NoopASGI:
    """The floor: a pure ASGI middleware that only passes the call on."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def asgi_variants(outputs: dict[str, str]) -> dict[str, tuple[Any, str]]:
    """Name -> (ASGI app, request path), in the order the table shows them."""
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import CollectorRegistry
    from prometheus_fastapi_instrumentator import Instrumentator
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware

    from hera_middleware import HeraEvents

    async def passthrough(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    prom = starlette_app()
    Instrumentator(registry=CollectorRegistry()).instrument(prom)
    hera = {
        name: HeraEvents(starlette_app(), rules=EXAMPLE_RULES, output=out)
        for name, out in outputs.items()
    }
    return {
        "bare app": (starlette_app(), TOKEN_PATH),
        "bare app, unmatched path": (starlette_app(), OTHER_PATH),
        "no-op pure ASGI middleware": (NoopASGI(starlette_app()), TOKEN_PATH),
        "HeraEvents, no candidate rule": (hera["devnull"], OTHER_PATH),
        "HeraEvents, rule matches, event to a file": (hera["file"], TOKEN_PATH),
        "HeraEvents, rule matches, event to /dev/null": (hera["devnull"], TOKEN_PATH),
        "no-op BaseHTTPMiddleware": (
            starlette_app([Middleware(BaseHTTPMiddleware, dispatch=passthrough)]),
            TOKEN_PATH,
        ),
        "OpenTelemetry ASGI (SDK tracer provider)": (
            OpenTelemetryMiddleware(starlette_app(), tracer_provider=TracerProvider()),
            TOKEN_PATH,
        ),
        "prometheus-fastapi-instrumentator": (prom, TOKEN_PATH),
    }


def asgi_scope(path: str, body: bytes = BODY) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1:8000"),
            (b"user-agent", b"bench/1.0"),
            (b"accept", b"application/json"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def asgi_loop(app: Any, path: str, n: int, body: bytes = BODY) -> None:
    """Call ``app`` ``n`` times with one POST each, straight through ASGI messages."""
    template = asgi_scope(path, body)
    request = {"type": "http.request", "body": body, "more_body": False}
    status = 0

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    for _ in range(n):
        scope = dict(template)
        scope["headers"] = list(template["headers"])
        await app(scope, receive, send)
    if status != 200:
        raise RuntimeError(f"the app answered {status} on {path}")


# --- WSGI -------------------------------------------------------------------------------


def flask_app() -> Any:
    """The bare Flask token app."""
    from flask import Flask, jsonify, request

    app = Flask("bench")

    def token() -> Any:
        if not request.form.get("code_verifier"):
            return jsonify(error="invalid_request"), 400
        response = jsonify(TOKEN_JSON)
        response.headers["Cache-Control"] = "no-store"
        return response

    app.add_url_rule(TOKEN_PATH, "token", token, methods=["POST"])
    app.add_url_rule(OTHER_PATH, "token_other", token, methods=["POST"])
    return app.wsgi_app


class NoopWSGI:
    """The floor: a WSGI middleware that only passes the call on."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        return self.app(environ, start_response)  # type: ignore[no-any-return]


def wsgi_variants(outputs: dict[str, str]) -> dict[str, tuple[Any, str]]:
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.trace import TracerProvider

    from hera_middleware import HeraEventsWSGI

    hera = {
        name: HeraEventsWSGI(flask_app(), rules=EXAMPLE_RULES, output=out)
        for name, out in outputs.items()
    }
    return {
        "bare app": (flask_app(), TOKEN_PATH),
        "bare app, unmatched path": (flask_app(), OTHER_PATH),
        "no-op WSGI middleware": (NoopWSGI(flask_app()), TOKEN_PATH),
        "HeraEventsWSGI, no candidate rule": (hera["devnull"], OTHER_PATH),
        "HeraEventsWSGI, rule matches, event to a file": (hera["file"], TOKEN_PATH),
        "HeraEventsWSGI, rule matches, event to /dev/null": (hera["devnull"], TOKEN_PATH),
        "OpenTelemetry WSGI (SDK tracer provider)": (
            OpenTelemetryMiddleware(flask_app(), tracer_provider=TracerProvider()),
            TOKEN_PATH,
        ),
    }


def wsgi_loop(app: Callable[..., Iterable[bytes]], path: str, n: int, body: bytes = BODY) -> None:
    """Call ``app`` ``n`` times as a WSGI server would: iterate, then close."""
    template = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "bench/1.0",
        "HTTP_ACCEPT": "application/json",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    status = ""

    def start_response(s: str, headers: Any, exc_info: Any = None) -> Callable[[bytes], None]:
        nonlocal status
        status = s
        return lambda data: None

    for _ in range(n):
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(body)
        result = app(environ, start_response)
        try:
            for _chunk in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    if not status.startswith("200"):
        raise RuntimeError(f"the app answered {status} on {path}")
