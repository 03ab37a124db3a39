"""Bounded under hostile input: memory, malformed bodies, catastrophic regexes.

- Peak RSS (``VmHWM``) of a fresh subprocess stays near its start while a large request
  body and a large streamed response pass through rules that inspect both bodies, under
  HeraEvents and HeraEventsWSGI: the copies stop at the caps. CI size 64 MiB each way;
  ``HERA_STRESS=1`` (``make stress`` / ``python3 tasks.py stress``) runs 1 GiB.
- Malformed input on inspected endpoints (invalid UTF-8, invalid JSON, JSON nested
  10,000 deep, 100,000 query parameters, odd Content-Type parameters, truncated
  multipart, a client that disconnects mid-body): no exception escapes, the app sees
  and sends exactly what it does bare, no internal error is counted, and the event is
  emitted from what could be read.
- User regexes with nested quantifiers on 100 KB attacker-controlled values finish
  (RE2), through the whole middleware.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import hera_middleware
from hera_middleware import HeraEvents, HeraEventsWSGI, load_rules
from hera_middleware.testing import capture_events

pytest.register_assert_rewrite("_asgi_harness", "_wsgi_harness")

from _asgi_harness import BOUND, Server  # noqa: E402
from _wsgi_harness import Server as WSGIServer  # noqa: E402
from _wsgi_harness import Stream, wsgi_environ  # noqa: E402

STRESS = os.environ.get("HERA_STRESS") == "1"
MiB = 1 << 20
SIZE = 1024 * MiB if STRESS else 64 * MiB
#: Peak RSS growth allowed while SIZE bytes pass each way (caps are 64 KiB).
RSS_SLACK = 24 * MiB

RULES = """
events:
  form_seen: [grant_type]
  json_seen: [kind]
  body_seen: []
  exchange_done: [status]
rules:
  - event: form_seen
    match: ["* /", "* /{any:path}"]
    if: {form.grant_type: present}
    fields: {grant_type: form.grant_type}
  - event: json_seen
    match: ["* /", "* /{any:path}"]
    if: {json.kind: present}
    fields: {kind: json.kind}
  - event: body_seen
    match: ["* /", "* /{any:path}"]
    if: {response.body: {contains: needle}}
  - event: exchange_done
    match: ["* /", "* /{any:path}"]
    fields: {status: response.status}
"""

_OUT = Path(tempfile.mkdtemp(prefix="hera-bounded-")) / "events.jsonl"
OUTPUT = f"file:{_OUT}"

# ------------------------------------------------------------------ peak memory

_RSS_SCRIPT = r"""
import asyncio, json, sys
from hera_middleware import HeraEvents, HeraEventsWSGI, load_rules
from hera_middleware.testing import capture_events

SIZE, KIND, RULES, OUTPUT = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
CHUNK = 64 * 1024
BLOCK = b"grant_type=x&" + b"a" * (CHUNK - 13)
OUT_BLOCK = b"needle " + b"z" * (CHUNK - 7)
N = SIZE // CHUNK


def fresh(block):
    # A new object per message: a middleware keeping references would grow RSS.
    return block[:-1] + block[-1:]


def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


rules = load_rules(text=RULES)
seen = {"in": 0, "out": 0}


async def asgi_app(scope, receive, send):
    while True:
        m = await receive()
        seen["in"] += len(m.get("body", b""))
        if not m.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    for _ in range(N):
        await send({"type": "http.response.body", "body": fresh(OUT_BLOCK), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def run_asgi(app):
    left = N

    async def receive():
        nonlocal left
        if left:
            left -= 1
            return {"type": "http.request", "body": fresh(BLOCK), "more_body": left > 0}
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(m):
        seen["out"] += len(m.get("body", b""))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/upload", "raw_path": b"/upload",
             "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/x-www-form-urlencoded"),
                         (b"content-length", str(N * CHUNK).encode())]}
    await app(scope, receive, send)


class Input:
    def __init__(self):
        self.left = N

    def read(self, n=-1):
        if not self.left:
            return b""
        self.left -= 1
        return fresh(BLOCK)


def wsgi_app(environ, start_response):
    stream = environ["wsgi.input"]
    while True:
        data = stream.read(CHUNK)
        if not data:
            break
        seen["in"] += len(data)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (fresh(OUT_BLOCK) for _ in range(N))


def run_wsgi(app):
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/upload", "SCRIPT_NAME": "",
               "QUERY_STRING": "", "CONTENT_TYPE": "application/x-www-form-urlencoded",
               "CONTENT_LENGTH": str(N * CHUNK), "SERVER_NAME": "x", "SERVER_PORT": "80",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.input": Input(), "wsgi.url_scheme": "http",
               "wsgi.version": (1, 0), "wsgi.errors": sys.stderr, "wsgi.multithread": False,
               "wsgi.multiprocess": False, "wsgi.run_once": False}
    result = app(environ, lambda status, headers, exc_info=None: None)
    for chunk in result:
        seen["out"] += len(chunk)
    result.close()


# Warm up every code path on a tiny exchange first, so imports do not count.
import hera_middleware
with capture_events() as events:
    if KIND == "asgi":
        app = HeraEvents(asgi_app, rules=rules, output=OUTPUT)
        saved, N = N, 2
        asyncio.run(run_asgi(app))
        N = saved
        before = hwm()
        asyncio.run(run_asgi(app))
    else:
        app = HeraEventsWSGI(wsgi_app, rules=rules, output=OUTPUT)
        saved, N = N, 2
        run_wsgi(app)
        N = saved
        before = hwm()
        run_wsgi(app)
    after = hwm()
hera_middleware.flush(5)
print(json.dumps({"before": before, "after": after, "seen": seen,
                  "events": [e["event"] for e in events]}))
"""


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
def test_peak_memory_stays_bounded_with_large_bodies(kind: str, tmp_path: Path) -> None:
    script = tmp_path / "rss.py"
    script.write_text(_RSS_SCRIPT)
    out = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [sys.executable, str(script), str(SIZE), kind, RULES, f"file:{out}"],
        capture_output=True,
        text=True,
        timeout=600 if STRESS else 120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    n = SIZE // (64 * 1024)
    assert result["seen"]["in"] == 2 * 64 * 1024 + n * 64 * 1024
    assert result["seen"]["out"] == 2 * 64 * 1024 + n * 64 * 1024
    growth = result["after"] - result["before"]
    assert growth < RSS_SLACK, f"peak RSS grew by {growth / MiB:.1f} MiB for {SIZE // MiB} MiB"
    # The rules did inspect both bodies (up to the caps): both events of each exchange.
    assert result["events"].count("form_seen") == 2, result["events"]
    assert result["events"].count("body_seen") == 2, result["events"]
    assert result["events"].count("exchange_done") == 2, result["events"]


# ---------------------------------------------------------------- malformed input

_NESTED_LIST = b"[" * 10_000 + b"]" * 10_000
_NESTED_OBJ = b'{"kind":"deep","x":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}"
_MANY_QUERY = b"&".join(b"p%d=%d" % (i, i) for i in range(100_000))
_FORM = "application/x-www-form-urlencoded"

#: (id, content type, body, query)
MALFORMED: list[tuple[str, str | None, bytes, bytes]] = [
    ("invalid-utf8-form", _FORM, b"grant_type=\xff\xfe&client_id=\xc3(", b""),
    ("invalid-utf8-json", "application/json", b'{"kind":"\xff\xfe"}', b""),
    ("invalid-json", "application/json", b'{"kind": "x", ', b""),
    ("json-not-object", "application/json", b'"just a string"', b""),
    ("json-nested-list-10000", "application/json", _NESTED_LIST, b""),
    ("json-nested-object-10000", "application/json", _NESTED_OBJ, b""),
    ("query-100000-params", None, b"", _MANY_QUERY),
    ("form-100000-params", _FORM, _MANY_QUERY, b""),
    ("odd-ctype-params", _FORM + '; charset="utf-8"; ;;=;boundary', b"grant_type=a", b""),
    ("unknown-charset", "application/json; charset=x-unknown-42", b'{"kind":"k"}', b""),
    ("ctype-garbage", ";;;\x7f/\x01", b"grant_type=a", b""),
    ("multipart-no-boundary", "multipart/form-data", b"--x\r\n\r\n", b""),
    (
        "multipart-truncated",
        "multipart/form-data; boundary=zz",
        b'--zz\r\nContent-Disposition: form-data; name="grant_type"\r\n\r\nauthoriz',
        b"",
    ),
    (
        "multipart-bad-headers",
        "multipart/form-data; boundary=zz",
        b"--zz\r\nContent-Disposition\r\n\r\nx\r\n--zz--",
        b"",
    ),
    ("binary-garbage", "application/octet-stream", bytes(range(256)) * 64, b"a=%ff%fe&%zz"),
]


def _asgi_app(record: list[Any]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        data = b""
        while True:
            message = await receive()
            record.append(dict(message))
            data += message.get("body", b"")
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        await send(
            {
                "type": "http.response.start",
                "status": 400,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"error":"needle","n":%d}' % len(data)})

    return app


def _asgi_run(ctype: str | None, body: bytes, query: bytes, wrapped: bool) -> tuple[Any, ...]:
    record: list[Any] = []
    app = _asgi_app(record)
    if wrapped:
        app = HeraEvents(app, rules=load_rules(text=RULES), output=OUTPUT)
    headers = [(b"content-length", str(len(body)).encode())]
    if ctype is not None:
        headers.append((b"content-type", ctype.encode("latin-1")))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/oauth/token",
        "raw_path": b"/oauth/token",
        "query_string": query,
        "root_path": "",
        "headers": headers,
    }
    step = max(1, len(body) // 3)
    parts = [body[i : i + step] for i in range(0, len(body), step)] or [b""]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]
    server = Server(messages)
    asyncio.run(server.run(app, scope))
    return record, server.log.sent_copies


def _wsgi_run(ctype: str | None, body: bytes, query: bytes, wrapped: bool) -> tuple[Any, ...]:
    seen: list[bytes] = []

    def app(environ: Any, start_response: Any) -> Any:
        seen.append(environ["wsgi.input"].read())
        start_response("400 Bad Request", [("Content-Type", "application/json")])
        return [b'{"error":"needle","n":%d}' % len(seen[0])]

    target: Any = app
    if wrapped:
        target = HeraEventsWSGI(app, rules=load_rules(text=RULES), output=OUTPUT)
    environ = wsgi_environ(
        "POST",
        "/oauth/token",
        body=body,
        content_type=ctype,
        query=query.decode("latin-1"),
        stream=Stream(body),
    )
    server = WSGIServer().run(target, environ)
    return seen, server.wire()


@pytest.mark.parametrize("runner", [_asgi_run, _wsgi_run], ids=["asgi", "wsgi"])
@pytest.mark.parametrize(
    ("ctype", "body", "query"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_input_on_inspected_endpoint(
    runner: Any, ctype: str | None, body: bytes, query: bytes
) -> None:
    errors = hera_middleware.stats()["internal_errors"]
    bare = runner(ctype, body, query, wrapped=False)
    with capture_events() as events:
        wrapped = runner(ctype, body, query, wrapped=True)
    assert wrapped == bare
    assert hera_middleware.stats()["internal_errors"] == errors
    # The event is still written, from what could be read: status and response body.
    names = [e["event"] for e in events]
    assert "exchange_done" in names, names
    assert "body_seen" in names, names
    done = next(e for e in events if e["event"] == "exchange_done")
    assert done["status"] == 400


def test_client_disconnect_mid_body_asgi() -> None:
    """The client goes away after the first chunk: the app sees it, nothing else raises."""
    record: list[Any] = []
    errors = hera_middleware.stats()["internal_errors"]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            record.append(message)
            if message["type"] == "http.disconnect":
                return  # nothing to answer: the client is gone
            if not message.get("more_body"):
                break

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/oauth/token",
        "raw_path": b"/oauth/token",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", _FORM.encode()), (b"content-length", b"1000")],
    }
    server = Server(
        [{"type": "http.request", "body": b"grant_type=authorization_code&cl", "more_body": True}],
        disconnect="at_once",
    )
    wrapped = HeraEvents(app, rules=load_rules(text=RULES), output=OUTPUT)
    with capture_events() as events:
        asyncio.run(server.run(wrapped, scope))
    assert [m["type"] for m in record] == ["http.request", "http.disconnect"]
    assert record == server.log.received
    assert server.log.sent == []
    assert hera_middleware.stats()["internal_errors"] == errors
    assert all(e["event"] != "form_seen" for e in events)  # an incomplete body is unknown


def test_client_disconnect_mid_body_wsgi() -> None:
    """WSGI: the server's stream ends early (client gone); the app's read result is kept."""

    class Gone(Stream):
        def read(self, *args: Any) -> bytes:
            data = super().read(*args)
            if not data:
                raise OSError("client disconnected")
            return data

    errors = hera_middleware.stats()["internal_errors"]
    caught: list[BaseException] = []

    def app(environ: Any, start_response: Any) -> Any:
        stream = environ["wsgi.input"]
        try:
            while stream.read(8):
                pass
        except OSError as exc:
            caught.append(exc)
        start_response("400 Bad Request", [("Content-Type", "text/plain")])
        return [b"needle"]

    environ = wsgi_environ(
        "POST",
        "/oauth/token",
        body=b"grant_type=authorization_code&cl",
        content_type=_FORM,
        content_length="1000",
        stream=Gone(b"grant_type=authorization_code&cl"),
    )
    with capture_events() as events:
        server = WSGIServer().run(
            HeraEventsWSGI(app, rules=load_rules(text=RULES), output=OUTPUT), environ
        )
    assert len(caught) == 1
    assert isinstance(caught[0], OSError)
    assert server.body() == b"needle"
    assert hera_middleware.stats()["internal_errors"] == errors
    names = [e["event"] for e in events]
    assert "exchange_done" in names
    assert "form_seen" not in names  # the body never completed: unknown, not guessed


# ------------------------------------------------------------ catastrophic regexes

CATASTROPHIC = ["^(a+)+$", "(a|aa)+$", "(a|a)*b", "^(a*)*$x", "(.*a){12}z", "(\\w+\\s?)+$!"]


def _finishes(fn: Any, seconds: float = 60.0) -> Any:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the regex did not finish: super-linear matching"
    return result[0]


@pytest.mark.parametrize("pattern", CATASTROPHIC)
def test_catastrophic_regexes_finish_through_the_middleware(pattern: str) -> None:
    rules = load_rules(
        text=textwrap.dedent(
            f"""
            max_response_body: 200000
            events: {{regex_hit: []}}
            rules:
              - event: regex_hit
                match: "* /{{any:path}}"
                if: {{response.body: {{regex: {json.dumps(pattern)}}}}}
              - event: regex_hit
                match: "* /{{any:path}}"
                if: {{query.q: {{regex: {json.dumps(pattern)}}}}}
            """
        )
    )
    hostile = b"a" * 100_000 + b"!"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": hostile})

    def run() -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "https",
            "path": "/search",
            "raw_path": b"/search",
            "query_string": b"q=" + hostile,
            "root_path": "",
            "headers": [],
        }
        server = Server([{"type": "http.request", "body": b""}])
        with capture_events() as events:
            asyncio.run(
                asyncio.wait_for(
                    HeraEvents(app, rules=rules, output=OUTPUT)(scope, server.receive, server.send),
                    60,
                )
            )

            def wsgi_app(environ: Any, start_response: Any) -> Any:
                start_response("200 OK", [])
                return [hostile]

            WSGIServer().run(
                HeraEventsWSGI(wsgi_app, rules=rules, output=OUTPUT),
                wsgi_environ("GET", "/search", query="q=" + hostile.decode()),
            )
        assert server.log.body() == hostile
        return len(events)

    assert _finishes(run) >= 0
    assert hera_middleware.flush(BOUND)
