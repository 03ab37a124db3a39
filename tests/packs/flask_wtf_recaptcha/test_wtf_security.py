"""``preset:flask-wtf-recaptcha`` on Flask-Security-Too's login and registration forms.

Flask-Security-Too (the common real case, as recorded) with a RecaptchaField added to
its ``LoginForm`` and ``RegisterForm``, at its default URLs, so the pack needs no
``vars:``. Tokens are verified by Flask-WTF against a fake siteverify on 127.0.0.1.
Also: the pack together with ``preset:flask-security-too`` (each keeps its events), and
the recorded exchanges replayed through the pack.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _wtf_app import EMAIL, PACK, PASSWORD, FakeVerify, csrf_token, security_app
from _wtf_events import PACK_NAME, Browser, Events, displayed, failed, succeeded
from flask import Flask
from test_real_servers import RECORDS, Record, _replay_and_check

# Flask-WTF never closes siteverify's HTTP response.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <socket.socket:ResourceWarning")

RIGHT = {"email": EMAIL, "password": PASSWORD}
NEW_USER = {
    "email": "grace@example.test",
    "password": "Analytical-Engine-1843",
    "password_confirm": "Analytical-Engine-1843",
}


@pytest.fixture
def verify() -> Iterator[FakeVerify]:
    server = FakeVerify()
    yield server
    server.close()


def signed_out(verify: FakeVerify) -> tuple[Browser, str]:
    """A browser on a fresh Flask-Security app, at its login page; the page's CSRF token."""
    b = Browser(security_app(verify.url).test_client())
    page = b.get("/login")
    assert page.status == 200
    assert page.events == [displayed("login")]
    return b, csrf_token(page.text)


@pytest.mark.produces(PACK_NAME, "captcha_displayed", via="Flask-Security login page, widget")
@pytest.mark.produces(PACK_NAME, "captcha_succeeded", via="token sent, login redirected")
def test_login_with_a_valid_captcha(verify: FakeVerify) -> None:
    """The login page shows the captcha; a valid token and password sign in: succeeded."""
    b, csrf = signed_out(verify)
    answer = b.submit("/login", "ok-token-0101", csrf, **RIGHT)
    assert (answer.status, answer.location) == (302, "/")
    assert answer.events == [succeeded("login")]
    assert b.get("/").events == []
    assert verify.tokens == ["ok-token-0101"]


@pytest.mark.produces(PACK_NAME, "captcha_failed", via="token sent or not; the field's error")
@pytest.mark.parametrize(
    ("token", "form", "error", "expected", "asked"),
    [
        pytest.param(
            "ok-token-0102",
            {**RIGHT, "password": "wrong-password"},
            "Invalid password",
            [succeeded("login")],
            ["ok-token-0102"],
            id="wrong-password-valid-captcha",
        ),
        pytest.param(
            "forged-0103",
            RIGHT,
            "The response parameter is invalid or malformed.",
            [failed("login", "invalid")],
            ["forged-0103"],
            id="invalid",
        ),
        pytest.param(
            "expired-0104",
            RIGHT,
            "The response parameter is missing.",
            [failed("login", "timeout")],
            ["expired-0104"],
            id="timeout",
        ),
        pytest.param(
            None,
            RIGHT,
            "The response parameter is missing.",
            [failed("login", "missing")],
            [],
            id="missing",
        ),
    ],
)
def test_login_form_comes_back(
    verify: FakeVerify,
    token: str | None,
    form: dict[str, str],
    error: str,
    expected: Events,
    asked: list[str],
) -> None:
    """A re-rendered login form: the captcha's own outcome, whatever else failed."""
    b, csrf = signed_out(verify)
    answer = b.submit("/login", token, csrf, **form)
    assert answer.status == 200
    assert f'<li class="fs-error-msg">{error}</li>' in answer.text
    assert answer.events == expected
    assert verify.tokens == asked


def test_login_csrf_failure_with_a_valid_captcha(verify: FakeVerify) -> None:
    """Flask-Security's form fails on CSRF after Flask-WTF accepted the captcha: succeeded."""
    b, _ = signed_out(verify)
    answer = b.submit("/login", "ok-token-0105", "forged-csrf", **RIGHT)
    assert (answer.status, "The CSRF token is invalid." in answer.text) == (200, True)
    assert answer.events == [succeeded("login")]
    assert verify.tokens == ["ok-token-0105"]


def test_registration_form(verify: FakeVerify) -> None:
    """The registration flow at Flask-Security's /register: displayed, missing, succeeded."""
    b = Browser(security_app(verify.url).test_client())
    page = b.get("/register")
    assert page.events == [displayed("registration")]
    csrf = csrf_token(page.text)
    assert b.submit("/register", None, csrf, **NEW_USER).events == [
        failed("registration", "missing")
    ]
    done = b.submit("/register", "ok-token-0106", csrf, **NEW_USER)
    assert done.status == 302
    assert done.events == [succeeded("registration")]


BOTH = ["preset:flask-security-too", PACK]


def _script(app: Flask) -> list[Events]:
    """Registration, then a new browser's login, through captcha failures and successes."""
    b = Browser(app.test_client())
    page = b.get("/register")
    out, csrf = [page.events], csrf_token(page.text)
    for token in (None, "forged-0201", "ok-0202"):
        out.append(b.submit("/register", token, csrf, **NEW_USER).events)
    b = Browser(app.test_client())  # signed out
    page = b.get("/login")
    out.append(page.events)
    csrf = csrf_token(page.text)
    for token in ("expired-0203", "ok-0204"):
        out.append(b.submit("/login", token, csrf, email=NEW_USER["email"], password="x").events)
    out.append(b.submit("/login", "ok-0205", csrf, **RIGHT).events)
    return out


def test_together_with_the_flask_security_pack(verify: FakeVerify) -> None:
    """extends both packs: every exchange gives Flask-Security's events, then the captcha's."""
    runs = {}
    for name, rules in [("fst", "preset:flask-security-too"), ("wtf", PACK), ("both", BOTH)]:
        runs[name] = _script(security_app(verify.url, rules=rules))
    assert runs["wtf"] == [
        [displayed("registration")],
        [failed("registration", "missing")],
        [failed("registration", "invalid")],
        [succeeded("registration")],
        [displayed("login")],
        [failed("login", "timeout")],
        [succeeded("login")],
        [succeeded("login")],
    ]
    # Flask-Security's pack sees the successful registration; no captcha event is its.
    assert [("event", "breach_check_passed")] in runs["fst"][3]
    assert not any(str(dict(e)["event"]).startswith("captcha_") for x in runs["fst"] for e in x)
    assert runs["both"] == [f + w for f, w in zip(runs["fst"], runs["wtf"], strict=True)]


RECORDED = [r for r in RECORDS if r.source == PACK_NAME]


@pytest.mark.parametrize("record", [pytest.param(r, id=r.id) for r in RECORDED])
async def test_recorded_exchange_through_the_pack(record: Record) -> None:
    """Each exchange recorded on Flask-Security's captcha login gives its expected events."""
    await _replay_and_check(record, record.data, PACK)


def test_the_recording_is_there() -> None:
    """The recording holds the flows the pack is for (so the replay above is no empty table)."""
    flows = {r.data["flow"] for r in RECORDED}
    assert flows >= {"captcha_displayed", "captcha_verify_success", "captcha_missing_response"}
    assert len(RECORDED) == 8
