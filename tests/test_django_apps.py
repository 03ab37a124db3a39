"""Django's whole WSGI and ASGI applications wrapped in HeraEventsWSGI / HeraEvents, and the
test project under real servers on 127.0.0.1.

The same requests go to ``HeraEventsWSGI(get_wsgi_application())`` (raw environs and
a wsgiref server), to ``HeraEvents(get_asgi_application())`` (httpx in process, and
uvicorn) and to the project with HeraEventsMiddleware under uvicorn and wsgiref.
Wrapped whole, Django is an opaque app: ``match:`` rules only, no ``route`` fact
unless HeraRouteMiddleware publishes it (ASGI), and a view's exception is just
Django's 500 page. Events are asserted exactly, ``ts`` by format.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import wsgiref.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from wsgiref.simple_server import WSGIRequestHandler, make_server

import django_project
import httpx
import pytest
from django.core.asgi import get_asgi_application
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from django_project.settings import HERE, discard

import hera_middleware
from hera_middleware import HeraEvents, HeraEventsWSGI, _diagnostics, _stats, load_rules
from hera_middleware.testing import capture_events

pytest.register_assert_rewrite("_asgi_harness")

from _asgi_harness import assert_events, assert_private, dumps, event  # noqa: E402

django_project.setup()

MATCH_RULES = str(HERE / "hera_match.yaml")
TESTS = Path(__file__).resolve().parent
SRC = Path(hera_middleware.__file__).resolve().parents[1]
FORM = "application/x-www-form-urlencoded"
TOKEN = urlencode(
    {
        "grant_type": "authorization_code",
        "client_id": "web",
        "code": "code-SECRET-0815",
        "code_verifier": "verifier-SECRET-abcdefghijklmnopqrstuvwxyz0123456789",
        "client_secret": "cs-SECRET-4711",
    }
)

#: (method, path, body, content type) of each request every transport sends, in order.
REQUESTS: list[tuple[str, str, str, str | None]] = [
    ("POST", "/oauth/token/", TOKEN, FORM),
    ("GET", "/accounts/github/login/callback/?new=1", "", None),
    ("GET", "/users/42/", "", None),
    ("POST", "/json/", '{"kind": "totp"}', "application/json"),
    ("POST", "/unread/", TOKEN, FORM),
    ("GET", "/stream/", "", None),
    ("GET", "/boom/", "", None),
]


def done(view: str | None, status: int = 200, raised: bool = False) -> dict[str, object]:
    """The ``exchange_done`` event both rule files write for every exchange."""
    return event("exchange_done", view=view, status=status, raised=raised)


def wrapped(*, body_read_ahead: bool) -> list[dict[str, object]]:
    """What a wrapper emits for REQUESTS (``hera_match.yaml``).

    The wrapper resolves each path with Django's URLconf for the route facts (with or
    without HeraRouteMiddleware); ``body_read_ahead``: the transport read the request
    body before the view (Django's ASGI handler does).
    """

    def name(view: str) -> str | None:
        return view

    return [
        event("pkce_token_exchange", client_id="web"),
        event("form_seen", client_id="web"),
        event("response_seen", result="ok"),
        done(name("oauth:token")),
        event("social_login_completed", provider="github", first_login=True),
        done(name("socialaccount_callback"), 302),
        event("user_seen", pk="42"),
        event("response_seen", result="ok"),
        done(name("user_detail")),
        event("json_seen", kind="totp"),
        event("response_seen", result="totp"),
        done(name("json")),
        *([event("form_seen", client_id="web")] if body_read_ahead else []),
        done(name("unread")),
        event("body_seen"),
        done(name("stream")),
        done(name("boom"), 500),  # Django's own 500 page: the wrapper sees no exception
    ]


#: What HeraEventsMiddleware emits for REQUESTS (the project's ``hera.yaml``).
MIDDLEWARE_EVENTS = [
    event("pkce_token_exchange", client_id="web"),
    event("form_seen", client_id="web"),
    event("response_seen", result="ok"),
    done("oauth:token"),
    event("social_login_completed", provider="github", first_login=True),
    event("form_absent"),
    done("socialaccount_callback", 302),
    event("user_seen", pk="42"),
    event("form_absent"),
    event("response_seen", result="ok"),
    done("user_detail"),
    event("form_absent"),
    event("json_seen", kind="totp"),
    event("response_seen", result="totp"),
    done("json"),
    done("unread"),
    event("form_absent"),
    event("body_seen"),
    done("stream"),
    event("form_absent"),
    done("boom", 500, raised=True),
]


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    _stats._reset_for_tests()
    _diagnostics._reset_for_tests()


def environ(method: str, url: str, body: str, content_type: str | None) -> dict[str, Any]:
    """A raw WSGI environ, as a server builds it."""
    path, _, query = url.partition("?")
    data = body.encode()
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(data),
        "CONTENT_LENGTH": str(len(data)) if data else "",
        "HTTP_COOKIE": "sid=sid-SECRET-cookie",
    }
    if content_type:
        env["CONTENT_TYPE"] = content_type
    wsgiref.util.setup_testing_defaults(env)
    return env


def drive_wsgi(app: Any) -> list[bytes]:
    """Send REQUESTS to a WSGI app as a server would (iterate, then close); return the bodies."""
    bodies = []
    for method, url, body, content_type in REQUESTS:
        result = app(environ(method, url, body, content_type), lambda status, headers, *a: None)
        try:
            bodies.append(b"".join(result))
        finally:
            result.close()
    return bodies


def drive_http(base: str) -> list[httpx.Response]:
    """Send REQUESTS over HTTP."""
    responses = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for method, url, body, content_type in REQUESTS:
            headers = {"content-type": content_type} if content_type else {}
            responses.append(client.request(method, url, content=body, headers=headers))
    return responses


def wait_for(events: list[Any], count: int) -> None:
    """Wait until ``count`` events arrived (the last one follows the last chunk)."""
    deadline = time.monotonic() + 5
    while len(events) < count and time.monotonic() < deadline:
        time.sleep(0.01)


# -- wrapped in process -------------------------------------------------------------------


def test_wrapped_wsgi_application() -> None:
    """HeraEventsWSGI around get_wsgi_application(): the body as far as the view read it."""
    with override_settings(MIDDLEWARE=[]):
        app = HeraEventsWSGI(get_wsgi_application(), rules=MATCH_RULES, output=discard)
    with capture_events() as events:
        bodies = drive_wsgi(app)
    assert bodies[0] == b'{"result": "ok", "token_type": "Bearer"}'
    assert bodies[5] == b"first chunk, the needle, last chunk"
    assert_events(events, wrapped(body_read_ahead=False))
    assert_private(dumps(events))


@pytest.mark.parametrize(
    "middleware",
    [
        pytest.param([], id="alone"),
        pytest.param(["hera_middleware.django.HeraRouteMiddleware"], id="route-middleware"),
    ],
)
async def test_wrapped_asgi_application(middleware: list[str]) -> None:
    """HeraEvents around get_asgi_application() has Django's route facts, with or without
    HeraRouteMiddleware."""
    with override_settings(MIDDLEWARE=middleware):
        app = HeraEvents(get_asgi_application(), rules=MATCH_RULES, output=discard)
    transport = httpx.ASGITransport(app=app)
    with capture_events() as events:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            for method, url, body, content_type in REQUESTS:
                headers = {"content-type": content_type} if content_type else {}
                await client.request(method, url, content=body, headers=headers)
    assert_events(events, wrapped(body_read_ahead=True))


async def test_wrapper_and_middleware_with_one_configuration_emit_once() -> None:
    """The middleware inside a wrapper with the same configuration stands down."""
    with override_settings(MIDDLEWARE=["hera_middleware.django.HeraEventsMiddleware"]):
        with override_settings(HERA_RULES=MATCH_RULES):
            app = HeraEvents(get_asgi_application(), rules=MATCH_RULES, output=discard)
        transport = httpx.ASGITransport(app=app)
        with capture_events() as events:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                await client.get("/users/7/")
    assert_events(
        events,
        [event("user_seen", pk="7"), event("response_seen", result="ok"), done("user_detail")],
    )


# -- real servers ------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def wsgiref_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with wsgiref on 127.0.0.1 in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.parametrize(
    ("wrap", "expected"),
    [
        pytest.param(True, wrapped(body_read_ahead=False), id="HeraEventsWSGI"),
        pytest.param(False, MIDDLEWARE_EVENTS, id="HeraEventsMiddleware"),
    ],
)
def test_under_wsgiref(wrap: bool, expected: list[dict[str, object]]) -> None:
    """Over HTTP through wsgiref: Django wrapped whole, or with the middleware inside."""
    middleware = [] if wrap else ["hera_middleware.django.HeraEventsMiddleware"]
    with override_settings(MIDDLEWARE=middleware):
        app: Any = get_wsgi_application()
    if wrap:
        app = HeraEventsWSGI(app, rules=MATCH_RULES, output=discard)
    with capture_events() as events, wsgiref_server(app) as base:
        responses = drive_http(base)
        wait_for(events, len(expected))
    assert [r.status_code for r in responses] == [200, 302, 200, 200, 200, 200, 500]
    assert responses[5].content == b"first chunk, the needle, last chunk"
    assert_events(events, expected)


def test_file_response_under_wsgiref() -> None:
    """A FileResponse through wsgiref's file wrapper arrives whole and is teed for body rules."""
    with override_settings(MIDDLEWARE=["hera_middleware.django.HeraEventsMiddleware"]):
        app = get_wsgi_application()
    with capture_events() as events, wsgiref_server(app) as base:
        response = httpx.get(f"{base}/file/", timeout=10)
        wait_for(events, 3)
    assert response.content == (HERE / "download.txt").read_bytes()
    assert_events(events, [event("form_absent"), event("body_seen"), done("file")])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERA_", "DJANGO_"))}
    return {
        **env,
        "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)]),
        "DJANGO_SETTINGS_MODULE": "django_project.settings",
        **extra,
    }


class Uvicorn:
    """A uvicorn subprocess; ``stdout`` and ``stderr`` are set once it stopped."""

    def __init__(self, proc: subprocess.Popen[bytes], base: str) -> None:
        self.proc = proc
        self.base = base
        self.stdout = self.stderr = b""


@contextmanager
def uvicorn(app: str, **env: str) -> Iterator[Uvicorn]:
    """Run ``app`` under uvicorn on 127.0.0.1 until the block ends, then SIGTERM it."""
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", "--lifespan", "off"]
    proc = subprocess.Popen(
        command, cwd=TESTS, env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    server = Uvicorn(proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            server.stdout, server.stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            server.stdout, server.stderr = proc.communicate()


def read_events(file: Path) -> list[dict[str, object]]:
    lines = file.read_bytes().splitlines(keepends=True) if file.exists() else []
    assert all(line.endswith(b"\n") for line in lines)
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize(
    ("app", "env", "expected"),
    [
        pytest.param("django_project.asgi:application", {}, MIDDLEWARE_EVENTS, id="middleware"),
        pytest.param(
            "django_project.asgi_wrapped:application",
            {"DJANGO_PROJECT_MIDDLEWARE": "0"},
            wrapped(body_read_ahead=True),
            id="wrapped",
        ),
        pytest.param(
            "django_project.asgi_wrapped:application",
            {"DJANGO_PROJECT_MIDDLEWARE": "route"},
            wrapped(body_read_ahead=True),
            id="wrapped-with-route-middleware",
        ),
    ],
)
def test_under_uvicorn(
    tmp_path: Path, app: str, env: dict[str, str], expected: list[dict[str, object]]
) -> None:
    """Over HTTP through uvicorn: the lines written are exactly the expected events."""
    out = tmp_path / "events.jsonl"
    extra = {"HERA_OUTPUT": f"file:{out}", "WRAP_RULES": MATCH_RULES, **env}
    with uvicorn(app, **extra) as server:
        responses = drive_http(server.base)
    assert [r.status_code for r in responses] == [200, 302, 200, 200, 200, 200, 500]
    assert server.proc.returncode in (0, -signal.SIGTERM), server.stderr.decode()
    assert server.stdout == b""
    assert b"Traceback" not in server.stderr
    assert_events(read_events(out), expected)


BAD_RULES = """\
rules:
  - event: pkce_authorise
    match: POST /oauth/token/
"""


@pytest.mark.parametrize(
    ("app", "env"),
    [
        pytest.param("django_project.asgi:application", {}, id="middleware"),
        pytest.param(
            "django_project.asgi_wrapped:application",
            {"DJANGO_PROJECT_MIDDLEWARE": "0"},
            id="wrapped",
        ),
    ],
)
def test_bad_rule_file_stops_uvicorn(tmp_path: Path, app: str, env: dict[str, str]) -> None:
    """A bad rule file stops uvicorn serving the Django project, printing the problem line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_RULES)
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1"]
    command += ["--port", str(_free_port())]
    proc = subprocess.run(
        command,
        cwd=TESTS,
        env=_env(HERA_RULES=str(bad), WRAP_RULES=str(bad), **env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0, proc.stderr
    line = f"{bad}:2:12: unknown-event: unknown event 'pkce_authorise'"
    # The traceback's last line: "<exception type>: <message>", the message one line a problem.
    lines = [
        text.partition(": ")[2] if "Error: " in text else text for text in proc.stderr.splitlines()
    ]
    assert f"{line} (hint: did you mean 'pkce_authorize'?)" in lines
    assert "Uvicorn running on" not in proc.stderr
    assert proc.stdout == ""


def test_route_rules_on_a_wrapped_django_application() -> None:
    """`route:` names Django views when Django's whole WSGI application is wrapped."""
    rules = load_rules(
        text=(
            "rules:\n  - event: pkce_token_exchange\n    route: oauth:token\n"
            "    fields: {client_id: form.client_id}\n"
        )
    )
    with override_settings(MIDDLEWARE=[]):
        app = HeraEventsWSGI(get_wsgi_application(), rules=rules, output=discard)
    with capture_events() as events:
        drive_wsgi(app)
    assert_events(events, [event("pkce_token_exchange", client_id="web")])
