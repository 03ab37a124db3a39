"""``preset:flask-wtf-recaptcha`` on a plain Flask app: FlaskForm + RecaptchaField, CSRF on.

Three forms of the app (``/sign-in``, ``/sign-up``, ``/forgot``) are pointed at the
pack's login, registration and password-reset flows through ``vars:``. Flask-WTF
verifies every token against a fake siteverify on 127.0.0.1 (its own
``RECAPTCHA_VERIFY_SERVER`` setting), which also tells whether Google was asked at all.
The app runs with ``hera_middleware.flask.HeraEvents`` in-process, and with
``HeraEventsWSGI`` under a wsgiref server for one flow; each request's events are
compared exactly, and none must come where none should.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import flask_wtf
import httpx
import pytest
from _wtf_app import (
    EMAIL,
    PACK,
    PASSWORD,
    FakeVerify,
    csrf_token,
    discard,
    plain_app,
    wsgiref_server,
)
from _wtf_events import PACK_NAME, Browser, displayed, failed, stripped, succeeded
from flask import Flask, render_template_string, request

from hera_middleware import HeraEventsWSGI
from hera_middleware.testing import capture_events

PATHS = {"login": "/sign-in", "registration": "/sign-up", "password_reset": "/forgot"}
RULES = {
    "extends": [PACK],
    "vars": {
        "recaptcha_login": "/sign-in",
        "recaptcha_registration": "/sign-up",
        "recaptcha_password_reset": "/forgot",
    },
}
MISSING = "The response parameter is missing."
INVALID = "The response parameter is invalid or malformed."
RIGHT = {"email": EMAIL, "password": PASSWORD}
WRONG = {"email": EMAIL, "password": "not-the-password"}
# Flask-WTF never closes siteverify's HTTP response (nor the HTTPError of a failed call).
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")
VERSION = tuple(int(p) for p in flask_wtf.__version__.split(".")[:2])


@pytest.fixture
def verify() -> Iterator[FakeVerify]:
    server = FakeVerify()
    yield server
    server.close()


def browser(verify: FakeVerify, **options: Any) -> Browser:
    return Browser(plain_app(verify.url, rules=RULES, **options).test_client())


def open_form(b: Browser, path: str, flow: str = "login") -> str:
    """GET the form (one captcha_displayed) and return its CSRF token."""
    page = b.get(path)
    assert page.status == 200
    assert page.events == [displayed(flow)]
    return csrf_token(page.text)


@pytest.mark.produces(PACK_NAME, "captcha_displayed", via="GET of a form showing the widget")
@pytest.mark.parametrize(("flow", "path"), list(PATHS.items()))
def test_each_configured_form_shows_its_captcha(verify: FakeVerify, flow: str, path: str) -> None:
    """A GET of each form named in `vars:` gives captcha_displayed with that form's flow."""
    b = browser(verify)
    assert open_form(b, path, flow)
    assert b.get("/").events == []
    assert verify.tokens == []


@pytest.mark.produces(PACK_NAME, "captcha_succeeded", via="token sent, the form redirected")
@pytest.mark.parametrize(("flow", "path"), list(PATHS.items()))
def test_accepted_captcha_and_form_succeed(verify: FakeVerify, flow: str, path: str) -> None:
    """Google accepts the token and the form goes through: captcha_succeeded, once."""
    b = browser(verify)
    csrf = open_form(b, path, flow)
    answer = b.submit(path, "ok-token-0001", csrf, **RIGHT)
    assert (answer.status, answer.location) == (302, "/")
    assert answer.events == [succeeded(flow)]
    assert verify.tokens == ["ok-token-0001"]


FAILURES = [
    pytest.param(None, "missing", MISSING, [], id="token-not-sent"),
    pytest.param("", "missing", MISSING, [], id="token-empty"),
    pytest.param("forged-token", "invalid", INVALID, ["forged-token"], id="invalid-input-response"),
    pytest.param("expired-token", "timeout", MISSING, ["expired-token"], id="timeout-or-duplicate"),
    pytest.param("odd-token", "timeout", MISSING, ["odd-token"], id="bad-request"),
]


@pytest.mark.produces(PACK_NAME, "captcha_failed", via="token sent or not; the field's error")
@pytest.mark.produces(PACK_NAME, "captcha_failed.reason", via="token absent/empty, error message")
@pytest.mark.parametrize(("token", "reason", "message", "asked"), FAILURES)
@pytest.mark.parametrize(("flow", "path"), list(PATHS.items()))
def test_refused_captcha_fails_with_its_reason(
    verify: FakeVerify,
    flow: str,
    path: str,
    token: str | None,
    reason: str,
    message: str,
    asked: list[str],
) -> None:
    """No token is `missing` (Google not asked); Google's refusals are `invalid` or `timeout`."""
    b = browser(verify)
    csrf = open_form(b, path, flow)
    answer = b.submit(path, token, csrf, **RIGHT)
    assert answer.status == 200
    assert message in answer.text
    assert answer.events == [failed(flow, reason)]
    assert verify.tokens == asked


@pytest.mark.produces(
    PACK_NAME, "captcha_succeeded", via="token sent, form re-rendered without a captcha error"
)
def test_wrong_password_with_a_valid_captcha_is_a_captcha_success(verify: FakeVerify) -> None:
    """Flask-WTF verified the token before the view refused the password: captcha_succeeded."""
    b = browser(verify)
    csrf = open_form(b, "/sign-in")
    answer = b.submit("/sign-in", "ok-token-0002", csrf, **WRONG)
    assert answer.status == 200
    assert "Wrong email or password." in answer.text
    assert answer.events == [succeeded("login")]
    assert verify.tokens == ["ok-token-0002"]
    # The retry with the right password is a second, separate success.
    assert b.submit("/sign-in", "ok-token-0003", csrf, **RIGHT).events == [succeeded("login")]


@pytest.mark.parametrize(
    ("token", "expected", "asked"),
    [
        pytest.param("ok-token-0004", [succeeded("login")], ["ok-token-0004"], id="valid-token"),
        pytest.param(None, [failed("login", "missing")], [], id="no-token"),
        pytest.param("forged-x", [failed("login", "invalid")], ["forged-x"], id="forged-token"),
    ],
)
def test_csrf_failure_still_reports_the_captcha_flask_wtf_checked(
    verify: FakeVerify, token: str | None, expected: list[Any], asked: list[str]
) -> None:
    """A bad CSRF token fails the form, yet Flask-WTF validated the captcha field all the same."""
    b = browser(verify)
    open_form(b, "/sign-in")
    answer = b.submit("/sign-in", token, "not-the-csrf-token", **RIGHT)
    assert answer.status == 200
    assert "The CSRF token is invalid." in answer.text
    assert answer.events == expected
    assert verify.tokens == asked


def test_another_fields_error_with_a_valid_captcha_is_a_success(verify: FakeVerify) -> None:
    """An empty e-mail re-renders the form; the captcha passed, and says so once."""
    b = browser(verify)
    csrf = open_form(b, "/sign-up", "registration")
    answer = b.submit("/sign-up", "ok-token-0005", csrf, email="", password="x")
    assert (answer.status, "This field is required." in answer.text) == (200, True)
    assert answer.events == [succeeded("registration")]


@pytest.mark.parametrize("status", [None, 503], ids=["verify-unreachable", "verify-answers-503"])
def test_verify_service_down_gives_no_event(verify: FakeVerify, status: int | None) -> None:
    """Flask-WTF lets urlopen's error through (a 500): the captcha was never decided, no event."""
    b = browser(verify)
    csrf = open_form(b, "/sign-in")
    if status is None:
        verify.close()
    else:
        verify.status = status
    answer = b.submit("/sign-in", "ok-token-0006", csrf, **RIGHT)
    assert answer.status == 500
    assert answer.events == []
    assert verify.tokens == ([] if status is None else ["ok-token-0006"])
    # Without a token Flask-WTF does not need the service: still a plain `missing`.
    assert b.submit("/sign-in", None, csrf, **RIGHT).events == [failed("login", "missing")]


def test_wrong_secret_is_no_captcha_outcome(verify: FakeVerify) -> None:
    """A misconfigured RECAPTCHA_PRIVATE_KEY (invalid-input-secret) is the server's fault: none."""
    b = browser(verify, RECAPTCHA_PRIVATE_KEY="not-the-secret")
    csrf = open_form(b, "/sign-in")
    answer = b.submit("/sign-in", "ok-token-0007", csrf, **RIGHT)
    assert "The secret parameter is invalid or malformed." in answer.text
    assert answer.events == []


def test_testing_mode_skips_verification(verify: FakeVerify) -> None:
    """TESTING = True: Flask-WTF shows the widget but checks nothing; HTTP cannot tell.

    The page still counts as displayed; a form that goes through without a token emits
    nothing; one with a token is counted as succeeded (Google was never asked); a token-
    less re-render for another field's error is counted as missing (README: Known limits).
    """
    b = browser(verify, TESTING=True)
    csrf = open_form(b, "/sign-in")
    assert b.submit("/sign-in", None, csrf, **RIGHT).events == []
    assert b.submit("/sign-in", "anything", csrf, **RIGHT).events == [succeeded("login")]
    assert b.submit("/sign-in", None, csrf, **WRONG).events == [failed("login", "missing")]
    assert verify.tokens == []


def test_recaptcha_disabled(verify: FakeVerify) -> None:
    """RECAPTCHA_ENABLED = False (Flask-WTF 1.3): no widget, no check, and no event at all.

    Flask-WTF before 1.3 ignores the setting: the widget shows and tokens are verified.
    """
    b = browser(verify, RECAPTCHA_ENABLED=False)
    page = b.get("/sign-in")
    csrf = csrf_token(page.text)
    no_token = b.submit("/sign-in", None, csrf, **WRONG)
    done = b.submit("/sign-in", None, csrf, **RIGHT)
    if VERSION >= (1, 3):
        assert "<!-- recaptcha disabled -->" in page.text
        assert [page.events, no_token.events, done.events] == [[], [], []]
        assert done.status == 302
    else:
        assert page.events == [displayed("login")]
        assert [no_token.events, done.events] == [[failed("login", "missing")]] * 2
    assert verify.tokens == []


def test_german_pages_keep_the_captcha_decisions(verify: FakeVerify) -> None:
    """Accept-Language de with Flask-Babel: WTForms' messages are German, the captcha's stay.

    Flask-WTF translates through WTForms' catalogs, which have no reCAPTCHA message; and
    Google's invalid-input-response message is raised untranslated. Every event survives.
    """
    b = browser(verify, babel=True)
    b.headers["Accept-Language"] = "de-DE,de;q=0.9"
    csrf = open_form(b, "/sign-up", "registration")
    other_error = b.submit("/sign-up", "ok-token-0008", csrf, email="", password="x")
    assert "Dieses Feld wird benötigt." in other_error.text
    assert other_error.events == [succeeded("registration")]
    assert b.submit("/sign-up", None, csrf, **RIGHT).events == [failed("registration", "missing")]
    forged = b.submit("/sign-up", "forged-1", csrf, **RIGHT)
    assert (INVALID in forged.text, forged.events) == (True, [failed("registration", "invalid")])
    expired = b.submit("/sign-up", "expired-1", csrf, **RIGHT)
    assert (MISSING in expired.text, expired.events) == (
        True,
        [failed("registration", "timeout")],
    )
    assert b.submit("/sign-up", "ok-token-0009", csrf, **RIGHT).events == [
        succeeded("registration")
    ]


def test_custom_validator_message(verify: FakeVerify) -> None:
    """Recaptcha(message=...) replaced: `missing` and `invalid` survive, `timeout` does not.

    An expired token is then shown with the custom text only, and counted as a success
    (README: Known limits, with the override that fixes it).
    """
    b = browser(verify, captcha_message="Bitte bestätigen Sie, dass Sie kein Roboter sind.")
    csrf = open_form(b, "/sign-in")
    assert b.submit("/sign-in", None, csrf, **RIGHT).events == [failed("login", "missing")]
    assert b.submit("/sign-in", "forged-2", csrf, **RIGHT).events == [failed("login", "invalid")]
    expired = b.submit("/sign-in", "expired-2", csrf, **RIGHT)
    assert "kein Roboter" in expired.text
    assert expired.events == [succeeded("login")]
    # The fix (README): the timeout rule and the success rule override by id with the text.
    custom = "kein Roboter"
    ok_token = {"form.g-recaptcha-response": {"length": {"min": 1}}}
    fixes = {
        "rules": [
            {
                "id": "wtf-recaptcha-login-failed-timeout",
                "event": "captcha_failed",
                "match": "POST /sign-in",
                "if": {**ok_token, "response.status": 200, "response.body": {"contains": custom}},
                "fields": {"flow": {"value": "login"}, "reason": {"value": "timeout"}},
            },
            {
                "id": "wtf-recaptcha-login-succeeded",
                "event": "captcha_succeeded",
                "match": "POST /sign-in",
                "if": {
                    **ok_token,
                    "any": [
                        {"response.status": 302},
                        {
                            "response.status": 200,
                            "not": {"response.body": {"regex": f"{custom}|{INVALID}"}},
                        },
                    ],
                },
                "fields": {"flow": {"value": "login"}},
            },
        ]
    }
    app = plain_app(verify.url, rules=[RULES, fixes], captcha_message=f"Sie sind {custom}?")
    b = Browser(app.test_client())
    csrf = csrf_token(b.get("/sign-in").text)
    assert b.submit("/sign-in", "expired-3", csrf, **RIGHT).events == [failed("login", "timeout")]
    assert b.submit("/sign-in", "ok-token-0012", csrf, **WRONG).events == [succeeded("login")]
    assert b.submit("/sign-in", "forged-4", csrf, **RIGHT).events == [failed("login", "invalid")]


def test_default_paths_leave_other_pages_alone(verify: FakeVerify) -> None:
    """The pack alone (Flask-Security's URLs) emits nothing for forms at other paths."""
    b = Browser(plain_app(verify.url).test_client())
    csrf = csrf_token(b.get("/sign-in").text)
    assert b.get("/sign-in").events == []
    assert b.submit("/sign-in", None, csrf, **RIGHT).events == []
    assert b.submit("/sign-in", "ok-token-0010", csrf, **RIGHT).events == []


def test_wsgi_middleware_under_a_real_server(verify: FakeVerify) -> None:
    """HeraEventsWSGI around the app under wsgiref: the same events over real HTTP."""
    app = plain_app(verify.url, wired=False)
    app.wsgi_app = HeraEventsWSGI(app.wsgi_app, rules=RULES, output=discard)  # type: ignore[method-assign]
    with (
        capture_events() as captured,
        wsgiref_server(app) as base,
        httpx.Client(base_url=base, timeout=10) as client,
    ):
        csrf = csrf_token(client.get("/forgot").text)
        for token in (None, "forged-3", "expired-4", "ok-token-0011"):
            data = {"csrf_token": csrf, **RIGHT}
            if token is not None:
                data["g-recaptcha-response"] = token
            client.post("/forgot", data=data)
        assert client.get("/").text == "home"  # served after the others were closed
    flow = "password_reset"
    assert stripped(captured) == [
        displayed(flow),
        failed(flow, "missing"),
        failed(flow, "invalid"),
        failed(flow, "timeout"),
        succeeded(flow),
    ]
    assert verify.tokens == ["forged-3", "expired-4", "ok-token-0011"]


def hcaptcha_app() -> Flask:
    """A login page the way flask-hcaptcha / flask-turnstile render and check them."""
    app = Flask("wtf_hcaptcha_app")
    page = (
        '<form method="post"><script src="https://js.hcaptcha.com/1/api.js" async defer>'
        '</script><div class="h-captcha" data-sitekey="site"></div>'
        '<div class="cf-turnstile" data-sitekey="site"></div>{{ error }}</form>'
    )

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        if request.method == "POST":
            if request.form.get("h-captcha-response") or request.form.get("cf-turnstile-response"):
                return "", 302, {"Location": "/"}
            return render_template_string(page, error="Please complete the captcha.")
        return render_template_string(page, error="")

    app.wsgi_app = HeraEventsWSGI(app.wsgi_app, rules=PACK, output=discard)  # type: ignore[method-assign]
    return app


@pytest.mark.parametrize("field", ["h-captcha-response", "cf-turnstile-response", None])
def test_hcaptcha_and_turnstile_pages_are_not_counted(field: str | None) -> None:
    """The pack reads reCAPTCHA's widget and field only: other captchas give no event."""
    b = Browser(hcaptcha_app().test_client())
    assert b.get("/login").events == []
    data = {field: "some-token"} if field else {}
    assert b.request("POST", "/login", data=data).events == []


@pytest.mark.skipif(not os.environ.get("HERA_PACK_VERSIONS"), reason="only under run_under")
def test_the_flask_wtf_under_test() -> None:
    """Under the version runner (test_wtf_versions.py) the pinned Flask-WTF is the one used."""
    assert f"flask-wtf=={flask_wtf.__version__}" in os.environ["HERA_PACK_VERSIONS"].split()
