"""Hostile requests, signal arguments and recordings against the signals and the rule packs.

Each test is a defect found by trying to make a pack emit a wrong event, or the signal
and recording machinery lose or garble a fact; the events are asserted exactly.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from blinker import Namespace

from hera_middleware import HeraEvents
from hera_middleware.record import _signals as recorded_signals
from hera_middleware.replay import ReplayError, read_exchanges
from hera_middleware.testing import capture_events, signals_unknown

sys.path.insert(0, str(Path(__file__).resolve().parent / "packs" / "flask_wtf_recaptcha"))

probe = Namespace().signal("hostile-probe")

ENVELOPE = ("ts", "type", "domain")


def stripped(events: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in e.items() if k not in ENVELOPE} for e in events]


# --- params.*: a form value sent twice is unknown, not the query's ------------------


async def _redirect_to_provider(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    location = b"https://idp.example/authorize?state=s1&client_id=c"
    await send({"type": "http.response.start", "status": 302, "headers": [(b"location", location)]})
    await send({"type": "http.response.body", "body": b""})


def _allauth_login_post(query: bytes, body: bytes) -> list[dict[str, object]]:
    with signals_unknown():
        app = HeraEvents(_redirect_to_provider, rules="preset:django-allauth", output=print)
    path = "/accounts/oidc/fakeoidc/login/"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    messages = [{"type": "http.request", "body": body}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    with capture_events() as events:
        asyncio.run(app(scope, receive, send))
    return stripped(events)


def test_repeated_form_process_does_not_fall_back_to_the_query(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """allauth takes request.POST.get("process"): Django's last value, "connect" here.
    The pack must not read the query's "login" instead and call the connect a login."""
    got = _allauth_login_post(b"process=login", b"process=login&process=connect")
    assert got == []
    assert _allauth_login_post(b"", b"process=connect") == [
        {"event": "social_link_initiated", "provider": "fakeoidc"}
    ]
    assert _allauth_login_post(b"process=connect", b"") == [
        {"event": "social_link_initiated", "provider": "fakeoidc"}
    ]
    capsys.readouterr()


# --- flask-wtf-recaptcha: a JSON post carries its token where no form is ------------


def test_json_post_with_a_token_is_no_missing_captcha() -> None:
    from _wtf_app import EMAIL, PASSWORD, FakeVerify, csrf_token, discard, plain_app

    rules = {"extends": ["preset:flask-wtf-recaptcha"], "vars": {"recaptcha_login": "/sign-in"}}
    verify = FakeVerify()
    try:
        client = plain_app(verify.url, rules={**rules}).test_client()
        assert discard is not None
        page = client.get("/sign-in")
        csrf = csrf_token(page.get_data(as_text=True))
        page.close()

        def post(**body: str) -> tuple[int, list[dict[str, object]]]:
            with capture_events() as events:
                response = client.post("/sign-in", json={"csrf_token": csrf, **body})
                response.get_data()
                response.close()
            return response.status_code, stripped(events)

        # Google was asked and said yes; the form came back for the password alone.
        assert post(email=EMAIL, password="nope", **{"g-recaptcha-response": "ok-1"}) == (200, [])
        assert verify.tokens[-1] == "ok-1"
        # A forged token is no missing one.
        assert post(email=EMAIL, password=PASSWORD, **{"g-recaptcha-response": "forged-1"}) == (
            200,
            [],
        )
        # Without the token Flask-WTF refuses the JSON post as missing, and so does the pack.
        assert post(email=EMAIL, password=PASSWORD) == (
            200,
            [{"event": "captcha_failed", "flow": "login", "reason": "missing"}],
        )
    finally:
        verify.close()


# --- signal arguments ---------------------------------------------------------------

SIGNAL_RULES = {
    "signals": {"probe": {"signal": f"{__name__}.probe", "keep": ["method"]}},
    "rules": [
        {
            "id": "probe-sent",
            "event": "mfa_challenge_succeeded",
            "match": "GET /probe",
            "if": {"signal.probe": "present"},
            "fields": {"method": "signal.probe.method"},
        }
    ],
}


def test_a_proxy_argument_is_unknown_and_the_signal_still_sent(tmp_path: Path) -> None:
    """A mock (or SimpleLazyObject, LocalProxy) claims str as its __class__: it is no
    single value, so the argument is unknown; the signal was sent all the same."""
    from flask import Flask

    from hera_middleware.flask import HeraEvents as FlaskEvents

    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(SIGNAL_RULES))
    sent: dict[str, Any] = {}
    app = Flask("hostile_signal_app")

    @app.get("/probe")
    def view() -> str:
        probe.send(app, **sent)
        return "ok"

    FlaskEvents(app, rules=str(rules), output=lambda event: None)
    client = app.test_client()
    for value, method in [("totp", "totp"), (mock.Mock(spec=str), None), (mock.Mock(), None)]:
        sent["method"] = value
        with capture_events() as events:
            response = client.get("/probe")
            response.get_data()
            response.close()
        assert stripped(events) == [{"event": "mfa_challenge_succeeded", "method": method}]


def test_a_recording_leaves_out_kept_values_json_cannot_hold() -> None:
    log = {"probe": {"method": math.nan, "n": 10**5000, "inf": -math.inf, "ok": 7, "s": "totp"}}
    written = recorded_signals(log)
    assert written == {"probe": {"ok": 7, "s": "totp"}}
    assert json.dumps(written, allow_nan=False) == '{"probe": {"ok": 7, "s": "totp"}}'


# --- hostile recordings -------------------------------------------------------------

RECORD = {
    "method": "GET",
    "path": "/probe",
    "query": {},
    "request_headers": {},
    "request_body_kind": "empty",
    "request_body": "",
    "status": 200,
    "response_headers": {},
    "response_body": "",
    "expected_events": [],
}


def _read_error(path: Path) -> str:
    with pytest.raises(ReplayError) as raised:
        list(read_exchanges(path))
    return str(raised.value)


def test_deeply_nested_signals_are_a_located_error(tmp_path: Path) -> None:
    depth = 100_000
    line = json.dumps(RECORD)[:-1] + ', "signals": ' + '{"a":' * depth + "1" + "}" * depth + "}"
    path = tmp_path / "deep.jsonl"
    path.write_text(line + "\n")
    assert _read_error(path).endswith(":1:1: bad-exchange: JSON nested too deeply")


def test_control_characters_in_signal_names_are_escaped_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "ansi.jsonl"
    evil = "evil\n\x1b[31mFAKE: ok"
    path.write_text(json.dumps({**RECORD, "signals": {evil: 5}}) + "\n")
    message = _read_error(path)
    assert "\n" not in message
    assert "\x1b" not in message
    assert message.endswith(
        r'bad-exchange: signals."evil\n\u001b[31mFAKE: ok" is an object'
        " (argument -> value), not a number"
    )
    path.write_text(json.dumps({**RECORD, "signals": {"probe": {"m\r\x1b[2J": [1]}}}) + "\n")
    message = _read_error(path)
    assert re.search(r'signals\.probe\."m\\r\\u001b\[2J" is a string', message), message
