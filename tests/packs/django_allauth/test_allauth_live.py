"""preset:django-allauth against a live django-allauth project, server-rendered and headless.

The project (``allauth_project/``) runs in a subprocess under uvicorn (Django's ASGI
handler) and gunicorn (its WSGI handler) with HeraEventsMiddleware and
``HERA_RULES = "preset:django-allauth"``, and once wrapped by the generic ASGI
middleware instead. Its OpenID Connect provider is a fake on 127.0.0.1 (allauth's
``openid_connect`` provider, ``server_url`` pointing at it). TOTP codes are computed
with pyotp from the seeded secrets; recovery codes come from allauth itself. Every
step asserts the exact events it caused, an empty list where it must cause none.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from _allauth_oidc import FakeOIDC
from _allauth_server import Browser, Server, served

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/packs
from _pack_versions import INNER

PACK = "django-allauth"
#: allauth's (major, minor) in this process, and so in the servers it starts.
ALLAUTH = tuple(int(part) for part in version("django-allauth").split(".")[:2])
TOTP = {"method": "totp"}
RECOVERY = {"method": "recovery_code"}
DISPLAYED = {"event": "mfa_challenge_displayed", **TOTP}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOIDC]:
    with FakeOIDC() as provider:
        yield provider


@pytest.fixture(autouse=True)
def _provider_reset(fake: FakeOIDC) -> None:
    fake.deny = False
    fake.token_status = 200


# Under the oldest allauth (test_allauth_versions.py) uvicorn only: the handler is
# Django's, not allauth's, and the run stays short.
@pytest.fixture(scope="module", params=["asgi"] if INNER else ["asgi", "wsgi"])
def server(
    request: pytest.FixtureRequest, fake: FakeOIDC, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The project under uvicorn (ASGI) and under gunicorn (WSGI), Django middleware in both."""
    with served(request.param, tmp_path_factory.mktemp(request.param), fake.url) as running:
        yield running


@pytest.fixture
def browser(server: Server) -> Iterator[Browser]:
    client = Browser(server)
    yield client
    client.close()


def expect(server: Server, step: str, events: list[dict[str, Any]]) -> None:
    got = server.step_events(step)
    assert got == events, f"{step}: got {got}"


def test_servers_run_the_versions_asked_for(server: Server) -> None:
    """The server runs the allauth and Django of this process: under ``run_under`` the
    pinned ones (``HERA_PACK_VERSIONS``), else the environment's."""
    here = " ".join(f"{name}=={version(name)}" for name in ("django-allauth", "Django"))
    pinned = {r for r in os.environ.get("HERA_PACK_VERSIONS", "").split() if "==" in r}
    assert pinned <= set(here.split()), (pinned, here)
    assert httpx.get(f"{server.url}/_versions/", timeout=10).text == here
    expect(server, "versions", [])


def totp_now(user: dict[str, Any]) -> str:
    return pyotp.TOTP(user["secret"]).now()


def wrong_totp(user: dict[str, Any]) -> str:
    right = totp_now(user)
    return f"{(int(right) + 500_000) % 1_000_000:06d}"


def password_step(server: Server, browser: Browser, user: dict[str, Any]) -> None:
    page = browser.get("/accounts/login/")
    assert page.status_code == 200
    expect(server, "login-page", [])
    sent = browser.post(
        "/accounts/login/", {"login": user["email"], "password": server.users["password"]}
    )
    assert sent.status_code == 302
    assert sent.headers["location"] == "/accounts/2fa/authenticate/"
    expect(server, "password", [])


# --- MFA, server-rendered ----------------------------------------------------------


@pytest.mark.produces(PACK, "mfa_challenge_displayed", via="GET 2fa/authenticate/ 200, code form")
@pytest.mark.produces(PACK, "mfa_challenge_failed", via="200 with errorlist, 6-digit code")
@pytest.mark.produces(PACK, "mfa_challenge_succeeded", via="302 onwards, 6-digit code")
def test_totp_wrong_then_right(server: Server, browser: Browser) -> None:
    """A wrong TOTP code re-renders the form (failed), the right one signs in (succeeded)."""
    user = server.mfa_user()
    password_step(server, browser, user)
    page = browser.get("/accounts/2fa/authenticate/")
    assert page.status_code == 200
    expect(server, "challenge", [DISPLAYED])
    # The login page while the stage is pending: from 65.0 a redirect back to the stage;
    # before, the login form again, and the stage is dropped (a code posted then goes
    # to the login page). Neither is an outcome.
    login_page = browser.get("/accounts/login/")
    if ALLAUTH >= (65, 0):
        assert login_page.status_code == 302
        assert login_page.headers["location"] == "/accounts/2fa/authenticate/"
        expect(server, "login-page-pending", [])
    else:
        assert login_page.status_code == 200
        late = browser.post("/accounts/2fa/authenticate/", {"code": wrong_totp(user)})
        assert (late.status_code, late.headers["location"]) == (302, "/accounts/login/")
        expect(server, "stage-dropped", [])
        password_step(server, browser, user)
        browser.get("/accounts/2fa/authenticate/")
        expect(server, "challenge-again", [DISPLAYED])
    wrong = browser.post("/accounts/2fa/authenticate/", {"code": wrong_totp(user)})
    assert wrong.status_code == 200
    expect(server, "wrong-code", [{"event": "mfa_challenge_failed", **TOTP}])
    right = browser.post("/accounts/2fa/authenticate/", {"code": totp_now(user)})
    assert (right.status_code, right.headers["location"]) == (302, "/profile/")
    expect(server, "right-code", [{"event": "mfa_challenge_succeeded", **TOTP}])
    assert browser.get("/profile/").status_code == 200
    expect(server, "landing", [])


@pytest.mark.produces(PACK, "mfa_challenge_failed", via="200 with errorlist, 8-digit code")
@pytest.mark.produces(PACK, "mfa_challenge_succeeded", via="302 onwards, 8-digit code")
def test_recovery_code_wrong_then_right(server: Server, browser: Browser) -> None:
    """The same form takes recovery codes: their 8-digit shape gives method recovery_code."""
    user = server.mfa_user()
    codes = user["recovery_codes"]
    assert all(len(c) == 8 and c.isdigit() for c in codes)
    password_step(server, browser, user)
    browser.get("/accounts/2fa/authenticate/")
    expect(server, "challenge", [DISPLAYED])
    unused = next(f"{n:08d}" for n in range(10**8) if f"{n:08d}" not in codes)
    wrong = browser.post("/accounts/2fa/authenticate/", {"code": unused})
    assert wrong.status_code == 200
    expect(server, "wrong-recovery", [{"event": "mfa_challenge_failed", **RECOVERY}])
    right = browser.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert (right.status_code, right.headers["location"]) == (302, "/profile/")
    expect(server, "right-recovery", [{"event": "mfa_challenge_succeeded", **RECOVERY}])


def test_german_pages_give_the_same_events(server: Server) -> None:
    """With Accept-Language: de allauth answers in German; the events are the same."""
    german = Browser(server, language="de")
    try:
        user = server.mfa_user()
        password_step(server, german, user)
        page = german.get("/accounts/2fa/authenticate/")
        assert "Zwei-Faktor-Authentifizierung" in page.text
        expect(server, "challenge-de", [DISPLAYED])
        wrong = german.post("/accounts/2fa/authenticate/", {"code": wrong_totp(user)})
        assert "Falscher Code" in wrong.text or "Ungültiger Code" in wrong.text, wrong.text
        expect(server, "wrong-de", [{"event": "mfa_challenge_failed", **TOTP}])
        right = german.post("/accounts/2fa/authenticate/", {"code": totp_now(user)})
        assert right.status_code == 302
        expect(server, "right-de", [{"event": "mfa_challenge_succeeded", **TOTP}])
    finally:
        german.close()


def test_login_detour_and_stage_less_posts_emit_nothing(server: Server, browser: Browser) -> None:
    """A sign-in redirect, and the MFA page without a pending login, are no outcomes."""
    detour = browser.get("/profile/")
    assert detour.status_code == 302
    assert detour.headers["location"].startswith("/accounts/login/?next=")
    expect(server, "detour", [])
    page = browser.get("/accounts/2fa/authenticate/")
    assert (page.status_code, page.headers["location"]) == (302, "/accounts/login/")
    posted = browser.post("/accounts/2fa/authenticate/", {"code": "123456"})
    assert (posted.status_code, posted.headers["location"]) == (302, "/accounts/login/")
    expect(server, "no-stage", [])


def test_reauthentication_pages_are_no_challenge(server: Server, browser: Browser) -> None:
    """Signed in, re-entering the password or an MFA code for a sensitive page emits nothing."""
    user = server.mfa_user()
    password_step(server, browser, user)
    browser.get("/accounts/2fa/authenticate/")
    browser.post("/accounts/2fa/authenticate/", {"code": totp_now(user)})
    expect(server, "signed-in", [DISPLAYED, {"event": "mfa_challenge_succeeded", **TOTP}])
    assert browser.get("/accounts/reauthenticate/").status_code == 200
    again = browser.post("/accounts/reauthenticate/", {"password": server.users["password"]})
    assert again.status_code == 302
    assert browser.get("/accounts/2fa/reauthenticate/").status_code == 200
    wrong = browser.post("/accounts/2fa/reauthenticate/", {"code": "00000000"})
    assert wrong.status_code == 200
    right = browser.post("/accounts/2fa/reauthenticate/", {"code": user["recovery_codes"][1]})
    assert right.status_code == 302
    expect(server, "reauthenticate", [])


# --- social login, server-rendered ---------------------------------------------------

INITIATED = {"event": "social_login_initiated", "provider": "fakeoidc"}
LOGIN = "/accounts/oidc/fakeoidc/login/"


def identity(fake: FakeOIDC, name: str, *, email: bool = True) -> None:
    """Who the fake provider signs in next (a new subject per test run of `name`)."""
    fake.identity = {"sub": f"sub-{name}", "name": name.title()}
    if email:
        fake.identity.update(email=f"{name}@example.test", email_verified=True)


def start_social(server: Server, browser: Browser, process: str = "login") -> Any:
    page = browser.get(f"{LOGIN}?process={process}")
    assert page.status_code == 200  # the confirmation page (no SOCIALACCOUNT_LOGIN_ON_GET)
    expect(server, "confirm-page", [])
    return browser.post(f"{LOGIN}?process={process}")


def redirected(server: Server, browser: Browser, fake: FakeOIDC, name: str) -> Any:
    """Sign `name` in at the provider next: the login view's redirect to it (initiated)."""
    identity(fake, name)
    redirect = start_social(server, browser)
    expect(server, "redirect", [INITIATED])
    return redirect


@pytest.mark.produces(PACK, "social_login_initiated", via="login view 302, state in Location")
@pytest.mark.produces(PACK, "social_login_completed", via="callback with code, 302 onwards")
@pytest.mark.produces(PACK, "social_login_completed.first_login", via="signal.user_signed_up")
def test_first_then_returning_social_login(
    server: Server, browser: Browser, fake: FakeOIDC
) -> None:
    """Auto-signup: the first login has first_login true (user_signed_up), the next false."""
    redirect = redirected(server, browser, fake, f"social-{server.kind}")
    callback = browser.get(browser.follow_provider(redirect))
    assert (callback.status_code, callback.headers["location"]) == (302, "/profile/")
    completed = {"event": "social_login_completed", "provider": "fakeoidc"}
    expect(server, "first-callback", [{**completed, "first_login": True}])
    assert browser.get("/profile/").status_code == 200
    browser.post("/accounts/logout/")
    expect(server, "landing-logout", [])
    callback = browser.get(browser.follow_provider(start_social(server, browser)))
    assert (callback.status_code, callback.headers["location"]) == (302, "/profile/")
    expect(server, "returning", [INITIATED, {**completed, "first_login": False}])


def test_provider_denial_completes_nothing(
    server: Server, browser: Browser, fake: FakeOIDC
) -> None:
    """error=access_denied at the callback goes to allauth's cancelled page: no completion."""
    redirect = redirected(server, browser, fake, f"denied-{server.kind}")
    fake.deny = True
    back = browser.follow_provider(redirect)
    assert "error=access_denied" in back
    callback = browser.get(back)
    assert callback.status_code == 302
    assert callback.headers["location"] == "/accounts/3rdparty/login/cancelled/"
    expect(server, "denied", [])


def test_provider_outage_completes_nothing(
    server: Server, browser: Browser, fake: FakeOIDC
) -> None:
    """A token endpoint answering 500 ends on an error page; a dead provider starts nothing."""
    redirect = redirected(server, browser, fake, f"outage-{server.kind}")
    fake.token_status = 500
    callback = browser.get(browser.follow_provider(redirect))
    # allauth's "Third-Party Login Failure" page: 401 from 65.14 on, 200 before.
    assert callback.status_code == (401 if ALLAUTH >= (65, 14) else 200)
    expect(server, "token-500", [])
    dead = "/accounts/oidc/deadoidc/login/?process=login"
    assert browser.get(dead).status_code == 200
    closed = browser.post(dead)
    assert closed.status_code == 500  # allauth lets the connection error through
    expect(server, "closed-port", [])


@pytest.mark.produces(PACK, "social_login_completed", via="POST 3rdparty/signup/ 302 onwards")
@pytest.mark.not_possible(
    PACK,
    "social_login_completed.provider",
    why="after allauth's social signup form the provider is only in the session: null",
)
def test_signup_form_for_social_users(server: Server, browser: Browser, fake: FakeOIDC) -> None:
    """Without a usable e-mail the callback shows the signup form; posting it signs in."""
    name = f"noemail-{server.kind}"
    identity(fake, name, email=False)
    callback = browser.get(browser.follow_provider(start_social(server, browser)))
    assert callback.status_code == 302
    assert callback.headers["location"] == "/accounts/3rdparty/signup/"
    expect(server, "to-signup-form", [INITIATED])
    form = browser.get("/accounts/3rdparty/signup/")
    assert form.status_code == 200
    invalid = browser.post("/accounts/3rdparty/signup/", {"email": "not-an-address"})
    assert invalid.status_code == 200
    expect(server, "signup-form", [])
    done = browser.post("/accounts/3rdparty/signup/", {"email": f"{name}@example.test"})
    assert (done.status_code, done.headers["location"]) == (302, "/profile/")
    expect(
        server,
        "signup-posted",
        [{"event": "social_login_completed", "provider": None, "first_login": True}],
    )


@pytest.mark.produces(PACK, "social_link_initiated", via="process=connect, 302 with state")
def test_connect_from_the_connections_page(
    server: Server, browser: Browser, fake: FakeOIDC
) -> None:
    """A signed-in user connects a provider: link initiated; the callback is no login."""
    login = browser.post(
        "/accounts/login/",
        {"login": server.users["plain"], "password": server.users["password"]},
    )
    assert (login.status_code, login.headers["location"]) == (302, "/profile/")
    assert browser.get("/accounts/3rdparty/").status_code == 200
    expect(server, "connections-page", [])
    identity(fake, f"linked-{server.kind}")
    redirect = start_social(server, browser, process="connect")
    expect(server, "connect", [{"event": "social_link_initiated", "provider": "fakeoidc"}])
    callback = browser.get(browser.follow_provider(redirect))
    assert (callback.status_code, callback.headers["location"]) == (302, "/accounts/3rdparty/")
    assert browser.get("/accounts/3rdparty/").status_code == 200
    expect(server, "connected", [])


# --- headless JSON API -------------------------------------------------------------

BROWSER_API = "/_allauth/browser/v1"
APP_API = "/_allauth/app/v1"


def headless_password(
    server: Server, browser: Browser, api: str, user: dict[str, Any], **headers: str
) -> Any:
    body = {"email": user["email"], "password": server.users["password"]}
    if api == APP_API:
        return browser.http.post(f"{api}/auth/login", json=body, headers=headers)
    return browser.post_json(f"{api}/auth/login", body)


@pytest.mark.produces(
    PACK, "mfa_challenge_displayed", via="headless login 401, pending mfa_authenticate"
)
@pytest.mark.produces(
    PACK, "mfa_challenge_failed", via="headless 400, errors[0].code incorrect_code"
)
@pytest.mark.produces(PACK, "mfa_challenge_succeeded", via="headless 2fa/authenticate 200")
def test_headless_browser_totp_and_recovery_code(server: Server, browser: Browser) -> None:
    """Browser client: 401 with the pending flow, a wrong TOTP (400), a recovery code (200)."""
    user = server.mfa_user()
    assert browser.get(f"{BROWSER_API}/config").status_code == 200
    assert browser.get(f"{BROWSER_API}/auth/session").status_code == 401
    expect(server, "probe", [])
    pending = headless_password(server, browser, BROWSER_API, user)
    assert pending.status_code == 401
    flows = pending.json()["data"]["flows"]
    assert {"id": "mfa_authenticate", "is_pending": True, "types": ["recovery_codes", "totp"]} in (
        flows
    )
    expect(server, "password", [DISPLAYED])
    again = browser.get(f"{BROWSER_API}/auth/session")
    assert again.status_code == 401
    expect(server, "probe-pending", [])
    url = f"{BROWSER_API}/auth/2fa/authenticate"
    wrong = browser.post_json(url, {"code": wrong_totp(user)})
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["code"] == "incorrect_code"
    expect(server, "wrong", [{"event": "mfa_challenge_failed", **TOTP}])
    right = browser.post_json(url, {"code": user["recovery_codes"][0]})
    assert right.status_code == 200
    expect(server, "recovery", [{"event": "mfa_challenge_succeeded", **RECOVERY}])
    reauth = browser.post_json(f"{BROWSER_API}/auth/2fa/reauthenticate", {"code": totp_now(user)})
    assert reauth.status_code == 200
    expect(server, "reauthenticate", [])


def test_headless_app_client_in_german(server: Server, browser: Browser) -> None:
    """App client (X-Session-Token), Accept-Language de: the same events as in English."""
    user = server.mfa_user()
    german = {"Accept-Language": "de"}
    pending = headless_password(server, browser, APP_API, user, **german)
    assert pending.status_code == 401
    token = pending.json()["meta"]["session_token"]
    expect(server, "password", [DISPLAYED])
    headers = {"X-Session-Token": token, **german}
    url = f"{APP_API}/auth/2fa/authenticate"
    wrong = browser.http.post(url, json={"code": "00000000"}, headers=headers)
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["message"] != "Incorrect code."  # translated
    expect(server, "wrong", [{"event": "mfa_challenge_failed", **RECOVERY}])
    right = browser.http.post(url, json={"code": totp_now(user)}, headers=headers)
    assert right.status_code == 200
    expect(server, "right", [{"event": "mfa_challenge_succeeded", **TOTP}])


def redirect_form(browser: Browser, process: str) -> dict[str, str]:
    return {
        "provider": "fakeoidc",
        "process": process,
        "callback_url": f"{browser.server.url}/app/social-callback",
    }


@pytest.mark.produces(
    PACK, "social_login_initiated", via="headless provider/redirect 302 with state"
)
@pytest.mark.produces(
    PACK, "social_login_completed", via="callback 302 to callback_url without error"
)
def test_headless_social_login(server: Server, browser: Browser, fake: FakeOIDC) -> None:
    """provider/redirect starts it; the callback back to the frontend completes it, first time."""
    identity(fake, f"headless-{server.kind}")
    browser.get(f"{BROWSER_API}/config")
    redirect = browser.post(
        f"{BROWSER_API}/auth/provider/redirect", redirect_form(browser, "login")
    )
    expect(server, "redirect", [INITIATED])
    callback = browser.get(browser.follow_provider(redirect))
    assert callback.status_code == 302
    assert callback.headers["location"] == f"{server.url}/app/social-callback"
    completed = {"event": "social_login_completed", "provider": "fakeoidc", "first_login": True}
    expect(server, "callback", [completed])
    assert browser.get(f"{BROWSER_API}/auth/session").status_code == 200
    expect(server, "session", [])


def test_headless_social_denial(server: Server, browser: Browser, fake: FakeOIDC) -> None:
    """A denial comes back to callback_url with error=...: no completion."""
    identity(fake, f"headless-denied-{server.kind}")
    redirect = browser.post(
        f"{BROWSER_API}/auth/provider/redirect", redirect_form(browser, "login")
    )
    expect(server, "redirect", [INITIATED])
    fake.deny = True
    callback = browser.get(browser.follow_provider(redirect))
    assert callback.status_code == 302
    assert "error=cancelled" in callback.headers["location"], callback.headers["location"]
    expect(server, "denied", [])


def test_headless_connect_is_no_login(server: Server, browser: Browser, fake: FakeOIDC) -> None:
    """A headless connect returns to callback_url like a login; social_account_added tells."""
    signed_in = browser.post_json(
        f"{BROWSER_API}/auth/login",
        {"email": server.users["plain"], "password": server.users["password"]},
    )
    assert signed_in.status_code == 200
    expect(server, "signed-in", [])
    identity(fake, f"headless-linked-{server.kind}")
    redirect = browser.post(
        f"{BROWSER_API}/auth/provider/redirect", redirect_form(browser, "connect")
    )
    expect(server, "connect", [{"event": "social_link_initiated", "provider": "fakeoidc"}])
    callback = browser.get(browser.follow_provider(redirect))
    assert callback.status_code == 302
    assert callback.headers["location"] == f"{server.url}/app/social-callback"
    expect(server, "connected", [])


# --- the generic ASGI middleware around Django ---------------------------------------


@pytest.fixture(scope="module")
def wrapped(fake: FakeOIDC, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The project without the Django middleware, its ASGI application wrapped by HeraEvents."""
    with served("asgi-wrapped", tmp_path_factory.mktemp("wrapped"), fake.url) as running:
        yield running


def test_wrapped_asgi_application(wrapped: Server, fake: FakeOIDC) -> None:
    """Wrapped whole, Django's views run in the request's context: the signals still count."""
    browser = Browser(wrapped)
    try:
        user = wrapped.mfa_user()
        password_step(wrapped, browser, user)
        browser.get("/accounts/2fa/authenticate/")
        browser.post("/accounts/2fa/authenticate/", {"code": totp_now(user)})
        expect(wrapped, "mfa", [DISPLAYED, {"event": "mfa_challenge_succeeded", **TOTP}])
        browser.post("/accounts/logout/")
        identity(fake, "wrapped-social")
        callback = browser.get(browser.follow_provider(start_social(wrapped, browser)))
        assert callback.headers["location"] == "/profile/"
        completed = {"event": "social_login_completed", "provider": "fakeoidc"}
        expect(wrapped, "social", [INITIATED, {**completed, "first_login": True}])
    finally:
        browser.close()
