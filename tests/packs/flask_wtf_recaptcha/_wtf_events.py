"""Driving a Flask app through a reCAPTCHA form and reading exactly the events it emits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient

from hera_middleware.testing import capture_events

PACK_NAME = "flask-wtf-recaptcha"
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
Events = list[list[tuple[str, Any]]]


def stripped(captured: list[dict[str, object]]) -> Events:
    """The events without their envelope, as ordered items; the envelope is checked."""
    out = []
    for event in captured:
        keys = list(event)
        envelope = (keys[:2], keys[-2:], event["type"], event["domain"])
        assert envelope == (["type", "event"], ["domain", "ts"], "audit", "ciam"), event
        assert TS.fullmatch(str(event["ts"])), event
        out.append([(k, v) for k, v in event.items() if k not in ("type", "domain", "ts")])
    return out


def displayed(flow: str) -> list[tuple[str, Any]]:
    return [("event", "captcha_displayed"), ("flow", flow)]


def succeeded(flow: str) -> list[tuple[str, Any]]:
    return [("event", "captcha_succeeded"), ("flow", flow)]


def failed(flow: str, reason: str) -> list[tuple[str, Any]]:
    return [("event", "captcha_failed"), ("flow", flow), ("reason", reason)]


@dataclass
class Answer:
    """One exchange: the response's status, text and Location, and the events it gave."""

    status: int
    text: str
    location: str | None
    events: Events


class Browser:
    """A Flask test client that captures the events of each request on its own."""

    def __init__(self, client: FlaskClient, headers: dict[str, str] | None = None) -> None:
        self.client = client
        self.headers = headers or {}

    def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        with capture_events() as captured:
            response = self.client.open(path, method=method, headers=self.headers, **kwargs)
            text = response.get_data(as_text=True)  # the events are out once it is read
            response.close()
        return Answer(
            response.status_code, text, response.headers.get("location"), stripped(captured)
        )

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def submit(self, path: str, token: str | None, csrf: str, **fields: str) -> Answer:
        """Post the form at ``path``; ``token`` is g-recaptcha-response (None: not sent)."""
        data = {"csrf_token": csrf, **fields}
        if token is not None:
            data["g-recaptcha-response"] = token
        return self.request("POST", path, data=data)
