"""``preset:flask-security-too`` breached-password rules against a real Flask-Security-Too.

``SECURITY_PASSWORD_CHECK_BREACHED`` on registration and password change, HTML and JSON,
with the Pwned Passwords range API faked on 127.0.0.1 (see ``_fst_app.pwned_api``): a
breached password fails, a clean one passes; refusals for other reasons (too short,
confirmation mismatch, wrong current password) and the API's outage are shown exactly.
"""

from __future__ import annotations

from pathlib import Path

import flask_security
import pytest
from _fst_app import BREACHED_PASSWORD, CLEAN_PASSWORD, PASSWORD, Remote, make_app
from _fst_client import PACK, WTFORMS_CHOICES, Browser, wire
from flask import Flask

pytestmark = pytest.mark.filterwarnings(WTFORMS_CHOICES)
OLD = flask_security.__version__ < "5.5"

FAILED = ("breach_check_failed", {"reason": "in_hibp"})
PASSED = ("breach_check_passed", {})


@pytest.fixture
def app(wiring: str, tmp_path: Path, remote: Remote) -> Flask:
    return wire(make_app(tmp_path, remote), wiring)


@pytest.fixture
def browser(app: Flask) -> Browser:
    return Browser(app.test_client())


def registration(password: str, confirm: str | None = None, email: str = "new@example.test"):
    return {"email": email, "password": password, "password_confirm": confirm or password}


def body(kind: str, values: dict[str, str]) -> dict[str, object]:
    return {"data": values} if kind == "form" else {"json": values}


@pytest.mark.produces(PACK, "breach_check_failed", via="register: error on the password field")
@pytest.mark.parametrize("kind", ["form", "json"])
def test_register_with_a_breached_password(browser: Browser, remote: Remote, kind: str) -> None:
    """A breached password is refused (HTML 200 re-render, JSON 400): breach_check_failed."""
    calls = remote.range_calls
    answer = browser.expect(
        "POST", "/register", FAILED, **body(kind, registration(BREACHED_PASSWORD))
    )
    assert answer.status_code == (200 if kind == "form" else 400)
    assert "Password on breached list" in answer.text
    assert remote.range_calls == calls + 1


@pytest.mark.produces(PACK, "breach_check_passed", via="register: 302 (HTML) / 200 JSON")
@pytest.mark.parametrize("kind", ["form", "json"])
def test_register_with_a_clean_password(browser: Browser, remote: Remote, kind: str) -> None:
    """A clean password lets the registration through: breach_check_passed."""
    calls = remote.range_calls
    answer = browser.expect("POST", "/register", PASSED, **body(kind, registration(CLEAN_PASSWORD)))
    assert answer.status_code == (302 if kind == "form" else 200)
    assert remote.range_calls == calls + 1


@pytest.mark.parametrize("kind", ["form", "json"])
def test_register_refused_for_other_reasons(browser: Browser, remote: Remote, kind: str) -> None:
    """A too-short password (checked before the list), a mismatched confirmation or a taken
    address give no breach event."""
    short = browser.quiet("POST", "/register", **body(kind, registration("short1")))
    assert short.status_code == (200 if kind == "form" else 400)
    mismatch = registration(CLEAN_PASSWORD, confirm=CLEAN_PASSWORD + "x")
    if kind == "json" and OLD:
        # FST before 5.5 registers JSON clients without looking at password_confirm.
        browser.expect("POST", "/register", PASSED, **body(kind, mismatch))
        return
    assert browser.quiet("POST", "/register", **body(kind, mismatch)).status_code in (200, 400)
    taken = registration(CLEAN_PASSWORD, email="plain.user@example.test")
    assert browser.quiet("POST", "/register", **body(kind, taken)).status_code in (200, 400)
    assert browser.quiet("GET", "/register").status_code == 200


def change(new: str, current: str = PASSWORD) -> dict[str, str]:
    return {"password": current, "new_password": new, "new_password_confirm": new}


@pytest.fixture
def signed_in(browser: Browser) -> Browser:
    assert (
        browser.quiet(
            "POST", "/login", data={"email": "plain.user@example.test", "password": PASSWORD}
        ).status_code
        == 302
    )
    return browser


@pytest.mark.produces(PACK, "breach_check_failed", via="change: error on the new_password field")
@pytest.mark.produces(PACK, "breach_check_passed", via="change: 302 (HTML) / 200 JSON")
@pytest.mark.parametrize("kind", ["form", "json"])
def test_change_password(signed_in: Browser, kind: str) -> None:
    """A breached new password fails, a clean one then passes; a wrong current password, a
    short new one and the page itself emit nothing."""
    assert signed_in.quiet("GET", "/change").status_code == 200
    wrong_current = change(CLEAN_PASSWORD, current="Not-The-Password-1")
    assert signed_in.quiet("POST", "/change", **body(kind, wrong_current)).status_code in (200, 400)
    assert signed_in.quiet("POST", "/change", **body(kind, change("short1"))).status_code in (
        200,
        400,
    )
    refused = signed_in.expect("POST", "/change", FAILED, **body(kind, change(BREACHED_PASSWORD)))
    assert refused.status_code == (200 if kind == "form" else 400)
    done = signed_in.expect("POST", "/change", PASSED, **body(kind, change(CLEAN_PASSWORD)))
    assert done.status_code == (302 if kind == "form" else 200)


@pytest.mark.not_possible(
    PACK,
    "breach_check_passed",
    why="API outage: FST skips the check and registers; HTTP looks like a pass",
)
@pytest.mark.parametrize("status", [500, 503])
def test_range_api_outage_lets_registration_through(
    browser: Browser, remote: Remote, status: int
) -> None:
    """With the check on (not "strict") FST ignores an unreachable range API and registers
    the user: the pack cannot tell this from a pass and says breach_check_passed."""
    remote.range_status = status
    calls = remote.range_calls
    answer = browser.expect("POST", "/register", PASSED, data=registration(BREACHED_PASSWORD))
    assert answer.status_code == 302
    assert remote.range_calls == calls + 1


@pytest.mark.parametrize("kind", ["form", "json"])
def test_range_api_outage_in_strict_mode(
    tmp_path: Path, remote: Remote, wiring: str, kind: str
) -> None:
    """``SECURITY_PASSWORD_CHECK_BREACHED = "strict"`` refuses the password when the API is
    down: no check happened, and the pack says nothing (an English-text exclusion)."""
    app = wire(make_app(tmp_path, remote, SECURITY_PASSWORD_CHECK_BREACHED="strict"), wiring)
    browser = Browser(app.test_client())
    remote.range_status = 500
    answer = browser.quiet("POST", "/register", **body(kind, registration(CLEAN_PASSWORD)))
    assert "Failed to contact breached passwords site" in answer.text
    remote.range_status = 200
    browser.expect("POST", "/register", PASSED, **body(kind, registration(CLEAN_PASSWORD)))
