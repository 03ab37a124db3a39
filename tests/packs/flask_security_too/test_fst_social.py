"""``preset:flask-security-too`` social-login rules against FST's oauth glue.

``SECURITY_OAUTH_ENABLE`` with a provider ("fakehub") registered through
``oauthglue.register_provider_ext`` whose authorize, token and userinfo endpoints are a
fake server on 127.0.0.1. The browser follows FST's redirect to the fake provider and
back, as a real one would; denial, outages, unknown identities and an already signed-in
user are shown with their exact (usually no) events.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from _fst_app import PASSWORD, Remote, make_app, totp_code
from _fst_client import PACK, WIRINGS, WTFORMS_CHOICES, Browser, wire
from flask import Flask

pytestmark = pytest.mark.filterwarnings(WTFORMS_CHOICES)

STARTED = ("social_login_initiated", {"provider": "fakehub"})
DONE = ("social_login_completed", {"provider": "fakehub", "first_login": None})


@pytest.fixture(params=WIRINGS)
def app(request: pytest.FixtureRequest, tmp_path: Path, remote: Remote) -> Flask:
    return wire(make_app(tmp_path, remote), str(request.param))


@pytest.fixture
def browser(app: Flask) -> Browser:
    return Browser(app.test_client())


def to_provider(browser: Browser) -> str:
    """Start the social login (initiated) and let the fake provider answer; return the
    callback URL it sends the browser to."""
    start = browser.expect("POST", "/login/oauthstart/fakehub", STARTED)
    assert start.status_code == 302
    authorize = start.headers["Location"]
    assert urlsplit(authorize).path == "/oauth/authorize"
    answer = httpx.get(authorize, follow_redirects=False, timeout=5)
    assert answer.status_code == 302
    callback = answer.headers["location"]
    assert urlsplit(callback).path == "/login/oauthresponse/fakehub"
    return callback


@pytest.mark.produces(PACK, "social_login_initiated", via="oauthstart: 302 to authorize URL")
@pytest.mark.produces(PACK, "social_login_completed", via="oauthresponse: code, 302 not to login")
@pytest.mark.not_possible(
    PACK,
    "social_login_completed.first_login",
    why="FST signs in existing users only and never records a first social login",
)
def test_social_login_twice(browser: Browser, app: Flask) -> None:
    """The same user signs in twice: initiated and completed each time, first_login null."""
    assert browser.quiet("GET", "/login").status_code == 200
    for _ in range(2):
        done = browser.expect("GET", to_provider(browser), DONE)
        assert done.status_code == 302
        assert done.headers["Location"] == "/"
        assert browser.quiet("GET", "/").text == "home"
        assert browser.quiet("POST", "/logout").status_code == 302


def test_provider_denial(browser: Browser, remote: Remote) -> None:
    """The user refuses at the provider (``error=access_denied``): initiated, nothing more."""
    remote.deny = True
    back = browser.quiet("GET", to_provider(browser))
    assert back.status_code == 302
    assert back.headers["Location"] == "/login"


@pytest.mark.parametrize("status", [500, 502])
def test_provider_outage(browser: Browser, remote: Remote, status: int) -> None:
    """The provider's token endpoint is down: FST lets the error through (a 500), no
    completion."""
    remote.token_status = status
    assert browser.quiet("GET", to_provider(browser)).status_code == 500


def test_provider_refuses_the_code(browser: Browser, remote: Remote) -> None:
    """The token endpoint answers an OAuth error (``invalid_grant``): FST's handshake error
    sends the user to the login page, no completion."""
    remote.token_status = 400
    back = browser.quiet("GET", to_provider(browser))
    assert back.status_code == 302
    assert back.headers["Location"] == "/login"


def test_provider_unreachable(tmp_path: Path, remote: Remote) -> None:
    """A provider whose token endpoint is a closed port: FST fails with a 500, no completion."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    app = make_app(tmp_path, remote)
    glue = app.extensions["security"].oauthglue
    glue.oauth_app.fakehub.access_token_url = closed + "/oauth/token"
    browser = Browser(wire(app, WIRINGS[1]).test_client())
    assert browser.quiet("GET", to_provider(browser)).status_code == 500


def test_unknown_identity(browser: Browser, remote: Remote) -> None:
    """The provider names someone FST does not know: back to the login page, no completion."""
    remote.identity = "stranger@example.test"
    back = browser.quiet("GET", to_provider(browser))
    assert back.status_code == 302
    assert back.headers["Location"] == "/login"


def test_forged_callback(browser: Browser) -> None:
    """A callback with a code but a state FST never issued is refused: no completion."""
    to_provider(browser)
    forged = browser.quiet("GET", "/login/oauthresponse/fakehub?code=abc123&state=forged")
    assert forged.status_code == 302
    assert forged.headers["Location"] == "/login"


def test_already_signed_in(browser: Browser) -> None:
    """A signed-in user pressing the button is sent to the post-login view: no initiation."""
    assert (
        browser.quiet(
            "POST", "/login", data={"email": "plain.user@example.test", "password": PASSWORD}
        ).status_code
        == 302
    )
    again = browser.quiet("POST", "/login/oauthstart/fakehub")
    assert again.status_code == 302
    assert again.headers["Location"] == "/"


def test_social_login_then_two_factor(browser: Browser, app: Flask, remote: Remote) -> None:
    """A user with two-factor: the provider part completes, then the TOTP challenge runs."""
    remote.identity = "totp.user@example.test"
    back = browser.expect("GET", to_provider(browser), DONE)
    assert back.headers["Location"].startswith("/tf-validate")
    browser.expect("GET", back.headers["Location"], ("mfa_challenge_displayed", {"method": "totp"}))
    browser.expect(
        "POST",
        "/tf-validate",
        ("mfa_challenge_succeeded", {"method": "totp"}),
        data={"code": totp_code(app)},
    )
