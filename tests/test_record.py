"""The `record` option: every exchange, cleaned by the privacy policy, for `replay`."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest

from hera_middleware import HeraEvents, HeraEventsWSGI
from hera_middleware._types import Message, Receive, Scope, Send
from hera_middleware.record import mask
from hera_middleware.replay import Replayer, read_exchanges

RULES: dict[str, Any] = {
    "rules": [
        {
            "id": "token",
            "event": "pkce_token_exchange",
            "match": "POST /oauth/token",
            "if": {"response.status": 200, "form.code_verifier": {"format": "pkce_verifier"}},
            "fields": {"client_id": ["form.client_id", "basic_auth.username"]},
        },
        {
            "id": "mfa",
            "event": "mfa_challenge_succeeded",
            "match": "POST /mfa",
            "if": {"json.otp": {"format": "totp"}, "response.status": 200},
            "fields": {"method": {"value": "totp"}},
        },
    ]
}
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
TOKEN_FORM = (
    f"grant_type=authorization_code&code=SplxlOBeZQ&code_verifier={VERIFIER}"
    "&redirect_uri=https%3A%2F%2Fc.example%2Fcb"
).encode()
SECRETS = (
    "SplxlOBeZQ",
    VERIFIER,
    "s3cr3t",
    "2YotnFZFEjr1zCsicMWpAA",
    "abc123",
    "IjA1YzQ5",
    "bob@example.com",
    "10.1.2.3",
    "10.0.0.1",
    "xyz123",
    "654321",
    "dark",
)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """A server: reads the body, answers per path."""
    more = True
    while more:
        message = await receive()
        more = bool(message.get("more_body"))
    if scope["path"] == "/oauth/token":
        headers = [(b"content-type", b"application/json"), (b"set-cookie", b"sid=abc123; Path=/")]
        body = {
            "access_token": "2YotnFZFEjr1zCsicMWpAA",
            "token_type": "Bearer",
            "expires_in": 3600,
        }
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": json.dumps(body).encode()})
    elif scope["path"] == "/mfa":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    else:
        location = b"https://c.example/cb?code=SplxlOBeZQ&state=xyz123&iss=https://idp"
        page = (
            b'<input type="hidden" name="csrf_token" value="IjA1YzQ5">'
            b'<input name="email" value="bob@example.com"> from 10.1.2.3'
        )
        headers = [(b"content-type", b"text/html"), (b"location", location)]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": page})


def _call(
    middleware: Any, method: str, path: str, query: bytes, headers: list[Any], body: bytes
) -> None:
    messages: list[Message] = [{"type": "http.request", "body": body}]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    if body:
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "http_version": "1.1",
    }
    asyncio.run(middleware(scope, receive, send))


def _discard(event: dict[str, object]) -> None:
    """Events are not what these tests read."""


def _traffic(middleware: Any) -> None:
    basic = b"Basic " + base64.b64encode(b"backend:s3cr3t")
    _call(
        middleware,
        "POST",
        "/oauth/token",
        b"",
        [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"authorization", basic),
            (b"cookie", b"sid=abc123; theme=dark"),
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"user-agent", b"curl/8"),
        ],
        TOKEN_FORM,
    )
    _call(
        middleware,
        "GET",
        "/oauth/authorize",
        b"client_id=web&state=xyz123&login_hint=bob%40example.com&next=/x%3Fcode%3Dabc123",
        [],
        b"",
    )
    _call(
        middleware,
        "POST",
        "/mfa",
        b"",
        [(b"content-type", b"application/json"), (b"authorization", b"Bearer abc123")],
        json.dumps({"otp": "654321", "remember": True}).encode(),
    )


@pytest.fixture
def recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "exchanges.jsonl"
    middleware = HeraEvents(app, rules=RULES, record=str(path), output=_discard)
    assert capsys.readouterr().err == (
        f"hera-middleware: WARNING: recording every exchange to {path}: secrets, cookies and"
        " personal data are masked, but the file holds your traffic; review it before"
        " sharing it, and never record in production\n"
    )
    _traffic(middleware)
    assert middleware._engine is not None
    assert middleware._engine.recorder is not None
    middleware._engine.recorder.close()
    return path


def test_every_exchange_is_recorded_cleaned(recorded: Path) -> None:
    """Forbidden keys and values are masked, letters to x and digits to 0, headers
    cut down to the few rules use, cookies to their names; the rules' events kept."""
    records = [json.loads(line) for line in recorded.read_text().splitlines()]
    assert records == [
        {
            "method": "POST",
            "path": "/oauth/token",
            "root_path": "",
            "query": {},
            "request_headers": {
                "content-type": "application/x-www-form-urlencoded",
                "authorization": "Basic " + base64.b64encode(b"backend:<redacted>").decode(),
                "cookie": ["sid", "theme"],
            },
            "request_body_kind": "form",
            "request_body": {
                "grant_type": ["authorization_code"],
                "code": ["xxxxxxxxxx"],
                "code_verifier": [mask(VERIFIER)],
                "redirect_uri": ["https://c.example/cb"],
            },
            "status": 200,
            "response_headers": {"content-type": "application/json", "set-cookie": ["sid"]},
            "response_body": json.dumps(
                {
                    "access_token": "0xxxxxxxxxx0xxxxxxxxxx",
                    "token_type": "xxxxxx",
                    "expires_in": 3600,
                }
            ),
            "expected_events": [{"event": "pkce_token_exchange", "client_id": "backend"}],
        },
        {
            "method": "GET",
            "path": "/oauth/authorize",
            "root_path": "",
            "query": {
                "client_id": ["web"],
                "state": ["xxx000"],
                "login_hint": ["xxx@xxxxxxx.xxx"],
                "next": ["/x?code=xxx000"],
            },
            "request_headers": {},
            "request_body_kind": "empty",
            "request_body": "",
            "status": 302,
            "response_headers": {
                "content-type": "text/html",
                "location": "https://c.example/cb?code=xxxxxxxxxx&state=xxx000&iss=https://idp",
            },
            "response_body": '<input type="hidden" name="csrf_token" value="xxx0xxx0">'
            '<input name="email" value="xxx@xxxxxxx.xxx"> from 00.0.0.0',
            "expected_events": [],
        },
        {
            "method": "POST",
            "path": "/mfa",
            "root_path": "",
            "query": {},
            "request_headers": {
                "content-type": "application/json",
                "authorization": "Bearer xxx000",
            },
            "request_body_kind": "json",
            "request_body": {"otp": "000000", "remember": True},
            "status": 200,
            "response_headers": {},
            "response_body": "ok",
            "expected_events": [{"event": "mfa_challenge_succeeded", "method": "totp"}],
        },
    ]
    text = recorded.read_text()
    assert [secret for secret in SECRETS if secret in text] == []
    assert oct(os.stat(recorded).st_mode & 0o777) == "0o600"


def test_the_recording_replays_to_the_same_events(recorded: Path) -> None:
    """Masking keeps what rules may test (presence, length, format): replay agrees."""
    recordings = list(read_exchanges(recorded))
    outcomes = list(Replayer(RULES, recordings).run_all(recordings))
    assert [o.as_expected() for o in outcomes] == [True, True, True]


def test_wsgi_and_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HERA_RECORD turns recording on for the WSGI middleware too."""
    path = tmp_path / "wsgi.jsonl"
    monkeypatch.setenv("HERA_RECORD", str(path))

    def wsgi_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    middleware = HeraEventsWSGI(wsgi_app, rules=RULES, output=_discard)
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/register",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": "17",
        "wsgi.input": io.BytesIO(b"password=hunter22"),
    }
    body = b"".join(middleware(environ, lambda status, headers, exc_info=None: None))
    assert body == b"hello"
    assert middleware._engine.recorder is not None
    middleware._engine.recorder.close()
    (record,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["request_body"] == {"password": ["xxxxxx00"]}
    assert record["response_body"] == "hello"


def test_recording_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without record= or HERA_RECORD nothing is recorded, and lookups are the rules' own."""
    monkeypatch.delenv("HERA_RECORD", raising=False)
    middleware = HeraEvents(app, rules=RULES, output=_discard)
    assert middleware._engine is not None
    assert middleware._engine.recorder is None
    assert middleware._engine.ruleset.candidates("GET", "/nothing") is None


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        pytest.param("hunter2!", "xxxxxx0!", id="password"),
        pytest.param("123456", "000000", id="totp"),
        pytest.param("eyJhbGci.eyJzdWIi.sig", "xxxxxxxx.xxxxxxxx.xxx", id="jwt"),
        pytest.param("contraseña", "xxxxxxxxxx", id="unicode"),
    ],
)
def test_mask_keeps_length_and_format_only(value: str, masked: str) -> None:
    """Letters become x and digits 0; punctuation stays, so formats still match."""
    assert mask(value) == masked
