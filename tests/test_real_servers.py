"""Replay exchanges recorded from real auth servers through HeraEvents and the rule packs.

Each record of ``tests/fixtures/real-servers/*.jsonl`` (or of the directory named by
``HERA_REAL_SERVERS``) becomes raw ASGI messages: an http scope, the request body
through ``receive()``, and a tiny app that reads the whole body, as the real servers
did, then sends the recorded response. The events the rule file yields for it must be
the record's ``expected_events`` (or, where HTTP cannot tell outcomes apart, one of
``also_accepted``), in catalog key order, without any secret of the exchange. Each
recording is served by its server's pack (``preset:<server>``, adapters/); a recording
cannot say whether the server sent a signal, so signal facts are unknown here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

import hera_middleware
from hera_middleware.testing import capture_events, signals_unknown

HERE = Path(__file__).parent
RULES = HERE / "rules"

#: Recording file stem -> the rule pack serving it (adapters/<name>/rules.yaml).
RULE_FILES = {
    "authlib": "preset:authlib",
    "django-oauth-toolkit": "preset:django-oauth-toolkit",
    "django-oauth-toolkit-root-path": "preset:django-oauth-toolkit",
    "flask-security-too": "preset:flask-security-too",
    "flask-wtf-recaptcha": "preset:flask-wtf-recaptcha",
    "django-allauth": "preset:django-allauth",
}

#: (recording, flow, step) -> why its pack needs a signal to decide it. A recording
#: cannot say whether the server sent one: the pack then emits nothing here, which the
#: live tests of the pack (tests/packs/) do not share (they see the signals).
SIGNAL_DECIDED = {
    (
        "django-allauth",
        flow,
        "provider_callback",
    ): "a callback ends a login or a headless connect alike: social_account_added tells them apart"
    for flow in (
        "social_first_login_autosignup",
        "social_returning_login",
        "headless_social_first_login",
    )
}

#: Request keys whose values are secrets: none may show up in any event.
SECRET_KEYS = frozenset(
    {
        "code",
        "code_verifier",
        "code_challenge",
        "client_secret",
        "password",
        "password_confirm",
        "state",
        "csrf_token",
        "csrfmiddlewaretoken",
        "fakehub_csrf_token",
        "g-recaptcha-response",
        "email",
        "login",
        "username",
    }
)

TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
CLIENT = ("127.0.0.1", 51000)
SERVER = ("127.0.0.1", 8000)

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@pytest.fixture(autouse=True)
def recorded_traffic() -> Iterator[None]:
    """Middleware built in a test of recordings sees signal facts unknown, as replay does."""
    with signals_unknown():
        yield


def _recordings_dir() -> Path:
    # The recordings live outside the repository in development; CI may point elsewhere.
    configured = os.environ.get("HERA_REAL_SERVERS")
    if configured:
        return Path(configured)
    return HERE / "fixtures" / "real-servers"


@dataclass(frozen=True)
class Record:
    """One recorded exchange and the rule file that should interpret it."""

    source: str
    index: int
    data: dict[str, Any]

    @property
    def rules(self) -> str:
        return RULE_FILES[self.source]

    @property
    def id(self) -> str:
        seq = self.data.get("seq") or self.index
        return f"{self.source}-{seq:04d}-{self.data['flow']}-{self.data['step']}"

    def accepted(self) -> list[list[dict[str, Any]]]:
        """Every event list a correct rule file may yield for this exchange, replayed."""
        if (self.source, self.data["flow"], self.data["step"]) in SIGNAL_DECIDED:
            return [[]]
        expected: list[dict[str, Any]] = self.data["expected_events"]
        if self.data.get("http_ambiguous"):
            return [expected, *self.data.get("also_accepted", [])]
        return [expected]


def _records() -> Iterator[Record]:
    directory = _recordings_dir()
    for path in sorted(directory.glob("*.jsonl")):
        if path.stem not in RULE_FILES:
            continue
        with path.open(encoding="utf-8") as lines:
            for index, line in enumerate(lines, start=1):
                if line.strip():
                    yield Record(path.stem, index, json.loads(line))


RECORDS = list(_records())


# --- record -> ASGI ------------------------------------------------------------------


def _request_headers(data: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = [(b"host", b"localhost")]
    for name, value in data["request_headers"].items():
        if value is None or value == []:
            continue
        if name == "cookie":
            # Only cookie names were recorded; the values are dummies.
            value = "; ".join(f"{cookie}=dummy-{cookie}" for cookie in value)
        headers.append((name.encode("latin-1"), str(value).encode("latin-1")))
    return headers


def _content_type(data: dict[str, Any]) -> str:
    value = data["request_headers"].get("content-type") or ""
    return str(value).split(";", 1)[0].strip().lower()


def _request_body(data: dict[str, Any]) -> bytes:
    kind = data.get("request_body_kind")
    body = data["request_body"]
    if kind == "empty" or body in ("", {}, None):
        return b""
    if kind == "text" or (kind is None and isinstance(body, str)):
        return str(body).encode("utf-8")
    if isinstance(body, dict) and _content_type(data).endswith("json"):
        return json.dumps(body).encode("utf-8")
    if isinstance(body, dict) and kind in ("form", None):
        return urlencode(body, doseq=True).encode("ascii")
    raise AssertionError(f"cannot rebuild a {kind!r} request body of {type(body).__name__}")


def _scope(data: dict[str, Any], body: bytes) -> Scope:
    headers = _request_headers(data)
    if body:
        headers.append((b"content-length", str(len(body)).encode("ascii")))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": data["method"],
        "scheme": "http",
        "path": data["path"],
        "raw_path": data["path"].encode("utf-8"),
        "root_path": data["root_path"],
        "query_string": urlencode(data["query"], doseq=True).encode("ascii"),
        "headers": headers,
        "client": CLIENT,
        "server": SERVER,
    }


def _response_headers(data: dict[str, Any], body: bytes) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    for name, value in data["response_headers"].items():
        if value is None:
            continue
        if name == "set-cookie":
            # Only cookie names were recorded; one header per cookie, as servers send.
            headers += [
                (b"set-cookie", f"{cookie}=dummy-{cookie}; Path=/; HttpOnly".encode("latin-1"))
                for cookie in value
            ]
            continue
        headers.append((name.encode("latin-1"), str(value).encode("latin-1")))
    headers.append((b"content-length", str(len(body)).encode("ascii")))
    return headers


class Replay:
    """The recorded server: reads the whole request body, then sends the recorded answer."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.body = data["response_body"].encode("utf-8")
        self.start: Message = {
            "type": "http.response.start",
            "status": data["status"],
            "headers": _response_headers(data, self.body),
        }
        self.received = b""
        self.sent: list[Message] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        more = True
        while more:
            message = await receive()
            assert message["type"] == "http.request"
            self.received += message.get("body", b"")
            more = message.get("more_body", False)
        for message in (self.start, {"type": "http.response.body", "body": self.body}):
            self.sent.append(message)
            await send(message)


class Client:
    """The server side: hands out the request body once, then reports a disconnect."""

    def __init__(self, body: bytes) -> None:
        self.messages: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
        self.got: list[Message] = []

    async def receive(self) -> Message:
        if self.messages:
            return self.messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.got.append(message)


# --- checks --------------------------------------------------------------------------


def _secret_values(data: dict[str, Any]) -> set[str]:
    values: set[str] = set()
    body = data["request_body"]
    sources: list[dict[str, Any]] = [data["query"]]
    if isinstance(body, dict):
        sources.append(body)
    for source in sources:
        for key, value in source.items():
            if key.lower() in SECRET_KEYS:
                values.update(v for v in (value if isinstance(value, list) else [value]))
    location = data["response_headers"].get("location")
    if location:
        for key, value in parse_qsl(urlsplit(location).query):
            if key in SECRET_KEYS:
                values.add(value)
    # Short values ("", "yes") could appear by chance; real secrets are longer.
    return {v for v in values if isinstance(v, str) and len(v) >= 6}


def _envelope_stripped(event: dict[str, Any]) -> dict[str, Any]:
    assert event["type"] == "audit"
    assert event["domain"] == "ciam"
    assert TS.fullmatch(event["ts"]), event["ts"]
    keys = list(event)
    assert keys[:2] == ["type", "event"], keys
    assert keys[-2:] == ["domain", "ts"], keys
    return {k: v for k, v in event.items() if k not in ("type", "domain", "ts")}


def _discard(event: dict[str, object]) -> None:
    """An output that drops every line: the test reads events through capture_events."""


async def _replay_and_check(record: Record, data: dict[str, Any], rules: object) -> None:
    body = _request_body(data)
    app = Replay(data)
    client = Client(body)
    middleware = hera_middleware.HeraEvents(app, rules=rules, output=_discard)

    with capture_events() as captured:
        await middleware(_scope(data, body), client.receive, client.send)

    assert app.received == body
    assert client.got == app.sent
    got = [_envelope_stripped(event) for event in captured]
    # Key order is part of the contract with log shippers: compare ordered items.
    as_items = [list(event.items()) for event in got]
    accepted = [[list(e.items()) for e in events] for events in record.accepted()]
    assert as_items in accepted, f"got {got}, accepted {record.accepted()}"
    serialized = json.dumps(captured)
    leaked = sorted(v for v in _secret_values(data) if v in serialized)
    assert not leaked, f"secret request values in events: {leaked}"


@pytest.mark.parametrize("record", [pytest.param(r, id=r.id) for r in RECORDS])
async def test_recorded_exchange_yields_expected_events(record: Record) -> None:
    """The rule file turns a recorded exchange into exactly its expected events, privately."""
    await _replay_and_check(record, record.data, str(record.rules))


AUTHLIB_ELSEWHERE = "extends: [preset:authlib]\nvars: {oauth: /auth/v2}\n"


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(r, id=r.id)
        for r in RECORDS
        if r.source == "authlib" and r.data["path"].startswith("/oauth/")
    ],
)
async def test_authlib_preset_follows_an_overridden_prefix(record: Record) -> None:
    """With `vars: {oauth: ...}` the Authlib pack serves the same endpoints under another prefix."""
    data = {**record.data, "path": "/auth/v2" + record.data["path"].removeprefix("/oauth")}
    rules = hera_middleware.load_rules(text=AUTHLIB_ELSEWHERE)
    await _replay_and_check(record, data, rules)


def test_every_recording_is_collected() -> None:
    """Every recording file has a rule file and contributes its records to the table."""
    stems = {p.stem for p in _recordings_dir().glob("*.jsonl")}
    assert stems == set(RULE_FILES)
    assert len(RECORDS) == 243
