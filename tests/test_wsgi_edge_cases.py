"""The WSGI cases of ../shared/cases/http-edge-cases.md (E04, E05, E07, E09, E10, E11, E14).

Each test runs raw WSGI apps on hand-built environs. Request streams are
``_wsgi_harness.Stream`` objects, which record every call and raise where a socket
would block, so reading ahead of the app fails loudly instead of hanging; where the
wire matters the same app runs bare and wrapped and the server must see the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.wsgi import LimitedStream

import hera_middleware
from hera_middleware import HeraEventsWSGI, _diagnostics, _stats, load_rules
from hera_middleware.testing import capture_events

pytest.register_assert_rewrite("_asgi_harness", "_wsgi_harness")

from _asgi_harness import BODY_RULES, TOKEN_FORM, Output, assert_events, event  # noqa: E402
from _wsgi_harness import (  # noqa: E402
    FORM,
    Environ,
    Server,
    StartResponse,
    Stream,
    WSGIApp,
    assert_same_wire,
    list_app,
    reading_app,
    run_both,
    wsgi_environ,
)

FORM_SEEN = event("form_seen", grant_type="authorization_code", client_id="web")
JSON_SEEN = event("json_seen", kind="totp")
RESULT_OK = event("response_json_seen", result="ok")
JSON_BODY = b'{\n"kind": "totp",\n"device": "phone-1",\n"pad": "' + b"p" * 40 + b'"\n}\n'


def done(status: int | None) -> dict[str, object]:
    """The ``exchange_done`` event every exchange emits under BODY_RULES."""
    return event("exchange_done", status=status)


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    _stats._reset_for_tests()
    _diagnostics._reset_for_tests()


@pytest.fixture
def output(tmp_path: Path) -> Output:
    return Output(tmp_path / "events.jsonl")


def wrap(app: WSGIApp, output: Output, rules: str = BODY_RULES, **options: Any) -> WSGIApp:
    """``app`` wrapped in HeraEventsWSGI with rules from YAML text."""
    return HeraEventsWSGI(app, rules=load_rules(text=rules), output=output.spec, **options)


# -- E04: every way of reading wsgi.input -------------------------------------------


def read_chunks(n: int) -> Callable[[Any], bytes]:
    def read(stream: Any) -> bytes:
        out = b""
        while chunk := stream.read(n):
            out += chunk
        return out

    return read


def read_lines(stream: Any) -> bytes:
    out = b""
    while line := stream.readline():
        out += line
    return out


def read_lines_of(n: int) -> Callable[[Any], bytes]:
    def read(stream: Any) -> bytes:
        out = b""
        while line := stream.readline(n):
            out += line
        return out

    return read


def read_mixed(stream: Any) -> bytes:
    head = stream.read(3) + stream.readline()
    return head + b"".join(stream)


READERS = [
    pytest.param(read_chunks(7), id="read(n)"),
    pytest.param(read_chunks(1), id="read(1)"),
    pytest.param(lambda s: s.read(), id="read()"),
    pytest.param(lambda s: s.read(-1), id="read(-1)"),
    pytest.param(lambda s: s.read(None), id="read(None)"),
    pytest.param(read_lines, id="readline()"),
    pytest.param(read_lines_of(5), id="readline(n)"),
    pytest.param(lambda s: b"".join(s), id="iteration"),
    pytest.param(lambda s: b"".join(s.readlines()), id="readlines()"),
    pytest.param(lambda s: b"".join(s.readlines(10**6)), id="readlines(hint)"),
    pytest.param(read_mixed, id="mixed"),
    pytest.param(lambda s: LimitedStream(s, len(JSON_BODY)).read(), id="werkzeug-limited-readinto"),
]


@pytest.mark.parametrize("read", READERS)
def test_e04_each_way_of_reading_sees_the_exact_bytes(
    output: Output, read: Callable[[Any], bytes]
) -> None:
    """However the app reads wsgi.input it gets the exact body, the server's stream gets the very
    same calls, CONTENT_LENGTH is untouched, and the rules see the body."""

    def environ() -> Environ:
        return wsgi_environ(body=JSON_BODY, content_type="application/json")

    bare_env, env = environ(), environ()
    length = env["CONTENT_LENGTH"]
    Server().run(reading_app(read), bare_env)
    with capture_events() as events:
        Server().run(wrap(reading_app(read), output), env)
    assert env["test.seen"] == bare_env["test.seen"] == JSON_BODY
    assert env["wsgi.input"].calls == bare_env["wsgi.input"].calls
    assert env["CONTENT_LENGTH"] is length
    assert_events(events, [JSON_SEEN, RESULT_OK, done(200)])


def test_e04_tee_forwards_other_attributes_of_the_stream(output: Output) -> None:
    """The tee answers close() and unknown attributes with the stream's own."""
    stream = Stream(TOKEN_FORM)
    stream.limit = 42  # type: ignore[attr-defined]
    seen: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        tee = environ["wsgi.input"]
        seen.extend([tee is not stream, tee.limit, tee.read(), hasattr(tee, "fileno")])
        tee.close()
        return list_app()(environ, start_response)

    with capture_events() as events:
        Server().run(
            wrap(app, output), wsgi_environ(body=TOKEN_FORM, content_type=FORM, stream=stream)
        )
    assert seen == [True, 42, TOKEN_FORM, False]
    assert stream.closed == 1
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])


def test_e04_socket_stream_is_read_exactly_to_content_length(output: Output) -> None:
    """On a raw socket stream (no end-of-file) reading exactly CONTENT_LENGTH never blocks."""
    stream = Stream(TOKEN_FORM, terminated=False)
    environ = wsgi_environ(body=TOKEN_FORM, content_type=FORM, stream=stream)
    app = reading_app(lambda s: s.read(int(environ["CONTENT_LENGTH"])))
    with capture_events() as events:
        Server().run(wrap(app, output), environ)
    assert stream.calls == [("read", (len(TOKEN_FORM),))]
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])


def test_e04_partly_read_body_is_unknown(output: Output) -> None:
    """A body the app read only in part is unknown to rules, and nothing more is read."""
    stream = Stream(TOKEN_FORM, terminated=False)
    environ = wsgi_environ(body=TOKEN_FORM, content_type=FORM, stream=stream)
    with capture_events() as events:
        Server().run(wrap(reading_app(lambda s: s.read(10)), output), environ)
    assert stream.calls == [("read", (10,))]
    assert_events(events, [RESULT_OK, done(200)])
    assert hera_middleware.stats()["facts_unknown"] > 0


def test_e04_seek_makes_the_body_unknown(output: Output) -> None:
    """An app that seeks its input gets the stream's own seek; the copy becomes unknown."""
    import io

    def read(stream: Any) -> bytes:
        stream.read(5)
        stream.seek(0)
        return bytes(stream.read())

    environ = wsgi_environ(body=TOKEN_FORM, content_type=FORM, stream=io.BytesIO(TOKEN_FORM))
    with capture_events() as events:
        Server().run(wrap(reading_app(read), output), environ)
    assert environ["test.seen"] == TOKEN_FORM
    assert_events(events, [RESULT_OK, done(200)])


# -- E05: no Content-Length, chunked input -------------------------------------------


def test_e05_empty_content_length_reads_nothing(output: Output) -> None:
    """With an empty CONTENT_LENGTH nothing reads the stream (it would block) and the body is
    known to be empty."""
    rules = BODY_RULES.replace(
        "rules:\n",
        "  form_absent: []\nrules:\n"
        '  - {event: form_absent, match: "* /{any:path}", if: {form.grant_type: absent}}\n',
    )
    stream = Stream(b"", terminated=False)
    environ = wsgi_environ(content_type=FORM, content_length="", stream=stream)
    with capture_events() as events:
        Server().run(wrap(list_app(), output, rules), environ)
    assert stream.calls == []
    assert environ["wsgi.input"] is stream
    assert_events(events, [event("form_absent"), RESULT_OK, done(200)])


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(read_chunks(16), id="read(n)-to-eof"),
        pytest.param(lambda s: s.read(), id="read()"),
        pytest.param(lambda s: b"".join(s), id="iteration"),
    ],
)
def test_e05_chunked_input_terminated(output: Output, read: Callable[[Any], bytes]) -> None:
    """A chunked body the server terminates (wsgi.input_terminated) is read to its end by the
    app alone, and the rules see it."""
    stream = Stream(TOKEN_FORM, terminated=True)
    environ = wsgi_environ(
        content_type=FORM,
        stream=stream,
        terminated=True,
        headers={"HTTP_TRANSFER_ENCODING": "chunked"},
    )
    bare = Stream(TOKEN_FORM, terminated=True)
    read(bare)
    with capture_events() as events:
        Server().run(wrap(reading_app(read), output), environ)
    assert environ["test.seen"] == TOKEN_FORM
    assert stream.calls == bare.calls
    assert "CONTENT_LENGTH" not in environ
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])


def test_e05_chunked_body_not_read_to_the_end_is_unknown(output: Output) -> None:
    """A terminated body the app stopped reading before end-of-file is unknown."""
    environ = wsgi_environ(
        content_type=FORM,
        stream=Stream(TOKEN_FORM),
        terminated=True,
        headers={"HTTP_TRANSFER_ENCODING": "chunked"},
    )
    with capture_events() as events:
        Server().run(wrap(reading_app(lambda s: s.read(len(TOKEN_FORM))), output), environ)
    assert_events(events, [RESULT_OK, done(200)])


def test_e05_chunked_without_termination_is_left_alone(output: Output) -> None:
    """Chunked input without wsgi.input_terminated: the stream is not wrapped nor read, and the
    body is unknown."""
    stream = Stream(TOKEN_FORM, terminated=False)
    environ = wsgi_environ(
        content_type=FORM, stream=stream, headers={"HTTP_TRANSFER_ENCODING": "chunked"}
    )
    with capture_events() as events:
        Server().run(wrap(list_app(), output), environ)
    assert environ["wsgi.input"] is stream
    assert stream.calls == []
    assert_events(events, [RESULT_OK, done(200)])


# -- E07: streamed responses --------------------------------------------------------------


def test_e07_each_chunk_reaches_the_server_before_the_next_exists(output: Output) -> None:
    """A slow generator's first chunk is at the server before the second is made, and the event
    is written only after the last chunk."""
    log: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        for i, part in enumerate([b'{"result":', b'"ok"', b"}"]):
            log.append(f"made {i}")
            yield part

    with capture_events() as events:
        server = Server(on_chunk=lambda c: log.append(f"got {c!r} events={len(events)}"))
        server.run(wrap(app, output), wsgi_environ("GET", "/x"))
    assert log == [
        "made 0",
        "got b'{\"result\":' events=0",
        "made 1",
        "got b'\"ok\"' events=0",
        "made 2",
        "got b'}' events=0",
    ]
    assert_events(events, [RESULT_OK, done(200)])


# -- E09: duplicate headers --------------------------------------------------------------

CHUNK_A = b'{"result":"ok"}'
CHUNK_B = b""


def test_e09_header_list_and_chunks_are_the_apps_own_objects(output: Output) -> None:
    """Two Set-Cookie and duplicate headers reach the server as the app's own list, in order,
    with the very status string and chunk objects."""
    headers = [
        ("Content-Type", "application/json"),
        ("Set-Cookie", "a=1; Path=/"),
        ("Set-Cookie", "b=2; Path=/"),
        ("X-Dup", "1"),
        ("x-dup", "2"),
    ]
    status = "200 OK"

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, headers)
        return [CHUNK_A, CHUNK_B]

    server = Server().run(wrap(app, output), wsgi_environ())
    assert server.starts == [(status, headers)]
    assert server.starts[0][0] is status
    assert server.starts[0][1] is headers
    assert server.chunks[0] is CHUNK_A
    assert server.chunks[1] is CHUNK_B


def generator_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    yield b'{"result":'
    yield b'"ok"}'


def write_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", [("Content-Type", "application/json")])
    write(b'{"result":')
    return [b'"ok"}']


def lazy_redirect_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    yield b""
    start_response("302 Found", [("Location", "/cb?error=access_denied")])
    yield b""


TRANSPARENT_APPS = [
    pytest.param(list_app, id="list"),
    pytest.param(lambda: generator_app, id="generator"),
    pytest.param(lambda: write_app, id="write-callable"),
    pytest.param(lambda: lazy_redirect_app, id="lazy-start-response"),
    pytest.param(lambda: list_app("204 No Content", [], []), id="empty"),
]


@pytest.mark.parametrize("make_app", TRANSPARENT_APPS)
@pytest.mark.parametrize(
    "make_environ",
    [
        pytest.param(lambda: wsgi_environ(body=TOKEN_FORM, content_type=FORM), id="post"),
        pytest.param(lambda: wsgi_environ("GET", "/authorize", query="x=1"), id="get"),
    ],
)
def test_transparency_with_and_without_the_middleware(
    output: Output, make_app: Callable[[], WSGIApp], make_environ: Callable[[], Environ]
) -> None:
    """The server gets identical status lines, header lists, chunks and writes with and without
    the middleware."""
    bare, wrapped = run_both(make_app, lambda a: wrap(a, output), make_environ)
    assert_same_wire(bare, wrapped)


# -- E10: close() exactly once ------------------------------------------------------------


class Body:
    """A response iterable counting its close() calls, optionally raising mid-stream."""

    def __init__(self, chunks: list[bytes], boom: BaseException | None = None) -> None:
        self.chunks = chunks
        self.boom = boom
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.boom is not None:
            raise self.boom

    def close(self) -> None:
        self.closed += 1


def body_app(body: Any) -> WSGIApp:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "application/json")])
        return body

    return app


def test_e10_client_gone_closes_once_and_keeps_the_status(output: Output) -> None:
    """When the client goes away after the first chunk the app's close() runs once; the status
    still counts, the body is unknown."""
    body = Body([b'{"result":', b'"ok"}'])
    with capture_events() as events:
        Server(stop_after=1).run(wrap(body_app(body), output), wsgi_environ())
    assert body.closed == 1
    assert_events(events, [done(200)])


def test_e10_generator_that_raises_is_closed_once(output: Output) -> None:
    """A response whose iteration raises is closed once and the same exception propagates."""
    boom = ValueError("mid-stream")
    body = Body([b'{"result":'], boom)
    with capture_events() as events, pytest.raises(ValueError, match="mid-stream") as info:
        Server().run(wrap(body_app(body), output), wsgi_environ())
    assert info.value is boom
    assert body.closed == 1
    assert_events(events, [done(500)])


def test_e10_generator_finally_runs_once_when_closed_early(output: Output) -> None:
    """A generator response abandoned by the server gets GeneratorExit once, through close()."""
    finals: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        try:
            yield b"1"
            yield b"2"
        finally:
            finals.append("closed")

    Server(stop_after=1).run(wrap(app, output), wsgi_environ())
    assert finals == ["closed"]


def test_e10_close_twice_closes_the_app_once(output: Output) -> None:
    """A server calling close() twice still calls the app's close() once."""
    body = Body([b"{}"])
    result: Any = wrap(body_app(body), output)(wsgi_environ(), Server().start)
    list(result)
    result.close()
    result.close()
    assert body.closed == 1


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([b"{}"], id="list"),
        pytest.param((b"{}",), id="tuple"),
        pytest.param(iter([b"{}"]), id="iterator"),
    ],
)
def test_e10_returned_object_always_has_close(output: Output, body: Any) -> None:
    """Whatever iterable the app returns, the middleware's answer has close()."""
    result: Any = wrap(body_app(body), output)(wsgi_environ(), Server().start)
    assert callable(result.close)
    result.close()


# -- E11: exc_info and lazy start_response --------------------------------------------------


def test_e11_exc_info_before_the_body_replaces_the_status(output: Output) -> None:
    """start_response called again with exc_info before any body reaches the server with the
    same tuple, and the final status is captured."""
    infos: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        try:
            raise KeyError("late")
        except KeyError:
            info = sys.exc_info()
            infos.append(info)
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], info)
        return [b"error"]

    with capture_events() as events:
        server = Server().run(wrap(app, output), wsgi_environ())
    assert server.starts[1][2] is infos[0]
    assert server.status == "500 Internal Server Error"
    assert_events(events, [done(500)])


def test_e11_exc_info_keyword_passes_through(output: Output) -> None:
    """exc_info given by keyword reaches the server as the same keyword."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("502 Bad Gateway", [], exc_info=None)
        return [b""]

    server = Server().run(wrap(app, output), wsgi_environ())
    assert server.start_kwargs == [{"exc_info": None}]


def test_e11_exc_info_after_headers_were_sent_reraises(output: Output) -> None:
    """exc_info after the headers went out makes the server re-raise; it propagates unchanged
    and the exchange counts as raised."""
    boom = RuntimeError("after headers")

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        yield b'{"result":'
        try:
            raise boom
        except RuntimeError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never"

    with capture_events() as events, pytest.raises(RuntimeError) as info:
        Server().run(wrap(app, output), wsgi_environ())
    assert info.value is boom
    assert_events(events, [done(500)])


def test_e11_lazy_start_response_inside_a_generator(output: Output) -> None:
    """start_response called on first iteration is passed through; status and Location count."""
    rules = """
rules:
  - event: social_login_initiated
    match: GET /login/{provider}
    if: {response.status: 302, response.location.query.error: access_denied}
    fields: {provider: path.provider}
"""
    bare, wrapped = run_both(
        lambda: lazy_redirect_app,
        lambda a: wrap(a, output, rules),
        lambda: wsgi_environ("GET", "/login/github"),
    )
    assert_same_wire(bare, wrapped)
    with capture_events() as events:
        Server().run(wrap(lazy_redirect_app, output, rules), wsgi_environ("GET", "/login/github"))
    assert_events(events, [event("social_login_initiated", provider="github")])


# -- E14: undecodable bytes ------------------------------------------------------------------


def test_e14_non_utf8_path_and_query(output: Output) -> None:
    """Non-UTF-8 bytes in PATH_INFO and QUERY_STRING raise nothing and pass unchanged."""
    path = b"/oauth/\xff\xfe".decode("latin-1")
    query = b"client_id=\xff&x=%ff".decode("latin-1")
    environ = wsgi_environ("GET", path, query=query)
    with capture_events() as events:
        server = Server().run(wrap(list_app(), output), environ)
    assert environ["PATH_INFO"] is path
    assert server.status == "200 OK"
    assert_events(events, [RESULT_OK, done(200)])
    assert hera_middleware.stats()["internal_errors"] == 0
