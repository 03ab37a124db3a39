"""Shared helpers for the ASGI tests: a recording server, spies, and the invariant checks.

Every exchange is checked against the invariants of the HTTP edge cases:

- transparent: :func:`assert_transparent` proves that the app got the very message
  objects the server handed out and the server got the very objects the app sent,
  unchanged in flight (deep copies taken on both sides are equal);
- lazy and immediate: a global sequence number taken on both sides proves that each
  message reached the other side before the next one was asked for or sent, so
  nobody read the body ahead of the app and nobody held a chunk back;
- one line: :func:`assert_lines` reads the output file back and finds one valid,
  strictly UTF-8 JSON line per captured event, each at most 4096 bytes;
- private: :func:`assert_private` looks for every secret of the request in the
  output, the captured events and stderr.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hera_middleware
from hera_middleware._types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]  # re-exported for the tests

#: The ``ts`` format of every event.
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
#: Seconds one exchange may take before a test calls it a hang.
BOUND = 5.0

# One clock for every Log: the order in which messages crossed each point.
_SEQ = itertools.count()

#: Dummy secrets that requests in these tests carry; none may reach any output.
SECRETS = (
    "cs-SECRET-4711",
    "code-SECRET-0815",
    "verifier-SECRET-abcdefghijklmnopqrstuvwxyz0123456789",
    "sid-SECRET-cookie",
    "203.0.113.9",
    "alice@example.com",
    "Basic d2ViOnMzY3JldA==",
    "tok-SECRET-999",
)

#: A token request carrying secrets next to the public values rules extract.
TOKEN_FORM = (
    b"grant_type=authorization_code&client_id=web&code=code-SECRET-0815"
    b"&code_verifier=verifier-SECRET-abcdefghijklmnopqrstuvwxyz0123456789"
    b"&client_secret=cs-SECRET-4711&username=alice%40example.com"
)
FORM_TYPE = b"application/x-www-form-urlencoded"
REQUEST_HEADERS = (
    (b"host", b"idp.example"),
    (b"cookie", b"sid=sid-SECRET-cookie"),
    (b"x-forwarded-for", b"203.0.113.9"),
    (b"authorization", b"Basic d2ViOnMzY3JldA=="),
)

#: Rules that match every request and each test one body fact, so every event says
#: which body fact was known: a pure pass-through would emit only ``exchange_done``.
BODY_RULES = """
events:
  form_seen: [grant_type, client_id]
  json_seen: [kind]
  response_json_seen: [result]
  response_body_seen: []
  exchange_done: [status]
rules:
  - id: form-seen
    event: form_seen
    match: "* /{any:path}"
    if: {form.grant_type: present}
    fields: {grant_type: form.grant_type, client_id: form.client_id}
  - id: json-seen
    event: json_seen
    match: "* /{any:path}"
    if: {json.kind: present}
    fields: {kind: json.kind}
  - id: response-json-seen
    event: response_json_seen
    match: "* /{any:path}"
    if: {response.json.result: present}
    fields: {result: response.json.result}
  - id: response-body-seen
    event: response_body_seen
    match: "* /{any:path}"
    if: {response.body: {contains: needle}}
  - id: exchange-done
    event: exchange_done
    match: "* /{any:path}"
    fields: {status: response.status}
"""


def http_scope(
    method: str = "POST",
    path: str = "/oauth/token",
    *,
    query: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    root_path: str = "",
    raw_path: bytes | None = None,
    extensions: dict[str, Any] | None = None,
) -> Scope:
    """A hand-built ASGI http scope as a server would pass it."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("ascii"),
        "query_string": query,
        "root_path": root_path,
        "headers": [(k, v) for k, v in headers],
        "client": ("203.0.113.9", 51000),
        "server": ("idp.example", 443),
    }
    if extensions is not None:
        scope["extensions"] = extensions
    return scope


def json_response(
    payload: bytes = b'{"result":"ok","access_token":"tok-SECRET-999"}',
) -> list[Message]:
    """The start and body messages of a JSON response (fresh objects on every call)."""
    return [
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        },
        {"type": "http.response.body", "body": payload, "more_body": False},
    ]


def form_headers(body: bytes, content_type: bytes = FORM_TYPE) -> list[tuple[bytes, bytes]]:
    """Request headers for a urlencoded body, secrets included."""
    return [
        *REQUEST_HEADERS,
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
    ]


def chunked(body: bytes, size: int, *, empty_last: bool = True) -> list[Message]:
    """``http.request`` messages carrying ``body`` in chunks of ``size`` bytes."""
    parts = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    messages: list[Message] = [
        {"type": "http.request", "body": part, "more_body": True} for part in parts
    ]
    if empty_last:
        messages.append({"type": "http.request", "body": b"", "more_body": False})
    else:
        messages[-1]["more_body"] = False
    return messages


@dataclass(eq=False)
class Log:
    """What crossed one point of an ASGI chain: the objects, and deep copies of them."""

    scopes: list[Scope] = field(default_factory=list)
    callables: list[tuple[object, object]] = field(default_factory=list)
    received: list[Message] = field(default_factory=list)
    received_copies: list[Message] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    sent_copies: list[Message] = field(default_factory=list)
    received_at: list[int] = field(default_factory=list)
    sent_at: list[int] = field(default_factory=list)

    def got(self, message: Message) -> None:
        """Record a message handed to the app side."""
        self.received.append(message)
        self.received_copies.append(copy.deepcopy(message))
        self.received_at.append(next(_SEQ))

    def put(self, message: Message) -> None:
        """Record a message sent towards the server."""
        self.sent.append(message)
        self.sent_copies.append(copy.deepcopy(message))
        self.sent_at.append(next(_SEQ))

    def starts(self) -> list[Message]:
        """The ``http.response.start`` messages sent."""
        return [m for m in self.sent_copies if m["type"] == "http.response.start"]

    def body(self) -> bytes:
        """Every response body byte sent, joined."""
        return b"".join(m.get("body", b"") for m in self.sent_copies if m["type"].endswith("body"))


class Server:
    """The server side of one raw ASGI exchange.

    ``receive`` hands out ``messages`` in order, then ``http.disconnect``: at once with
    ``disconnect="at_once"``, or once the response is complete (as a real server does
    while the client waits) with ``disconnect="after_response"``. ``send`` records each
    message and may raise ``fail_on_send`` for the message numbered ``fail_at``.
    """

    def __init__(
        self,
        messages: Iterable[Message] = (),
        *,
        disconnect: str = "after_response",
        on_send: Callable[[Message], None] | None = None,
        fail_at: int | None = None,
        fail_on_send: BaseException | None = None,
    ) -> None:
        self.pending = list(messages)
        self.disconnect = disconnect
        self.on_send = on_send
        self.fail_at = fail_at
        self.fail_on_send = fail_on_send
        self.log = Log()
        self.receive_calls = 0
        self.response_done = asyncio.Event()
        # Bound once, so that tests can check the app got these very callables with `is`.
        self.receive = self._receive
        self.send = self._send

    async def _receive(self) -> Message:
        self.receive_calls += 1
        if self.pending:
            message = self.pending.pop(0)
        else:
            if self.disconnect == "after_response":
                await self.response_done.wait()
            message = {"type": "http.disconnect"}
        self.log.got(message)
        return message

    async def _send(self, message: Message) -> None:
        if self.fail_at is not None and len(self.log.sent) == self.fail_at:
            assert self.fail_on_send is not None
            self.response_done.set()
            raise self.fail_on_send
        self.log.put(message)
        if self.on_send is not None:
            self.on_send(message)
        kind = message["type"]
        if kind == "http.response.pathsend" or (
            kind == "http.response.body" and not message.get("more_body", False)
        ):
            self.response_done.set()

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        """Call ``app`` with this server's callables, bounded by :data:`BOUND`."""
        await asyncio.wait_for(app(scope, self.receive, self.send), BOUND)


class Spy:
    """A pure ASGI middleware recording what passes through it, changing nothing."""

    def __init__(self, app: ASGIApp, log: Log) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        log = self.log
        log.scopes.append(scope)
        log.callables.append((receive, send))

        async def spy_receive() -> Message:
            message: Message = await receive()
            log.got(message)
            return message

        async def spy_send(message: Message) -> None:
            log.put(message)
            await send(message)

        await self.app(scope, spy_receive, spy_send)


def _ids(messages: list[Message]) -> list[int]:
    return [id(m) for m in messages]


def _in_step(first: list[int], second: list[int]) -> bool:
    # first[0] < second[0] < first[1] < second[1] < ...
    merged = [t for pair in zip(first, second, strict=False) for t in pair]
    return len(first) == len(second) and merged == sorted(merged)


def assert_transparent(outer: Log, inner: Log, *, in_step: bool = True) -> None:
    """Assert the app side (``inner``) and the server side (``outer``) saw the same objects.

    Same receive results and same send messages, by identity, in order, and unchanged
    in flight. With ``in_step``, each request message reached the app before the next
    one was asked of the server (nobody read ahead of the app) and each response
    message reached the server before the app sent the next (nobody held one back).
    """
    assert _ids(inner.received) == _ids(outer.received)
    assert inner.received_copies == outer.received_copies
    assert _ids(inner.sent) == _ids(outer.sent)
    assert inner.sent_copies == outer.sent_copies
    if in_step:
        assert _in_step(outer.received_at, inner.received_at), "a request message was read ahead"
        assert _in_step(inner.sent_at, outer.sent_at), "a response message was held back"


def event(name: str, domain: str = "ciam", **fields: object) -> dict[str, object]:
    """An expected event without its ``ts``, keys in envelope order."""
    return {"type": "audit", "event": name, **fields, "domain": domain}


def assert_events(events: list[dict[str, object]], expected: list[dict[str, object]]) -> None:
    """Assert the captured events are ``expected`` exactly (key order too) plus a valid ``ts``."""
    for e in events:
        assert list(e)[-1] == "ts", e
        assert isinstance(e["ts"], str)
        assert TS.fullmatch(e["ts"]), e["ts"]
    got = [[(k, v) for k, v in e.items() if k != "ts"] for e in events]
    assert got == [list(x.items()) for x in expected]


@dataclass(frozen=True)
class Output:
    """An output file for one test, as ``output="file:..."`` spells it."""

    path: Path

    @property
    def spec(self) -> str:
        return f"file:{self.path}"

    def lines(self) -> list[bytes]:
        """Every line written so far (after a flush), newline included."""
        assert hera_middleware.flush(BOUND)
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        assert not data or data.endswith(b"\n"), data[-200:]
        return data.splitlines(keepends=True)


def assert_lines(output: Output, events: list[dict[str, object]]) -> None:
    """Assert one complete, valid JSON line was written for each captured event."""
    lines = output.lines()
    assert len(lines) == len(events)
    for line, captured in zip(lines, events, strict=True):
        assert len(line) <= 4096
        assert line.count(b"\n") == 1
        text = line.decode("utf-8")  # strict: a lone surrogate or bad byte fails here
        assert json.loads(text) == captured


def assert_private(*texts: str | bytes, secrets: Iterable[str] = SECRETS) -> None:
    """Assert none of ``secrets`` occurs in any of ``texts``."""
    for text in texts:
        blob = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for secret in secrets:
            assert secret not in blob


def dumps(events: list[dict[str, object]]) -> str:
    """The captured events as text, for privacy checks."""
    return json.dumps(events, ensure_ascii=False, default=repr)


def reading_app(
    response: Callable[[], list[Message]] = json_response, *, extra_receives: int = 0
) -> ASGIApp:
    """A raw ASGI app that reads the whole body (then ``extra_receives`` more), then answers."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        for _ in range(extra_receives):
            await receive()
        for message in response():
            await send(message)

    return app


def wire(app: Any, inner: Log, outer: Log, **options: Any) -> Any:
    """Add HeraEvents to a Starlette/FastAPI app with a spy on each side of it."""
    app.add_middleware(Spy, log=inner)
    app.add_middleware(hera_middleware.HeraEvents, **options)
    app.add_middleware(Spy, log=outer)
    return app
