"""``preset:flask-security-too`` on a translated server: German and French.

Flask-Babel with FST's own catalogs, the locale chosen from ``Accept-Language``. The
pack decides from ids, field names, JSON keys and statuses, so the events are the same
as in English; each test first checks that the server really answered in the language.
The one decision that rests on text — telling an unreachable range API from a breached
password under ``"strict"`` — is shown misread, and fixed by a user rule for the language.
"""

from __future__ import annotations

from pathlib import Path

import flask_security
import pytest
from _fst_app import (
    BREACHED_PASSWORD,
    CLEAN_PASSWORD,
    PASSWORD,
    Remote,
    make_app,
    totp_code,
    wrong_code,
)
from _fst_client import PACK, PRESET, WIRINGS, WTFORMS_CHOICES, Browser, wire
from flask import Flask, request

import hera_middleware

flask_babel = pytest.importorskip("flask_babel")
OLD = flask_security.__version__ < "5.5"

pytestmark = pytest.mark.filterwarnings(WTFORMS_CHOICES)

#: Locale -> (Accept-Language, FST's "Invalid code", "Password on breached list").
LANGUAGES = {
    "de_DE": ("de-DE,de;q=0.9", "Ungültiger Code", "Passwort ist öffentlich bekannt"),
    "fr_FR": (
        "fr-FR,fr;q=0.9",
        "Code invalide",
        "figure dans une liste de mots de passe compromis",
    ),
}
TOTP = {"method": "totp"}


def translated(
    tmp_path: Path, remote: Remote, wiring: str, rules: object = PRESET, **config: object
) -> Flask:
    app = make_app(tmp_path, remote, **config)
    flask_babel.Babel(
        app, locale_selector=lambda: request.accept_languages.best_match(list(LANGUAGES))
    )
    return wire(app, wiring, rules)


@pytest.fixture(params=list(LANGUAGES))
def language(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def browser_for(app: Flask, language: str) -> Browser:
    client = app.test_client()
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = LANGUAGES[language][0]
    return Browser(client)


@pytest.mark.produces(PACK, "mfa_challenge_failed", via="error under code-ctr, any language")
def test_two_factor_in_another_language(
    tmp_path: Path, remote: Remote, wiring: str, language: str
) -> None:
    """HTML and JSON challenge: displayed, failed, succeeded, as in English."""
    app = translated(tmp_path, remote, wiring)
    browser = browser_for(app, language)
    user = {"email": "totp.user@example.test", "password": PASSWORD}
    step = browser.quiet("POST", "/login", data=user)
    page = browser.expect("GET", step.headers["Location"], ("mfa_challenge_displayed", TOTP))
    assert 'name="code"' in page.text
    bad = browser.expect(
        "POST", "/tf-validate", ("mfa_challenge_failed", TOTP), data={"code": wrong_code(app)}
    )
    assert LANGUAGES[language][1] in bad.text
    browser.expect(
        "POST", "/tf-validate", ("mfa_challenge_succeeded", TOTP), data={"code": totp_code(app)}
    )
    assert browser.quiet("POST", "/logout").status_code == 302

    browser.expect("POST", "/login", ("mfa_challenge_displayed", TOTP), json=user)
    bad = browser.expect(
        "POST", "/tf-validate", ("mfa_challenge_failed", TOTP), json={"code": wrong_code(app)}
    )
    assert bad.json["response"]["field_errors"]["code"] == [LANGUAGES[language][1]]
    browser.expect(
        "POST", "/tf-validate", ("mfa_challenge_succeeded", TOTP), json={"code": totp_code(app)}
    )


@pytest.mark.produces(
    PACK, "breach_check_failed", via="field error + accepted length, any language"
)
def test_breach_check_in_another_language(
    tmp_path: Path, remote: Remote, wiring: str, language: str
) -> None:
    """Registration and password change, breached and clean, as in English."""
    browser = browser_for(translated(tmp_path, remote, wiring), language)
    failed = ("breach_check_failed", {"reason": "in_hibp"})
    breached = {
        "email": "new@example.test",
        "password": BREACHED_PASSWORD,
        "password_confirm": BREACHED_PASSWORD,
    }
    # FST's catalogs word it differently across versions: English must be gone.
    # (FST 5.4's catalogs leave this message untranslated in some languages.)
    refused = browser.expect("POST", "/register", failed, data=breached)
    assert OLD or LANGUAGES[language][2] in refused.text
    refused = browser.expect("POST", "/register", failed, json=breached)
    message = refused.json["response"]["field_errors"]["password"][0]
    assert OLD or LANGUAGES[language][2] in message
    clean = dict(breached, password=CLEAN_PASSWORD, password_confirm=CLEAN_PASSWORD)
    browser.expect("POST", "/register", ("breach_check_passed", {}), data=clean)
    change = {
        "password": CLEAN_PASSWORD,
        "new_password": BREACHED_PASSWORD,
        "new_password_confirm": BREACHED_PASSWORD,
    }
    browser.expect("POST", "/change", failed, json=change)
    browser.expect("POST", "/change", failed, data=change)
    change = dict(change, new_password=PASSWORD, new_password_confirm=PASSWORD)
    browser.expect("POST", "/change", ("breach_check_passed", {}), data=change)


def test_social_login_in_another_language(tmp_path: Path, remote: Remote, language: str) -> None:
    """Social login start and callback carry no text the pack reads: the same events."""
    import httpx

    browser = browser_for(translated(tmp_path, remote, WIRINGS[0]), language)
    start = browser.expect(
        "POST", "/login/oauthstart/fakehub", ("social_login_initiated", {"provider": "fakehub"})
    )
    callback = httpx.get(start.headers["Location"], timeout=5).headers["location"]
    done = ("social_login_completed", {"provider": "fakehub", "first_login": None})
    assert browser.expect("GET", callback, done).headers["Location"] == "/"


GERMAN_STRICT = """
extends: [preset:flask-security-too]
rules:
  - id: fst-breach-failed-register-json
    event: breach_check_failed
    match: POST /register
    if:
      json.password: {length: {min: 8, max: 128}}
      response.status: 400
      response.json.response.field_errors.password: present
      not:
        any:
          - response.body: {contains: Failed to contact breached passwords site}
          - response.body: {contains: Konnte keine Verbindung zum Dienst aufbauen}
    fields:
      reason: {value: in_hibp}
"""


@pytest.mark.not_possible(
    PACK,
    "breach_check_failed",
    why='"strict" + range API down, translated: only the message tells it from a breach',
)
def test_strict_outage_needs_the_language_message(tmp_path: Path, remote: Remote) -> None:
    """In German a "strict" outage reads as a breach; a user rule with the German message
    (overriding the pack's rule by id) tells them apart again."""
    remote.range_status = 500
    clean = {
        "email": "new@example.test",
        "password": CLEAN_PASSWORD,
        "password_confirm": CLEAN_PASSWORD,
    }
    strict = {"SECURITY_PASSWORD_CHECK_BREACHED": "strict"}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pack_only = browser_for(translated(tmp_path / "a", remote, WIRINGS[0], **strict), "de_DE")
    answer = pack_only.expect(
        "POST", "/register", ("breach_check_failed", {"reason": "in_hibp"}), json=clean
    )
    message = answer.json["response"]["field_errors"]["password"][0]
    assert message.startswith("Konnte keine Verbindung zum Dienst aufbauen"), message
    rules = hera_middleware.load_rules(text=GERMAN_STRICT)
    extended = browser_for(translated(tmp_path / "b", remote, WIRINGS[0], rules, **strict), "de_DE")
    assert extended.quiet("POST", "/register", json=clean).status_code == 400
