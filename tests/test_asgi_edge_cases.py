"""The HTTP edge cases (E01-E03, E06-E09, E13-E15) under HeraEvents, raw ASGI and Starlette.

Every test checks the invariants of the edge-case list: transparent (the app and the
server see the very same message objects, unchanged, and the same bytes as without
the middleware), lazy (nobody calls ``receive()`` for the app), fail-open (nothing
raises but the app's own exceptions), private (no secret of the request reaches an
event, the output or stderr) and one line (each event is one valid JSON line). The
rules match every request and test request and response bodies, so a pass-through
that never looked at the exchange cannot pass.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route

import hera_middleware
from hera_middleware import HeraConfigError, HeraEvents, _diagnostics, _stats, load_rules, policy
from hera_middleware.testing import capture_events

pytest.register_assert_rewrite("_asgi_harness")

from _asgi_harness import (  # noqa: E402
    BODY_RULES,
    BOUND,
    FORM_TYPE,
    REQUEST_HEADERS,
    SECRETS,
    TOKEN_FORM,
    Log,
    Message,
    Output,
    Receive,
    Scope,
    Send,
    Server,
    Spy,
    assert_events,
    assert_lines,
    assert_private,
    assert_transparent,
    chunked,
    dumps,
    event,
    form_headers,
    http_scope,
    json_response,
    reading_app,
    wire,
)

FORM_SEEN = event("form_seen", grant_type="authorization_code", client_id="web")
RESULT_OK = event("response_json_seen", result="ok")
BODY_SEEN = event("response_body_seen")


def done(status: int) -> dict[str, object]:
    """The ``exchange_done`` event every exchange emits."""
    return event("exchange_done", status=status)


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    _stats._reset_for_tests()
    _diagnostics._reset_for_tests()


@pytest.fixture
def output(tmp_path: Path) -> Output:
    return Output(tmp_path / "events.jsonl")


def client(app: Any, **options: Any) -> httpx.AsyncClient:
    """An httpx client driving ``app`` in process, from a documentation client address."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 51000), **options)
    return httpx.AsyncClient(transport=transport, base_url="https://idp.example")


def token_request(body: bytes = TOKEN_FORM) -> dict[str, Any]:
    """httpx keyword arguments for a token request carrying secrets."""
    return {
        "content": body,
        "headers": {
            "content-type": FORM_TYPE.decode(),
            "cookie": "sid=sid-SECRET-cookie",
            "x-forwarded-for": "203.0.113.9",
            "authorization": "Basic d2ViOnMzY3JldA==",
        },
    }


async def token_endpoint(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"result": "ok", "access_token": "tok-SECRET-999"})


def starlette_token_app(endpoint: Any = token_endpoint) -> Starlette:
    """A Starlette app answering ``POST /oauth/token`` with ``endpoint``."""
    return Starlette(routes=[Route("/oauth/token", endpoint, methods=["POST"])])


def check_output(
    output: Output, events: list[dict[str, object]], stderr: str = "", *more_secrets: str
) -> None:
    """The one-line and private invariants for what a test emitted."""
    assert_lines(output, events)
    written = output.path.read_bytes() if output.path.exists() else b""
    assert_private(written, dumps(events), stderr, secrets=(*SECRETS, *more_secrets))


# -- E01 another middleware reads the whole body first ----------------------


class ReadAllThenReplay:
    """A pure ASGI middleware that reads the whole body, then replays it to its app."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replay_receive() -> Message:
            for message in replay:
                return message
            return await receive()

        await self.app(scope, replay_receive, send)


async def test_e01_reading_middleware_inside_raw(output: Output, capsys: Any) -> None:
    """A raw middleware that reads the whole body before the endpoint leaves the endpoint every
    field and the event intact.
    """
    endpoint_log, inner = Log(), Log()
    seen: dict[str, list[str]] = {}

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        seen.update(parse_qs(body.decode()))
        for message in json_response():
            await send(message)

    app = HeraEvents(
        Spy(ReadAllThenReplay(Spy(endpoint, endpoint_log)), inner),
        rules=load_rules(text=BODY_RULES),
        output=output.spec,
    )
    server = Server(chunked(TOKEN_FORM, 40))
    with capture_events() as events:
        await server.run(app, http_scope(headers=form_headers(TOKEN_FORM)))
    assert seen == parse_qs(TOKEN_FORM.decode())
    assert_transparent(server.log, inner)
    # ReadAllThenReplay reads ahead of the endpoint by design: same objects, not in step.
    assert_transparent(server.log, endpoint_log, in_step=False)
    assert server.receive_calls == len(chunked(TOKEN_FORM, 40))
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err)


async def test_e01_reading_middleware_inside_starlette(output: Output, capsys: Any) -> None:
    """A Starlette endpoint parsing the form after a body-reading middleware gets every field, and
    the event is emitted once.
    """
    seen: dict[str, str] = {}

    async def endpoint(request: Request) -> JSONResponse:
        form = await request.form()
        seen.update((k, str(v)) for k, v in form.items())
        return JSONResponse({"result": "ok"})

    app = starlette_token_app(endpoint)
    app.add_middleware(ReadAllThenReplay)
    inner, outer = Log(), Log()
    wire(app, inner, outer, rules=load_rules(text=BODY_RULES), output=output.spec)
    with capture_events() as events:
        async with client(app) as c:
            response = await asyncio.wait_for(c.post("/oauth/token", **token_request()), BOUND)
    assert response.status_code == 200
    assert response.json() == {"result": "ok"}
    assert seen == {k: v[0] for k, v in parse_qs(TOKEN_FORM.decode()).items()}
    assert_transparent(outer, inner)
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err)


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("rules-object", id="same-rules-object"),
        pytest.param("rule-file", id="same-rule-file"),
    ],
)
@pytest.mark.parametrize(
    "wiring",
    [pytest.param("raw", id="nested-raw"), pytest.param("starlette", id="add-middleware-twice")],
)
async def test_e01_installed_twice_same_rules_emits_once(
    how: str, wiring: str, output: Output, tmp_path: Path, capsys: Any
) -> None:
    """HeraEvents installed twice with the same configuration neither hangs nor emits twice."""
    (tmp_path / "hera.yaml").write_text(BODY_RULES)
    rules_object = load_rules(text=BODY_RULES)

    def rules() -> Any:
        return rules_object if how == "rules-object" else str(tmp_path / "hera.yaml")

    inner = Log()
    server = Server(chunked(TOKEN_FORM, 50))
    scope = http_scope(headers=form_headers(TOKEN_FORM))
    if wiring == "raw":
        app: Any = HeraEvents(
            HeraEvents(Spy(reading_app(), inner), rules=rules(), output=output.spec),
            rules=rules(),
            output=output.spec,
        )
    else:

        async def endpoint(request: Request) -> JSONResponse:
            await request.form()
            return JSONResponse({"result": "ok"})

        app = starlette_token_app(endpoint)
        app.add_middleware(Spy, log=inner)
        app.add_middleware(HeraEvents, rules=rules(), output=output.spec)
        app.add_middleware(HeraEvents, rules=rules(), output=output.spec)
    with capture_events() as events:
        await server.run(app, scope)
    assert_transparent(server.log, inner)
    assert server.log.starts()[0]["status"] == 200
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err)


PKCE_RULES = """
rules:
  - id: pkce-token
    event: pkce_token_exchange
    match: POST /oauth/token
    if:
      form.grant_type: authorization_code
      form.code_verifier: present
      response.json.result: ok
    fields: {client_id: [form.client_id, basic_auth.username]}
"""


@pytest.mark.parametrize(
    "wiring",
    [pytest.param("raw", id="nested-raw"), pytest.param("starlette", id="add-middleware-twice")],
)
async def test_e01_installed_twice_different_rules_emits_both(
    wiring: str, output: Output, tmp_path: Path, capsys: Any
) -> None:
    """HeraEvents installed twice with different rule files emits the events of both."""
    (tmp_path / "body.yaml").write_text(BODY_RULES)
    (tmp_path / "pkce.yaml").write_text(PKCE_RULES)
    inner = Log()
    server = Server(chunked(TOKEN_FORM, 50))
    if wiring == "raw":
        app: Any = HeraEvents(
            HeraEvents(
                Spy(reading_app(), inner), rules=str(tmp_path / "pkce.yaml"), output=output.spec
            ),
            rules=str(tmp_path / "body.yaml"),
            output=output.spec,
        )
    else:
        app = starlette_token_app()
        app.add_middleware(Spy, log=inner)
        app.add_middleware(HeraEvents, rules=str(tmp_path / "pkce.yaml"), output=output.spec)
        app.add_middleware(HeraEvents, rules=str(tmp_path / "body.yaml"), output=output.spec)
    with capture_events() as events:
        await server.run(app, http_scope(headers=form_headers(TOKEN_FORM)))
    assert_transparent(server.log, inner)
    by_name = sorted(events, key=lambda e: str(e["event"]))
    assert_events(
        by_name,
        [done(200), FORM_SEEN, event("pkce_token_exchange", client_id="web"), RESULT_OK],
    )
    check_output(output, events, capsys.readouterr().err)


# -- E02 chunked bodies and bodies over the cap -------------------------------


@pytest.mark.parametrize(
    ("size", "empty_last"),
    [
        pytest.param(1, True, id="1-byte-chunks-empty-last"),
        pytest.param(7, True, id="7-byte-chunks-empty-last"),
        pytest.param(7, False, id="7-byte-chunks"),
        pytest.param(len(TOKEN_FORM), True, id="one-chunk-empty-last"),
    ],
)
async def test_e02_chunked_body_raw(
    size: int, empty_last: bool, output: Output, capsys: Any
) -> None:
    """A body in several chunks, with or without an empty last one, reaches the app message by
    message and is parsed whole.
    """
    inner = Log()
    app = HeraEvents(
        Spy(reading_app(), inner), rules=load_rules(text=BODY_RULES), output=output.spec
    )
    messages = chunked(TOKEN_FORM, size, empty_last=empty_last)
    server = Server(messages)
    with capture_events() as events:
        await server.run(app, http_scope(headers=form_headers(TOKEN_FORM)))
    assert_transparent(server.log, inner)
    assert server.receive_calls == len(messages)
    bare = Server(chunked(TOKEN_FORM, size, empty_last=empty_last))
    await bare.run(reading_app(), http_scope(headers=form_headers(TOKEN_FORM)))
    assert server.log.sent_copies == bare.log.sent_copies
    assert server.log.received_copies == bare.log.received_copies
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err)


async def test_e02_chunked_body_starlette(output: Output, capsys: Any) -> None:
    """A body streamed by the client in several chunks reaches a Starlette endpoint whole and the
    event sees the form.
    """
    seen: dict[str, str] = {}

    async def endpoint(request: Request) -> JSONResponse:
        seen.update((k, str(v)) for k, v in (await request.form()).items())
        return JSONResponse({"result": "ok"})

    async def chunks() -> Any:
        for i in range(0, len(TOKEN_FORM), 9):
            yield TOKEN_FORM[i : i + 9]

    inner, outer = Log(), Log()
    app = wire(
        starlette_token_app(endpoint),
        inner,
        outer,
        rules=load_rules(text=BODY_RULES),
        output=output.spec,
    )
    request = token_request()
    request["content"] = chunks()
    with capture_events() as events:
        async with client(app) as c:
            response = await asyncio.wait_for(c.post("/oauth/token", **request), BOUND)
    assert response.status_code == 200
    assert seen == {k: v[0] for k, v in parse_qs(TOKEN_FORM.decode()).items()}
    assert_transparent(outer, inner)
    assert [m["more_body"] for m in inner.received_copies][-2:] == [True, False]
    assert inner.received_copies[-1]["body"] == b""
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err)


CAP_RULES = """
events:
  form_seen: [grant_type, client_id]
  late_absent: []
  late_present: []
  json_seen: [kind]
  json_late_absent: []
rules:
  - event: form_seen
    match: "* /{any:path}"
    if: {form.grant_type: present}
    fields: {grant_type: form.grant_type, client_id: form.client_id}
  - event: late_absent
    match: "* /{any:path}"
    if: {form.late: absent}
  - event: late_present
    match: "* /{any:path}"
    if: {form.late: present}
  - event: json_seen
    match: "* /{any:path}"
    if: {json.kind: present}
    fields: {kind: json.kind}
  - event: json_late_absent
    match: "* /{any:path}"
    if: {json.late: absent}
"""

KIB = 1024


def big_form() -> bytes:
    """A 200 KiB form: public keys first, ``late`` after the 64 KiB cap."""
    head = b"grant_type=authorization_code&client_id=web&code=code-SECRET-0815&pad="
    tail = b"&late=1"
    return head + b"a" * (200 * KIB - len(head) - len(tail)) + tail


def big_json() -> bytes:
    """A 200 KiB JSON body whose ``kind`` sits in the first 64 KiB."""
    head = b'{"kind":"login","pad":"'
    tail = b'","late":1}'
    return head + b"a" * (200 * KIB - len(head) - len(tail)) + tail


@pytest.mark.parametrize(
    ("body", "content_type", "expected", "unknown"),
    [
        pytest.param(
            big_form(),
            FORM_TYPE,
            # form.late is unknown; json.late is absent: the body is no JSON.
            [FORM_SEEN, event("json_late_absent")],
            2,
            id="form",
        ),
        # A JSON body cut at the cap cannot be parsed: every json fact is unknown, while
        # form.late is absent: the body is no form.
        pytest.param(big_json(), b"application/json", [event("late_absent")], 2, id="json"),
    ],
)
async def test_e02_body_over_the_cap_raw(
    body: bytes,
    content_type: bytes,
    expected: list[dict[str, object]],
    unknown: int,
    output: Output,
    capsys: Any,
) -> None:
    """A 200 KiB body reaches the app unchanged; the copy stops at 64 KiB and facts beyond it are
    unknown, not absent.
    """
    assert len(body) == 200 * KIB
    inner = Log()
    app = HeraEvents(
        Spy(reading_app(), inner), rules=load_rules(text=CAP_RULES), output=output.spec
    )
    messages = chunked(body, 16 * KIB)
    server = Server(messages)
    with capture_events() as events:
        await server.run(app, http_scope(headers=form_headers(body, content_type)))
    assert_transparent(server.log, inner)
    assert server.receive_calls == len(messages) == 14
    assert b"".join(m["body"] for m in inner.received_copies) == body
    assert_events(events, expected)
    assert hera_middleware.stats()["facts_unknown"] == unknown
    check_output(output, events, capsys.readouterr().err)


async def test_e02_body_over_the_cap_starlette(output: Output, capsys: Any) -> None:
    """A Starlette endpoint gets all of a 200 KiB form; the event comes from its first 64 KiB."""
    seen: dict[str, str] = {}

    async def endpoint(request: Request) -> JSONResponse:
        form = await request.form(max_part_size=1024 * KIB)
        seen.update((k, str(v)) for k, v in form.items())
        return JSONResponse({"result": "ok"})

    inner, outer = Log(), Log()
    app = wire(
        starlette_token_app(endpoint),
        inner,
        outer,
        rules=load_rules(text=CAP_RULES),
        output=output.spec,
    )
    with capture_events() as events:
        async with client(app) as c:
            response = await asyncio.wait_for(
                c.post("/oauth/token", **token_request(big_form())), BOUND
            )
    assert response.status_code == 200
    assert seen["late"] == "1"
    assert len(seen["pad"]) > 199 * KIB
    assert_transparent(outer, inner)
    assert_events(events, [FORM_SEEN, event("json_late_absent")])
    assert hera_middleware.stats()["facts_unknown"] == 2
    check_output(output, events, capsys.readouterr().err)


# -- E03 receive() after the body ---------------------------------------------


async def test_e03_receive_after_body_reaches_server_raw(output: Output, capsys: Any) -> None:
    """receive() calls after the last body chunk reach the server's receive and return its
    http.disconnect.
    """
    inner = Log()
    app = HeraEvents(
        Spy(reading_app(extra_receives=2), inner),
        rules=load_rules(text=BODY_RULES),
        output=output.spec,
    )
    messages = chunked(TOKEN_FORM, 64)
    server = Server(messages, disconnect="at_once")
    with capture_events() as events:
        await server.run(app, http_scope(headers=form_headers(TOKEN_FORM)))
    assert_transparent(server.log, inner)
    assert server.receive_calls == len(messages) + 2
    assert [m["type"] for m in inner.received_copies[-2:]] == ["http.disconnect"] * 2
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err)


async def test_e03_receive_after_body_reaches_server_starlette(output: Output, capsys: Any) -> None:
    """A Starlette endpoint that reads the body and then receive() again gets the server's own
    http.disconnect.
    """
    got: list[Message] = []

    async def endpoint(request: Request) -> JSONResponse:
        await request.body()
        got.append(await request.receive())
        return JSONResponse({"result": "ok"})

    inner, outer = Log(), Log()
    app = wire(
        starlette_token_app(endpoint),
        inner,
        outer,
        rules=load_rules(text=BODY_RULES),
        output=output.spec,
    )
    server = Server(chunked(TOKEN_FORM, 64), disconnect="at_once")
    with capture_events() as events:
        await server.run(app, http_scope(headers=form_headers(TOKEN_FORM)))
    assert got == [{"type": "http.disconnect"}]
    assert got[0] is server.log.received[-1]
    assert server.receive_calls == len(chunked(TOKEN_FORM, 64)) + 1
    assert_transparent(outer, inner)
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err)


# -- E06 form content types -----------------------------------------------------


FORM_TYPES = [
    pytest.param(
        b"content-type", b"application/x-www-form-urlencoded; charset=UTF-8", id="charset-UTF-8"
    ),
    pytest.param(
        b"content-type", b"application/x-www-form-urlencoded;charset=utf-8", id="no-space"
    ),
    pytest.param(b"content-type", b"APPLICATION/X-WWW-FORM-URLENCODED", id="upper-case"),
    pytest.param(
        b"content-type", b"Application/X-WWW-Form-Urlencoded; Charset=UTF-8", id="mixed-case"
    ),
    pytest.param(
        b"content-type", b" application/x-www-form-urlencoded ; charset=UTF-8", id="padded"
    ),
    pytest.param(
        b"Content-Type", b"application/x-www-form-urlencoded; charset=UTF-8", id="header-name-case"
    ),
]


@pytest.mark.parametrize(("name", "value"), FORM_TYPES)
async def test_e06_form_content_type_variants_raw(
    name: bytes, value: bytes, output: Output, capsys: Any
) -> None:
    """A token request whose Content-Type has a charset or odd case is still parsed as a form."""
    inner = Log()
    app = HeraEvents(
        Spy(reading_app(), inner), rules=load_rules(text=BODY_RULES), output=output.spec
    )
    headers = [
        *REQUEST_HEADERS,
        (name, value),
        (b"content-length", str(len(TOKEN_FORM)).encode()),
    ]
    server = Server(chunked(TOKEN_FORM, 30))
    with capture_events() as events:
        await server.run(app, http_scope(headers=headers))
    assert_transparent(server.log, inner)
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err)


@pytest.mark.parametrize(("name", "value"), FORM_TYPES[:5])
async def test_e06_form_content_type_variants_starlette(
    name: bytes, value: bytes, output: Output, capsys: Any
) -> None:
    """Through Starlette, a form Content-Type with a charset or odd case is parsed as a form."""
    inner, outer = Log(), Log()
    app = wire(
        starlette_token_app(), inner, outer, rules=load_rules(text=BODY_RULES), output=output.spec
    )
    request = token_request()
    request["headers"]["content-type"] = value.decode()
    with capture_events() as events:
        async with client(app) as c:
            response = await asyncio.wait_for(c.post("/oauth/token", **request), BOUND)
    assert response.status_code == 200
    assert_transparent(outer, inner)
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err)


# -- E07 streamed and file responses ------------------------------------------


CHUNKS = [b"chunk-1;", b"chunk-2;", b"chunk-3 needle"]


def streaming_app(kind: str, gate: asyncio.Event, produced: list[bytes]) -> Any:
    """An app streaming CHUNKS; chunk 2 is made only after ``gate`` is set."""

    async def chunks() -> Any:
        for i, chunk in enumerate(CHUNKS):
            if i == 1:
                # Set by the server once it has chunk 1: a middleware holding chunk 1
                # back would make this time out.
                await asyncio.wait_for(gate.wait(), BOUND / 2)
            produced.append(chunk)
            yield chunk

    if kind == "starlette":

        async def endpoint(request: Request) -> StreamingResponse:
            return StreamingResponse(chunks(), media_type="text/plain")

        return Starlette(routes=[Route("/stream", endpoint)])

    async def raw(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
            }
        )
        async for chunk in chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return raw


async def run_streaming(kind: str, wrap: Any) -> tuple[Server, list[list[bytes]]]:
    """Run the streaming app behind ``wrap``; return the server and what existed at each chunk."""
    gate = asyncio.Event()
    produced: list[bytes] = []
    at_send: list[list[bytes]] = []

    def on_send(message: Message) -> None:
        if message["type"] == "http.response.body":
            at_send.append(list(produced))
            if message.get("body") == CHUNKS[0]:
                gate.set()

    server = Server([{"type": "http.request", "body": b"", "more_body": False}], on_send=on_send)
    await server.run(
        wrap(streaming_app(kind, gate, produced)),
        http_scope("GET", "/stream", headers=REQUEST_HEADERS),
    )
    return server, at_send


@pytest.mark.parametrize(
    "kind", [pytest.param("raw", id="raw-app"), pytest.param("starlette", id="StreamingResponse")]
)
async def test_e07_streamed_response_forwarded_at_once(
    kind: str, output: Output, capsys: Any
) -> None:
    """Each chunk of a slow stream reaches the client before the next one exists, unchanged, after
    exactly one start.
    """
    inner, outer = Log(), Log()
    rules = load_rules(text=BODY_RULES)

    def wrap(app: Any) -> Any:
        if kind == "starlette":
            return wire(app, inner, outer, rules=rules, output=output.spec)
        return Spy(HeraEvents(Spy(app, inner), rules=rules, output=output.spec), outer)

    with capture_events() as events:
        server, at_send = await run_streaming(kind, wrap)
    bare, _ = await run_streaming(kind, lambda app: app)
    assert at_send == [CHUNKS[:1], CHUNKS[:2], CHUNKS, CHUNKS]
    assert server.log.sent_copies == bare.log.sent_copies
    assert len(server.log.starts()) == 1
    names = [k.lower() for k, _ in server.log.starts()[0]["headers"]]
    assert b"content-length" not in names
    assert b"transfer-encoding" not in names
    assert [m.get("body") for m in server.log.sent_copies[1:]] == [*CHUNKS, b""]
    assert_transparent(outer, inner)
    assert_events(events, [BODY_SEEN, done(200)])
    check_output(output, events, capsys.readouterr().err)


FILE_RULES = BODY_RULES.replace(
    "rules:\n",
    """  tail_seen: []
rules:
  - id: tail-seen
    event: tail_seen
    match: "* /{any:path}"
    if: {response.body: {contains: tail-marker}}
""",
    1,
)


@pytest.mark.parametrize(
    ("pathsend", "expected"),
    [
        # The copy holds the first 64 KiB: "needle" is found, "tail-marker" beyond it is unknown.
        pytest.param(False, [BODY_SEEN, done(200)], id="chunks"),
        # http.response.pathsend carries no bytes: body facts are unknown.
        pytest.param(True, [done(200)], id="pathsend"),
    ],
)
async def test_e07_file_response(
    pathsend: bool, expected: list[dict[str, object]], output: Output, tmp_path: Path, capsys: Any
) -> None:
    """A FileResponse passes with one start, its headers untouched and every chunk unchanged."""
    path = tmp_path / "big.txt"
    content = b"needle " + b"x" * (150 * KIB) + b" tail-marker"
    path.write_bytes(content)

    def make() -> Starlette:
        async def endpoint(request: Request) -> FileResponse:
            return FileResponse(path, media_type="text/plain")

        return Starlette(routes=[Route("/file", endpoint)])

    extensions: dict[str, Any] | None = {"http.response.pathsend": {}} if pathsend else None
    scope = http_scope("GET", "/file", headers=REQUEST_HEADERS, extensions=extensions)
    inner, outer = Log(), Log()
    app = wire(make(), inner, outer, rules=load_rules(text=FILE_RULES), output=output.spec)
    server = Server([{"type": "http.request", "body": b"", "more_body": False}])
    with capture_events() as events:
        await server.run(app, copy.deepcopy(scope))
    bare = Server([{"type": "http.request", "body": b"", "more_body": False}])
    await bare.run(make(), copy.deepcopy(scope))
    assert server.log.sent_copies == bare.log.sent_copies
    assert len(server.log.starts()) == 1
    if pathsend:
        assert [m["type"] for m in server.log.sent_copies] == [
            "http.response.start",
            "http.response.pathsend",
        ]
    else:
        assert server.log.body() == content
        assert len(server.log.sent_copies) == 1 + 3
    assert_transparent(outer, inner)
    assert_events(events, expected)
    check_output(output, events, capsys.readouterr().err)


# -- E08 a gzip middleware ------------------------------------------------------


GZIP_RULES = BODY_RULES.replace(
    "rules:\n",
    """  gzip_seen: []
rules:
  - id: gzip-seen
    event: gzip_seen
    match: "* /{any:path}"
    if: {response.headers.content-encoding: gzip, response.status: 200}
""",
    1,
)


async def gzip_endpoint(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"result": "ok", "pad": "needle " * 200})


@pytest.mark.parametrize(
    ("inside", "expected", "unknown"),
    [
        # Compressed bytes: the event comes from status and headers; body facts are unknown.
        pytest.param(True, [event("gzip_seen"), FORM_SEEN, done(200)], 2, id="gzip-inside"),
        # HeraEvents inside the gzip middleware sees the plain body.
        pytest.param(False, [FORM_SEEN, RESULT_OK, BODY_SEEN, done(200)], 0, id="gzip-outside"),
    ],
)
async def test_e08_gzip_middleware(
    inside: bool, expected: list[dict[str, object]], unknown: int, output: Output, capsys: Any
) -> None:
    """With GZipMiddleware inside, bytes pass unchanged and body rules see unknown; outside, body
    facts work.
    """
    app = starlette_token_app(gzip_endpoint)
    inner, outer = Log(), Log()
    if inside:
        app.add_middleware(GZipMiddleware, minimum_size=100)
        wire(app, inner, outer, rules=load_rules(text=GZIP_RULES), output=output.spec)
    else:
        wire(app, inner, outer, rules=load_rules(text=GZIP_RULES), output=output.spec)
        app.add_middleware(GZipMiddleware, minimum_size=100)
    request = token_request()
    request["headers"]["accept-encoding"] = "gzip"
    with capture_events() as events:
        async with client(app) as c:
            response = await asyncio.wait_for(c.post("/oauth/token", **request), BOUND)
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == {"result": "ok", "pad": "needle " * 200}
    assert_transparent(outer, inner)
    if inside:
        assert gzip.decompress(outer.body()) == response.content
    else:
        assert json.loads(outer.body()) == response.json()
    assert_events(events, expected)
    assert hera_middleware.stats()["facts_unknown"] == unknown
    check_output(output, events, capsys.readouterr().err)


# -- E09 duplicate headers --------------------------------------------------------


DUPLICATE_HEADERS = [
    (b"content-type", b"application/json"),
    (b"set-cookie", b"sid=sid-SECRET-cookie; Path=/; HttpOnly"),
    (b"Set-Cookie", b"csrftoken=abc; Path=/"),
    (b"x-dup", b"1"),
    (b"x-dup", b"2"),
    (b"X-Dup", b"3"),
    (b"vary", b"Cookie"),
    (b"vary", b"Accept-Encoding"),
]


async def test_e09_duplicate_headers_raw(output: Output, capsys: Any) -> None:
    """Two Set-Cookie headers and repeated headers pass in count, order, case and bytes."""

    def response() -> list[Message]:
        body = b'{"result":"ok"}'
        return [
            {"type": "http.response.start", "status": 200, "headers": list(DUPLICATE_HEADERS)},
            {"type": "http.response.body", "body": body, "more_body": False},
        ]

    headers = [
        *form_headers(TOKEN_FORM),
        (b"cookie", b"other=1"),
        (b"x-forwarded-for", b"198.51.100.7"),
        (b"accept", b"text/html"),
        (b"accept", b"application/json"),
    ]
    scope = http_scope(headers=headers)
    pristine = copy.deepcopy(scope)
    inner = Log()
    app = HeraEvents(
        Spy(reading_app(response), inner), rules=load_rules(text=BODY_RULES), output=output.spec
    )
    server = Server(chunked(TOKEN_FORM, 64))
    with capture_events() as events:
        await server.run(app, scope)
    assert inner.scopes == [scope]
    assert inner.scopes[0] is scope
    assert scope == pristine
    assert_transparent(server.log, inner)
    start = server.log.sent[0]
    assert start["headers"] is inner.sent[0]["headers"]
    assert start["headers"] == DUPLICATE_HEADERS
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err, "198.51.100.7")


async def test_e09_duplicate_headers_starlette(output: Output, capsys: Any) -> None:
    """A Starlette response with two cookies and repeated headers reaches the client header for
    header.
    """

    async def endpoint(request: Request) -> JSONResponse:
        await request.body()
        response = JSONResponse({"result": "ok"})
        response.set_cookie("sid", "sid-SECRET-cookie", httponly=True)
        response.set_cookie("csrftoken", "abc")
        response.raw_headers.extend([(b"x-dup", b"1"), (b"x-dup", b"2")])
        return response

    inner, outer = Log(), Log()
    app = wire(
        starlette_token_app(endpoint),
        inner,
        outer,
        rules=load_rules(text=BODY_RULES),
        output=output.spec,
    )
    with capture_events() as events:
        async with client(app) as c:
            response = await asyncio.wait_for(c.post("/oauth/token", **token_request()), BOUND)
    assert response.headers.get_list("set-cookie") == [
        "sid=sid-SECRET-cookie; HttpOnly; Path=/; SameSite=lax",
        "csrftoken=abc; Path=/; SameSite=lax",
    ]
    assert response.headers.get_list("x-dup") == ["1", "2"]
    assert_transparent(outer, inner)
    assert outer.sent[0]["headers"] is inner.sent[0]["headers"]
    assert_events(events, [FORM_SEEN, RESULT_OK, done(200)])
    check_output(output, events, capsys.readouterr().err)


# -- E13 an exception from a mounted sub-app ---------------------------------------


RAISED_RULES = BODY_RULES.replace(
    "rules:\n",
    """  app_raised: [status]
rules:
  - id: app-raised
    event: app_raised
    match: "* /{any:path}"
    if: {raised: true, response.status: 500, form.grant_type: present}
    fields: {status: response.status}
""",
    1,
)


class Boom(RuntimeError):
    """The app's own exception."""


def mounted_app(kind: str, boom: Boom) -> Starlette:
    """A Starlette app with a sub-app under /sub that reads the form, then raises ``boom``."""
    if kind == "raw":

        async def sub(scope: Scope, receive: Receive, send: Send) -> None:
            while (await receive()).get("more_body", False):
                pass
            raise boom

        return Starlette(routes=[Mount("/sub", app=sub)])

    async def endpoint(request: Request) -> JSONResponse:
        await request.form()
        raise boom

    inner_app = Starlette(routes=[Route("/token", endpoint, methods=["POST"])])
    return Starlette(routes=[Mount("/sub", app=inner_app)])


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("raw", id="raw-asgi-sub-app"),
        # The sub-app's ServerErrorMiddleware sends its 500 page, then re-raises.
        pytest.param("starlette", id="starlette-sub-app"),
    ],
)
async def test_e13_mounted_sub_app_raises(kind: str, output: Output, capsys: Any) -> None:
    """A mounted sub-app's exception propagates as the same object, and the event says raised
    without its message.
    """
    boom = Boom("boom: code=code-SECRET-0815 for alice@example.com")
    inner, outer = Log(), Log()
    app = wire(
        mounted_app(kind, boom),
        inner,
        outer,
        rules=load_rules(text=RAISED_RULES),
        output=output.spec,
    )
    with capture_events() as events:
        async with client(app) as c:
            with pytest.raises(Boom) as raised:
                await asyncio.wait_for(c.post("/sub/token", **token_request()), BOUND)
    assert raised.value is boom
    assert_transparent(outer, inner)
    assert_events(events, [event("app_raised", status=500), FORM_SEEN, done(500)])
    check_output(output, events, capsys.readouterr().err)
    assert_private(output.path.read_bytes(), dumps(events), secrets=["boom", "Boom"])


# -- E14 non-UTF-8 bytes in path and query -----------------------------------------


PATH_RULES = """
events:
  callback_seen: [tail]
  tail_is_slug: []
  path_matched: []
rules:
  - event: social_login_initiated
    match: GET /cb{tail}
    if: {query.provider: present}
    fields: {provider: query.provider}
  - event: callback_seen
    match: GET /cb{tail}
    if: {path: {prefix: /cb}}
    fields: {tail: path.tail}
  - event: tail_is_slug
    match: GET /cb{tail}
    if: {path.tail: {regex: "^[a-z]+$"}}
  - event: path_matched
    match: GET /cb{tail}
    if: {path: {regex: "^/cb"}, query.provider: {regex: "."}}
"""

PATHS = [
    # uvicorn percent-decodes with errors="replace".
    pytest.param("/cb\ufffd", b"/cb%ff", b"provider=%ff%fe", id="replacement-char"),
    # A server decoding with surrogateescape leaves lone surrogates in the path.
    pytest.param("/cb\udcff", b"/cb%ff", b"provider=%ff%fe", id="surrogateescape"),
    # Raw bytes passed on undecoded (latin-1 in the str path, bytes in the query).
    pytest.param("/cb\xff\xfe", b"/cb\xff\xfe", b"provider=\xff\xfe", id="raw-bytes"),
]


@pytest.mark.parametrize(("path", "raw_path", "query"), PATHS)
@pytest.mark.parametrize(
    "kind", [pytest.param("raw", id="raw-app"), pytest.param("starlette", id="starlette")]
)
async def test_e14_non_utf8_path_and_query(
    path: str, raw_path: bytes, query: bytes, kind: str, output: Output, capsys: Any
) -> None:
    """Non-UTF-8 bytes in path and query raise nothing, reach the app untouched and are emitted as
    "redacted".
    """
    scope = http_scope("GET", path, raw_path=raw_path, query=query, headers=REQUEST_HEADERS)
    pristine = copy.deepcopy(scope)
    inner = Log()
    if kind == "raw":
        app: Any = HeraEvents(
            Spy(reading_app(lambda: json_response(b'{"result":"ok"}')), inner),
            rules=load_rules(text=PATH_RULES),
            output=output.spec,
        )
    else:

        async def endpoint(request: Request) -> PlainTextResponse:
            return PlainTextResponse("ok")

        app = Starlette(routes=[Route("/cb{tail}", endpoint)])
        app.add_middleware(Spy, log=inner)
        app.add_middleware(HeraEvents, rules=load_rules(text=PATH_RULES), output=output.spec)
    server = Server([{"type": "http.request", "body": b"", "more_body": False}])
    with capture_events() as events:
        await server.run(app, scope)
    assert server.log.starts()[0]["status"] == 200
    assert inner.scopes[0] is scope
    if kind == "raw":
        assert scope == pristine
    assert_transparent(server.log, inner)
    assert_events(
        events,
        [
            event("social_login_initiated", provider="redacted"),
            event("callback_seen", tail="redacted"),
            event("path_matched"),
        ],
    )
    assert hera_middleware.stats()["internal_errors"] == 0
    check_output(output, events, capsys.readouterr().err)


# -- E15 values orjson cannot encode ---------------------------------------------


VALUE_RULES = """
events:
  value_seen: [outcome]
rules:
  - event: value_seen
    match: GET /cb{tail}
    fields: {outcome: path.tail}
  - event: value_seen
    match: POST /json
    if: {json.kind: present}
    fields: {outcome: json.n}
"""

#: A literal of 2**70: loading it must not need orjson to encode it.
LITERAL_RULES = """
events:
  value_seen: [outcome]
rules:
  - event: value_seen
    match: GET /literal
    fields: {outcome: {value: 1180591620717411303424}}
"""


def _pass_through(field: str, value: object, allow: frozenset[str] | None = None) -> object:
    return value


@pytest.mark.parametrize(
    ("method", "path", "raw_path", "body", "clean"),
    [
        pytest.param("GET", "/cb\udcff", b"/cb%ff", b"", True, id="lone-surrogate-path-param"),
        # Past the policy too: the emitter itself must not choke on the surrogate.
        pytest.param("GET", "/cb\udcff", b"/cb%ff", b"", False, id="lone-surrogate-unpoliced"),
        pytest.param(
            "GET", "/cb\ud800x", b"/cb%ed%a0%80x", b"", False, id="high-surrogate-unpoliced"
        ),
        pytest.param(
            "POST",
            "/json",
            None,
            b'{"kind":"k","n":18446744073709551616}',
            True,
            id="int-2**64-json",
        ),
        pytest.param(
            "POST",
            "/json",
            None,
            b'{"kind":"k","n":18446744073709551615}',
            True,
            id="uint64-max-json",
        ),
        pytest.param(
            "POST",
            "/json",
            None,
            b'{"kind":"k","n":-9223372036854775809}',
            True,
            id="below-int64-json",
        ),
        pytest.param(
            "POST", "/json", None, b'{"kind":"k","n":%d}' % 2**200, True, id="int-2**200-json"
        ),
    ],
)
async def test_e15_unencodable_values(
    method: str,
    path: str,
    raw_path: bytes | None,
    body: bytes,
    clean: bool,
    output: Output,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lone surrogates and integers over 64 bits in a field still give one valid line, with
    "redacted" in their place.
    """
    if not clean:
        monkeypatch.setattr(policy, "clean_value", _pass_through)
    headers = [*REQUEST_HEADERS]
    if body:
        headers += [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
    scope = http_scope(method, path, raw_path=raw_path, headers=headers)
    inner = Log()
    app = HeraEvents(
        Spy(reading_app(), inner), rules=load_rules(text=VALUE_RULES), output=output.spec
    )
    server = Server(
        chunked(body, 16) if body else [{"type": "http.request", "body": b"", "more_body": False}]
    )
    with capture_events() as events:
        await server.run(app, scope)
    assert server.log.starts()[0]["status"] == 200
    assert_transparent(server.log, inner)
    assert_events(events, [event("value_seen", outcome="redacted")])
    assert hera_middleware.stats()["internal_errors"] == 0
    check_output(output, events, capsys.readouterr().err)


def test_e15_integer_literal_over_64_bits_is_refused_at_load() -> None:
    """A rule literal no event line could carry (an integer over 64 bits) is a load error."""
    with pytest.raises(HeraConfigError) as raised:
        load_rules(text=LITERAL_RULES)
    assert [p.code for p in raised.value.problems] == ["yaml-value"]
    assert str(raised.value.problems[0]).endswith(
        "yaml-value: the number is too large (64 bits at most)"
    )
