"""``preset:authlib`` against a real Authlib authorization server: the Flask example's.

The example (``examples/flask_app``: Authlib's ``AuthorizationServer``, the
authorization code grant and ``CodeChallenge``) runs in-process with the Flask test
client, wired to the pack alone, so every event comes from it, in two ways: the Flask
extension configured by ``HERA_RULES = "preset:authlib"``, and the pure WSGI middleware
around ``app.wsgi_app``. Each request's events are captured and compared with the
expected ones: names, fields, key order, domain and ``ts`` format, none extra.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import re
import secrets
import sys
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from hera_middleware import HeraEventsWSGI
from hera_middleware.testing import capture_events

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flask_app"
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

SPA, SPA_URI = "flask-spa", "https://spa.example.test/callback"
BACKEND, BACKEND_URI, BACKEND_SECRET = (
    "flask-backend",
    "https://backend.example.test/oauth/callback",
    "backend-s3cret-2026",
)
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"

Event = tuple[str, dict[str, Any]]

#: The pack under test, as the coverage matrix (docs/coverage.md) names it.
PACK = "authlib"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flask_example_app", EXAMPLE / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


ex = _load_example()


def _discard(event: dict[str, object]) -> None:
    """An output that drops every line: the tests read events through capture_events."""


WIRINGS = ("flask-extension", "wsgi-middleware")


def make_app(wiring: str = WIRINGS[0], **settings: Any) -> Flask:
    """The example with fresh state, wired to the Authlib pack alone."""
    if wiring == "flask-extension":
        config = {"HERA_RULES": "preset:authlib", "HERA_OUTPUT": _discard, "TESTING": True}
        return ex.create_app(ex.Settings(**settings), config=config)
    # The example's own extension gets no rules; the WSGI middleware gets the pack.
    config = {"HERA_RULES": {"rules": []}, "HERA_OUTPUT": _discard, "TESTING": True}
    app = ex.create_app(ex.Settings(**settings), config=config)
    app.wsgi_app = HeraEventsWSGI(app.wsgi_app, rules="preset:authlib", output=_discard)  # type: ignore[method-assign]
    return app


@pytest.fixture(autouse=True)
def _no_hera_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # HERA_* variables outrank the app config; none may leak in from the caller.
    for name in [n for n in os.environ if n.startswith("HERA_")]:
        monkeypatch.delenv(name)


@pytest.fixture(params=WIRINGS)
def wiring(request: pytest.FixtureRequest) -> str:
    """How the pack is wired into the example."""
    return str(request.param)


@pytest.fixture
def app(wiring: str) -> Flask:
    return make_app(wiring)


class Browser:
    """A Flask test client whose every request reports the events it produced."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def send(self, method: str, path: str, **kwargs: Any) -> tuple[TestResponse, list[Event]]:
        """One request, read to its end and closed; return it with its events."""
        with capture_events() as captured:
            response = self.client.open(path, method=method, buffered=True, **kwargs)
        return response, [_strip(event) for event in captured]

    def quiet(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        """A request that must emit nothing."""
        response, events = self.send(method, path, **kwargs)
        assert events == [], f"{method} {path} emitted {events}"
        return response

    def sign_in(self) -> None:
        """A session through the example's social login (no rule of the pack there)."""
        hint = secrets.token_hex(6)
        to_provider = self.quiet("GET", f"/login/google?login_hint={hint}")
        back = self.quiet("GET", to_provider.headers["Location"])
        assert self.quiet("GET", back.headers["Location"]).status_code == 302


def _strip(event: dict[str, object]) -> Event:
    """Check the envelope, in order, and return the event's name and fields."""
    keys = list(event)
    assert keys[:2] == ["type", "event"], keys
    assert keys[-2:] == ["domain", "ts"], keys
    assert event["type"] == "audit"
    assert event["domain"] == "ciam"
    assert TS.fullmatch(str(event["ts"])), event["ts"]
    fields = {k: v for k, v in event.items() if k not in ("type", "event", "domain", "ts")}
    return str(event["event"]), fields


def assert_events(got: list[Event], *expected: Event) -> None:
    """Exactly these events, in this order, fields in catalog order."""
    as_items = [(name, list(fields.items())) for name, fields in got]
    assert as_items == [(name, list(fields.items())) for name, fields in expected]


@pytest.fixture
def anonymous(app: Flask) -> Browser:
    return Browser(app.test_client())


@pytest.fixture
def user(app: Flask) -> Browser:
    browser = Browser(app.test_client())
    browser.sign_in()
    return browser


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def params(client_id: str = SPA, redirect_uri: str = SPA_URI, **extra: Any) -> dict[str, Any]:
    """An authorization request."""
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "profile",
        "state": secrets.token_urlsafe(8),
        **extra,
    }


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{client_id}:{secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def _consent_answer(page: TestResponse) -> dict[str, str]:
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    return {"csrf_token": csrf[1], "confirm": "yes"}


def consent_form(browser: Browser, query: dict[str, Any]) -> dict[str, str]:
    """GET the consent page (no event) and return the form that answers it."""
    page = browser.quiet("GET", "/oauth/authorize", query_string=query)
    assert page.status_code == 200
    return _consent_answer(page)


def code_of(response: TestResponse, redirect_uri: str) -> str:
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(redirect_uri + "?")
    return parse_qs(urlsplit(location).query)["code"][0]


def issue_code(
    browser: Browser, client_id: str, redirect_uri: str, pkce: dict[str, str] | None
) -> str:
    """Get a code (through the consent page the first time); pkce_authorize exactly
    when a challenge was sent."""
    query = params(client_id, redirect_uri, **(pkce or {}))
    response, events = browser.send("GET", "/oauth/authorize", query_string=query)
    if response.status_code == 200:
        assert_events(events)  # the consent page
        form = _consent_answer(response)
        response, events = browser.send("POST", "/oauth/authorize", query_string=query, data=form)
    if pkce and "code_challenge" in pkce:
        assert_events(events, ("pkce_authorize", {"client_id": client_id}))
    else:
        assert_events(events)
    return code_of(response, redirect_uri)


def token(
    browser: Browser, form: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[TestResponse, list[Event]]:
    data = {"grant_type": "authorization_code", **form}
    return browser.send("POST", "/oauth/token", data=data, headers=headers or {})


S256 = {"code_challenge": CHALLENGE, "code_challenge_method": "S256"}


# --- Authorization endpoint ---------------------------------------------------------------


@pytest.mark.produces(PACK, "pkce_authorize", via="302 Location with code + code_challenge sent")
def test_authorize_by_consent_then_auto_approved(user: Browser) -> None:
    """The consent page is silent; its approval (POST, the challenge in the query) is
    pkce_authorize; once consented, the GET itself hands out the code and emits it."""
    issue_code(user, SPA, SPA_URI, S256)
    response, events = user.send("GET", "/oauth/authorize", query_string=params(**S256))
    code_of(response, SPA_URI)
    assert_events(events, ("pkce_authorize", {"client_id": SPA}))


@pytest.mark.parametrize(
    "pkce",
    [
        pytest.param({"code_challenge": VERIFIER, "code_challenge_method": "plain"}, id="plain"),
        pytest.param({"code_challenge": VERIFIER}, id="default-method"),
    ],
)
def test_authorize_other_methods(user: Browser, pkce: dict[str, str]) -> None:
    """A plain challenge, explicit or by default, is a PKCE authorize too."""
    issue_code(user, SPA, SPA_URI, pkce)


AUTHORIZE_FAILURES = [
    pytest.param({"code_challenge_method": "S256"}, "challenge_missing", id="method-only"),
    pytest.param(
        {"code_challenge": "", "code_challenge_method": "plain"},
        "challenge_missing",
        id="empty-challenge",
    ),
    pytest.param(
        {"code_challenge": "too-short", "code_challenge_method": "S256"},
        "challenge_invalid",
        id="short",
    ),
    pytest.param(
        {"code_challenge": "a" * 129, "code_challenge_method": "plain"},
        "challenge_invalid",
        id="too-long",
    ),
    pytest.param(
        {"code_challenge": "a" * 42 + "+", "code_challenge_method": "plain"},
        "challenge_invalid",
        id="reserved-character",
    ),
    pytest.param(
        {"code_challenge": [CHALLENGE, CHALLENGE], "code_challenge_method": "S256"},
        "challenge_invalid",
        id="two-challenges",
    ),
    pytest.param(
        {"code_challenge": CHALLENGE, "code_challenge_method": "S512"},
        "challenge_method_unsupported",
        id="S512",
    ),
    pytest.param(
        {"code_challenge": CHALLENGE, "code_challenge_method": "s256"},
        "challenge_method_unsupported",
        id="lowercase-s256",
    ),
    pytest.param(
        {"code_challenge": CHALLENGE, "code_challenge_method": ["S256", "plain"]},
        "challenge_method_unsupported",
        id="two-methods",
    ),
]


@pytest.mark.produces(
    PACK, "pkce_failed", via="302 Location error=invalid_request + its error_description"
)
@pytest.mark.parametrize(("extra", "reason"), AUTHORIZE_FAILURES)
def test_authorize_pkce_failures(anonymous: Browser, extra: dict[str, Any], reason: str) -> None:
    """Each challenge Authlib refuses comes back as a 302 to the client with
    error=invalid_request and is one pkce_failed with its reason."""
    response, events = anonymous.send("GET", "/oauth/authorize", query_string=params(**extra))
    assert response.status_code == 302
    assert response.headers["Location"].startswith(SPA_URI + "?error=invalid_request&")
    assert_events(events, ("pkce_failed", {"reason": reason, "client_id": SPA}))


def test_authorize_failure_on_the_consent_post(user: Browser) -> None:
    """The consent POST is validated again; its failure is reported the same way, with
    client_id from the query string the form was posted to."""
    query = params(BACKEND, BACKEND_URI, code_challenge=CHALLENGE, code_challenge_method="S1")
    response, events = user.send(
        "POST", "/oauth/authorize", query_string=query, data={"confirm": "yes"}
    )
    assert "error=invalid_request" in response.headers["Location"]
    assert_events(
        events, ("pkce_failed", {"reason": "challenge_method_unsupported", "client_id": BACKEND})
    )


def test_authorize_without_challenge_is_silent(user: Browser) -> None:
    """A code handed out without a challenge is no PKCE authorize, even to a public
    client under CodeChallenge(required=True): Authlib enforces that at the token."""
    issue_code(user, SPA, SPA_URI, None)
    issue_code(user, BACKEND, BACKEND_URI, None)


def test_authorize_outcomes_without_events(anonymous: Browser, app: Flask) -> None:
    """Login redirects, consent pages, denials, unknown clients, unregistered
    redirect URIs and other authorize errors emit nothing."""
    login = anonymous.quiet("GET", "/oauth/authorize", query_string=params(**S256))
    assert login.headers["Location"].startswith("/login?next=")
    login = anonymous.quiet("POST", "/oauth/authorize", query_string=params(**S256))
    assert login.headers["Location"].startswith("/login?next=")
    for query in (
        params("nobody", **S256),
        {k: v for k, v in params(**S256).items() if k != "client_id"},
        params(SPA, "https://evil.example/cb", **S256),
    ):
        response = anonymous.quiet("GET", "/oauth/authorize", query_string=query)
        assert response.status_code == 400
    for extra, error in (
        ({"scope": "admin"}, "invalid_scope"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ):
        response = anonymous.quiet("GET", "/oauth/authorize", query_string=params(**S256, **extra))
        assert f"error={error}" in response.headers["Location"]

    user = Browser(app.test_client())
    user.sign_in()
    query = params(**S256)
    form = consent_form(user, query)
    denied = user.quiet(
        "POST", "/oauth/authorize", query_string=query, data=form | {"confirm": "no"}
    )
    assert "error=access_denied" in denied.headers["Location"]
    forged = user.quiet("POST", "/oauth/authorize", query_string=query, data={"confirm": "yes"})
    assert forged.status_code == 400  # no CSRF token


# --- Token endpoint -----------------------------------------------------------------------


@pytest.mark.produces(PACK, "pkce_token_exchange", via="200 + access_token + form.code_verifier")
@pytest.mark.parametrize(
    ("pkce", "verifier"),
    [
        pytest.param(S256, VERIFIER, id="S256"),
        pytest.param(
            {"code_challenge": VERIFIER, "code_challenge_method": "plain"}, VERIFIER, id="plain"
        ),
        pytest.param({"code_challenge": VERIFIER}, VERIFIER, id="default-method"),
    ],
)
def test_token_exchange_public_client(user: Browser, pkce: dict[str, str], verifier: str) -> None:
    """A public client's exchange with the right verifier, client_id from the form; the
    code then used again is silent."""
    form = {"code": issue_code(user, SPA, SPA_URI, pkce), "client_id": SPA}
    form |= {"redirect_uri": SPA_URI, "code_verifier": verifier}
    response, events = token(user, form)
    assert response.status_code == 200
    assert_events(events, ("pkce_token_exchange", {"client_id": SPA}))
    again, events = token(user, form)
    assert again.json["error_description"] == "Invalid 'code' in request."
    assert_events(events)


@pytest.mark.parametrize(
    ("auth", "form_client_id", "client_secret"),
    [
        pytest.param(True, False, False, id="basic"),
        pytest.param(True, True, False, id="basic-and-form-client-id"),
        pytest.param(False, True, True, id="client-secret-post"),
    ],
)
def test_token_exchange_confidential_client(
    user: Browser, auth: bool, form_client_id: bool, client_secret: bool
) -> None:
    """client_id comes from the form when it is there, else from the Basic user name."""
    form = {"code": issue_code(user, BACKEND, BACKEND_URI, S256), "redirect_uri": BACKEND_URI}
    form["code_verifier"] = VERIFIER
    if form_client_id:
        form["client_id"] = BACKEND
    if client_secret:
        form["client_secret"] = BACKEND_SECRET
    headers = basic(BACKEND, BACKEND_SECRET) if auth else None
    response, events = token(user, form, headers)
    assert response.status_code == 200
    assert_events(events, ("pkce_token_exchange", {"client_id": BACKEND}))


VERIFIER_FAILURES = [
    pytest.param({"code_verifier": "x" * 43}, "verifier_mismatch", id="wrong"),
    pytest.param({"code_verifier": CHALLENGE}, "verifier_mismatch", id="challenge-as-verifier"),
    pytest.param({"code_verifier": "short"}, "verifier_mismatch", id="too-short"),
    pytest.param({"code_verifier": "v" * 42 + "!"}, "verifier_mismatch", id="bad-character"),
    pytest.param({}, "verifier_missing", id="absent"),
    pytest.param({"code_verifier": ""}, "verifier_missing", id="empty"),
]


@pytest.mark.produces(
    PACK, "pkce_failed", via="400 invalid_grant / invalid_request + error_description"
)
@pytest.mark.parametrize(("sent", "reason"), VERIFIER_FAILURES)
def test_token_verifier_failures_public(user: Browser, sent: dict[str, str], reason: str) -> None:
    """A wrong or malformed verifier is verifier_mismatch, an absent or empty one
    verifier_missing; Authlib keeps the code, and the right verifier then succeeds."""
    form = {"code": issue_code(user, SPA, SPA_URI, S256), "client_id": SPA}
    form["redirect_uri"] = SPA_URI
    response, events = token(user, {**form, **sent})
    assert response.status_code == 400
    assert_events(events, ("pkce_failed", {"reason": reason, "client_id": SPA}))
    response, events = token(user, {**form, "code_verifier": VERIFIER})
    assert response.status_code == 200
    assert_events(events, ("pkce_token_exchange", {"client_id": SPA}))


@pytest.mark.parametrize(("sent", "reason"), VERIFIER_FAILURES)
def test_token_verifier_failures_basic_auth(
    user: Browser, sent: dict[str, str], reason: str
) -> None:
    """The same failures for a confidential client name it by its Basic user name."""
    form = {"code": issue_code(user, BACKEND, BACKEND_URI, S256), "redirect_uri": BACKEND_URI}
    response, events = token(user, {**form, **sent}, basic(BACKEND, BACKEND_SECRET))
    assert response.status_code == 400
    assert_events(events, ("pkce_failed", {"reason": reason, "client_id": BACKEND}))


@pytest.mark.produces(
    PACK,
    "pkce_failed.reason=challenge_missing",
    via="token: verifier for a code issued without a challenge",
)
def test_challenge_missing_when_required(user: Browser) -> None:
    """A public client that sent no challenge, under CodeChallenge(required=True):
    the token request without a verifier is refused as "Missing 'code_verifier'"
    (verifier_missing: HTTP cannot tell it from a lost verifier), one with a verifier
    as a challenge missing at the authorize."""
    form = {"code": issue_code(user, SPA, SPA_URI, None), "client_id": SPA}
    form["redirect_uri"] = SPA_URI
    response, events = token(user, form)
    assert response.json["error_description"] == "Missing 'code_verifier'"
    assert_events(events, ("pkce_failed", {"reason": "verifier_missing", "client_id": SPA}))
    response, events = token(user, {**form, "code_verifier": VERIFIER})
    assert response.json["error_description"].startswith("The authorization request had no")
    assert_events(events, ("pkce_failed", {"reason": "challenge_missing", "client_id": SPA}))


def test_challenge_not_required(wiring: str) -> None:
    """With CodeChallenge(required=False) a public client may skip PKCE: its plain
    exchange succeeds and is no PKCE event."""
    browser = Browser(make_app(wiring, pkce_required=False).test_client())
    browser.sign_in()
    form = {"code": issue_code(browser, SPA, SPA_URI, None), "client_id": SPA}
    form["redirect_uri"] = SPA_URI
    response, events = token(browser, form)
    assert response.status_code == 200
    assert_events(events)


def test_verifier_without_challenge_confidential(user: Browser) -> None:
    """A confidential client's verifier for a code issued without a challenge is
    challenge_missing; its exchange without PKCE at all is silent."""
    code = issue_code(user, BACKEND, BACKEND_URI, None)
    form = {"code": code, "redirect_uri": BACKEND_URI, "code_verifier": VERIFIER}
    response, events = token(user, form, basic(BACKEND, BACKEND_SECRET))
    assert response.status_code == 400
    assert_events(events, ("pkce_failed", {"reason": "challenge_missing", "client_id": BACKEND}))
    form = {"code": issue_code(user, BACKEND, BACKEND_URI, None), "redirect_uri": BACKEND_URI}
    response, events = token(user, form, basic(BACKEND, BACKEND_SECRET))
    assert response.status_code == 200
    assert_events(events)


def test_token_outcomes_without_events(user: Browser) -> None:
    """Unknown clients, failed client authentication, unknown or foreign codes, a
    redirect_uri mismatch and other grant types emit nothing, verifier or not."""
    code = issue_code(user, BACKEND, BACKEND_URI, S256)
    form = {"code": code, "redirect_uri": BACKEND_URI, "code_verifier": VERIFIER}
    cases: list[tuple[dict[str, str], dict[str, str] | None, int]] = [
        ({**form, "client_id": "nobody"}, None, 400),
        (form, basic("nobody", "x"), 401),
        (form, basic(BACKEND, "wrong secret"), 401),
        ({**form, "client_id": BACKEND}, None, 401),  # no secret
        ({**form, "client_id": SPA}, None, 400),  # another client's code
        ({**form, "code": "unknown"}, basic(BACKEND, BACKEND_SECRET), 400),
        ({**form, "redirect_uri": SPA_URI}, basic(BACKEND, BACKEND_SECRET), 400),
    ]
    for data, headers, status in cases:
        response, events = token(user, data, headers)
        assert response.status_code == status, (data, response.json)
        assert_events(events)
    refresh = {"grant_type": "refresh_token", "refresh_token": "x", "client_id": SPA}
    response = user.quiet("POST", "/oauth/token", data=refresh)
    assert response.json["error"] == "unsupported_grant_type"
    # The code survived all of the above.
    response, events = token(user, form, basic(BACKEND, BACKEND_SECRET))
    assert response.status_code == 200
    assert_events(events, ("pkce_token_exchange", {"client_id": BACKEND}))


def test_only_the_oauth_endpoints(app: Flask) -> None:
    """The pack has no rule for anything but the two endpoints: a whole sign-in with
    captcha and MFA emits nothing through it."""
    browser = Browser(app.test_client())
    page = browser.quiet("GET", "/login")
    token_ = re.search(r'name="captcha-token" value="([^"]+)"', page.text)
    question = re.search(r'id="captcha-question">(\d+) \+ (\d+)<', page.text)
    assert token_ is not None
    assert question is not None
    form = {"username": "demo", "password": ex.DEMO_PASSWORD, "captcha-token": token_[1]}
    form["captcha-answer"] = str(int(question[1]) + int(question[2]))
    assert browser.quiet("POST", "/login", data=form).headers["Location"] == "/mfa/totp"
    assert browser.quiet("GET", "/mfa/totp").status_code == 200
    browser.quiet("POST", "/register", data={"username": "x1y2z3", "password": "password123"})
