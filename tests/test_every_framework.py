"""One rule file, every framework: each recorded exchange gives the same event lines
through the ASGI middleware, the WSGI middleware and the Flask extension."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from flask import Flask, Response, request
from test_real_servers import (
    RECORDS,
    Client,
    Record,
    Replay,
    _request_body,
    _scope,
    recorded_traffic,  # noqa: F401  (autouse: signal facts unknown, as in replay)
)

from hera_middleware import HeraEvents, HeraEventsWSGI, load_rules
from hera_middleware.flask import HeraEvents as FlaskHeraEvents
from hera_middleware.testing import capture_events

Event = dict[str, Any]


def _discard(event: dict[str, object]) -> None:
    return None


def _stripped(events: list[dict[str, object]]) -> list[Event]:
    return [{k: v for k, v in e.items() if k not in ("type", "domain", "ts")} for e in events]


async def _through_asgi(record: Record, rules: object) -> list[Event]:
    body = _request_body(record.data)
    app = HeraEvents(Replay(record.data), rules=rules, output=_discard)
    client = Client(body)
    with capture_events() as events:
        await app(_scope(record.data, body), client.receive, client.send)
    return _stripped(events)


def _environ(record: Record, body: bytes) -> dict[str, Any]:
    """The WSGI environ of a recorded request, mounted at its root path."""
    scope = _scope(record.data, body)
    root = record.data["root_path"]
    path = record.data["path"]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": record.data["method"],
        "SCRIPT_NAME": root,
        "PATH_INFO": path[len(root) :] if root and path.startswith(root) else path,
        "QUERY_STRING": scope["query_string"].decode("ascii"),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value.decode("latin-1")
        elif key == "CONTENT_LENGTH":
            environ["CONTENT_LENGTH"] = value.decode("latin-1")
        else:
            environ[f"HTTP_{key}"] = value.decode("latin-1")
    return environ


def _wsgi_replay(record: Record) -> Callable[..., Iterable[bytes]]:
    replay = Replay(record.data)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"].read(length)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in replay.start["headers"]]
        start_response(f"{replay.start['status']} X", headers)
        return [replay.body]

    return app


def _run_wsgi(app: Callable[..., Iterable[bytes]], environ: dict[str, Any]) -> None:
    result = app(environ, lambda status, headers, exc_info=None: lambda data: None)
    try:
        for _ in result:
            pass
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def _through_wsgi(record: Record, rules: object) -> list[Event]:
    body = _request_body(record.data)
    app = HeraEventsWSGI(_wsgi_replay(record), rules=rules, output=_discard)
    with capture_events() as events:
        _run_wsgi(app, _environ(record, body))
    return _stripped(events)


def _through_flask(record: Record, rules: object) -> list[Event]:
    """A Flask app that reads the form or body as the real servers did and answers as they did."""
    body = _request_body(record.data)
    replay = Replay(record.data)
    flask_app = Flask(__name__)

    @flask_app.route("/", defaults={"rest": ""}, methods=["GET", "POST"])
    @flask_app.route("/<path:rest>", methods=["GET", "POST"])
    def answer(rest: str) -> Response:
        request.get_data()
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in replay.start["headers"]
            if k != b"content-length"
        ]
        return Response(replay.body, status=replay.start["status"], headers=headers)

    FlaskHeraEvents(flask_app, rules=rules, output=_discard)
    with capture_events() as events:
        _run_wsgi(flask_app.wsgi_app, _environ(record, body))
    return _stripped(events)


@pytest.mark.parametrize("record", RECORDS, ids=[r.id for r in RECORDS])
async def test_every_adapter_gives_the_same_events(record: Record) -> None:
    """ASGI, WSGI and Flask turn the same exchange into the same event lines."""
    rules = load_rules(record.rules)
    asgi = await _through_asgi(record, rules)
    assert asgi in record.accepted()
    assert _through_wsgi(record, rules) == asgi
    assert _through_flask(record, rules) == asgi
