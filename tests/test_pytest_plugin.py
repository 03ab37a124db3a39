"""The pytest plugin: the `hera_events` fixture, as a user's own test suite would use it."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

RULES = """\
rules:
  - id: token
    event: pkce_token_exchange
    match: POST /oauth/token
    if: {response.status: 200}
    fields: {client_id: form.client_id}
  - id: breach
    event: breach_check_failed
    match: POST /register
    fields: {reason: {value: in_hibp}}
"""

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

FLASK_APP = """\
import flask
import pytest

from hera_middleware.flask import HeraEvents


@pytest.fixture
def client():
    app = flask.Flask(__name__)

    @app.post("/oauth/token")
    def token():
        flask.request.form  # reads the body, as every form-handling view does
        return {"access_token": "x"}

    @app.post("/register")
    def register():
        return "breached", 200

    HeraEvents(app, rules="hera.yaml", output="stderr")
    return app.test_client()
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: a rule file and a Flask app fixture in conftest.py."""
    pytester.makefile(".yaml", hera=RULES)
    pytester.makeini(INI)
    pytester.makeconftest(FLASK_APP)
    return pytester


def test_a_users_test_asserts_the_events_of_their_server(project: pytest.Pytester) -> None:
    """The fixture needs no import: assert_events, named and stats work as documented."""
    project.makepyfile(
        """
        def test_token(client, hera_events):
            assert client.post("/oauth/token", data={"client_id": "web", "code": "a"}).json
            assert client.post("/register", data={"password": "hunter2"}).data == b"breached"
            hera_events.assert_events([
                {"event": "pkce_token_exchange", "client_id": "web"},
                {"type": "audit", "event": "breach_check_failed", "reason": "in_hibp",
                 "domain": "ciam"},
            ])
            assert [e["event"] for e in hera_events.named("breach_check_failed")] == [
                "breach_check_failed"
            ]
            assert hera_events.stats["events_written"] >= 0
            assert hera_events.stats["fields_nulled"] == 0

        def test_nothing_leaks_from_the_test_before(client, hera_events):
            assert len(hera_events) == 0
            client.post("/oauth/token", data={}).close()
            assert hera_events.named("pkce_token_exchange")[0]["client_id"] is None
            assert hera_events.stats["fields_nulled"] == 1
            hera_events.clear()
            hera_events.assert_events([])
        """
    )
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_difference_lists_expected_and_emitted_events(project: pytest.Pytester) -> None:
    """A failing assert_events says what was expected and what was emitted, without ts."""
    project.makepyfile(
        """
        def test_token(client, hera_events):
            client.post("/oauth/token", data={"client_id": "web"}).close()
            hera_events.assert_events([{"event": "pkce_token_exchange", "client_id": "spa"}])
        """
    )
    result = project.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            ">*hera_events.assert_events(*",
            "E*AssertionError: hera_events: expected 1 event(s), got 1",
            "E*expected:",
            "E*  {'event': 'pkce_token_exchange', 'client_id': 'spa'}",
            "E*emitted (ts left out):",
            "E*  {'type': 'audit', 'event': 'pkce_token_exchange', 'client_id': 'web',"
            " 'domain': 'ciam'}",
        ]
    )


def test_unordered_comparison(project: pytest.Pytester) -> None:
    """ordered=False accepts the same events in any order, and still refuses extra ones."""
    project.makepyfile(
        """
        import pytest

        def test_any_order(client, hera_events):
            client.post("/register").close()
            client.post("/oauth/token", data={"client_id": "web"}).close()
            expected = [
                {"event": "pkce_token_exchange", "client_id": "web"},
                {"event": "breach_check_failed", "reason": "in_hibp"},
            ]
            hera_events.assert_events(expected, ordered=False)
            with pytest.raises(AssertionError):
                hera_events.assert_events(expected)
            with pytest.raises(AssertionError):
                hera_events.assert_events(expected[:1], ordered=False)
        """
    )
    project.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_events_from_any_adapter_and_emit_event(pytester: pytest.Pytester) -> None:
    """ASGI middleware events and emit_event calls with a file output are captured alike."""
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import asyncio

        from hera_middleware import HeraEvents, emit_event

        async def app(scope, receive, send):
            await receive()
            await send({"type": "http.response.start", "status": 302, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        def test_asgi(hera_events, tmp_path):
            rules = {"rules": [{"event": "social_login_initiated",
                                "match": "GET /login/{provider}",
                                "fields": {"provider": "path.provider"}}]}
            output = f"file:{tmp_path / 'events.jsonl'}"
            middleware = HeraEvents(app, rules=rules, output=output)
            scope = {"type": "http", "method": "GET", "path": "/login/github",
                     "query_string": b"", "headers": []}

            async def receive():
                return {"type": "http.request", "body": b""}

            async def send(message):
                pass

            asyncio.run(middleware(scope, receive, send))
            emit_event("captcha_failed", flow="login", reason="timeout", output=output)
            hera_events.assert_events([
                {"event": "social_login_initiated", "provider": "github"},
                {"event": "captcha_failed", "flow": "login", "reason": "timeout"},
            ])
        """
    )
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_plugin_is_registered_by_its_entry_point(pytester: pytest.Pytester) -> None:
    """Installed, the fixture is there; `-p no:hera_middleware` turns it off."""
    pytester.makeini(INI)
    pytester.makepyfile("def test_x(hera_events):\n    assert list(hera_events) == []\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hera_middleware")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'hera_events' not found*"])
