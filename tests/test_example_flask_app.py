"""The Flask example's own logic: captcha tokens, the offline breach check, TOTP, redirects.

These run in-process; the events the example emits are the business of
``test_example_flask.py`` (under gunicorn) and ``test_authlib_preset.py`` (the
Authlib pack against its OAuth endpoints).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pyotp
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flask_app"


def _load_example() -> ModuleType:
    name = "flask_example_app"
    if name in sys.modules:  # test_authlib_preset.py may have loaded it already
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


ex = _load_example()


# --- Captcha ------------------------------------------------------------------------------


def _answer(question: str) -> str:
    a, _, b = question.partition(" + ")
    return str(int(a) + int(b))


def test_captcha_solved_once() -> None:
    """A right answer passes once; the same token again is invalid."""
    captcha = ex.Captcha(b"k" * 32, ttl=60)
    token, question = captcha.issue()
    assert captcha.check(token, _answer(question)) is None
    assert captcha.check(token, _answer(question)) == "invalid"


@pytest.mark.parametrize(
    ("token", "answer", "problem"),
    [
        pytest.param(None, "3", "missing", id="no-token"),
        pytest.param("", "3", "missing", id="empty-token"),
        pytest.param("x.1.y", None, "missing", id="no-answer"),
        pytest.param("x.1.y", "  ", "missing", id="blank-answer"),
        pytest.param("garbage", "3", "invalid", id="malformed"),
        pytest.param("n.notatime.mac", "3", "invalid", id="bad-time"),
    ],
)
def test_captcha_refusals(token: str | None, answer: str | None, problem: str) -> None:
    """Missing parts are ``missing``; tokens that do not parse are ``invalid``."""
    assert ex.Captcha(b"k" * 32, ttl=60).check(token, answer) == problem


def test_captcha_wrong_forged_and_foreign() -> None:
    """A wrong answer, a changed issue time and another server's token are invalid."""
    captcha = ex.Captcha(b"k" * 32, ttl=60)
    token, question = captcha.issue()
    assert captcha.check(token, str(int(_answer(question)) + 1)) == "invalid"
    nonce, issued, mac = token.split(".")
    later = f"{nonce}.{int(issued) + 1000}.{mac}"
    assert captcha.check(later, _answer(question)) == "invalid"
    other = ex.Captcha(b"o" * 32, ttl=60)
    assert other.check(token, _answer(question)) == "invalid"
    assert captcha.check(token, f" {_answer(question)} ") is None  # spaces around are fine


def test_captcha_expires() -> None:
    """A right answer after the lifetime is ``expired``, not ``invalid``."""
    captcha = ex.Captcha(b"k" * 32, ttl=0.05)
    token, question = captcha.issue()
    time.sleep(0.1)
    assert captcha.check(token, _answer(question)) == "expired"


# --- Breach check -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pwned() -> Any:
    return ex.PwnedRanges(EXAMPLE / "pwned-passwords.txt")


def test_range_answers_like_the_range_api(pwned: Any) -> None:
    """``range(prefix)`` gives ``SUFFIX:COUNT`` lines (35 hex digits), CRLF-separated,
    for exactly the hashes with that prefix, in any case of the prefix."""
    digest = hashlib.sha1(b"password123").hexdigest().upper()
    answer = pwned.range(digest[:5].lower())
    lines = answer.split("\r\n")
    assert f"{digest[5:]}:2500000" in lines
    assert all(len(line.partition(":")[0]) == 35 for line in lines)
    assert pwned.range("FFFFF") == ""
    with pytest.raises(ValueError, match="five hex digits"):
        pwned.range("XYZ12")


def test_every_listed_hash_is_found(pwned: Any) -> None:
    """Each line of the bundled file is found through its own prefix."""
    for raw in (EXAMPLE / "pwned-passwords.txt").read_text().splitlines():
        if raw and not raw.startswith("#"):
            digest, _, count = raw.partition(":")
            assert f"{digest[5:]}:{count}" in pwned.range(digest[:5]).split("\r\n")


@pytest.mark.parametrize(
    ("password", "breached"),
    [
        pytest.param("password123", True, id="common"),
        pytest.param("correcthorsebatterystaple", True, id="famous"),
        pytest.param("Password123", False, id="case-counts"),
        pytest.param("hera-demo-pass-2026", False, id="unknown"),
    ],
)
def test_is_breached_sends_only_the_prefix(pwned: Any, password: str, breached: bool) -> None:
    """The range lookup sees five upper-case hex digits of the SHA-1, nothing else."""
    asked: list[str] = []

    def lookup(prefix: str) -> str:
        asked.append(prefix)
        return pwned.range(prefix)

    assert ex.is_breached(password, lookup) is breached
    assert asked == [hashlib.sha1(password.encode()).hexdigest().upper()[:5]]


def test_padding_lines_do_not_count() -> None:
    """A suffix answered with a count of 0 (range API padding) is no breach."""
    digest = hashlib.sha1(b"padded").hexdigest().upper()
    assert not ex.is_breached("padded", lambda prefix: f"{digest[5:]}:0\r\nABC:3")
    assert ex.is_breached("padded", lambda prefix: f"abc:1\r\n{digest[5:].lower()}:7")


# --- TOTP, recovery codes, redirects ------------------------------------------------------


def test_totp_accepts_each_step_once() -> None:
    """The current code passes once; a replay, a wrong and a malformed code fail."""
    store = ex.Store(ex.Settings(totp_secret=pyotp.random_base32()))
    user = store.users["demo"]
    code = pyotp.TOTP(user.totp_secret).now()
    assert store.check_totp(user, code)
    assert not store.check_totp(user, code)
    assert not store.check_totp(user, "12345")
    assert not store.check_totp(user, "abcdef")


def test_recovery_codes_work_once() -> None:
    """A recovery code works once, in any case and with spaces around."""
    store = ex.Store(ex.Settings())
    user = store.users["demo"]
    assert store.use_recovery_code(user, " K2M4-7XQ9 ")
    assert not store.use_recovery_code(user, "k2m4-7xq9")
    assert not store.use_recovery_code(user, "0000-0000")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param("/account", "/account", id="path"),
        pytest.param("/oauth/authorize?x=1", "/oauth/authorize?x=1", id="query"),
        pytest.param(None, "/", id="none"),
        pytest.param("https://evil.example/", "/", id="absolute"),
        pytest.param("//evil.example/", "/", id="scheme-relative"),
        pytest.param("/\\evil.example", "/", id="backslash"),
    ],
)
def test_safe_next(target: str | None, expected: str) -> None:
    """Only paths on this site are followed after sign-in (no open redirect)."""
    assert ex.safe_next(target) == expected


def test_clients_are_authlib_clients() -> None:
    """The public client authenticates with none, the confidential one with Basic or
    post, and only its own redirect URI and the supported scopes are accepted."""
    spa, backend = ex.CLIENTS["flask-spa"], ex.CLIENTS["flask-backend"]
    assert spa.check_endpoint_auth_method("none", "token")
    assert not spa.check_endpoint_auth_method("client_secret_basic", "token")
    assert not spa.check_client_secret("")
    for method in ("client_secret_basic", "client_secret_post"):
        assert backend.check_endpoint_auth_method(method, "token")
    assert not backend.check_endpoint_auth_method("none", "token")
    assert backend.check_client_secret("backend-s3cret-2026")
    assert not backend.check_client_secret("backend-s3cret-2027")
    assert spa.check_redirect_uri("https://spa.example.test/callback")
    assert not spa.check_redirect_uri("https://spa.example.test/callback/")
    assert spa.get_allowed_scope("profile admin email") == "profile email"
