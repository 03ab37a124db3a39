"""``preset:flask-security-too`` two-factor rules against a real Flask-Security-Too server.

Sign-in with an authenticator app (TOTP, the real code computed with pyotp from the
user's key), through the HTML forms and the JSON API, under both wirings (the Flask
extension and ``HeraEventsWSGI``); the confounders next to the challenge — a wrong
password, the setup pages, the re-authentication page, a validation without a
two-factor session — emit nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from _fst_app import PASSWORD, Remote, make_app, totp_code, wrong_code
from _fst_client import JSON, PACK, WIRINGS, WTFORMS_CHOICES, Browser, clean_environment, wire
from flask import Flask

TOTP = ("mfa_challenge_displayed", {"method": "totp"})
OK = ("mfa_challenge_succeeded", {"method": "totp"})
FAILED = ("mfa_challenge_failed", {"method": "totp"})
TOTP_USER = {"email": "totp.user@example.test", "password": PASSWORD}
PLAIN_USER = {"email": "plain.user@example.test", "password": PASSWORD}

pytestmark = pytest.mark.filterwarnings(WTFORMS_CHOICES)


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    server = Remote().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    clean_environment(monkeypatch)


@pytest.fixture(params=WIRINGS)
def app(request: pytest.FixtureRequest, tmp_path: Path, remote: Remote) -> Flask:
    return wire(make_app(tmp_path, remote), str(request.param))


@pytest.fixture
def browser(app: Flask) -> Browser:
    return Browser(app.test_client())


def challenge_html(browser: Browser) -> None:
    """Password step (no event), then the challenge page (displayed)."""
    step = browser.quiet("POST", "/login", data=TOTP_USER)
    assert step.status_code == 302
    assert step.headers["Location"].startswith("/tf-validate")
    page = browser.expect("GET", step.headers["Location"], TOTP)
    assert 'name="code"' in page.text


@pytest.mark.produces(PACK, "mfa_challenge_displayed", via="GET tf-validate: code + rescue forms")
@pytest.mark.produces(PACK, "mfa_challenge_succeeded", via="POST tf-validate: code sent, 302 on")
def test_html_sign_in_with_the_right_code(app: Flask, browser: Browser) -> None:
    """The challenge page is displayed once; the right code succeeds and signs the user in."""
    challenge_html(browser)
    done = browser.expect("POST", "/tf-validate", OK, data={"code": totp_code(app)})
    assert done.status_code == 302
    assert done.headers["Location"] == "/"
    assert browser.quiet("GET", "/").text == "home"


@pytest.mark.produces(PACK, "mfa_challenge_failed", via="POST tf-validate: error under code-ctr")
def test_html_wrong_code_then_right_code(app: Flask, browser: Browser) -> None:
    """A wrong code fails (a 200 re-render), the right one then succeeds."""
    challenge_html(browser)
    again = browser.expect("POST", "/tf-validate", FAILED, data={"code": wrong_code(app)})
    assert again.status_code == 200
    assert "Invalid code" in again.text
    browser.expect("POST", "/tf-validate", OK, data={"code": totp_code(app)})


def test_html_empty_code_is_no_attempt(app: Flask, browser: Browser) -> None:
    """Submitting the form without a code is refused by FST but is no challenge outcome."""
    challenge_html(browser)
    assert browser.quiet("POST", "/tf-validate", data={"code": ""}).status_code == 200


@pytest.mark.produces(PACK, "mfa_challenge_displayed", via="JSON login: tf_state ready")
@pytest.mark.produces(PACK, "mfa_challenge_succeeded", via="JSON tf-validate: code sent, 200")
@pytest.mark.produces(PACK, "mfa_challenge_failed", via="JSON tf-validate: field_errors.code")
def test_json_sign_in(app: Flask, browser: Browser) -> None:
    """JSON API: the password step displays the challenge; a wrong code fails, the right one
    succeeds."""
    assert browser.quiet("GET", "/login", headers=JSON).json["meta"]["code"] == 200
    step = browser.expect("POST", "/login", TOTP, json=TOTP_USER)
    assert step.json["response"]["tf_state"] == "ready"
    bad = browser.expect("POST", "/tf-validate", FAILED, json={"code": wrong_code(app)})
    assert bad.status_code == 400
    good = browser.expect("POST", "/tf-validate", OK, json={"code": totp_code(app)})
    assert good.status_code == 200
    assert browser.quiet("GET", "/").status_code == 200


def test_json_accept_header_with_form_body(app: Flask, browser: Browser) -> None:
    """A form post asking for JSON (``Accept: application/json``) is answered as JSON and
    counted the same."""
    step = browser.expect("POST", "/login", TOTP, data=TOTP_USER, headers=JSON)
    assert step.json["response"]["tf_required"] is True
    bad = browser.send("POST", "/tf-validate", data={"code": wrong_code(app)}, headers=JSON)
    assert bad[0].status_code == 400
    # The form rules want an HTML re-render and the JSON rules a JSON body: nothing.
    assert bad[1] == []


@pytest.mark.parametrize("body", ["form", "json"])
def test_wrong_password_before_the_challenge(browser: Browser, body: str) -> None:
    """A wrong password never reaches the challenge: no event."""
    wrong = {"email": TOTP_USER["email"], "password": "Not-The-Password-1"}
    answer = browser.quiet("POST", "/login", **{"data" if body == "form" else "json": wrong})
    assert answer.status_code == (200 if body == "form" else 400)
    # Nor does the challenge page open without a password step.
    assert browser.quiet("GET", "/tf-validate").status_code == 302


@pytest.mark.parametrize("body", ["form", "json"])
def test_code_without_a_two_factor_session(app: Flask, browser: Browser, body: str) -> None:
    """A code posted without a pending sign-in is refused (illegal state): no event."""
    code = {"code": totp_code(app)}
    answer = browser.quiet("POST", "/tf-validate", **{"data" if body == "form" else "json": code})
    if body == "form":
        assert answer.status_code == 302
        assert answer.headers["Location"].startswith("/login")
    else:
        assert answer.status_code == 400


def test_setup_pages_are_no_challenge(app: Flask, browser: Browser) -> None:
    """Setting up the authenticator (setup page, QR code, first code) emits nothing."""
    assert browser.quiet("POST", "/login", data=PLAIN_USER).status_code == 302
    assert browser.quiet("GET", "/tf-setup").status_code == 200
    page = browser.quiet("POST", "/tf-setup", data={"setup": "authenticator"})
    assert page.status_code == 200
    assert 'id="qrcode"' in page.text
    assert browser.quiet("GET", "/tf-validate").status_code in (200, 302)


def test_reauthentication_page_is_no_challenge(tmp_path: Path, remote: Remote) -> None:
    """With freshness expired, FST asks for the password again (/verify): no event."""
    app = make_app(
        tmp_path,
        remote,
        SECURITY_FRESHNESS=timedelta(seconds=0),
        SECURITY_FRESHNESS_GRACE_PERIOD=timedelta(seconds=0),
    )
    browser = Browser(wire(app, WIRINGS[0]).test_client())
    challenge_html(browser)
    browser.expect("POST", "/tf-validate", OK, data={"code": totp_code(app)})
    detour = browser.quiet("GET", "/tf-setup")
    assert detour.status_code == 302
    assert detour.headers["Location"].startswith("/verify")
    assert browser.quiet("GET", detour.headers["Location"]).status_code == 200
    wrong = browser.quiet("POST", "/verify", data={"password": "Not-The-Password-1"})
    assert wrong.status_code == 200
    right = browser.quiet("POST", "/verify", data={"password": PASSWORD})
    assert right.status_code == 302
