"""One rule file, every framework, Django too: each recorded exchange of a real auth server
gives the same event lines through HeraEventsMiddleware in a Django project as through the
ASGI middleware (``test_every_framework``).

The project's URLconf is swapped for one catch-all view that reads the request body (as
the recorded servers did) and answers with the recorded response.
"""

from __future__ import annotations

import types
from typing import Any

import django_project
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import re_path
from test_every_framework import _environ, _run_wsgi, _stripped, _through_asgi
from test_real_servers import (
    RECORDS,
    Record,
    Replay,
    _request_body,
    recorded_traffic,  # noqa: F401  (autouse: signal facts unknown, as in replay)
)

from hera_middleware import load_rules
from hera_middleware.testing import capture_events

django_project.setup()


def _replaying_urlconf(record: Record) -> types.ModuleType:
    """A URLconf whose one view reads the body and answers as the recorded server did."""
    replay = Replay(record.data)

    def answer(request: HttpRequest) -> HttpResponse:
        request.body  # noqa: B018 - the recorded servers read the whole body
        response = HttpResponse(replay.body, status=replay.start["status"])
        for name, value in replay.start["headers"]:
            key, text = name.decode("latin-1"), value.decode("latin-1")
            if key.lower() == "set-cookie":
                response.cookies.load(text)
            elif key.lower() != "content-length":
                response.headers[key] = text
        return response

    module = types.ModuleType(f"hera_replay_urls_{record.id}")
    module.urlpatterns = [re_path(r"^", answer)]  # type: ignore[attr-defined]
    return module


def _through_django(record: Record, rules: Any) -> list[dict[str, Any]]:
    body = _request_body(record.data)
    with override_settings(
        ROOT_URLCONF=_replaying_urlconf(record),
        MIDDLEWARE=["hera_middleware.django.HeraEventsMiddleware"],
        HERA_RULES=rules,
    ):
        handler = WSGIHandler()
        with capture_events() as events:
            _run_wsgi(handler, _environ(record, body))
    return _stripped(events)


@pytest.mark.parametrize("record", RECORDS, ids=[r.id for r in RECORDS])
async def test_django_gives_the_same_events(record: Record) -> None:
    """HeraEventsMiddleware turns each recorded exchange into the ASGI middleware's events."""
    rules = load_rules(record.rules)
    asgi = await _through_asgi(record, rules)
    assert asgi in record.accepted()
    assert _through_django(record, rules) == asgi
