"""Drive a Flask-Security-Too app wired to ``preset:flask-security-too`` and read its events.

Two wirings, as users have them: the Flask extension ``hera_middleware.flask.HeraEvents``
and the generic ``HeraEventsWSGI`` around ``app.wsgi_app``. Every request is read to its
end; its events are returned with the envelope checked (key order, domain, ``ts``).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from hera_middleware import HeraEventsWSGI
from hera_middleware.flask import HeraEvents
from hera_middleware.testing import capture_events

PACK = "flask-security-too"
PRESET = "preset:" + PACK
WIRINGS = ("flask-extension", "wsgi-middleware")
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
JSON = {"Accept": "application/json"}
#: WTForms 3.3 warns about FST's rescue-form choices (FST's code, not ours).
WTFORMS_CHOICES = "ignore:Passing SelectField choices as tuples:DeprecationWarning"

Event = tuple[str, dict[str, Any]]


def discard(event: dict[str, object]) -> None:
    """An output that drops every line: the tests read events through capture_events."""


def wire(app: Flask, wiring: str, rules: Any = PRESET) -> Flask:
    """Put the pack in front of ``app`` the way ``wiring`` says."""
    if wiring == "flask-extension":
        HeraEvents(app, rules=rules, output=discard)
    else:
        app.wsgi_app = HeraEventsWSGI(app.wsgi_app, rules=rules, output=discard)  # type: ignore[method-assign]
    return app


def strip(event: dict[str, object]) -> Event:
    """Check the envelope, in order, and return the event's name and fields."""
    keys = list(event)
    assert keys[:2] == ["type", "event"], keys
    assert keys[-2:] == ["domain", "ts"], keys
    assert event["type"] == "audit"
    assert event["domain"] == "ciam"
    assert TS.fullmatch(str(event["ts"])), event["ts"]
    fields = {k: v for k, v in event.items() if k not in ("type", "event", "domain", "ts")}
    return str(event["event"]), fields


def same(got: list[Event], *expected: Event) -> None:
    """Exactly these events, in this order, fields in catalog order."""
    as_items = [(name, list(fields.items())) for name, fields in got]
    assert as_items == [(name, list(fields.items())) for name, fields in expected]


class Browser:
    """A Flask test client whose every request reports the events it produced."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def send(self, method: str, path: str, **kwargs: Any) -> tuple[TestResponse, list[Event]]:
        """One request, read to its end and closed; return it with its events."""
        with capture_events() as captured:
            response = self.client.open(path, method=method, buffered=True, **kwargs)
        return response, [strip(event) for event in captured]

    def expect(self, method: str, path: str, *events: Event, **kwargs: Any) -> TestResponse:
        """A request that must emit exactly ``events``."""
        response, got = self.send(method, path, **kwargs)
        same(got, *events)
        return response

    def quiet(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        """A request that must emit nothing."""
        return self.expect(method, path, **kwargs)


def clean_environment(monkeypatch: object) -> None:
    """HERA_* variables outrank the app config; drop any the caller has set."""
    import os

    for name in [n for n in os.environ if n.startswith("HERA_")]:
        monkeypatch.delenv(name)  # type: ignore[attr-defined]
