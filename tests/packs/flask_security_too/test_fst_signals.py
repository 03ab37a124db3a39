"""The Flask-Security-Too signals ``preset:flask-security-too`` watches, on a live server.

``tf_code_confirmed`` (its ``method`` kept), ``user_registered`` and ``password_changed``
each add a success HTTP alone misses: a form posted with ``Accept: application/json``
is answered 200 with JSON, which neither the HTML rules (a redirect) nor the JSON rules
(a JSON body) take. Under both wirings the signal gives the event; with the signals
unknown (``testing.signals_unknown``, as in replay) the same exchange gives none, and
the usual flows give exactly one event either way (no double count). The strict-mode
range-API outage is shown to be past any signal: FST sends none of its signals for it
or for a breached password, so only the message tells them apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask_security.signals
import pytest
from _fst_app import (
    BREACHED_PASSWORD,
    CLEAN_PASSWORD,
    PASSWORD,
    Remote,
    make_app,
    totp_code,
)
from _fst_client import (
    JSON,
    PACK,
    PRESET,
    WIRINGS,
    WTFORMS_CHOICES,
    Browser,
    wire,
)
from flask import Flask

import hera_middleware
from hera_middleware.testing import signals_unknown

pytestmark = pytest.mark.filterwarnings(WTFORMS_CHOICES)

OK = ("mfa_challenge_succeeded", {"method": "totp"})
PASSED = ("breach_check_passed", {})
FAILED = ("breach_check_failed", {"reason": "in_hibp"})
TOTP_USER = {"email": "totp.user@example.test", "password": PASSWORD}
PLAIN_USER = {"email": "plain.user@example.test", "password": PASSWORD}


@pytest.fixture(params=["live", "unknown"])
def signals(request: pytest.FixtureRequest) -> str:
    """``live``: the middleware watches the pack's signals; ``unknown``: as in replay."""
    return str(request.param)


@pytest.fixture
def app(tmp_path: Path, remote: Remote, wiring: str, signals: str) -> Flask:
    if signals == "live":
        return wire(make_app(tmp_path, remote), wiring)
    with signals_unknown():
        return wire(make_app(tmp_path, remote), wiring)


@pytest.fixture
def browser(app: Flask) -> Browser:
    return Browser(app.test_client())


def test_the_signals_and_what_they_keep() -> None:
    """Three signals, by import path; only ``method`` (a string) is kept, never a user."""
    rules = hera_middleware.load_rules(PRESET)
    assert {n: (s.path, s.keep) for n, s in rules.signals.items()} == {
        "tf_code_confirmed": ("flask_security.signals.tf_code_confirmed", ("method",)),
        "user_registered": ("flask_security.signals.user_registered", ()),
        "password_changed": ("flask_security.signals.password_changed", ()),
    }


@pytest.mark.produces(PACK, "mfa_challenge_succeeded", via="signal tf_code_confirmed")
def test_code_posted_as_a_form_asking_for_json(app: Flask, browser: Browser, signals: str) -> None:
    """The right code posted as a form with ``Accept: application/json``: FST answers
    200 JSON and signs the user in. Only the signal tells: succeeded live, nothing when
    the signal is unknown."""
    browser.expect(
        "POST", "/login", ("mfa_challenge_displayed", {"method": "totp"}), json=TOTP_USER
    )
    expected = [OK] if signals == "live" else []
    done = browser.expect(
        "POST", "/tf-validate", *expected, data={"code": totp_code(app)}, headers=JSON
    )
    assert done.status_code == 200
    assert done.json["meta"]["code"] == 200
    assert browser.quiet("GET", "/").text == "home"


@pytest.mark.parametrize("body", ["form", "json"])
def test_the_usual_sign_in_counts_once(app: Flask, browser: Browser, body: str) -> None:
    """Where HTTP and the signal both say succeeded, one event (live and unknown)."""
    key = "data" if body == "form" else "json"
    if body == "form":
        assert browser.quiet("POST", "/login", data=TOTP_USER).status_code == 302
        browser.expect("GET", "/tf-validate", ("mfa_challenge_displayed", {"method": "totp"}))
    else:
        browser.expect(
            "POST", "/login", ("mfa_challenge_displayed", {"method": "totp"}), json=TOTP_USER
        )
    browser.expect("POST", "/tf-validate", OK, **{key: {"code": totp_code(app)}})


@pytest.mark.produces(PACK, "breach_check_passed", via="signal user_registered / password_changed")
def test_registration_and_change_posted_as_forms_asking_for_json(
    browser: Browser, signals: str
) -> None:
    """A registration and a password change posted as forms with ``Accept: JSON`` (200
    JSON): passed live (user_registered, password_changed), nothing when unknown; a
    breached password is failed either way, and the usual form and JSON posts count once."""
    expected = [PASSED] if signals == "live" else []
    new = {
        "email": "new@example.test",
        "password": CLEAN_PASSWORD,
        "password_confirm": CLEAN_PASSWORD,
    }
    done = browser.expect("POST", "/register", *expected, data=new, headers=JSON)
    assert done.status_code == 200
    assert browser.quiet("POST", "/logout").status_code == 302
    other = dict(new, email="other@example.test")
    browser.expect("POST", "/register", PASSED, data=other)
    assert browser.quiet("POST", "/logout").status_code == 302
    browser.expect("POST", "/register", PASSED, json=dict(new, email="third@example.test"))
    assert browser.quiet("POST", "/logout").status_code == 302

    assert browser.quiet("POST", "/login", data=PLAIN_USER).status_code == 302
    change = {
        "password": PASSWORD,
        "new_password": CLEAN_PASSWORD,
        "new_password_confirm": CLEAN_PASSWORD,
    }
    done = browser.expect("POST", "/change", *expected, data=change, headers=JSON)
    assert done.status_code == 200
    breached = {
        "password": CLEAN_PASSWORD,
        "new_password": BREACHED_PASSWORD,
        "new_password_confirm": BREACHED_PASSWORD,
    }
    assert browser.expect("POST", "/change", FAILED, data=breached).status_code == 200
    again = {"password": CLEAN_PASSWORD, "new_password": PASSWORD, "new_password_confirm": PASSWORD}
    browser.expect("POST", "/change", PASSED, data=again)


class Sent:
    """Every Flask-Security-Too signal sent while this is connected, by name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def watch(self) -> list[tuple[Any, Any]]:
        pairs = []
        for name, sig in flask_security.signals.signals.items():

            def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
                self.names.append(_name)

            sig.connect(receiver, weak=False)
            pairs.append((sig, receiver))
        return pairs


def test_no_signal_tells_a_strict_outage_from_a_breach(tmp_path: Path, remote: Remote) -> None:
    """Under ``"strict"`` FST refuses a password it could not check with the breach
    "Failed to contact" message on the password field, and sends no signal for it — nor for a
    breached password. So a signal cannot fix the translated outage: the pack still
    reads the German outage as a breach (the README's override by message fixes it)."""
    flask_babel = pytest.importorskip("flask_babel")
    app = make_app(tmp_path, remote, SECURITY_PASSWORD_CHECK_BREACHED="strict")
    flask_babel.Babel(app, locale_selector=lambda: "de_DE")
    browser = Browser(wire(app, WIRINGS[0]).test_client())
    sent = Sent()
    pairs = sent.watch()
    try:
        new = {
            "email": "new@example.test",
            "password": BREACHED_PASSWORD,
            "password_confirm": BREACHED_PASSWORD,
        }
        breached = browser.expect("POST", "/register", FAILED, json=new)
        assert breached.status_code == 400
        on_breach = list(sent.names)
        remote.range_status = 500
        clean = dict(new, password=CLEAN_PASSWORD, password_confirm=CLEAN_PASSWORD)
        outage = browser.expect("POST", "/register", FAILED, json=clean)
        message = outage.json["response"]["field_errors"]["password"][0]
        assert message.startswith("Konnte keine Verbindung zum Dienst aufbauen"), message
        assert on_breach == []
        assert sent.names == []
        remote.range_status = 200
        browser.expect("POST", "/register", PASSED, json=clean)
        assert "user-registered" in sent.names  # the receivers were listening
    finally:
        for sig, receiver in pairs:
            sig.disconnect(receiver)
