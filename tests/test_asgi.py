"""HeraEvents, the ASGI middleware: pass-through, laziness, paths, routes, raising apps, faults.

Raw ASGI tests use hand-built scopes and a recording server; Starlette and FastAPI
tests wire the middleware as users do (``HeraEvents(app)`` or ``add_middleware``).
Every exchange is checked for transparency (the very same message objects on both
sides), laziness, privacy and one valid line per event.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route

import hera_middleware
from hera_middleware import HeraConfigError, HeraEvents, _diagnostics, _stats, load_rules, policy
from hera_middleware.adapters import asgi
from hera_middleware.exchange import Exchange
from hera_middleware.matching import RuleSet
from hera_middleware.testing import capture_events

pytest.register_assert_rewrite("_asgi_harness")

from _asgi_harness import (  # noqa: E402
    BODY_RULES,
    BOUND,
    REQUEST_HEADERS,
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


def done(status: int | None) -> dict[str, object]:
    """The ``exchange_done`` event every exchange emits."""
    return event("exchange_done", status=status)


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    _stats._reset_for_tests()
    _diagnostics._reset_for_tests()


@pytest.fixture
def output(tmp_path: Path) -> Output:
    return Output(tmp_path / "events.jsonl")


def client(app: Any) -> httpx.AsyncClient:
    """An httpx client driving ``app`` in process."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 51000))
    return httpx.AsyncClient(transport=transport, base_url="https://idp.example")


def check_output(output: Output, events: list[dict[str, object]], stderr: str = "") -> None:
    """The one-line and private invariants for what a test emitted."""
    assert_lines(output, events)
    assert_private(output.path.read_bytes() if output.path.exists() else b"", dumps(events), stderr)


def recording_app(
    calls: list[tuple[Any, Any, Any]], inner: Callable[..., Any] | None = None
) -> Any:
    """A raw app recording the (scope, receive, send) it was called with."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope, receive, send))
        if inner is not None:
            await inner(scope, receive, send)

    return app


# -- pass-through -------------------------------------------------------------


TOKEN_ONLY = """
rules:
  - event: pkce_token_exchange
    match: POST /oauth/token
    if: {form.code_verifier: present, response.json.result: ok}
    fields: {client_id: form.client_id}
"""


async def test_request_no_rule_matches_is_passed_through(output: Output) -> None:
    """A request no rule matches reaches the app with the very scope, receive and send of the
    server.
    """
    calls: list[tuple[Any, Any, Any]] = []
    app = HeraEvents(
        recording_app(calls, reading_app()), rules=load_rules(text=TOKEN_ONLY), output=output.spec
    )
    server = Server(chunked(TOKEN_FORM, 64))
    scope = http_scope("POST", "/oauth/revoke", headers=form_headers(TOKEN_FORM))
    with capture_events() as events:
        await server.run(app, scope)
    assert calls[0][0] is scope
    assert calls[0][1] is server.receive
    assert calls[0][2] is server.send
    assert server.log.starts()[0]["status"] == 200
    assert events == []
    assert hera_middleware.stats() == dict.fromkeys(_stats.COUNTER_NAMES, 0)


STATUS_ONLY = """
events:
  exchange_done: [status]
rules:
  - event: exchange_done
    match: "* /{any:path}"
    if: {response.status: 2xx}
    fields: {status: response.status}
"""


async def test_body_not_copied_when_no_rule_needs_it(output: Output, capsys: Any) -> None:
    """When no candidate rule tests a request body the app gets the server's own receive."""
    calls: list[tuple[Any, Any, Any]] = []
    app = HeraEvents(
        recording_app(calls, reading_app()), rules=load_rules(text=STATUS_ONLY), output=output.spec
    )
    server = Server(chunked(TOKEN_FORM, 64))
    with capture_events() as events:
        await server.run(app, http_scope(headers=form_headers(TOKEN_FORM)))
    assert calls[0][1] is server.receive
    assert_events(events, [done(200)])
    check_output(output, events, capsys.readouterr().err)


async def test_websocket_scope_passes_through(output: Output) -> None:
    """A websocket scope reaches the app with the very scope, receive and send, rules or not."""
    calls: list[tuple[Any, Any, Any]] = []

    async def ws(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    app = HeraEvents(
        recording_app(calls, ws), rules=load_rules(text=BODY_RULES), output=output.spec
    )
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "path": "/oauth/token",
        "raw_path": b"/oauth/token",
        "query_string": b"",
        "root_path": "",
        "headers": list(REQUEST_HEADERS),
        "subprotocols": [],
    }
    server = Server([{"type": "websocket.connect"}])
    with capture_events() as events:
        await server.run(app, scope)
    assert len(calls) == 1
    assert calls[0][0] is scope
    assert calls[0][1] is server.receive
    assert calls[0][2] is server.send
    assert [m["type"] for m in server.log.sent_copies] == ["websocket.accept", "websocket.close"]
    assert events == []


async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A raw app speaking the lifespan protocol."""
    assert (await receive())["type"] == "lifespan.startup"
    await send({"type": "lifespan.startup.complete"})
    assert (await receive())["type"] == "lifespan.shutdown"
    await send({"type": "lifespan.shutdown.complete"})


def lifespan_server() -> Server:
    """A server driving one lifespan: startup, then shutdown."""
    return Server([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])


LIFESPAN_SCOPE = {
    "type": "lifespan",
    "asgi": {"version": "3.0", "spec_version": "2.0"},
    "state": {},
}


async def test_lifespan_messages_pass_through(output: Output) -> None:
    """Lifespan messages reach the app and the server as the very same objects, in order."""
    inner = Log()
    app = HeraEvents(
        Spy(lifespan_app, inner), rules=load_rules(text=BODY_RULES), output=output.spec
    )
    server = lifespan_server()
    scope = copy.deepcopy(LIFESPAN_SCOPE)
    await server.run(app, scope)
    assert inner.scopes[0] is scope
    assert_transparent(server.log, inner)
    assert [m["type"] for m in server.log.sent_copies] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_lifespan_receive_passes_through_and_send_is_the_shutdown_hook(
    output: Output,
) -> None:
    """receive is wrapped only to see whether the app takes part (the messages are the
    server's own, see above); send only to flush at shutdown.
    """
    calls: list[tuple[Any, Any, Any]] = []
    app = HeraEvents(
        recording_app(calls, lifespan_app), rules=load_rules(text=BODY_RULES), output=output.spec
    )
    server = lifespan_server()
    scope = copy.deepcopy(LIFESPAN_SCOPE)
    await server.run(app, scope)
    assert len(calls) == 1
    assert calls[0][0] is scope
    assert calls[0][1] is not server.receive  # learns that the app took part
    assert calls[0][2] is not server.send  # hera's shutdown hook (DESIGN: flush at shutdown)
    assert server.receive_calls == 2


async def no_lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Django's ASGIHandler: anything but HTTP raises at once, before receive()."""
    if scope["type"] != "http":
        raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")


async def test_lifespan_is_answered_for_an_app_without_it(
    output: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An app that raises (or returns) before ever calling receive() does not support
    lifespan: HeraEvents answers startup and shutdown for it, flushing at shutdown.
    """
    shutdowns: list[bool] = []
    monkeypatch.setattr(asgi, "_shutdown", lambda: shutdowns.append(True))

    async def returns_at_once(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    for inner in (no_lifespan_app, returns_at_once):
        shutdowns.clear()
        app = HeraEvents(inner, rules=load_rules(text=BODY_RULES), output=output.spec)
        server = lifespan_server()
        await server.run(app, copy.deepcopy(LIFESPAN_SCOPE))
        assert [m["type"] for m in server.log.sent_copies] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        assert server.receive_calls == 2
        assert shutdowns == [True]


async def test_lifespan_failure_after_receive_is_the_apps(output: Output) -> None:
    """An app that received startup and then raised keeps its error: the server judges it."""

    async def fails_at_startup(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise RuntimeError("startup broke")

    app = HeraEvents(fails_at_startup, rules=load_rules(text=BODY_RULES), output=output.spec)
    server = lifespan_server()
    with pytest.raises(RuntimeError, match="startup broke"):
        await server.run(app, copy.deepcopy(LIFESPAN_SCOPE))
    assert server.log.sent_copies == []
    assert server.receive_calls == 1


# -- laziness ------------------------------------------------------------------


LAZY_RULES = BODY_RULES.replace(
    "rules:\n",
    """  form_absent: []
rules:
  - id: form-absent
    event: form_absent
    match: "* /{any:path}"
    if: {form.grant_type: absent}
""",
    1,
)


def answering_app(reads: int) -> Any:
    """A raw app that calls receive() ``reads`` times, then answers with JSON."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for _ in range(reads):
            await receive()
        for message in json_response():
            await send(message)

    return app


@pytest.mark.parametrize(
    "reads",
    [pytest.param(0, id="app-never-reads"), pytest.param(1, id="app-reads-first-chunk-only")],
)
async def test_unread_body_is_never_read_and_unknown(
    reads: int, output: Output, capsys: Any
) -> None:
    """The middleware never reads the body for the app; the part the app left unread is unknown, so
    even `absent` does not fire.
    """
    inner = Log()
    app = HeraEvents(
        Spy(answering_app(reads), inner), rules=load_rules(text=LAZY_RULES), output=output.spec
    )
    server = Server(chunked(TOKEN_FORM, 64))
    with capture_events() as events:
        await server.run(app, http_scope(headers=form_headers(TOKEN_FORM)))
    assert server.receive_calls == reads
    assert_transparent(server.log, inner)
    assert_events(events, [RESULT_OK, done(200)])
    assert hera_middleware.stats()["facts_unknown"] == 2
    check_output(output, events, capsys.readouterr().err)


# -- root_path -----------------------------------------------------------------


ROOT_RULES = """
events:
  token_seen: [grant_type]
  welcome_seen: []
rules:
  - event: token_seen
    match: POST /oauth/token
    if: {path: /oauth/token, form.grant_type: present}
    fields: {grant_type: form.grant_type}
  - event: welcome_seen
    match: POST /oauth/token
    if: {response.location.path: /welcome, response.location.query.code: present}
"""

ROOT_CASES = [
    pytest.param(
        "/idp/oauth/token", "/idp", b"/idp/welcome?code=code-SECRET-0815", True, id="mounted"
    ),
    pytest.param(
        "/idp/oauth/token",
        "/idp",
        b"https://idp.example/idp/welcome?code=code-SECRET-0815",
        True,
        id="mounted-absolute-location",
    ),
    pytest.param("/oauth/token", "", b"/welcome?code=code-SECRET-0815", True, id="not-mounted"),
    # A path outside root_path is left alone, so it is no /oauth/token.
    pytest.param(
        "/idpx/oauth/token", "/idp", b"/idp/welcome?code=code-SECRET-0815", False, id="outside-root"
    ),
]


@pytest.mark.parametrize(("path", "root_path", "location", "matches"), ROOT_CASES)
async def test_root_path_is_stripped(
    path: str, root_path: str, location: bytes, matches: bool, output: Output, capsys: Any
) -> None:
    """Rules see the app-relative path, with root_path removed from the request path and from the
    Location path.
    """

    def redirect() -> list[Message]:
        return [
            {"type": "http.response.start", "status": 302, "headers": [(b"location", location)]},
            {"type": "http.response.body", "body": b"", "more_body": False},
        ]

    inner = Log()
    app = HeraEvents(
        Spy(reading_app(redirect), inner), rules=load_rules(text=ROOT_RULES), output=output.spec
    )
    server = Server(chunked(TOKEN_FORM, 64))
    with capture_events() as events:
        await server.run(
            app, http_scope(path=path, root_path=root_path, headers=form_headers(TOKEN_FORM))
        )
    assert_transparent(server.log, inner)
    expected = [event("token_seen", grant_type="authorization_code"), event("welcome_seen")]
    assert_events(events, expected if matches else [])
    check_output(output, events, capsys.readouterr().err)


# -- route names and path parameters -------------------------------------------


ROUTE_RULES = """
rules:
  - event: social_login_completed
    route: social_callback
    if: {response.status: 302, route: social_callback}
    fields:
      provider: path.provider
      first_login: {if: {response.location.path: {prefix: /welcome}}}
  - event: pkce_token_exchange
    route: token
    if: {form.grant_type: authorization_code, response.json.result: ok}
    fields: {client_id: form.client_id}
"""


def starlette_routes_app() -> Starlette:
    """A Starlette app with a named social callback and token route."""

    async def callback(request: Request) -> RedirectResponse:
        return RedirectResponse("/welcome", status_code=302)

    async def token(request: Request) -> JSONResponse:
        await request.form()
        return JSONResponse({"result": "ok"})

    return Starlette(
        routes=[
            Route("/login/{provider}/callback", callback, name="social_callback"),
            Route("/oauth/token", token, methods=["POST"], name="token"),
        ]
    )


def fastapi_routes_app() -> FastAPI:
    """The same routes in FastAPI."""
    api = FastAPI()

    @api.get("/login/{provider}/callback", name="social_callback")
    async def callback(provider: str) -> RedirectResponse:
        return RedirectResponse("/welcome", status_code=302)

    @api.post("/oauth/token", name="token")
    async def token(request: Request) -> dict[str, str]:
        await request.form()
        return {"result": "ok"}

    return api


@pytest.mark.parametrize("framework", [pytest.param("starlette"), pytest.param("fastapi")])
@pytest.mark.parametrize("wiring", [pytest.param("wrapped"), pytest.param("add_middleware")])
async def test_route_rules_resolve_against_the_route_table(
    framework: str, wiring: str, output: Output, capsys: Any
) -> None:
    """`route:` rules find their paths in the app's route table and see the router's path
    parameters.
    """
    app: Any = starlette_routes_app() if framework == "starlette" else fastapi_routes_app()
    inner, outer = Log(), Log()
    rules = load_rules(text=ROUTE_RULES)
    if wiring == "wrapped":
        app = Spy(HeraEvents(Spy(app, inner), rules=rules, output=output.spec), outer)
    else:
        wire(app, inner, outer, rules=rules, output=output.spec)
    with capture_events() as events:
        async with client(app) as c:
            redirect = await asyncio.wait_for(
                c.get("/login/github/callback?code=code-SECRET-0815"), BOUND
            )
            token = await asyncio.wait_for(
                c.post(
                    "/oauth/token",
                    content=TOKEN_FORM,
                    headers={"content-type": "application/x-www-form-urlencoded"},
                ),
                BOUND,
            )
    assert redirect.status_code == 302
    assert token.json() == {"result": "ok"}
    assert_transparent(outer, inner)
    assert_events(
        events,
        [
            event("social_login_completed", provider="github", first_login=True),
            event("pkce_token_exchange", client_id="web"),
        ],
    )
    check_output(output, events, capsys.readouterr().err)


async def test_route_names_of_mounted_routers(output: Output, capsys: Any) -> None:
    """Routes under a named Mount are named `mount:route`, as in Starlette's url_path_for."""

    async def token(request: Request) -> JSONResponse:
        await request.form()
        return JSONResponse({"result": "ok"})

    app = Starlette(
        routes=[
            Mount(
                "/auth",
                routes=[Route("/token", token, methods=["POST"], name="token")],
                name="auth",
            )
        ]
    )
    rules = load_rules(
        text="""
rules:
  - event: pkce_token_exchange
    route: "auth:token"
    if: {route: "auth:token", form.grant_type: authorization_code}
    fields: {client_id: form.client_id}
"""
    )
    inner, outer = Log(), Log()
    wire(app, inner, outer, rules=rules, output=output.spec)
    with capture_events() as events:
        async with client(app) as c:
            response = await asyncio.wait_for(
                c.post(
                    "/auth/token",
                    content=TOKEN_FORM,
                    headers={"content-type": "application/x-www-form-urlencoded"},
                ),
                BOUND,
            )
    assert response.status_code == 200
    assert_transparent(outer, inner)
    assert_events(events, [event("pkce_token_exchange", client_id="web")])
    check_output(output, events, capsys.readouterr().err)


def test_route_rule_without_route_table_is_a_config_error() -> None:
    """A `route:` rule on a bare ASGI app fails at construction with the code no-route-table."""

    async def bare(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("never called")

    with pytest.raises(HeraConfigError) as raised:
        HeraEvents(bare, rules=load_rules(text=ROUTE_RULES), output=lambda e: None)
    assert [p.code for p in raised.value.problems] == ["no-route-table", "no-route-table"]
    assert str(raised.value.problems[0]) == (
        "<text>:4:12: no-route-table: `route: social_callback` needs the framework's route table, "
        "and this app has none (hint: write `match: METHOD /path` instead, or wrap the "
        "Starlette/FastAPI app itself (or use the Flask or Django adapter))"
    )


def test_unknown_route_name_is_a_config_error() -> None:
    """A `route:` name the app does not have fails at construction with a did-you-mean hint."""
    with pytest.raises(HeraConfigError) as raised:
        HeraEvents(
            starlette_routes_app(),
            rules=load_rules(text=ROUTE_RULES.replace("route: token", "route: tokn")),
            output=lambda e: None,
        )
    assert [str(p) for p in raised.value.problems] == [
        "<text>:10:12: unknown-route: the app has no route named 'tokn'"
        " (hint: did you mean 'token'?)"
    ]


# -- the app raises --------------------------------------------------------------


RAISED_RULES = BODY_RULES.replace(
    "rules:\n",
    """  app_raised: [status]
rules:
  - id: app-raised
    event: app_raised
    match: "* /{any:path}"
    if: {raised: true, response.status: 500}
    fields: {status: response.status}
""",
    1,
)


class Boom(ValueError):
    """The app's own exception."""


def raising_app(boom: Boom, before: list[Message]) -> Any:
    """A raw app that reads the body, sends ``before``, then raises ``boom``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body", False):
            pass
        for message in before:
            await send(message)
        raise boom

    return app


STARTED = [
    {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json")],
    },
    {"type": "http.response.body", "body": b'{"result":"ok", "needle": 1', "more_body": True},
]


@pytest.mark.parametrize(
    "before",
    [pytest.param([], id="before-start"), pytest.param(STARTED, id="after-start")],
)
async def test_app_raising_is_reraised_unchanged_and_reported(
    before: list[Message], output: Output, capsys: Any
) -> None:
    """An app raising before or after the response started: the same exception propagates, the event
    says raised with status 500 and body facts unknown.
    """
    boom = Boom("invalid code code-SECRET-0815")
    inner = Log()
    app = HeraEvents(
        Spy(raising_app(boom, copy.deepcopy(before)), inner),
        rules=load_rules(text=RAISED_RULES),
        output=output.spec,
    )
    server = Server(chunked(TOKEN_FORM, 64))
    with capture_events() as events, pytest.raises(Boom) as raised:
        await server.run(app, http_scope(headers=form_headers(TOKEN_FORM)))
    assert raised.value is boom
    assert server.log.sent_copies == before
    assert_transparent(server.log, inner)
    assert_events(events, [event("app_raised", status=500), FORM_SEEN, done(500)])
    check_output(output, events, capsys.readouterr().err)
    assert_private(output.path.read_bytes(), dumps(events), secrets=["invalid code"])


async def test_starlette_app_raising_behind_its_error_page(output: Output, capsys: Any) -> None:
    """HeraEvents wrapping a Starlette app whose endpoint raises (its ServerErrorMiddleware answers
    500, then re-raises) reports raised.
    """
    boom = Boom("invalid code code-SECRET-0815")

    async def token(request: Request) -> JSONResponse:
        await request.form()
        raise boom

    inner, outer = Log(), Log()
    starlette_app = Starlette(routes=[Route("/oauth/token", token, methods=["POST"])])
    app = Spy(
        HeraEvents(
            Spy(starlette_app, inner), rules=load_rules(text=RAISED_RULES), output=output.spec
        ),
        outer,
    )
    with capture_events() as events:
        async with client(app) as c:
            with pytest.raises(Boom) as raised:
                await asyncio.wait_for(
                    c.post(
                        "/oauth/token",
                        content=TOKEN_FORM,
                        headers={"content-type": "application/x-www-form-urlencoded"},
                    ),
                    BOUND,
                )
    assert raised.value is boom
    assert outer.starts()[0]["status"] == 500
    assert_transparent(outer, inner)
    assert_events(events, [event("app_raised", status=500), FORM_SEEN, done(500)])
    check_output(output, events, capsys.readouterr().err)


async def test_client_gone_mid_response_keeps_status(output: Output, capsys: Any) -> None:
    """A client that disconnects mid-response (send raises OSError): the error propagates unchanged,
    the status stays, body facts are unknown.
    """
    gone = OSError(32, "Broken pipe")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body", False):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": b'{"result":"ok","pad":"needle',
                "more_body": True,
            }
        )
        await send({"type": "http.response.body", "body": b'"}', "more_body": False})

    inner = Log()
    hera = HeraEvents(Spy(app, inner), rules=load_rules(text=RAISED_RULES), output=output.spec)
    server = Server(chunked(TOKEN_FORM, 64), fail_at=2, fail_on_send=gone)
    with capture_events() as events, pytest.raises(OSError, match="Broken pipe") as raised:
        await server.run(hera, http_scope(headers=form_headers(TOKEN_FORM)))
    assert raised.value is gone
    assert len(server.log.sent) == 2
    assert [id(m) for m in inner.sent[:2]] == [id(m) for m in server.log.sent]
    assert_events(events, [FORM_SEEN, done(200)])
    assert hera_middleware.stats()["facts_unknown"] == 2
    check_output(output, events, capsys.readouterr().err)


# -- fail open ---------------------------------------------------------------------


class Fault(RuntimeError):
    """An error inside the library, injected by a test."""


def _raise(*args: object, **kwargs: object) -> Any:
    raise Fault("code-SECRET-0815")


def _last_rule_condition(monkeypatch: pytest.MonkeyPatch, rules: Any) -> None:
    # Compiled rules are frozen: the fault goes in the way a broken matcher would.
    object.__setattr__(rules.rules[-1], "condition", _raise)


def _last_rule_field(monkeypatch: pytest.MonkeyPatch, rules: Any) -> None:
    object.__setattr__(rules.rules[-1], "fields", (("status", _raise),))


FAULTS = [
    pytest.param(_last_rule_condition, [FORM_SEEN, RESULT_OK], 1, id="rule-condition"),
    pytest.param(_last_rule_field, [FORM_SEEN, RESULT_OK], 1, id="field-getter"),
    pytest.param(
        # Each of the three firing rules fails on its own; none stops the others.
        lambda mp, r: mp.setattr(policy, "clean_value", _raise),
        [],
        3,
        id="policy-clean-value",
    ),
    pytest.param(
        lambda mp, r: mp.setattr(asgi.Engine, "route_name", _raise),
        [FORM_SEEN, RESULT_OK, done(200)],
        1,
        id="route-facts",
    ),
    pytest.param(
        lambda mp, r: mp.setattr(asgi._Tee, "on_request", _raise),
        [RESULT_OK, done(200)],
        4,
        id="request-copy",
    ),
    pytest.param(
        lambda mp, r: mp.setattr(asgi._Tee, "on_response", _raise),
        [FORM_SEEN, done(None)],
        2,
        id="response-copy",
    ),
    pytest.param(
        lambda mp, r: mp.setattr(RuleSet, "candidates", _raise), [], 1, id="candidate-lookup"
    ),
    pytest.param(
        lambda mp, r: mp.setattr(Exchange, "request_has_body", _raise), [], 1, id="exchange-setup"
    ),
]


@pytest.mark.parametrize(("inject", "expected", "errors"), FAULTS)
async def test_internal_errors_fail_open(
    inject: Callable[[pytest.MonkeyPatch, Any], None],
    expected: list[dict[str, object]],
    errors: int,
    output: Output,
    capsys: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An error inside the middleware changes neither the response nor what the app sees, raises
    nothing, and is counted.
    """
    rules = load_rules(text=BODY_RULES)
    inject(monkeypatch, rules)
    finished: list[bool] = []
    inner = Log()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await reading_app()(scope, receive, send)
        finished.append(True)

    hera = HeraEvents(Spy(app, inner), rules=rules, output=output.spec)
    server = Server(chunked(TOKEN_FORM, 64))
    with capture_events() as events:
        await server.run(hera, http_scope(headers=form_headers(TOKEN_FORM)))
    monkeypatch.undo()
    bare = Server(chunked(TOKEN_FORM, 64))
    await bare.run(reading_app(), http_scope(headers=form_headers(TOKEN_FORM)))
    assert finished == [True]
    assert server.log.sent_copies == bare.log.sent_copies
    assert_transparent(server.log, inner)
    assert hera_middleware.stats()["internal_errors"] == errors
    assert_events(events, expected)
    stderr = capsys.readouterr().err
    assert "internal error in" in stderr
    assert "Fault" in stderr
    check_output(output, events, stderr)


# -- configuration errors ---------------------------------------------------------


BAD_RULES = """rules:
  - event: pkce_authorise
    match: POST /oauth/token
    fields: {client_id: form.client_id}
"""
BAD_LINE = (
    "bad.yaml:2:12: unknown-event: unknown event 'pkce_authorise' "
    "(hint: did you mean 'pkce_authorize'?)"
)


def test_bad_rules_raise_at_construction(tmp_path: Path) -> None:
    """A bad rule file makes HeraEvents raise HeraConfigError with `file:line:col: code: message`
    lines.
    """
    (tmp_path / "bad.yaml").write_text(BAD_RULES)
    with pytest.raises(HeraConfigError) as raised:
        HeraEvents(starlette_routes_app(), rules=str(tmp_path / "bad.yaml"), output=lambda e: None)
    assert str(raised.value) == f"{tmp_path}/{BAD_LINE}"


async def test_bad_rules_fail_lifespan_startup(tmp_path: Path) -> None:
    """A bad rule file wired with add_middleware, built by Starlette on the first ASGI call, fails
    lifespan startup and every request.
    """
    (tmp_path / "bad.yaml").write_text(BAD_RULES)
    app = starlette_routes_app()
    app.add_middleware(HeraEvents, rules=str(tmp_path / "bad.yaml"), output=lambda e: None)
    server = lifespan_server()
    # After reporting the failure the app raises, as Starlette's own router does.
    with pytest.raises(HeraConfigError):
        await asyncio.wait_for(
            app(copy.deepcopy(LIFESPAN_SCOPE), server.receive, server.send), BOUND
        )
    assert [m["type"] for m in server.log.sent_copies] == ["lifespan.startup.failed"]
    assert f"{tmp_path}/{BAD_LINE}" in server.log.sent_copies[0]["message"]
    http = Server(chunked(TOKEN_FORM, 64))
    with pytest.raises(HeraConfigError):
        await http.run(app, http_scope(headers=form_headers(TOKEN_FORM)))


async def test_one_shot_header_iterables_stay_whole_for_app_and_server() -> None:
    """ASGI allows any iterable of headers; a generator is not used up by the middleware."""
    seen: list[list[tuple[bytes, bytes]]] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(list(scope["headers"]))
        headers = iter([(b"location", b"/welcome"), (b"set-cookie", b"a=1")])
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append({**message, "headers": list(message.get("headers", []))})

    rules = load_rules(
        text="rules:\n  - {event: breach_check_passed, match: GET /x,"
        " if: {response.location.path: /welcome}}\n"
    )
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "query_string": b"",
        "headers": iter([(b"host", b"t")]),
    }
    with capture_events() as events:
        await HeraEvents(app, rules=rules, output=lambda e: None)(scope, receive, send)
    assert seen == [[(b"host", b"t")]]
    assert sent[0]["headers"] == [(b"location", b"/welcome"), (b"set-cookie", b"a=1")]
    assert [e["event"] for e in events] == ["breach_check_passed"]


async def test_a_message_after_the_final_body_emits_nothing_more() -> None:
    """An app that sends again after its last body message does not emit a second event."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a"})
        await send({"type": "http.response.body", "body": b"b"})

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    rules = load_rules(text="rules:\n  - {event: breach_check_passed, match: GET /x}\n")
    scope = {"type": "http", "method": "GET", "path": "/x", "query_string": b"", "headers": []}
    with capture_events() as events:
        await HeraEvents(app, rules=rules, output=lambda e: None)(scope, receive, send)
    assert [e["event"] for e in events] == ["breach_check_passed"]
