"""The Flask extension: both construction forms, config-only setup, route rules, E12, real servers.

A real Flask app (blueprints, a streamed response, ``send_file``, raising views) is
driven through Flask's test client, through Werkzeug's WSGI server on 127.0.0.1 in a
thread, and through gunicorn in a subprocess; every event is asserted exactly.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flask
import pytest
from flask import Blueprint, Flask, Response, redirect, request, send_file, stream_with_context
from werkzeug.routing import BaseConverter, Map, Rule
from werkzeug.serving import make_server

import hera_middleware
from hera_middleware import HeraConfigError, HeraEventsWSGI, _diagnostics, _stats, load_rules
from hera_middleware.adapters._routes import werkzeug_routes
from hera_middleware.flask import HeraEvents
from hera_middleware.testing import capture_events

pytest.register_assert_rewrite("_asgi_harness")

from _asgi_harness import TS, Output, assert_events, assert_lines, assert_private, dumps, event  # noqa: E402

RULES = """
events:
  app_raised: [status]
  exchange_done: [status]
  item_seen: [kind, id]
rules:
  - id: token
    event: pkce_token_exchange
    route: auth.token
    if: {form.code_verifier: present, response.status: 200, response.json.access_token: present}
    fields: {client_id: [form.client_id, basic_auth.username]}
  - id: authorize
    event: pkce_authorize
    route: auth.authorize
    if: {query.code_challenge: present, response.status: 302, response.location.query.code: present}
    fields: {client_id: query.client_id}
  - id: social
    event: social_login_completed
    route: social.callback
    if: {response.status: 302}
    fields:
      provider: path.provider
      first_login: {if: {response.location.path: {prefix: /welcome}}}
  - id: raised
    event: app_raised
    match: "* /{any:path}"
    if: {raised: true}
    fields: {status: response.status}
  - id: done
    event: exchange_done
    match: "GET|POST /{any:path}"
    if: {raised: false, route: [stream, file, items.by_id]}
    fields: {status: response.status}
"""

TOKEN_FORM = {
    "grant_type": "authorization_code",
    "client_id": "web",
    "code": "code-SECRET-0815",
    "code_verifier": "verifier-SECRET-abcdefghijklmnopqrstuvwxyz0123456789",
}
TOKEN = event("pkce_token_exchange", client_id="web")
AUTHORIZE = event("pkce_authorize", client_id="web")
RAISED = event("app_raised", status=500)


def done(status: int) -> dict[str, object]:
    return event("exchange_done", status=status)


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    _stats._reset_for_tests()
    _diagnostics._reset_for_tests()


@pytest.fixture
def output(tmp_path: Path) -> Output:
    return Output(tmp_path / "events.jsonl")


@pytest.fixture
def rule_file(tmp_path: Path) -> Path:
    path = tmp_path / "hera.yaml"
    path.write_text(RULES)
    return path


def auth_blueprint() -> Blueprint:
    bp = Blueprint("auth", __name__, url_prefix="/oauth")

    @bp.get("/authorize")
    def authorize() -> Any:
        return redirect("https://client.example/cb?code=code-SECRET-0815&state=s")

    @bp.post("/token")
    def token() -> Any:
        if request.form.get("code_verifier"):
            return {"access_token": "tok-SECRET-999", "token_type": "Bearer"}
        return {"error": "invalid_grant"}, 400

    return bp


def social_blueprint() -> Blueprint:
    bp = Blueprint("social", __name__)

    @bp.get("/login/<provider>/callback")
    def callback(provider: str) -> Any:
        return redirect("/welcome" if request.args.get("new") else "/home")

    return bp


def add_views(app: Flask, data_file: Path | None = None) -> None:
    """Views that stream, send a file and raise, plus the two blueprints."""
    log: list[str] = []
    app.config["TEST_LOG"] = log

    @app.get("/stream", endpoint="stream")
    def stream() -> Response:
        def chunks() -> Iterator[bytes]:
            for i in range(3):
                log.append(f"made {i}")
                yield f"chunk {i};".encode()

        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.get("/file", endpoint="file")
    def file() -> Response:
        assert data_file is not None
        return send_file(data_file, mimetype="text/plain")

    @app.get("/boom")
    def boom() -> Any:
        raise LookupError("boom with code-SECRET-0815")

    @app.get("/boom-stream")
    def boom_stream() -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"first;"
            raise LookupError("mid-stream")

        return Response(chunks(), mimetype="text/plain")

    app.register_blueprint(auth_blueprint())
    app.register_blueprint(social_blueprint())


def make_app(**config: Any) -> Flask:
    app = Flask(__name__)
    app.config.update(config)
    return app


def token_request(client: Any) -> Any:
    return client.post(
        "/oauth/token",
        data=TOKEN_FORM,
        headers={"Cookie": "sid=sid-SECRET-cookie"},
        buffered=True,
    )


def authorize_request(client: Any) -> Any:
    return client.get(
        "/oauth/authorize?response_type=code&client_id=web&code_challenge=abc&state=s",
        buffered=True,
    )


# -- construction ---------------------------------------------------------------------


@pytest.mark.parametrize("form", ["direct", "factory", "factory-before-routes"])
def test_construction_forms(output: Output, rule_file: Path, form: str) -> None:
    """HeraEvents(app, ...) and the app-factory form (init_app before or after the routes)
    give the same events."""
    app = make_app()
    if form == "direct":
        add_views(app)
        ext = HeraEvents(app, rules=str(rule_file), output=output.spec)
    else:
        ext = HeraEvents(rules=str(rule_file), output=output.spec)
        if form == "factory":
            add_views(app)
            ext.init_app(app)
        else:
            ext.init_app(app)
            add_views(app)
    client = app.test_client()
    with capture_events() as events:
        assert token_request(client).status_code == 200
        assert authorize_request(client).status_code == 302
    assert_events(events, [TOKEN, AUTHORIZE])
    assert not hasattr(ext, "app")
    state = app.extensions["hera"]
    assert state.extension is ext
    assert state.options.origins["output"] == "argument"
    assert [r.id for r in state.rules] == ["token", "authorize", "social", "raised", "done"]
    assert_lines(output, events)


def test_one_extension_serves_several_apps(tmp_path: Path, output: Output) -> None:
    """One HeraEvents instance set up on two apps keeps each app's rules and config apart."""
    ext = HeraEvents(output=output.spec)
    apps = []
    for domain in ("shop", "admin"):
        path = tmp_path / f"{domain}.yaml"
        path.write_text(RULES)
        app = make_app(HERA_RULES=str(path), HERA_DOMAIN=domain)
        add_views(app)
        ext.init_app(app)
        apps.append(app)
    with capture_events() as events:
        for app in apps:
            token_request(app.test_client())
    assert_events(
        events,
        [
            event("pkce_token_exchange", client_id="web", domain="shop"),
            event("pkce_token_exchange", client_id="web", domain="admin"),
        ],
    )


def test_init_app_twice_on_one_app_is_refused(rule_file: Path) -> None:
    """A second HeraEvents on the same app is an error, not a second wrapper."""
    app = make_app(HERA_RULES=str(rule_file), HERA_OUTPUT="stderr")
    HeraEvents(app)
    with pytest.raises(RuntimeError, match="already registered"):
        HeraEvents(app)


def test_unknown_option_is_a_type_error() -> None:
    """A misspelt option is refused with the list of options."""
    with pytest.raises(TypeError, match="unknown options: domian"):
        HeraEvents(domian="x")


def test_bad_rule_file_fails_at_init_app(tmp_path: Path) -> None:
    """A mistake in the rule file raises HeraConfigError from init_app, before serving."""
    path = tmp_path / "hera.yaml"
    path.write_text("rules:\n  - event: pkce_authorise\n    match: GET /x\n")
    app = make_app(HERA_RULES=str(path))
    with pytest.raises(HeraConfigError) as info:
        HeraEvents().init_app(app)
    assert str(info.value).startswith(f"{path}:2:")
    assert "hera" not in app.extensions


# -- config only ------------------------------------------------------------------------


@pytest.mark.parametrize("rules", ["path", "list"])
def test_config_only(tmp_path: Path, rule_file: Path, rules: str) -> None:
    """With no arguments every option comes from app.config HERA_* keys."""
    out = Output(tmp_path / "out.jsonl")
    value: Any = str(rule_file) if rules == "path" else [str(rule_file)]
    app = make_app(
        HERA_RULES=value,
        HERA_DOMAIN="shop",
        HERA_OUTPUT=out.spec,
        HERA_ON_FULL="block",
        HERA_MAX_REQUEST_BODY=4096,
        HERA_MAX_RESPONSE_BODY=2048,
    )
    add_views(app)
    HeraEvents(app)
    with capture_events() as events:
        token_request(app.test_client())
    assert_events(events, [event("pkce_token_exchange", client_id="web", domain="shop")])
    options = app.extensions["hera"].options
    assert (options.on_full, options.max_request_body, options.max_response_body) == (
        "block",
        4096,
        2048,
    )
    assert set(options.origins.values()) == {
        f"Flask config HERA_{name.upper()}" for name in options.origins
    }
    assert_lines(out, events)


def test_config_rules_with_a_preset(rule_file: Path) -> None:
    """HERA_RULES may name a preset, alone or in a list with files."""
    app = make_app(HERA_RULES=["preset:authlib", str(rule_file)], HERA_OUTPUT="stderr")
    HeraEvents(app)
    rules = app.extensions["hera"].rules
    assert rules.sources[0] == "preset:authlib"
    assert {"token", "authorize", "social"} <= {r.id for r in rules}


@pytest.mark.parametrize(
    ("argument", "env", "expected", "origin"),
    [
        pytest.param("arg", "env", "arg", "argument", id="argument-wins"),
        pytest.param(None, "env", "env", "environment HERA_DOMAIN", id="environment-next"),
        pytest.param(None, None, "conf", "Flask config HERA_DOMAIN", id="config-last"),
    ],
)
def test_option_precedence(
    monkeypatch: pytest.MonkeyPatch,
    rule_file: Path,
    argument: str | None,
    env: str | None,
    expected: str,
    origin: str,
) -> None:
    """Constructor arguments beat HERA_* environment variables, which beat app.config."""
    if env is None:
        monkeypatch.delenv("HERA_DOMAIN", raising=False)
    else:
        monkeypatch.setenv("HERA_DOMAIN", env)
    app = make_app(HERA_RULES=str(rule_file), HERA_DOMAIN="conf", HERA_OUTPUT="stderr")
    HeraEvents(app, domain=argument)
    options = app.extensions["hera"].options
    assert (options.domain, options.origins["domain"]) == (expected, origin)


def test_rules_argument_beats_environment_and_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, rule_file: Path, output: Output
) -> None:
    """rules= wins over HERA_RULES in the environment, which wins over app.config."""
    other = tmp_path / "other.yaml"
    other.write_text("rules: [{event: breach_check_passed, match: POST /register}]")
    monkeypatch.setenv("HERA_RULES", str(rule_file))
    app = make_app(HERA_RULES=str(other), HERA_OUTPUT=output.spec)
    HeraEvents(app)
    assert [r.id for r in app.extensions["hera"].rules] == [
        "token",
        "authorize",
        "social",
        "raised",
        "done",
    ]
    app2 = make_app(HERA_OUTPUT=output.spec)
    HeraEvents(app2, rules=str(other))
    assert [r.event.name for r in app2.extensions["hera"].rules] == ["breach_check_passed"]


# -- routes ------------------------------------------------------------------------------


def test_route_rules_follow_blueprint_prefixes_and_path_params(output: Output) -> None:
    """`route:` names resolve through url_map (blueprint prefixes included) and the path
    parameter comes from the rule's variable."""
    app = make_app()
    add_views(app)
    HeraEvents(app, rules=load_rules(text=RULES), output=output.spec)
    client = app.test_client()
    with capture_events() as events:
        client.get("/login/github/callback?new=1", buffered=True)
        client.get("/login/gitlab/callback", buffered=True)
    assert_events(
        events,
        [
            event("social_login_completed", provider="github", first_login=True),
            event("social_login_completed", provider="gitlab", first_login=False),
        ],
    )


ITEM_RULES = """
events:
  item_seen: [kind, id]
rules:
  - event: item_seen
    route: items.by_id
    fields: {kind: {value: by_id}, id: path.item_id}
  - event: item_seen
    route: items.by_name
    fields: {kind: {value: by_name}, id: path.name}
  - event: item_seen
    route: items.page
    fields: {kind: {value: page}, id: path.page}
  - event: item_seen
    route: items.raw
    fields: {kind: {value: raw}, id: path.rest}
"""


def items_app(output: Output) -> Flask:
    app = make_app()
    bp = Blueprint("items", __name__, url_prefix="/items")
    bp.add_url_rule("/<int:item_id>", "by_id", lambda item_id: "id")
    bp.add_url_rule("/<name>", "by_name", lambda name: "name")
    bp.add_url_rule("/list/", "page", lambda page: "page", defaults={"page": 1})
    bp.add_url_rule("/files/<path:rest>/raw", "raw", lambda rest: "raw")
    HeraEvents(app, rules=load_rules(text=ITEM_RULES), output=output.spec)
    app.register_blueprint(bp)
    return app


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param("/items/42", event("item_seen", kind="by_id", id="42"), id="int-converter"),
        pytest.param("/items/abc", event("item_seen", kind="by_name", id="abc"), id="str"),
        pytest.param("/items/list/", event("item_seen", kind="page", id=1), id="view-arg-default"),
        pytest.param(
            "/items/files/a/b/raw", event("item_seen", kind="raw", id="a/b"), id="path-in-middle"
        ),
    ],
)
def test_the_endpoint_flask_chose_is_the_route(
    output: Output, path: str, expected: dict[str, object]
) -> None:
    """Of overlapping templates only the endpoint Flask dispatched to fires, and view_args the
    template lacks are path params too."""
    client = items_app(output).test_client()
    with capture_events() as events:
        assert client.get(path, buffered=True).status_code == 200
    assert_events(events, [expected])


class HexConverter(BaseConverter):
    regex = "[0-9a-f]+"


class SlashConverter(BaseConverter):
    regex = "[a-z/]+"


@pytest.mark.parametrize(
    ("rule", "template"),
    [
        pytest.param("/u/<int:id>", "/u/<int:id>", id="int"),
        pytest.param("/u/<uuid:u>/<float:f>", "/u/<uuid:u>/<float:f>", id="uuid-float"),
        pytest.param("/u/<name>", "/u/<name>", id="default"),
        pytest.param("/u/<string(length=2):c>", "/u/<c>", id="string-with-args"),
        pytest.param("/u/<int(signed=True):n>", "/u/<n>", id="signed-int"),
        pytest.param("/u/<any(a, b):k>", "/u/<k>", id="any"),
        pytest.param("/f/<path:p>", "/f/<path:p>", id="path-last"),
        pytest.param("/f/<path:p>/raw", "/f/<path:_hera_rest>", id="path-in-middle"),
        pytest.param("/x<path:p>", "/<path:_hera_rest>", id="path-after-text"),
        pytest.param("/h/<hex:h>", "/h/<h>", id="custom"),
        pytest.param("/s/<slashy:s>", "/s/<path:s>", id="custom-matching-slashes"),
    ],
)
def test_werkzeug_rules_become_templates(rule: str, template: str) -> None:
    """Each Werkzeug rule becomes a path template that matches at least what the rule does."""
    url_map = Map(
        [Rule(rule, endpoint="e", methods=["POST"])],
        converters={"hex": HexConverter, "slashy": SlashConverter},
    )
    assert werkzeug_routes(url_map) == ({"e": [(frozenset({"POST"}), template)]}, {})


def test_automatic_options_is_not_the_endpoint(output: Output) -> None:
    """Flask's automatic OPTIONS answer is no request to the view: `route:` rules skip it."""
    client = items_app(output).test_client()
    with capture_events() as events:
        assert client.options("/items/42", buffered=True).status_code == 200
    assert events == []


def test_unknown_route_fails_every_request(output: Output) -> None:
    """A `route:` name the url_map lacks fails closed at the first request with a hint."""
    rules = "rules: [{event: breach_check_passed, route: auth.tokne}]"
    app = make_app()
    HeraEvents(app, rules=load_rules(text=rules), output=output.spec)
    add_views(app)
    client = app.test_client()
    for _ in range(2):
        with pytest.raises(HeraConfigError) as info:
            client.get("/oauth/authorize", buffered=True)
        assert [p.code for p in info.value.problems] == ["unknown-route"]
        assert "did you mean 'auth.token'?" in str(info.value)


def test_route_fact_in_conditions(output: Output) -> None:
    """The endpoint is the `route` fact for `match:` rules too."""
    rules = """
rules:
  - event: breach_check_passed
    match: "* /{any:path}"
    if: {route: auth.token, response.status: 400}
"""
    app = make_app()
    add_views(app)
    HeraEvents(app, rules=load_rules(text=rules), output=output.spec)
    with capture_events() as events:
        app.test_client().post("/oauth/token", data={"client_id": "web"}, buffered=True)
        app.test_client().post("/oauth/authorize", buffered=True)
    assert_events(events, [event("breach_check_passed")])


# -- E12: streams and exceptions -------------------------------------------------------------


@pytest.fixture
def no_get_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Response.get_data raises: the extension must never buffer a response."""

    def refuse(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Response.get_data() was called")

    monkeypatch.setattr(flask.Response, "get_data", refuse)


def test_e12_streamed_response_event_after_the_last_chunk(
    output: Output, no_get_data: None
) -> None:
    """A streamed response reaches the client chunk by chunk and its event is written only after
    the last chunk."""
    app = make_app()
    add_views(app)
    HeraEvents(app, rules=load_rules(text=RULES), output=output.spec)
    log = app.config["TEST_LOG"]
    with capture_events() as events:
        response = app.test_client().get("/stream", buffered=False)
        for chunk in response.response:
            log.append(f"got {chunk!r} events={len(events)}")
        response.close()
    assert log == [
        "made 0",
        "got b'chunk 0;' events=0",
        "made 1",
        "got b'chunk 1;' events=0",
        "made 2",
        "got b'chunk 2;' events=0",
    ]
    assert_events(events, [done(200)])


@pytest.mark.parametrize("testing", [False, True])
def test_e12_unhandled_exception_is_the_500_outcome(
    output: Output, no_get_data: None, testing: bool, capsys: Any
) -> None:
    """An unhandled exception is `raised` with status 500, whether Flask answers the 500 itself
    or propagates the exception (testing), which leaves as the same object."""
    app = make_app(TESTING=testing)
    add_views(app)
    HeraEvents(app, rules=load_rules(text=RULES), output=output.spec)
    client = app.test_client()
    with capture_events() as events:
        if testing:
            with pytest.raises(LookupError, match="boom"):
                client.get("/boom", buffered=True)
        else:
            assert client.get("/boom", buffered=True).status_code == 500
    assert_events(events, [RAISED])
    assert_private(dumps(events), capsys.readouterr().err.replace("code-SECRET-0815", ""))


def test_e12_exception_inside_a_stream(output: Output, no_get_data: None) -> None:
    """A generator that raises after the first chunk makes the exchange `raised` (500)."""
    app = make_app()
    add_views(app)
    HeraEvents(app, rules=load_rules(text=RULES), output=output.spec)
    with capture_events() as events:
        response = app.test_client().get("/boom-stream", buffered=False)
        chunks = iter(response.response)
        first = next(chunks)
        with pytest.raises(LookupError, match="mid-stream"):
            next(chunks)
        response.close()
    assert first == b"first;"
    assert_events(events, [RAISED])


def test_e12_handled_errors_are_not_raised(output: Output) -> None:
    """An error the app handles itself (an errorhandler, abort) is an ordinary response."""
    app = make_app()
    add_views(app)
    app.register_error_handler(LookupError, lambda e: ({"error": "lookup"}, 503))
    rules = RULES.replace("if: {raised: true}", "if: {raised: false, response.status: 503}")
    HeraEvents(app, rules=load_rules(text=rules), output=output.spec)
    with capture_events() as events:
        assert app.test_client().get("/boom", buffered=True).status_code == 503
    assert_events(events, [event("app_raised", status=503)])


def test_e12_send_file_through_the_test_client(
    tmp_path: Path, output: Output, no_get_data: None
) -> None:
    """send_file is served whole and its event comes after the body."""
    data = tmp_path / "data.txt"
    data.write_bytes(b"file body\n" * 1000)
    app = make_app()
    add_views(app, data)
    HeraEvents(app, rules=load_rules(text=RULES), output=output.spec)
    with capture_events() as events:
        response = app.test_client().get("/file", buffered=False)
        body = b""
        for chunk in response.response:
            assert events == []
            body += chunk
        response.close()
    assert body == data.read_bytes()
    assert_events(events, [done(200)])


TOKEN_MATCH = """
rules:
  - event: pkce_token_exchange
    match: POST /oauth/token
    if: {form.code_verifier: present, response.status: 200}
    fields: {client_id: form.client_id}
"""


def test_wrapping_wsgi_app_again_stands_down(output: Output) -> None:
    """HeraEventsWSGI around app.wsgi_app with the same configuration does not emit twice."""
    rules = load_rules(text=TOKEN_MATCH)
    app = make_app()
    add_views(app)
    HeraEvents(app, rules=rules, output=output.spec)
    app.wsgi_app = HeraEventsWSGI(app.wsgi_app, rules=rules, output=output.spec)  # type: ignore[method-assign]
    with capture_events() as events:
        token_request(app.test_client())
    assert_events(events, [TOKEN])


def test_route_and_raise_keys_are_namespaced(output: Output) -> None:
    """The extension's only additions to the environ are its namespaced keys."""
    app = make_app()
    add_views(app)
    HeraEvents(app, rules=load_rules(text=RULES), output=output.spec)
    seen: dict[str, Any] = {}

    @app.after_request
    def keep(response: Response) -> Response:
        seen.update({k: v for k, v in request.environ.items() if k.startswith("hera")})
        return response

    app.test_client().get("/login/github/callback", buffered=True)
    assert seen == {"hera_middleware.route": ("social.callback", {"provider": "github"})}


# -- real servers ----------------------------------------------------------------------------


def fetch(port: int, method: str, path: str, body: bytes = b"", **headers: str) -> Any:
    """One request over a fresh HTTP/1.1 connection: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def wait_lines(path: Path, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The first ``n`` event lines of ``path``, waiting for the writer."""
    deadline = time.monotonic() + timeout
    while True:
        hera_middleware.flush(1.0)
        lines = path.read_bytes().splitlines() if path.exists() else []
        if len(lines) >= n or time.monotonic() > deadline:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)


def without_ts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for e in events:
        assert TS.fullmatch(e.pop("ts"))
    return events


FORM_BODY = (
    b"grant_type=authorization_code&client_id=web&code=code-SECRET-0815"
    b"&code_verifier=verifier-SECRET-abcdefghijklmnopqrstuvwxyz0123456789"
)
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


def test_real_werkzeug_server_over_http(tmp_path: Path, output: Output) -> None:
    """Under Werkzeug's WSGI server on 127.0.0.1 every exchange gives its exact event line."""
    data = tmp_path / "data.txt"
    data.write_bytes(b"0123456789" * 5000)
    app = make_app()
    HeraEvents(app, rules=load_rules(text=RULES), output=output.spec)
    add_views(app, data)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_port
    bad_form = b"grant_type=x&client_id=web"
    steps: list[tuple[tuple[Any, ...], int, bytes | None, list[dict[str, object]]]] = [
        (("POST", "/oauth/token", bad_form), 400, None, []),
        (("POST", "/oauth/token", FORM_BODY), 200, None, [TOKEN]),
        (("GET", "/oauth/authorize?client_id=web&code_challenge=x"), 302, None, [AUTHORIZE]),
        (("GET", "/stream"), 200, b"chunk 0;chunk 1;chunk 2;", [done(200)]),
        (("GET", "/file"), 200, data.read_bytes(), [done(200)]),
        (("GET", "/boom"), 500, None, [RAISED]),
    ]
    expected: list[dict[str, object]] = []
    try:
        for request_args, status, body, new_events in steps:
            got_status, headers, got_body = fetch(port, *request_args, **FORM_HEADERS)
            assert got_status == status
            if body is not None:
                assert got_body == body
            if request_args[1] == "/stream":
                assert ("Transfer-Encoding", "chunked") in headers
            expected += new_events
            # Each event is written after its response: wait for it before the next request.
            assert without_ts(wait_lines(output.path, len(expected))) == expected
    finally:
        server.shutdown()
        server.server_close()  # joins the request threads
        thread.join(5)
    assert without_ts(wait_lines(output.path, len(expected) + 1, timeout=0.2)) == expected
    assert_private(output.path.read_bytes())


GUNICORN_RULES = """
events:
  exchange_done: [status]
rules:
  - event: pkce_token_exchange
    route: auth.token
    if: {form.code_verifier: present, response.status: 200, response.json.access_token: present}
    fields: {client_id: form.client_id}
  - event: exchange_done
    route: file
    fields: {status: response.status}
"""

GUNICORN_APP = """
import sys
from flask import Flask, send_file
from hera_middleware.flask import HeraEvents

app = Flask(__name__)
app.config["HERA_RULES"] = {rules!r}
app.config["HERA_OUTPUT"] = {out!r}

@app.get("/file", endpoint="file")
def file():
    return send_file({data!r}, mimetype="text/plain")

@app.post("/oauth/token", endpoint="auth.token")
def token():
    from flask import request
    if request.form.get("code_verifier"):
        return {{"access_token": "tok-SECRET-999", "token_type": "Bearer"}}
    return {{}}, 400

RESULTS = []

@app.get("/kind")
def kind():
    from flask import request
    wrapper = request.environ.get("wsgi.file_wrapper")
    return {{"file_wrapper": repr(wrapper), "results": RESULTS}}

HeraEvents(app)
inner = app.wsgi_app

def outer(environ, start_response):
    # What the server gets back from the extension, for the test to see.
    result = inner(environ, start_response)
    RESULTS.append(type(result).__module__ + "." + type(result).__name__)
    return result

app.wsgi_app = outer
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_gunicorn_server_with_sendfile(tmp_path: Path) -> None:
    """Under gunicorn (whose wsgi.file_wrapper sends files with sendfile) send_file keeps working
    and chunked token requests are read by the app alone."""
    pytest.importorskip("gunicorn")
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(range(256)) * 400)
    rule_file = tmp_path / "hera.yaml"
    rule_file.write_text(GUNICORN_RULES)
    out = tmp_path / "events.jsonl"
    (tmp_path / "gapp.py").write_text(
        GUNICORN_APP.format(rules=str(rule_file), out=f"file:{out}", data=str(data))
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "gapp:app"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        status, _, body = fetch(port, "GET", "/file")
        assert (status, body) == (200, data.read_bytes())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("POST", "/oauth/token")
        conn.putheader("Content-Type", FORM_HEADERS["Content-Type"])
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for part in (FORM_BODY[:20], FORM_BODY[20:]):
            conn.send(b"%x\r\n%s\r\n" % (len(part), part))
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        assert (response.status, json.loads(response.read())["token_type"]) == (200, "Bearer")
        conn.close()
        _, _, kind = fetch(port, "GET", "/kind")
        # The server got its own file wrapper back, so it could use sendfile.
        assert "gunicorn" in json.loads(kind)["file_wrapper"]
        assert json.loads(kind)["results"][0] == "gunicorn.http.wsgi.FileWrapper"
        events = wait_lines(out, 2)
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=20)
    assert without_ts(events) == [done(200), TOKEN], stderr.decode()
    assert_private(out.read_bytes())
