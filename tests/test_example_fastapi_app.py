"""The FastAPI example's own auth logic: PKCE, client authentication, codes, checks.

These run the example in-process over httpx's ASGI transport; the events it emits
are the business of ``test_example_fastapi.py``, which runs it under uvicorn.
"""

from __future__ import annotations

import base64
import importlib.util
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

import httpx
import pyotp
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fastapi_app"


def _load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastapi_example_app", EXAMPLE / "app.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


ex = _load_example()

SPA_URI = "https://spa.example.test/callback"
BACKEND_URI = "https://backend.example.test/oauth/callback"
BACKEND_SECRET = "s3cr:t/+%&=backend"
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 appendix B
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def basic(client_id: str, secret: str) -> str:
    """An Authorization header value with RFC 6749 2.3.1 encoding."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return "Basic " + base64.b64encode(raw).decode()


# --- Pure functions ----------------------------------------------------------------------


def test_s256_challenge_matches_rfc7636_appendix_b() -> None:
    """The S256 transform of the RFC's example verifier is the RFC's challenge."""
    assert ex.s256_challenge(VERIFIER) == CHALLENGE


@pytest.mark.parametrize(
    ("challenge", "method", "valid"),
    [
        pytest.param(CHALLENGE, "S256", True, id="s256"),
        pytest.param(CHALLENGE + "=", "S256", False, id="s256-padded"),
        pytest.param(CHALLENGE[:-1], "S256", False, id="s256-42-chars"),
        pytest.param(CHALLENGE[:-1] + ".", "S256", False, id="s256-not-base64url"),
        pytest.param("a" * 43, "plain", True, id="plain-43"),
        pytest.param("a" * 128, "plain", True, id="plain-128"),
        pytest.param("a" * 42, "plain", False, id="plain-42"),
        pytest.param("a" * 129, "plain", False, id="plain-129"),
        pytest.param("a" * 42 + "~", "plain", True, id="plain-unreserved"),
        pytest.param("a" * 42 + "+", "plain", False, id="plain-reserved-char"),
    ],
)
def test_challenge_shape(challenge: str, method: str, valid: bool) -> None:
    """Challenges are checked against RFC 7636's shape for their method."""
    assert ex.challenge_is_valid(challenge, method) is valid


@pytest.mark.parametrize(
    ("verifier", "challenge", "method", "matches"),
    [
        pytest.param(VERIFIER, CHALLENGE, "S256", True, id="s256"),
        pytest.param(VERIFIER[:-1] + "B", CHALLENGE, "S256", False, id="s256-wrong"),
        pytest.param(CHALLENGE, CHALLENGE, "S256", False, id="s256-challenge-as-verifier"),
        pytest.param(VERIFIER, VERIFIER, "plain", True, id="plain"),
        pytest.param(VERIFIER, VERIFIER[:-1] + "B", "plain", False, id="plain-wrong"),
        pytest.param("short", ex.s256_challenge("short"), "S256", False, id="too-short"),
        pytest.param("é" * 43, "é" * 43, "plain", False, id="not-ascii"),
    ],
)
def test_verifier_check(verifier: str, challenge: str, method: str, matches: bool) -> None:
    """A verifier matches only when well formed and transforming to the challenge."""
    assert ex.verifier_matches(verifier, challenge, method) is matches


@pytest.mark.parametrize(
    ("header", "credentials"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("Bearer abc", None, id="other-scheme"),
        pytest.param(basic("demo-backend", "pw"), ("demo-backend", "pw"), id="simple"),
        pytest.param(
            basic("partner:reports", BACKEND_SECRET),
            ("partner:reports", BACKEND_SECRET),
            id="url-encoded-colon-and-reserved",
        ),
        pytest.param(
            "Basic " + base64.b64encode(b"a+b:c+d").decode(), ("a b", "c d"), id="plus-is-space"
        ),
        pytest.param("basic " + base64.b64encode(b"x:y").decode(), ("x", "y"), id="scheme-case"),
        pytest.param("Basic " + base64.b64encode(b"x:").decode(), ("x", ""), id="empty-secret"),
    ],
)
def test_parse_basic_auth(header: str | None, credentials: tuple[str, str] | None) -> None:
    """Basic credentials are base64 of form-urlencoded ``client_id:secret``."""
    assert ex.parse_basic_auth(header) == credentials


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Basic !!!", id="not-base64"),
        pytest.param("Basic " + base64.b64encode(b"no-colon").decode(), id="no-colon"),
        pytest.param("Basic " + base64.b64encode(b":secret").decode(), id="empty-id"),
        pytest.param("Basic " + base64.b64encode(b"\xff:\xfe").decode(), id="not-utf8"),
    ],
)
def test_parse_basic_auth_malformed(header: str) -> None:
    """A Basic header that cannot be decoded is a ValueError, never a crash."""
    with pytest.raises(ValueError, match="Basic credentials"):
        ex.parse_basic_auth(header)


@pytest.mark.parametrize(
    ("password", "breached"),
    [
        pytest.param("password123", True, id="common"),
        pytest.param("correcthorsebatterystaple", True, id="famous"),
        pytest.param("Password123", True, id="case-matters-and-listed"),
        pytest.param("hera-demo-pass-2026", False, id="demo-password"),
    ],
)
def test_breach_check_sends_only_a_prefix(password: str, breached: bool) -> None:
    """The range lookup sees five upper-case hex digits, once; the answer is exact."""
    ranges: dict[str, frozenset[str]] = ex.load_breach_ranges(EXAMPLE / "breached-sha1.txt")
    asked: list[str] = []

    def pwned_range(prefix: str) -> frozenset[str]:
        asked.append(prefix)
        return ranges.get(prefix, frozenset())

    assert ex.breach_found(password, pwned_range) is breached
    assert len(asked) == 1
    assert len(asked[0]) == 5
    assert asked[0] == asked[0].upper()
    assert set(asked[0]) <= set("0123456789ABCDEF")


def test_breach_ranges_skip_comments(tmp_path: Path) -> None:
    """The bundled format: one SHA-1 a line, ``#`` comments, grouped by 5-digit prefix."""
    file = tmp_path / "list.txt"
    file.write_text("# comment\n5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8\n\n", encoding="ascii")
    assert ex.load_breach_ranges(file) == {
        "5BAA6": frozenset({"1E4C9B93F3F0682250B6CF8331B7EE68FD8"})
    }


@pytest.mark.parametrize(
    ("target", "result"),
    [
        pytest.param(None, "/", id="none"),
        pytest.param("/oauth/authorize?x=1", "/oauth/authorize?x=1", id="local"),
        pytest.param("//evil.example/", "/", id="scheme-relative"),
        pytest.param("/\\evil.example/", "/", id="backslash"),
        pytest.param("https://evil.example/", "/", id="absolute"),
    ],
)
def test_safe_next(target: str | None, result: str) -> None:
    """Only paths on this site are followed after sign-in."""
    assert ex.safe_next(target) == result


# --- Endpoints, in-process ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def _events_to_a_logger(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep this module's events off the terminal: they are not what it checks."""
    monkeypatch.setenv("HERA_OUTPUT", "logger:hera.example-tests")


@pytest.fixture
def settings() -> Any:
    """Default settings with a known TOTP secret."""
    return ex.Settings(totp_secret=pyotp.random_base32())


@pytest.fixture
def app(settings: Any) -> Any:
    """A fresh example app with a signed-in session for the demo user."""
    app = ex.create_app(settings)
    app.state.store.sessions["test-session"] = ex.Session(ex.DEMO_USER)
    return app


@pytest.fixture
async def http(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the app, carrying the demo user's session cookie."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies={"session": "test-session"}
    ) as client:
        yield client


async def issue_code(
    http: httpx.AsyncClient,
    client_id: str = "demo-spa",
    redirect_uri: str = SPA_URI,
    *,
    pkce: bool = True,
) -> str:
    """Run the authorization request through the consent form; return the code (S256)."""
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri}
    params["state"] = "st"
    if pkce:
        params |= {"code_challenge": CHALLENGE, "code_challenge_method": "S256"}
    consent = await http.get("/oauth/authorize", params=params)
    assert consent.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', consent.text)
    assert csrf is not None
    form = {**params, "csrf_token": csrf[1], "confirm": "yes"}
    response = await http.post("/oauth/authorize", data=form)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["state"] == ["st"]
    return query["code"][0]


async def redeem(
    http: httpx.AsyncClient, form: dict[str, str], authorization: str | None = None
) -> httpx.Response:
    """POST an authorization_code grant."""
    headers = {"Authorization": authorization} if authorization else {}
    data = {"grant_type": "authorization_code", **form}
    return await http.post("/oauth/token", data=data, headers=headers)


SPA_FORM = {"client_id": "demo-spa", "redirect_uri": SPA_URI, "code_verifier": VERIFIER}


async def test_token_success_has_no_store_headers(http: httpx.AsyncClient) -> None:
    """A good exchange answers a Bearer token that caches must not keep."""
    response = await redeem(http, {"code": await issue_code(http), **SPA_FORM})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert sorted(body) == ["access_token", "expires_in", "scope", "token_type"]
    assert (body["token_type"], body["expires_in"], body["scope"]) == ("Bearer", 3600, "profile")


@pytest.mark.parametrize(
    ("form", "authorization", "status", "error", "description"),
    [
        pytest.param(
            {"client_id": "demo-backend", "client_secret": "nope"},
            None,
            401,
            "invalid_client",
            "client authentication failed",
            id="post-wrong-secret",
        ),
        pytest.param(
            {},
            basic("demo-backend", "nope"),
            401,
            "invalid_client",
            "client authentication failed",
            id="basic-wrong-secret",
        ),
        pytest.param(
            {},
            "Basic !!!",
            401,
            "invalid_client",
            "malformed Basic credentials",
            id="basic-malformed",
        ),
        pytest.param(
            {"client_id": "nobody"},
            None,
            401,
            "invalid_client",
            "client authentication failed",
            id="unknown-client",
        ),
        pytest.param(
            {"client_id": "demo-backend"},
            None,
            401,
            "invalid_client",
            "client authentication failed",
            id="confidential-without-secret",
        ),
        pytest.param(
            {"client_id": "demo-spa", "client_secret": "x"},
            None,
            401,
            "invalid_client",
            "client authentication failed",
            id="public-with-secret",
        ),
        pytest.param(
            {"client_secret": BACKEND_SECRET},
            basic("demo-backend", BACKEND_SECRET),
            400,
            "invalid_request",
            "use only one client authentication method",
            id="basic-and-post",
        ),
        pytest.param(
            {"client_id": "demo-spa"},
            basic("demo-backend", BACKEND_SECRET),
            400,
            "invalid_request",
            "client_id does not match",
            id="basic-and-other-form-id",
        ),
    ],
)
async def test_client_authentication_errors(
    http: httpx.AsyncClient,
    form: dict[str, str],
    authorization: str | None,
    status: int,
    error: str,
    description: str,
) -> None:
    """Client authentication failures are RFC 6749 5.2 errors; 401 asks for Basic."""
    code = await issue_code(http, "demo-backend", BACKEND_URI)
    form = {"code": code, "redirect_uri": BACKEND_URI, "code_verifier": VERIFIER, **form}
    response = await redeem(http, form, authorization)
    assert response.status_code == status
    assert response.json() == {"error": error, "error_description": description}
    assert response.headers.get("www-authenticate") == (
        'Basic realm="hera-example"' if status == 401 else None
    )


@pytest.mark.parametrize(
    ("change", "error", "description"),
    [
        pytest.param({"code_verifier": None}, "invalid_request", "code_verifier required", id="v0"),
        pytest.param({"code_verifier": ""}, "invalid_request", "code_verifier required", id="v-"),
        pytest.param(
            {"code_verifier": "x" * 43},
            "invalid_grant",
            "code_verifier does not match code_challenge",
            id="wrong-verifier",
        ),
        pytest.param(
            {"code_verifier": "short"},
            "invalid_grant",
            "code_verifier does not match code_challenge",
            id="malformed-verifier",
        ),
        pytest.param(
            {"redirect_uri": SPA_URI + "/other"},
            "invalid_grant",
            "redirect_uri does not match",
            id="redirect-uri",
        ),
        pytest.param(
            {"redirect_uri": None},
            "invalid_grant",
            "redirect_uri does not match",
            id="redirect-uri-missing",
        ),
        pytest.param(
            {"code": "unknown"},
            "invalid_grant",
            "invalid or expired authorization code",
            id="unknown-code",
        ),
        pytest.param({"code": None}, "invalid_request", "code required", id="no-code"),
        pytest.param({"grant_type": None}, "invalid_request", "grant_type required", id="no-gt"),
        pytest.param(
            {"grant_type": "password"},
            "unsupported_grant_type",
            "only authorization_code",
            id="password-grant",
        ),
    ],
)
async def test_grant_errors(
    http: httpx.AsyncClient, change: dict[str, str | None], error: str, description: str
) -> None:
    """Each grant problem has its own 400 error and description."""
    form: dict[str, str | None] = {"grant_type": "authorization_code"}
    form |= {"code": await issue_code(http), **SPA_FORM} | change
    response = await http.post(
        "/oauth/token", data={k: v for k, v in form.items() if v is not None}
    )
    assert response.status_code == 400
    assert response.json() == {"error": error, "error_description": description}


async def test_code_is_bound_to_its_client(http: httpx.AsyncClient) -> None:
    """A code issued to one client cannot be redeemed by another."""
    code = await issue_code(http, "demo-backend", BACKEND_URI)
    response = await redeem(http, {"code": code, **SPA_FORM})
    assert response.json()["error_description"] == "authorization code issued to another client"


async def test_replayed_code_is_refused_and_revokes_its_token(
    app: Any, http: httpx.AsyncClient
) -> None:
    """A code works once; presenting it again revokes the token it bought."""
    store = app.state.store
    form = {"code": await issue_code(http), **SPA_FORM}
    issued = (await redeem(http, form)).json()["access_token"]
    assert issued in store.tokens
    again = await redeem(http, form)
    assert again.json() == {
        "error": "invalid_grant",
        "error_description": "authorization code already used",
    }
    assert issued not in store.tokens


async def test_failed_attempt_uses_up_the_code(http: httpx.AsyncClient) -> None:
    """After a wrong verifier the right one no longer helps: codes are single use."""
    form = {"code": await issue_code(http), **SPA_FORM}
    assert (await redeem(http, {**form, "code_verifier": "x" * 43})).status_code == 400
    retry = await redeem(http, form)
    assert retry.json()["error_description"] == "authorization code already used"


@pytest.mark.parametrize("settings", [ex.Settings(code_ttl=0.0)], ids=["ttl-0"])
async def test_expired_code_is_refused(http: httpx.AsyncClient) -> None:
    """A code past its lifetime is an invalid grant."""
    form = {"code": await issue_code(http), **SPA_FORM}
    time.sleep(0.01)
    assert (await redeem(http, form)).json()["error_description"] == (
        "invalid or expired authorization code"
    )


async def test_basic_auth_with_url_encoded_id_and_secret(http: httpx.AsyncClient) -> None:
    """Basic credentials with ':' in the id and reserved characters in the secret work."""
    code = await issue_code(http, "partner:reports", "https://reports.example.test/cb")
    form = {"code": code, "redirect_uri": "https://reports.example.test/cb"}
    response = await redeem(
        http, {**form, "code_verifier": VERIFIER}, basic("partner:reports", "reports secret")
    )
    assert response.status_code == 200


async def test_downgrade_verifier_without_challenge_is_refused(http: httpx.AsyncClient) -> None:
    """A verifier for a code issued without a challenge is refused (RFC 9700 2.1.1)."""
    code = await issue_code(http, "demo-backend", BACKEND_URI, pkce=False)
    form = {"code": code, "redirect_uri": BACKEND_URI, "code_verifier": VERIFIER}
    response = await redeem(http, form, basic("demo-backend", BACKEND_SECRET))
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "code_verifier sent but no code_challenge",
    }


def authorize_query(**params: str | None) -> dict[str, str]:
    """Authorization request parameters for the SPA, S256, with overrides (None drops)."""
    base: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "demo-spa",
        "redirect_uri": SPA_URI,
        "state": "st",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
    }
    return {k: v for k, v in (base | params).items() if v is not None}


@pytest.mark.parametrize(
    ("params", "error", "description"),
    [
        pytest.param(
            {"code_challenge": None, "code_challenge_method": None},
            "invalid_request",
            "code challenge required",
            id="public-without-challenge",
        ),
        pytest.param(
            {"code_challenge": None},
            "invalid_request",
            "code challenge required",
            id="method-without-challenge",
        ),
        pytest.param(
            {"code_challenge_method": "S512"},
            "invalid_request",
            "unsupported code_challenge_method",
            id="s512",
        ),
        pytest.param(
            {"code_challenge": "short"},
            "invalid_request",
            "invalid code_challenge",
            id="short-challenge",
        ),
        pytest.param(
            {"response_type": "token"},
            "unsupported_response_type",
            "only response_type=code is supported",
            id="implicit",
        ),
        pytest.param({"scope": "admin"}, "invalid_scope", "unknown scope", id="scope"),
    ],
)
async def test_authorize_errors_redirect_to_client(
    http: httpx.AsyncClient, params: dict[str, str | None], error: str, description: str
) -> None:
    """Errors after the client is known go back to its redirect_uri with the state."""
    response = await http.get("/oauth/authorize", params=authorize_query(**params))
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == SPA_URI
    assert parse_qs(location.query) == {
        "error": [error],
        "error_description": [description],
        "state": ["st"],
    }


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"client_id": "nobody"}, id="unknown-client"),
        pytest.param({"client_id": None}, id="no-client"),
        pytest.param({"redirect_uri": "https://evil.example/cb"}, id="unregistered-redirect"),
    ],
)
async def test_authorize_never_redirects_to_unverified_uri(
    http: httpx.AsyncClient, params: dict[str, str | None]
) -> None:
    """An unknown client or redirect_uri gets a 400 page, not a redirect."""
    response = await http.get("/oauth/authorize", params=authorize_query(**params))
    assert response.status_code == 400
    assert "location" not in response.headers


async def test_authorize_asks_for_login_then_consent(app: Any, http: httpx.AsyncClient) -> None:
    """Without a session the user signs in first; then a consent form with a CSRF token."""
    query = authorize_query()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as nobody:
        anonymous = await nobody.get("/oauth/authorize", params=query)
    assert anonymous.status_code == 302
    assert anonymous.headers["location"].startswith("/login?next=%2Foauth%2Fauthorize%3F")
    consent = await http.get("/oauth/authorize", params=query)
    assert consent.status_code == 200
    assert 'name="csrf_token"' in consent.text
    forged = await http.post("/oauth/authorize", data={**query, "confirm": "yes"})
    assert forged.status_code == 400
    assert "location" not in forged.headers


def test_totp_code_is_accepted_once(settings: Any) -> None:
    """RFC 6238 5.2: the same code never signs in twice."""
    store = ex.Store(settings)
    user = store.users[ex.DEMO_USER]
    code = pyotp.TOTP(settings.totp_secret).now()
    assert store.check_totp(user, code) is True
    assert store.check_totp(user, code) is False


@pytest.mark.parametrize(
    ("code", "accepted"),
    [
        pytest.param("", False, id="empty"),
        pytest.param("12345", False, id="five-digits"),
        pytest.param("abcdef", False, id="letters"),
    ],
)
def test_totp_code_shape(settings: Any, code: str, accepted: bool) -> None:
    """Only six digits can be a TOTP code."""
    store = ex.Store(settings)
    assert store.check_totp(store.users[ex.DEMO_USER], code) is accepted


def test_captcha_outcomes() -> None:
    """Solved, wrong, missing, replayed and expired captchas each get their message."""
    store = ex.Store(ex.Settings(captcha_ttl=60))
    token, question = store.new_captcha()
    a, b = (int(n) for n in question.split(" + "))
    assert store.check_captcha(token, str(a + b)) is None
    assert store.check_captcha(token, str(a + b)) == "captcha invalid"  # single use
    token, _ = store.new_captcha()
    assert store.check_captcha(token, "-1") == "captcha invalid"
    assert store.check_captcha(None, "3") == "captcha missing"
    assert store.check_captcha("t", "") == "captcha missing"
    expired = ex.Store(ex.Settings(captcha_ttl=-1))
    token, question = expired.new_captcha()
    a, b = (int(n) for n in question.split(" + "))
    assert expired.check_captcha(token, str(a + b)) == "captcha expired"
