"""Differential tests: with and without the middleware, client and app see the same bytes.

Hypothesis generates requests (method, raw path with non-UTF-8 percent-escapes, query,
headers with duplicates and odd case, bodies split into random message chunks, empty
bodies, ``root_path`` / ``SCRIPT_NAME`` mounts) and runs each against a corpus of ASGI
and WSGI apps twice: bare, and wrapped in HeraEvents / HeraEventsWSGI with rules that
match *every* request and test the request form, request JSON, response JSON and
response body (so a pass-through cannot pass).
Both runs must give byte-identical status, header lists (order, case, multiplicity),
body chunks in the same split, the same request messages / ``wsgi.input`` results to
the app, the same scope / environ (but ``wsgi.input``), and the very exception object
the app raised.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.middleware.gzip import GZipMiddleware

import hera_middleware
from hera_middleware import HeraEvents, HeraEventsWSGI, load_rules
from hera_middleware.testing import capture_events

pytest.register_assert_rewrite("_asgi_harness", "_wsgi_harness")

from _asgi_harness import BOUND, Message, Server  # noqa: E402
from _wsgi_harness import Server as WSGIServer  # noqa: E402
from _wsgi_harness import Stream, wsgi_environ  # noqa: E402

RULES = """
events:
  form_seen: [grant_type]
  json_seen: [kind]
  response_json_seen: [result]
  response_body_seen: []
  exchange_done: [status]
rules:
  - event: form_seen
    match: ["* /", "* /{any:path}"]
    if: {form.grant_type: present}
    fields: {grant_type: form.grant_type}
  - event: json_seen
    match: ["* /", "* /{any:path}"]
    if: {json.kind: present}
    fields: {kind: json.kind}
  - event: response_json_seen
    match: ["* /", "* /{any:path}"]
    if: {response.json.result: present}
    fields: {result: response.json.result}
  - event: response_body_seen
    match: ["* /", "* /{any:path}"]
    if: {response.body: {contains: needle}}
  - event: exchange_done
    match: ["* /", "* /{any:path}"]
    fields: {status: response.status}
"""

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_OUT = Path(tempfile.mkdtemp(prefix="hera-differential-")) / "events.jsonl"
_RULES = load_rules(text=RULES)


class AppError(Exception):
    """What the corpus apps raise."""


# --------------------------------------------------------------------------- requests

_SEGMENT_PIECES = st.sampled_from(
    [b"oauth", b"token", b"a", b"%FF", b"%C3%A9", b"%E2%82", b"%2F", b"%00", b"%20", b"~", b"x.y"]
)
_raw_path = st.lists(
    st.lists(_SEGMENT_PIECES, min_size=0, max_size=3).map(b"".join), min_size=0, max_size=4
).map(lambda segs: b"/" + b"/".join(segs))
_QUERY_PIECES = st.sampled_from(
    [b"a=1", b"code=abc", b"state=%FF%FE", b"x=%C3%A9", b"&", b"=", b"b", b"c=%2", b"d=+"]
)
_query = st.lists(_QUERY_PIECES, max_size=6).map(lambda parts: b"&".join(parts))
_CONTENT_TYPES = st.sampled_from(
    [
        b"application/x-www-form-urlencoded",
        b"Application/X-WWW-Form-URLEncoded; charset=UTF-8",
        b"application/json",
        b"application/json; charset=latin-1",
        b"multipart/form-data; boundary=zz",
        b"text/plain",
        b";;;",
    ]
)
_header_name = st.sampled_from([b"x-a", b"X-A", b"accept", b"cookie", b"x-dup", b"user-agent"])
_header_value = st.binary(max_size=12).map(
    lambda b: bytes(c for c in b if c not in b"\r\n\x00") or b"v"
)
_headers = st.lists(st.tuples(_header_name, _header_value), max_size=5)
_BODIES = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    st.sampled_from(
        [
            b"grant_type=authorization_code&client_id=web&code=c1",
            b'{"kind":"login","nested":{"a":[1,2,3]}}',
            b'{"kind":',
            b"\xff\xfe\x00not utf-8",
            b"--zz\r\nContent-Disposition: form-data; name=grant_type\r\n\r\nx\r\n--zz--\r\n",
        ]
    ),
)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    body = draw(_BODIES)
    cuts = sorted(draw(st.sets(st.integers(0, len(body)), max_size=4)))
    bounds = [0, *cuts, len(body)]
    parts = [body[a:b] for a, b in itertools.pairwise(bounds)]
    return {
        "method": draw(st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "PATCH"])),
        "raw_path": draw(_raw_path),
        "query": draw(_query),
        "headers": draw(_headers),
        "content_type": draw(st.none() | _CONTENT_TYPES),
        "gzip": draw(st.booleans()),
        "body": body,
        "parts": parts,
        "empty_last": draw(st.booleans()),
        "mount": draw(st.sampled_from(["", "/idp"])),
    }


# ----------------------------------------------------------------------- ASGI corpus


def _read_all(receive: Any) -> Any:
    async def go() -> bytes:
        data = b""
        while True:
            message = await receive()
            data += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body", False):
                return data

    return go()


def _start(status: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()) -> Message:
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


def _body(data: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


async def echo(scope: Any, receive: Any, send: Any) -> None:
    data = await _read_all(receive)
    await send(_start(200, [(b"content-type", b"application/json")]))
    await send(_body(b'{"result":"ok","echo":' + json.dumps(data.hex()).encode() + b"}"))


async def stream(scope: Any, receive: Any, send: Any) -> None:
    data = await _read_all(receive)
    await send(_start(200, [(b"content-type", b"text/plain"), (b"X-Len", str(len(data)).encode())]))
    for chunk in (b"first needle ", data[:50], b"", b"last"):
        await send(_body(chunk, more=True))
    await send(_body(b""))


async def never_reads(scope: Any, receive: Any, send: Any) -> None:
    await send(_start(200, [(b"content-type", b"application/json")]))
    await send(_body(b'{"result":"unread"}'))


async def raises_before(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    raise AppError("before start")


async def raises_after(scope: Any, receive: Any, send: Any) -> None:
    await send(_start(200, [(b"content-type", b"text/plain")]))
    await send(_body(b"partial needle", more=True))
    raise AppError("after start")


async def no_body_statuses(scope: Any, receive: Any, send: Any) -> None:
    data = await _read_all(receive)
    if scope["method"] == "HEAD":
        await send(
            _start(200, [(b"content-type", b"application/json"), (b"content-length", b"17")])
        )
        await send(_body(b""))
    elif len(data) % 2:
        await send(_start(204, [(b"x-a", b"1")]))
        await send(_body(b""))
    else:
        await send(_start(304, [(b"etag", b'"v1"'), (b"cache-control", b"no-cache")]))
        await send(_body(b""))


async def cookies(scope: Any, receive: Any, send: Any) -> None:
    await _read_all(receive)
    headers = [
        (b"Set-Cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; HttpOnly"),
        (b"SET-COOKIE", b"c=3"),
        (b"x-dup", b"1"),
        (b"X-Dup", b"2"),
        (b"x-dup", b"1"),
        (b"location", b"/cb?code=c&state=%FF"),
    ]
    await send(_start(302, headers))
    await send(_body(b""))


async def _gzip_inner(scope: Any, receive: Any, send: Any) -> None:
    data = await _read_all(receive)
    await send(_start(200, [(b"content-type", b"application/json")]))
    payload = b'{"result":"gz","pad":"' + b"needle " * 40 + data.hex().encode() + b'"}'
    await send(_body(payload[:100], more=True))
    await send(_body(payload[100:]))


ASGI_APPS: dict[str, Callable[[], Any]] = {
    "echo": lambda: echo,
    "stream": lambda: stream,
    "never_reads": lambda: never_reads,
    "raises_before": lambda: raises_before,
    "raises_after": lambda: raises_after,
    "no_body_statuses": lambda: no_body_statuses,
    "cookies": lambda: cookies,
    "gzip": lambda: GZipMiddleware(_gzip_inner, minimum_size=10),
}


class Recorder:
    """The app side: records the scope, each message received (object and copy)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.scopes: list[Any] = []
        self.received: list[Message] = []
        self.received_copies: list[Message] = []
        self.raised: BaseException | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scopes.append(copy.deepcopy(scope))

        async def rec_receive() -> Message:
            message = await receive()
            self.received.append(message)
            self.received_copies.append(copy.deepcopy(message))
            return message

        try:
            await self.app(scope, rec_receive, send)
        except BaseException as exc:
            self.raised = exc
            raise


def _asgi_scope(req: dict[str, Any]) -> dict[str, Any]:
    headers = list(req["headers"])
    if req["content_type"] is not None:
        headers.append((b"content-type", req["content_type"]))
    if req["gzip"]:
        headers.append((b"accept-encoding", b"gzip"))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": req["method"],
        "scheme": "https",
        "path": req["mount"] + unquote_to_bytes(req["raw_path"]).decode("utf-8", "replace"),
        "raw_path": req["mount"].encode() + req["raw_path"],
        "query_string": req["query"],
        "root_path": req["mount"],
        "headers": headers,
        "client": ("203.0.113.9", 51000),
        "server": ("idp.example", 443),
    }


def _asgi_messages(req: dict[str, Any]) -> list[Message]:
    parts = req["parts"]
    if req["empty_last"] or not parts:
        return [{"type": "http.request", "body": p, "more_body": True} for p in parts] + [
            {"type": "http.request", "body": b"", "more_body": False}
        ]
    return [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]


def _run_asgi(name: str, req: dict[str, Any], wrapped: bool) -> tuple[Any, ...]:
    recorder = Recorder(ASGI_APPS[name]())
    app: Any = recorder
    if wrapped:
        app = HeraEvents(recorder, rules=_RULES, output=f"file:{_OUT}")
    server = Server(_asgi_messages(req))
    scope = _asgi_scope(req)
    raised: BaseException | None = None
    try:
        asyncio.run(server.run(app, scope))
    except AppError as exc:
        raised = exc
    assert raised is recorder.raised, "the app's exception did not propagate as the same object"
    # The app got the very message objects the server handed out, unchanged.
    served = server.log.received[: len(recorder.received)]
    assert [id(m) for m in recorder.received] == [id(m) for m in served]
    sent = [
        (m["type"], m.get("status"), m.get("headers"), m.get("body"), m.get("more_body"))
        for m in server.log.sent_copies
    ]
    return (
        sent,
        recorder.received_copies,
        recorder.scopes,
        scope,
        None if raised is None else (type(raised), raised.args),
    )


@SETTINGS
@given(req=requests(), name=st.sampled_from(sorted(ASGI_APPS)))
def test_asgi_wrapped_is_byte_identical(req: dict[str, Any], name: str) -> None:
    bare = _run_asgi(name, req, wrapped=False)
    with capture_events() as events:
        wrapped = _run_asgi(name, req, wrapped=True)
    assert wrapped == bare
    # The rules matched: an exchange that completed gave its exchange_done event.
    if name not in {"raises_before"}:
        assert any(e["event"] == "exchange_done" for e in events), events


# ----------------------------------------------------------------------- WSGI corpus


def _w_echo(environ: Any, start_response: Any) -> Any:
    data = environ["wsgi.input"].read()
    environ["test.seen"] = [data]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"result":"ok","echo":' + json.dumps(data.hex()).encode() + b"}"]


def _w_readline(environ: Any, start_response: Any) -> Any:
    stream_ = environ["wsgi.input"]
    seen = [stream_.readline(7), stream_.read(3), *list(stream_)]
    environ["test.seen"] = seen
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"needle", b"".join(seen)]


def _w_stream(environ: Any, start_response: Any) -> Any:
    data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    environ["test.seen"] = [data]

    def gen() -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Len", str(len(data)))])
        yield b"first needle "
        yield data[:50]
        yield b""
        yield b"last"

    return gen()


def _w_never_reads(environ: Any, start_response: Any) -> Any:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"result":"unread"}']


def _w_raises_before(environ: Any, start_response: Any) -> Any:
    environ["wsgi.input"].read(1)
    raise AppError("before start")


def _w_raises_after(environ: Any, start_response: Any) -> Any:
    def gen() -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial needle"
        exc = environ["test.raised"] = AppError("after start")
        raise exc

    return gen()


def _w_no_body_statuses(environ: Any, start_response: Any) -> Any:
    data = environ["wsgi.input"].read()
    environ["test.seen"] = [data]
    if environ["REQUEST_METHOD"] == "HEAD":
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "17")])
    elif len(data) % 2:
        start_response("204 No Content", [("X-A", "1")])
    else:
        start_response("304 Not Modified", [("ETag", '"v1"'), ("Cache-Control", "no-cache")])
    return []


def _w_cookies(environ: Any, start_response: Any) -> Any:
    write = start_response(
        "302 Found",
        [
            ("Set-Cookie", "a=1; Path=/"),
            ("set-cookie", "b=2; HttpOnly"),
            ("SET-COOKIE", "c=3"),
            ("x-dup", "1"),
            ("X-Dup", "2"),
            ("x-dup", "1"),
            ("Location", "/cb?code=c&state=%FF"),
        ],
    )
    write(b"written ")
    return [b"needle"]


def _w_exc_info(environ: Any, start_response: Any) -> Any:
    try:
        raise AppError("handled")
    except AppError:
        import sys

        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response(
            "500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info()
        )
    return [b"oops"]


WSGI_APPS: dict[str, Callable[..., Any]] = {
    "echo": _w_echo,
    "readline": _w_readline,
    "stream": _w_stream,
    "never_reads": _w_never_reads,
    "raises_before": _w_raises_before,
    "raises_after": _w_raises_after,
    "no_body_statuses": _w_no_body_statuses,
    "cookies": _w_cookies,
    "exc_info": _w_exc_info,
}


def _wsgi_env(req: dict[str, Any]) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in req["headers"]:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        headers[key] = headers[key] + "," + text if key in headers else text  # duplicates join
    if req["gzip"]:
        headers["HTTP_ACCEPT_ENCODING"] = "gzip"
    ctype = req["content_type"]
    return wsgi_environ(
        req["method"],
        unquote_to_bytes(req["raw_path"]).decode("latin-1"),
        body=req["body"],
        content_type=None if ctype is None else ctype.decode("latin-1"),
        query=req["query"].decode("latin-1"),
        script_name=req["mount"],
        headers=headers,
        stream=Stream(req["body"], terminated=True),
    )


def _run_wsgi(name: str, req: dict[str, Any], wrapped: bool) -> tuple[Any, ...]:
    app: Any = WSGI_APPS[name]
    seen_environ: list[dict[str, Any]] = []

    def recorder(environ: Any, start_response: Any) -> Any:
        seen_environ.append(environ)
        try:
            return app(environ, start_response)
        except AppError as exc:
            environ["test.raised"] = exc
            raise

    target: Any = recorder
    if wrapped:
        target = HeraEventsWSGI(recorder, rules=_RULES, output=f"file:{_OUT}")
    environ = _wsgi_env(req)
    stream_ = environ["wsgi.input"]
    server = WSGIServer()
    raised: BaseException | None = None
    try:
        server.run(target, environ)
    except AppError as exc:
        raised = exc
    app_environ = seen_environ[0]
    if raised is not None:
        assert raised is app_environ["test.raised"], "not the same exception object"
    plain = {k: v for k, v in app_environ.items() if k not in {"wsgi.input", "test.raised"}}
    # A list response has no close(); the wrapper's response always has one (E10), called once.
    if raised is None:
        assert server.closes == (1 if wrapped or hasattr(server.result, "close") else 0)
    return (
        server.wire(),
        [type(c) for c in server.chunks],
        stream_.calls,
        plain,
        None if raised is None else (type(raised), raised.args),
    )


@SETTINGS
@given(req=requests(), name=st.sampled_from(sorted(WSGI_APPS)))
def test_wsgi_wrapped_is_byte_identical(req: dict[str, Any], name: str) -> None:
    bare = _run_wsgi(name, req, wrapped=False)
    with capture_events() as events:
        wrapped = _run_wsgi(name, req, wrapped=True)
    assert wrapped == bare
    if name not in {"raises_before"}:
        assert any(e["event"] == "exchange_done" for e in events), events


def test_differential_output_is_one_valid_line_per_event() -> None:
    """Whatever the generated runs wrote is one valid JSON line each, within 4096 bytes."""
    assert hera_middleware.flush(BOUND)
    if not _OUT.exists():
        pytest.skip("run with the generated tests")
    for line in _OUT.read_bytes().splitlines(keepends=True):
        assert line.count(b"\n") == 1
        assert line.endswith(b"\n")
        assert len(line) <= 4096
        json.loads(line.decode("utf-8"))
