"""Framework signals as facts, through the Django middleware and django.dispatch signals.

The project is ``tests/django_project`` with the URLconf ``tests/signals_django_urls.py``
(views sending allauth's real ``user_signed_up`` signal object and a project signal)
and a rule file written per test. Requests go through Django's own handlers: the test
``Client`` (WSGI), the ``WSGIHandler`` under a threaded wsgiref server, and the
``ASGIHandler`` (sync views run by asgiref in threads, async views in the loop).
"""

from __future__ import annotations

import asyncio
import gc
import socketserver
import threading
import wsgiref.simple_server
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import django_project
import httpx
import pytest
import signals_django_urls as urls
from _signals_common import without_ts
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client, override_settings

from hera_middleware import HeraEvents, HeraEventsWSGI, _stats
from hera_middleware.testing import capture_events

django_project.setup()

RULES = """\
signals:
  user_signed_up: allauth.account.signals.user_signed_up
  mfa_checked:
    signal: signals_django_urls.mfa_checked
    keep: [method, attempts]
rules:
  - id: social-completed
    event: social_login_completed
    match: GET /accounts/{provider}/login/callback/
    if: {response.status: 302}
    fields:
      provider: path.provider
      first_login: {if: {signal.user_signed_up: present}}
  - id: mfa-succeeded
    event: mfa_challenge_succeeded
    match: ["* /mfa/", "* /wait/", "* /send-and-wait/", "* /async-wait/", "* /async-send/"]
    fields:
      method: [signal.mfa_checked.method, {value: null}]
"""
MIDDLEWARE = ["hera_middleware.django.HeraEventsMiddleware"]


def completed(first_login: bool | None) -> dict[str, Any]:
    return {
        "type": "audit",
        "event": "social_login_completed",
        "provider": "fakeoidc",
        "first_login": first_login,
        "domain": "ciam",
    }


def mfa(method: str | None) -> dict[str, Any]:
    return {"type": "audit", "event": "mfa_challenge_succeeded", "method": method, "domain": "ciam"}


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    _stats._reset_for_tests()


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """The project with the signal URLconf and the rule file in HERA_RULES."""
    rules = tmp_path / "hera.yaml"
    rules.write_text(RULES, encoding="utf-8")
    with override_settings(
        ROOT_URLCONF="signals_django_urls", HERA_RULES=str(rules), MIDDLEWARE=MIDDLEWARE
    ):
        yield rules
    gc.collect()  # the handlers' middleware go, and their receivers with them


def test_allauth_user_signed_up_tells_a_first_login(project: Path) -> None:
    """The callback that sends user_signed_up gives first_login true, the one that does not,
    false; the user object and its email sent with the signal are kept nowhere."""
    client = Client()
    with capture_events() as events:
        client.get("/accounts/fakeoidc/login/callback/?new=1")
        client.get("/accounts/fakeoidc/login/callback/")
    assert without_ts(events) == [completed(True), completed(False)]
    assert "alice" not in repr(events)
    assert "4711" not in repr(events)


def test_kept_arguments_of_a_project_signal(project: Path) -> None:
    """`method` is kept; `user` is not named in keep and is never stored."""
    client = Client()
    with capture_events() as events:
        client.get("/mfa/")
    assert without_ts(events) == [mfa("recovery_code")]


def test_a_send_outside_a_request_is_ignored(project: Path) -> None:
    """Sent by the test itself, and before any request: nothing emitted, nothing counted."""
    urls.mfa_checked.send(sender=None, method="totp")
    client = Client()
    with capture_events() as events:
        client.get("/accounts/fakeoidc/login/callback/")
        urls.mfa_checked.send(sender=None, method="totp")
    assert without_ts(events) == [completed(False)]
    assert _stats.snapshot()["internal_errors"] == 0


class _ThreadingServer(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
    daemon_threads = True


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_threaded(app: Any) -> tuple[Any, threading.Thread]:
    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingServer, handler_class=_QuietHandler
    )
    runner = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    runner.start()
    return server, runner


def interleave(url: str) -> list[str]:
    """Two requests at once: /wait/ sees nothing, /send-and-wait/ sends while it waits."""
    urls.barrier = threading.Barrier(2)
    try:
        with ThreadPoolExecutor(2) as pool:
            waits = pool.submit(httpx.get, f"{url}/wait/", timeout=20)
            sends = pool.submit(httpx.get, f"{url}/send-and-wait/", timeout=20)
            return [waits.result().text, sends.result().text]
    finally:
        urls.barrier = None


@pytest.mark.parametrize("wrapped", [False, True], ids=["middleware", "HeraEventsWSGI"])
def test_threads_under_wsgi_never_see_each_others_signals(project: Path, wrapped: bool) -> None:
    """Django's WSGIHandler in a threaded server, with HeraEventsMiddleware or wrapped whole."""
    if wrapped:
        with override_settings(MIDDLEWARE=[]):
            app: Any = HeraEventsWSGI(WSGIHandler(), rules=str(project), output=lambda e: None)
    else:
        app = WSGIHandler()
    server, runner = serve_threaded(app)
    try:
        with capture_events() as events:
            texts = interleave(f"http://127.0.0.1:{server.server_port}")
            # HeraEventsWSGI runs the rules when the server closes the response, which
            # may come after the client has it: join the request threads first.
            server.shutdown()
            server.server_close()
    finally:
        server.shutdown()
        runner.join(timeout=10)
        server.server_close()
    assert texts == ["waited", "sent"]
    assert sorted(without_ts(events), key=lambda e: str(e["method"])) == [mfa(None), mfa("totp")]


async def asgi_get(app: Any, *paths: str) -> list[str]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        responses = await asyncio.gather(*(client.get(p, timeout=20) for p in paths))
    return [r.text for r in responses]


@pytest.mark.parametrize("wrapped", [False, True], ids=["middleware", "HeraEvents"])
def test_sync_views_under_asgi(project: Path, wrapped: bool) -> None:
    """ASGIHandler runs sync views in threads with the request's context copied: the signal
    is seen by the request that sent it, and not by one running at the same time."""
    if wrapped:
        with override_settings(MIDDLEWARE=[]):
            app: Any = HeraEvents(ASGIHandler(), rules=str(project), output=lambda e: None)
    else:
        app = ASGIHandler()
    urls.barrier = threading.Barrier(2)
    try:
        with capture_events() as events:
            texts = asyncio.run(
                asgi_get(
                    app,
                    "/wait/",
                    "/send-and-wait/",
                )
            )
            more = asyncio.run(asgi_get(app, "/accounts/fakeoidc/login/callback/?new=1"))
    finally:
        urls.barrier = None
    assert texts == ["waited", "sent"]
    assert more == [""]
    found = without_ts(events)
    assert sorted(found[:2], key=lambda e: str(e["method"])) == [mfa(None), mfa("totp")]
    assert found[2:] == [completed(True)]


def test_async_views_under_asgi(project: Path) -> None:
    """Two async views interleaved in one event loop: asend is seen only by its own request."""

    async def run() -> list[str]:
        urls.events.update(waiting=asyncio.Event(), sent=asyncio.Event())
        try:
            return await asgi_get(ASGIHandler(), "/async-wait/", "/async-send/")
        finally:
            urls.events.clear()

    with capture_events() as events:
        texts = asyncio.run(run())
    assert texts == ["waited", "sent"]
    assert sorted(without_ts(events), key=lambda e: str(e["method"])) == [
        mfa(None),
        mfa("webauthn"),
    ]
