"""HeraEventsWSGI: pass-through, tees, paths, file wrappers, raising apps, faults, stand-down.

Raw WSGI tests: hand-built environs, a recording server (``_wsgi_harness.Server``) and
apps written against PEP 3333 directly. Events are asserted exactly; where it matters
the same app runs bare and wrapped and the server must see the same thing.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hera_middleware
from hera_middleware import HeraConfigError, HeraEventsWSGI, _diagnostics, _stats, load_rules
from hera_middleware.adapters import _engine, _wsgi_input, _wsgi_tee
from hera_middleware.exchange import Exchange
from hera_middleware.testing import capture_events

pytest.register_assert_rewrite("_asgi_harness", "_wsgi_harness")

from _asgi_harness import (  # noqa: E402
    BODY_RULES,
    TOKEN_FORM,
    Output,
    assert_events,
    assert_lines,
    assert_private,
    dumps,
    event,
)
from _wsgi_harness import (  # noqa: E402
    FORM,
    Environ,
    FileWrapper,
    Server,
    StartResponse,
    WSGIApp,
    assert_same_wire,
    list_app,
    reading_app,
    run_both,
    wsgi_environ,
)

FORM_SEEN = event("form_seen", grant_type="authorization_code", client_id="web")
RESULT_OK = event("response_json_seen", result="ok")


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


def token_environ(body: bytes = TOKEN_FORM, **kw: Any) -> Environ:
    """A token request with a urlencoded form and the usual secrets."""
    return wsgi_environ(body=body, content_type=FORM, **kw)


def read_all(stream: Any) -> bytes:
    return bytes(stream.read(2**20))


def check_output(output: Output, events: list[dict[str, object]], stderr: str = "") -> None:
    """The one-line and private invariants for what a test emitted."""
    assert_lines(output, events)
    assert_private(output.path.read_bytes() if output.path.exists() else b"", dumps(events), stderr)


# -- pass-through ---------------------------------------------------------------

TOKEN_ONLY = """
rules:
  - event: pkce_token_exchange
    match: POST /oauth/token
    if: {form.code_verifier: present, response.json.result: ok}
    fields: {client_id: [form.client_id, basic_auth.username]}
"""


def test_request_no_rule_matches_is_passed_through(output: Output) -> None:
    """A request no rule names reaches the app with the very environ and start_response, and
    the app's own iterable goes back to the server."""
    seen: list[tuple[Environ, StartResponse]] = []
    body = list_app()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        seen.append((environ, start_response))
        return body(environ, start_response)

    environ = token_environ(path="/oauth/revoke")
    before = dict(environ)
    server = Server()
    with capture_events() as events:
        result = wrap(app, output, TOKEN_ONLY)(environ, server.start)
    assert seen == [(environ, server.start)]
    assert seen[0][0] is environ
    assert seen[0][1] is server.start
    assert type(result) is list
    assert environ == before
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


def test_input_kept_when_no_rule_needs_the_body(output: Output, capsys: Any) -> None:
    """When no candidate rule tests a request body the app reads the server's own wsgi.input."""
    environ = token_environ()
    stream = environ["wsgi.input"]
    app = reading_app(lambda s: s if s is stream else b"replaced")
    with capture_events() as events:
        Server().run(wrap(app, output, STATUS_ONLY), environ)
    assert environ["test.seen"] is stream
    assert environ["wsgi.input"] is stream
    assert_events(events, [done(200)])
    check_output(output, events, capsys.readouterr().err)


def test_write_callable_is_the_servers_when_no_rule_needs_the_response_body(
    output: Output,
) -> None:
    """start_response hands the app the server's own write() when no body is copied."""
    got: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        got.append(start_response("200 OK", []))
        return []

    server = Server()
    with capture_events() as events:
        server.run(wrap(app, output, STATUS_ONLY), wsgi_environ("GET", "/x"))
    assert got == [server.write]
    assert_events(events, [done(200)])


# -- what rules see -----------------------------------------------------------


def test_token_exchange_event_and_nothing_secret(output: Output, capsys: Any) -> None:
    """A token exchange read with read(n) gives the exact event; no secret reaches any output."""
    app = reading_app(read_all)
    with capture_events() as events:
        server = Server().run(wrap(app, output, TOKEN_ONLY), token_environ())
    assert server.status == "200 OK"
    assert_events(events, [event("pkce_token_exchange", client_id="web")])
    check_output(output, events, capsys.readouterr().err)


def test_basic_auth_client_id_when_the_form_has_none(output: Output) -> None:
    """The client id comes from the Basic Authorization header when the form lacks it."""
    form = b"grant_type=authorization_code&code_verifier=v-SECRET-1&code=c-SECRET-2"
    with capture_events() as events:
        Server().run(wrap(reading_app(read_all), output, TOKEN_ONLY), token_environ(form))
    assert_events(events, [event("pkce_token_exchange", client_id="web")])


@pytest.mark.parametrize(
    ("cap", "expected"),
    [
        pytest.param(10**6, [FORM_SEEN], id="under-cap"),
        pytest.param(len(b"grant_type=authorization_code&client_id=web&co"), [FORM_SEEN], id="cut"),
        pytest.param(
            len(b"grant_type=authorization_code&client_id=w"),
            [event("form_seen", grant_type="authorization_code", client_id=None)],
            id="cut-in-last-pair",
        ),
    ],
)
def test_request_copy_stops_at_the_cap(
    output: Output, cap: int, expected: list[dict[str, object]]
) -> None:
    """The copy stops at max_request_body; a cut form drops its last, partial pair."""
    app = reading_app(read_all, list_app(headers=[("Content-Type", "text/plain")], chunks=[b""]))
    with capture_events() as events:
        Server().run(wrap(app, output, max_request_body=cap), token_environ())
    assert_events(events, [*expected, done(200)])


def test_response_json_in_chunks(output: Output) -> None:
    """A JSON body sent in several chunks is a response.json fact."""
    app = list_app(chunks=[b'{"res', b'ult":', b'"ok"}'])
    with capture_events() as events:
        Server().run(wrap(app, output), wsgi_environ("GET", "/x"))
    assert_events(events, [RESULT_OK, done(200)])


def test_response_over_the_cap_is_unknown(output: Output) -> None:
    """A JSON body longer than max_response_body is unknown: its rule does not fire."""
    app = list_app(chunks=[b'{"result":"ok",', b'"pad":"' + b"x" * 100 + b'"}'])
    with capture_events() as events:
        Server().run(wrap(app, output, max_response_body=64), wsgi_environ("GET", "/x"))
    assert_events(events, [done(200)])
    assert hera_middleware.stats()["facts_unknown"] > 0


def test_write_callable_body_is_copied(output: Output) -> None:
    """A body sent through start_response's write() is copied before the iterable's."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "application/json")])
        write(b'{"result":')
        return [b'"ok"}']

    bare, wrapped = run_both(lambda: app, lambda a: wrap(a, output), lambda: wsgi_environ())
    assert_same_wire(bare, wrapped)
    assert wrapped.written == [b'{"result":']
    with capture_events() as events:
        Server().run(wrap(app, output), wsgi_environ())
    assert_events(events, [RESULT_OK, done(200)])


# -- paths ----------------------------------------------------------------------

SOCIAL = """
rules:
  - event: social_login_completed
    match: GET /login/{provider}/callback
    if: {response.status: 302}
    fields:
      provider: path.provider
      first_login: {if: {response.location.path: {prefix: /welcome}}}
"""


def redirect_app(location: str) -> WSGIApp:
    return list_app("302 Found", [("Location", location)], [b""])


@pytest.mark.parametrize(
    ("script_name", "location", "first_login"),
    [
        pytest.param("", "/welcome?code=code-SECRET-0815", True, id="no-mount"),
        pytest.param("/idp", "https://idp.example/idp/welcome", True, id="mount-absolute-location"),
        pytest.param("/idp", "/idp/welcome", True, id="mount"),
        pytest.param("/a/b", "/a/b/home", False, id="deep-mount"),
        pytest.param("/idp", "/welcome", True, id="location-outside-mount"),
        pytest.param("/idp/", "/idp/welcome", True, id="mount-with-slash"),
    ],
)
def test_paths_are_app_relative_under_script_name(
    output: Output, script_name: str, location: str, first_login: bool
) -> None:
    """Rules see PATH_INFO below any SCRIPT_NAME, and Location paths are made relative to it."""
    environ = wsgi_environ("GET", "/login/github/callback", script_name=script_name)
    with capture_events() as events:
        Server().run(wrap(redirect_app(location), output, SOCIAL), environ)
    assert_events(
        events, [event("social_login_completed", provider="github", first_login=first_login)]
    )


def test_empty_path_info_is_the_mount_root(output: Output) -> None:
    """A request for the mount point itself (empty PATH_INFO) is the path '/'."""
    rules = STATUS_ONLY.replace("* /{any:path}", "GET /")
    with capture_events() as events:
        Server().run(wrap(list_app(), output, rules), wsgi_environ("GET", "", script_name="/idp"))
    assert_events(events, [done(200)])


def test_path_info_is_decoded_as_utf8(output: Output) -> None:
    """PATH_INFO, bytes as latin-1 per PEP 3333, is matched as the UTF-8 text it encodes."""
    rules = STATUS_ONLY.replace("* /{any:path}", "GET /café")
    path = "/café".encode().decode("latin-1")
    with capture_events() as events:
        Server().run(wrap(list_app(), output, rules), wsgi_environ("GET", path))
    assert_events(events, [done(200)])


# -- HEAD, 204, 304, file wrappers, lengths ---------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        pytest.param("HEAD", "200 OK", [done(200)], id="head"),
        pytest.param("GET", "204 No Content", [done(204)], id="204"),
        pytest.param("GET", "304 Not Modified", [done(304)], id="304"),
    ],
)
def test_bodyless_responses(
    output: Output, method: str, status: str, expected: list[dict[str, object]]
) -> None:
    """HEAD, 204 and 304 answers pass unchanged and are evaluated with an empty body."""
    headers = [("Content-Type", "application/json"), ("Content-Length", "15"), ("ETag", '"x"')]
    app = list_app(status, headers, [])
    bare, wrapped = run_both(
        lambda: app, lambda a: wrap(a, output), lambda: wsgi_environ(method, "/x")
    )
    assert_same_wire(bare, wrapped)
    with capture_events() as events:
        Server().run(wrap(app, output), wsgi_environ(method, "/x"))
    assert_events(events, expected)


def test_methods_are_exact_head_is_not_get(output: Output) -> None:
    """A `GET` rule does not fire for HEAD."""
    rules = STATUS_ONLY.replace("* /{any:path}", "GET /x")
    with capture_events() as events:
        Server().run(wrap(list_app(), output, rules), wsgi_environ("HEAD", "/x"))
        Server().run(wrap(list_app(), output, rules), wsgi_environ("GET", "/x"))
    assert_events(events, [done(200)])


def file_app(data: bytes = b"needle in a file") -> WSGIApp:
    """An app answering with the server's wsgi.file_wrapper."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        result: Iterable[bytes] = environ["wsgi.file_wrapper"](io.BytesIO(data), 4)
        environ["test.result"] = result
        return result

    return app


def test_file_wrapper_is_returned_as_is(output: Output) -> None:
    """A wsgi.file_wrapper response is the very object the app returned (sendfile stays
    possible), and its rules are evaluated when it is returned."""
    environ = wsgi_environ("GET", "/file", headers={}) | {"wsgi.file_wrapper": FileWrapper}
    server = Server()
    with capture_events() as events:
        result = wrap(file_app(), output, STATUS_ONLY)(environ, server.start)
        assert_events(events, [done(200)])
    assert result is environ["test.result"]


def test_file_wrapper_body_is_copied_when_a_rule_needs_it(output: Output) -> None:
    """When a rule tests the response body a file response is iterated, copied, closed once."""
    environ = wsgi_environ("GET", "/file") | {"wsgi.file_wrapper": FileWrapper}
    with capture_events() as events:
        server = Server().run(wrap(file_app(), output), environ)
    assert server.body() == b"needle in a file"
    assert environ["test.result"].closed == 1
    assert_events(events, [event("response_body_seen"), done(200)])


@pytest.mark.parametrize(
    ("result", "length"),
    [
        pytest.param([b"a"], 1, id="list-of-one"),
        pytest.param((b"a", b"b"), 2, id="tuple"),
        pytest.param(iter([b"a"]), None, id="iterator"),
    ],
)
def test_length_of_the_response_is_kept(output: Output, result: Any, length: int | None) -> None:
    """A response with len() keeps it (servers count chunks for Content-Length); others get none."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return result  # type: ignore[no-any-return]

    got = wrap(app, output)(wsgi_environ("GET", "/x"), Server().start)
    if length is None:
        assert not hasattr(got, "__len__")
    else:
        assert len(got) == length  # type: ignore[arg-type]
    assert hasattr(got, "close")
    got.close()  # type: ignore[attr-defined]


# -- configuration ----------------------------------------------------------------


def test_route_rule_needs_a_route_table() -> None:
    """A `route:` rule in a bare WSGI wrapper is a config error with a hint."""
    rules = "rules: [{event: breach_check_passed, route: register}]"
    with pytest.raises(HeraConfigError) as info:
        HeraEventsWSGI(list_app(), rules=load_rules(text=rules), output=lambda e: None)
    assert [p.code for p in info.value.problems] == ["no-route-table"]
    assert "match: METHOD /path" in str(info.value)


def test_bad_rule_file_fails_at_construction(tmp_path: Path) -> None:
    """A mistake in the rule file raises HeraConfigError when the middleware is made."""
    path = tmp_path / "hera.yaml"
    path.write_text("rules:\n  - event: pkce_authorise\n    match: GET /x\n")
    with pytest.raises(HeraConfigError) as info:
        HeraEventsWSGI(list_app(), rules=str(path))
    assert str(info.value).startswith(f"{path}:2:")
    assert [p.code for p in info.value.problems] == ["unknown-event"]


def test_rules_from_the_environment(
    tmp_path: Path, output: Output, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without rules= the middleware reads HERA_RULES (and HERA_DOMAIN)."""
    path = tmp_path / "hera.yaml"
    path.write_text(STATUS_ONLY)
    monkeypatch.setenv("HERA_RULES", str(path))
    monkeypatch.setenv("HERA_DOMAIN", "shop")
    with capture_events() as events:
        Server().run(HeraEventsWSGI(list_app(), output=output.spec), wsgi_environ("GET", "/x"))
    assert_events(events, [event("exchange_done", domain="shop", status=200)])


def test_no_rules_at_all_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without rules= and HERA_RULES the middleware refuses to start."""
    monkeypatch.delenv("HERA_RULES", raising=False)
    with pytest.raises(HeraConfigError) as info:
        HeraEventsWSGI(list_app())
    assert [p.code for p in info.value.problems] == ["missing-rules"]


# -- raising apps -------------------------------------------------------------------

RAISED_RULES = """
events:
  app_raised: [status]
  exchange_done: [status]
rules:
  - event: app_raised
    match: "* /{any:path}"
    if: {raised: true}
    fields: {status: response.status}
  - event: exchange_done
    match: "* /{any:path}"
    if: {raised: false, response.json.result: ok}
    fields: {status: response.status}
"""


class Boom(Exception):
    """The app's own error."""


def raising_app(where: str, boom: Boom) -> WSGIApp:
    """An app raising ``boom`` at a given point of the exchange."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if where == "call":
            raise boom
        start_response("200 OK", [("Content-Type", "application/json")])
        if where == "after-start":
            raise boom

        def body() -> Iterator[bytes]:
            yield b'{"result":'
            raise boom

        return body()

    return app


@pytest.mark.parametrize("where", ["call", "after-start", "iteration"])
def test_app_exception_propagates_unchanged_and_is_raised(output: Output, where: str) -> None:
    """The app's exception leaves the middleware as the very same object; `raised` is true and
    the status 500."""
    boom = Boom("boom with code-SECRET-0815")
    with capture_events() as events, pytest.raises(Boom) as info:
        Server().run(wrap(raising_app(where, boom), output, RAISED_RULES), wsgi_environ())
    assert info.value is boom
    assert_events(events, [event("app_raised", status=500)])


def test_close_that_raises_after_an_abandoned_response(output: Output) -> None:
    """An exception from the app's close() propagates as itself; the exchange counts as raised."""
    boom = Boom()

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"{}"
            yield b"{}"

        def close(self) -> None:
            raise boom

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        return Body()

    with capture_events() as events, pytest.raises(Boom) as info:
        Server(stop_after=1).run(wrap(app, output, RAISED_RULES), wsgi_environ())
    assert info.value is boom
    assert_events(events, [event("app_raised", status=500)])


# -- fail open ----------------------------------------------------------------------


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected")


FAULTS = [
    pytest.param(_wsgi_tee.EnvironExchange, "header", id="request-headers"),
    pytest.param(Exchange, "__init__", id="exchange"),
    pytest.param(Exchange, "request_has_body", id="body-check"),
    pytest.param(_wsgi_input.TeeInput, "_copy", id="request-copy"),
    pytest.param(_wsgi_tee.Tee, "on_start", id="start-response"),
    pytest.param(_wsgi_tee.Tee, "on_body", id="response-copy"),
    pytest.param(_wsgi_tee.Tee, "respond", id="respond"),
    pytest.param(_wsgi_tee.Tee, "complete", id="complete"),
    pytest.param(_wsgi_tee.Tee, "finish", id="finish"),
    pytest.param(_engine, "evaluate", id="evaluate"),
    pytest.param(_wsgi_input.TeeInput, "state", id="body-state"),
]


@pytest.mark.parametrize(("owner", "name"), FAULTS)
def test_internal_errors_never_change_the_exchange(
    output: Output, monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, capsys: Any
) -> None:
    """An error inside the library leaves the app's input and the server's response unchanged
    and is counted."""

    def make() -> WSGIApp:
        return reading_app(read_all, list_app(chunks=[b'{"result":', b'"ok"}']))

    bare = Server().run(make(), token_environ())
    monkeypatch.setattr(owner, name, _raise)
    environ = token_environ()
    wrapped = Server().run(wrap(make(), output), environ)
    assert_same_wire(bare, wrapped)
    assert environ["test.seen"] == TOKEN_FORM
    assert hera_middleware.stats()["internal_errors"] >= 1
    err = capsys.readouterr().err
    assert "internal error in" in err
    assert_private(err)


# -- twice ---------------------------------------------------------------------------


def lazy_middleware(app: WSGIApp) -> WSGIApp:
    """A middleware written as a generator: it calls ``app`` only when first iterated."""

    def middleware(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        result = app(environ, start_response)
        try:
            yield from result
        finally:
            getattr(result, "close", lambda: None)()

    return middleware


@pytest.mark.parametrize(
    "between",
    [pytest.param(lambda a: a, id="nested"), pytest.param(lazy_middleware, id="lazy-between")],
)
def test_installed_twice_same_rules_emits_once(output: Output, between: Any) -> None:
    """A second HeraEventsWSGI with the same configuration stands down instead of emitting twice."""
    app = wrap(between(wrap(reading_app(read_all), output, TOKEN_ONLY)), output, TOKEN_ONLY)
    environ = token_environ()
    with capture_events() as events:
        server = Server().run(app, environ)
    assert server.body() == b'{"result":"ok","access_token":"tok-SECRET-999"}'
    assert environ["test.seen"] == TOKEN_FORM
    assert_events(events, [event("pkce_token_exchange", client_id="web")])


def test_installed_twice_different_rules_emits_both(output: Output) -> None:
    """Two instances with different rules each emit their own events, the inner one first."""
    app = wrap(wrap(reading_app(read_all), output, TOKEN_ONLY), output)
    with capture_events() as events:
        Server().run(app, token_environ())
    assert_events(
        events, [event("pkce_token_exchange", client_id="web"), FORM_SEEN, RESULT_OK, done(200)]
    )
