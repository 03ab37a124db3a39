"""``preset:django-oauth-toolkit`` against a real django-oauth-toolkit server.

The project in ``dot_project/`` (DOT's ``oauth2_provider`` app at ``o/``, Django's
login view, a user and four registered applications) runs in subprocesses on
127.0.0.1, each with its own sqlite database:

- ``wsgi``: gunicorn, Django's WSGI application, HeraEventsMiddleware in ``MIDDLEWARE``
  with ``HERA_RULES = "preset:django-oauth-toolkit"``, PKCE required;
- ``asgi-idp-de``: uvicorn ``--root-path /idp``, Django's ASGI application, the
  middleware, ``LANGUAGE_CODE = "de"`` and every request with ``Accept-Language: de``;
- ``wsgi-idp-wrapped``: gunicorn with ``SCRIPT_NAME=/idp``, HeraEventsWSGI around the
  whole WSGI application;
- ``asgi-wrapped``: uvicorn, HeraEvents around the whole ASGI application;
- ``optional``: gunicorn, ``PKCE_REQUIRED = False``, on the database of ``wsgi`` (so a
  code issued without a challenge can be taken to a server that requires PKCE);
- ``s256-only`` (DOT 3.4+): ``COMPLIANT_BCP_RFC9700_PKCE_METHOD``, which refuses plain.

Each step's events are read from the server's events file and compared exactly (the
envelope checked, key order included); a step that must emit nothing is followed by
a sync request whose own event must come next (see ``_dot_server.py``). Under
``tests/packs/_pack_versions.py`` the same module runs against the oldest supported
DOT (see ``test_dot_versions.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from _dot_server import (
    CALLBACK,
    CONFIDENTIAL_SECRET,
    MACHINE_SECRET,
    Config,
    DotClient,
    DotServer,
    code_of,
    pkce_pair,
    redirect_error,
    running,
    seed_database,
)

PACK = "django-oauth-toolkit"
DOT_VERSION = tuple(int(p) for p in version("django-oauth-toolkit").split(".")[:2])
HAS_S256_ONLY = DOT_VERSION >= (3, 4)  # COMPLIANT_BCP_RFC9700_PKCE_METHOD

MAIN = ["wsgi", "asgi-idp-de", "wsgi-idp-wrapped", "asgi-wrapped"]
CONFIGS = [
    Config("wsgi", "wsgi"),
    Config("asgi-idp-de", "asgi", prefix="/idp", language="de"),
    Config("wsgi-idp-wrapped", "wsgi", prefix="/idp", hera="wrapped"),
    Config("asgi-wrapped", "asgi", hera="wrapped"),
    Config("optional", "wsgi", settings={"DOT_PKCE_REQUIRED": "0"}, db="wsgi"),
]
if HAS_S256_ONLY:
    CONFIGS.append(Config("s256-only", "asgi", settings={"DOT_PKCE_S256_ONLY": "1"}))


def authorized(client_id: str) -> dict[str, Any]:
    return {"event": "pkce_authorize", "client_id": client_id}


def exchanged(client_id: str) -> dict[str, Any]:
    return {"event": "pkce_token_exchange", "client_id": client_id}


def failed(reason: str, client_id: str | None) -> dict[str, Any]:
    return {"event": "pkce_failed", "reason": reason, "client_id": client_id}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DotServer]]:
    directory = tmp_path_factory.mktemp("dot")
    seed = seed_database(directory)
    with running(CONFIGS, directory, seed) as started:
        yield started
        for server in started.values():
            # No stray event after the last checked line either.
            client = DotClient(server)
            client.expect([], "end of module")
            client.close()


@pytest.fixture(params=MAIN)
def dot(request: pytest.FixtureRequest, servers: dict[str, DotServer]) -> Iterator[DotClient]:
    client = DotClient(servers[request.param])
    yield client
    client.close()


@pytest.fixture
def signed_in(dot: DotClient) -> DotClient:
    dot.login()
    return dot


def _code(dot: DotClient, client_id: str, seed: str) -> tuple[str, str]:
    """An S256 code for ``client_id`` (consent or auto-approval) and its verifier; the
    pkce_authorize event checked."""
    verifier, challenge = pkce_pair(seed)
    query = dot.authorize_query(client_id, code_challenge=challenge, code_challenge_method="S256")
    auto = client_id == "dot-public-auto"
    answer = dot.authorize(query) if auto else dot.consent(query)
    code = code_of(answer)
    dot.expect([authorized(client_id)], f"authorize {client_id}")
    return code, verifier


def _exchange(
    code: str, client_id: str | None, verifier: str | None, **extra: str
) -> dict[str, str]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    if client_id:
        form["client_id"] = client_id
    if verifier is not None:
        form["code_verifier"] = verifier
    return {**form, **extra}


def test_servers_run_the_versions_asked_for(servers: dict[str, DotServer]) -> None:
    """Each server runs the DOT, oauthlib and Django of this process: under
    ``run_under`` the pinned ones (``HERA_PACK_VERSIONS``), else the environment's."""
    names = ("django-oauth-toolkit", "oauthlib", "Django")
    wanted = {name: version(name) for name in names}
    for requirement in os.environ.get("HERA_PACK_VERSIONS", "").split():
        name, _, pinned = requirement.partition("==")
        if pinned:
            assert wanted[name] == pinned, (name, wanted[name], pinned)
    text = " ".join(f"{name}=={wanted[name]}" for name in names)
    for server in servers.values():
        assert httpx.get(server.base + "/ready", timeout=10).text == text, server.config.name


# --- success ---------------------------------------------------------------------


@pytest.mark.produces(PACK, "pkce_authorize", via="302 Location with code + code_challenge sent")
@pytest.mark.produces(PACK, "pkce_token_exchange", via="200 + form.code_verifier non-empty")
def test_login_consent_exchange_refresh(dot: DotClient) -> None:
    """Signed out: login redirect, login form, consent page, approval, exchange, refresh."""
    verifier, challenge = pkce_pair("s256-" + dot.server.config.name)
    query = dot.authorize_query(
        "dot-public", code_challenge=challenge, code_challenge_method="S256"
    )
    detour = dot.authorize(query)
    assert detour.status_code == 302
    assert detour.headers["location"].startswith(dot.server.config.prefix + "/accounts/login/")
    dot.expect([], "login redirect before authorize")
    next_url = detour.headers["location"].split("next=", 1)[1]
    back = dot.login(unquote(next_url))
    assert back.headers["location"].startswith(dot.server.config.prefix + "/o/authorize/?")

    code = code_of(dot.consent(query))
    dot.expect([authorized("dot-public")], "consent approved")

    token = dot.token(_exchange(code, "dot-public", verifier))
    assert token.status_code == 200, token.text
    dot.expect([exchanged("dot-public")], "token exchange")

    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": token.json()["refresh_token"],
        "client_id": "dot-public",
    }
    again = dot.token(refresh)
    assert again.status_code == 200, again.text
    dot.expect([], "refresh_token grant")
    reused = dot.token(refresh)
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    dot.expect([], "refresh token used twice")


@pytest.mark.produces(PACK, "pkce_authorize", via="auto-approved GET 302 with code, plain method")
def test_plain_and_default_method(signed_in: DotClient) -> None:
    """Auto-approved client: plain, and no method at all (plain by default), both exchanged."""
    dot = signed_in
    for method in ("plain", None):
        verifier, _ = pkce_pair(f"plain-{method}-{dot.server.config.name}")
        query = dot.authorize_query(
            "dot-public-auto", code_challenge=verifier, code_challenge_method=method
        )
        code = code_of(dot.authorize(query))
        dot.expect([authorized("dot-public-auto")], f"authorize {method}")
        answer = dot.token(_exchange(code, "dot-public-auto", verifier))
        assert answer.status_code == 200, answer.text
        dot.expect([exchanged("dot-public-auto")], f"exchange {method}")


@pytest.mark.produces(PACK, "pkce_token_exchange", via="200 + verifier, client from Basic or form")
def test_confidential_client(signed_in: DotClient) -> None:
    """client_secret_basic and client_secret_post name the client; bad credentials are 401."""
    dot = signed_in
    code, verifier = _code(dot, "dot-confidential", "conf-" + dot.server.config.name)
    wrong = dot.token(_exchange(code, None, verifier), basic=("dot-confidential", "not-it"))
    assert (wrong.status_code, wrong.json()) == (401, {"error": "invalid_client"})
    dot.expect([], "wrong client secret")
    no_secret = dot.token(_exchange(code, "dot-confidential", verifier))
    assert (no_secret.status_code, no_secret.json()) == (401, {"error": "invalid_client"})
    dot.expect([], "client_id without its secret")
    ok = dot.token(_exchange(code, None, verifier), basic=("dot-confidential", CONFIDENTIAL_SECRET))
    assert ok.status_code == 200, ok.text
    dot.expect([exchanged("dot-confidential")], "Basic exchange")

    code, verifier = _code(dot, "dot-confidential", "conf-post-" + dot.server.config.name)
    post = dot.token(
        _exchange(code, "dot-confidential", verifier, client_secret=CONFIDENTIAL_SECRET)
    )
    assert post.status_code == 200, post.text
    dot.expect([exchanged("dot-confidential")], "client_secret_post exchange")


def test_client_credentials_grant(dot: DotClient) -> None:
    """Another grant at the same token endpoint is no PKCE outcome."""
    form = {"grant_type": "client_credentials", "scope": "read"}
    answer = dot.token(form, basic=("dot-machine", MACHINE_SECRET))
    assert answer.status_code == 200, answer.text
    dot.expect([], "client_credentials")
    bad = dot.token(form, basic=("dot-machine", "not-it"))
    assert bad.status_code == 401
    dot.expect([], "client_credentials, wrong secret")


# --- failures at the authorize endpoint --------------------------------------------


@pytest.mark.produces(
    PACK,
    "pkce_failed",
    via="302 error=invalid_request + no code_challenge sent (reason challenge_missing)",
)
def test_challenge_missing(signed_in: DotClient) -> None:
    """PKCE required: no challenge (with or without a method) for every kind of client."""
    dot = signed_in
    for client_id, method in [
        ("dot-public", None),
        ("dot-confidential", None),
        ("dot-public-auto", None),
        ("dot-public", "S256"),
    ]:
        query = dot.authorize_query(client_id, code_challenge_method=method)
        assert redirect_error(dot.authorize(query)) == "invalid_request"
        dot.expect([failed("challenge_missing", client_id)], f"no challenge {client_id} {method}")


@pytest.mark.produces(
    PACK,
    "pkce_failed",
    via="302 error=invalid_request + code_challenge_method not S256 (challenge_method_unsupported)",
)
def test_method_unsupported(signed_in: DotClient) -> None:
    """A method oauthlib does not know (case counts), on the GET."""
    dot = signed_in
    _, challenge = pkce_pair("s512")
    for method in ("S512", "s256"):
        query = dot.authorize_query(
            "dot-public", code_challenge=challenge, code_challenge_method=method
        )
        assert redirect_error(dot.authorize(query)) == "invalid_request"
        dot.expect([failed("challenge_method_unsupported", "dot-public")], method)


def test_no_outcome_at_authorize(signed_in: DotClient) -> None:
    """Denied consent, unknown client, missing client_id, foreign redirect URI, bad
    response_type, unknown scope, and the trailing-slash redirect: no PKCE outcome."""
    dot = signed_in
    _, challenge = pkce_pair("confounders")
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}

    assert redirect_error(dot.consent(dot.authorize_query("dot-public", **pkce), allow=False)) == (
        "access_denied"
    )
    dot.expect([], "consent denied")
    for name, query in [
        ("unknown client", dot.authorize_query("no-such-client", **pkce)),
        ("no client_id", dot.authorize_query("dot-public", client_id=None, **pkce)),
        (
            "foreign redirect_uri",
            dot.authorize_query("dot-public", redirect_uri="http://evil.test/cb", **pkce),
        ),
    ]:
        answer = dot.authorize(query)
        assert answer.status_code == 400, (name, answer.status_code)
        dot.expect([], name)
    bad_type = dot.authorize(dot.authorize_query("dot-public-auto", response_type="token", **pkce))
    assert redirect_error(bad_type) == "unauthorized_client"
    dot.expect([], "response_type=token, not allowed for the client")
    no_type = dot.authorize(dot.authorize_query("dot-public-auto", response_type=None))
    assert redirect_error(no_type) == "invalid_request"
    dot.expect([], "no response_type (and no challenge)")
    scope = dot.authorize(dot.authorize_query("dot-public-auto", scope="write", **pkce))
    assert redirect_error(scope) == "invalid_scope"
    dot.expect([], "unknown scope")

    slashless = dot.http.get("/o/authorize", params=dot.authorize_query("dot-public-auto", **pkce))
    assert slashless.status_code == 301
    assert slashless.headers["location"].startswith(dot.server.config.prefix + "/o/authorize/?")
    dot.expect([], "APPEND_SLASH redirect of authorize")
    posted = dot.http.post("/o/token", data={"grant_type": "authorization_code", "code": "x"})
    assert posted.status_code in (301, 308), posted.status_code
    dot.expect([], "APPEND_SLASH redirect of token")


# --- failures at the token endpoint --------------------------------------------------


@pytest.mark.produces(
    PACK,
    "pkce_failed",
    via="400 bare invalid_grant + form.code_verifier present (reason verifier_mismatch)",
)
def test_wrong_verifier(signed_in: DotClient) -> None:
    """Wrong, malformed and empty verifiers; the code survives and the right one works."""
    dot = signed_in
    code, verifier = _code(dot, "dot-public", "wrong-" + dot.server.config.name)
    for name, bad in [("wrong", pkce_pair("other")[0]), ("short", "too-short"), ("empty", "")]:
        answer = dot.token(_exchange(code, "dot-public", bad))
        assert (answer.status_code, answer.json()) == (400, {"error": "invalid_grant"}), name
        dot.expect([failed("verifier_mismatch", "dot-public")], f"{name} verifier")
    ok = dot.token(_exchange(code, "dot-public", verifier))
    assert ok.status_code == 200, ok.text
    dot.expect([exchanged("dot-public")], "right verifier after wrong ones")


@pytest.mark.produces(
    PACK,
    "pkce_failed",
    via="400 invalid_request 'Code verifier required.' + no code_verifier (verifier_missing)",
)
def test_verifier_missing(signed_in: DotClient) -> None:
    """No verifier, from a public client (form) and a confidential one (Basic)."""
    dot = signed_in
    code, _ = _code(dot, "dot-public", "missing-" + dot.server.config.name)
    answer = dot.token(_exchange(code, "dot-public", None))
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    dot.expect([failed("verifier_missing", "dot-public")], "public, no verifier")
    code, _ = _code(dot, "dot-confidential", "missing-conf-" + dot.server.config.name)
    basic = ("dot-confidential", CONFIDENTIAL_SECRET)
    answer = dot.token(_exchange(code, None, None), basic=basic)
    assert answer.status_code == 400
    dot.expect([failed("verifier_missing", "dot-confidential")], "Basic, no verifier")
    no_code = dot.token({"grant_type": "authorization_code", "client_id": "dot-public"})
    assert (no_code.status_code, no_code.json()["error"]) == (400, "invalid_request")
    dot.expect([], "no code at all")


def test_code_problems_read_as_mismatch(signed_in: DotClient) -> None:
    """Known limit: a used, expired, unknown or foreign code gets the same bare
    invalid_grant as a wrong verifier. With a verifier sent the pack says
    verifier_mismatch (the recordings accept it); without one it says nothing."""
    dot = signed_in
    server = dot.server
    code, verifier = _code(dot, "dot-public", "reuse-" + server.config.name)
    assert dot.token(_exchange(code, "dot-public", verifier)).status_code == 200
    dot.expect([exchanged("dot-public")], "first use")
    again = dot.token(_exchange(code, "dot-public", verifier))
    assert (again.status_code, again.json()) == (400, {"error": "invalid_grant"})
    dot.expect([failed("verifier_mismatch", "dot-public")], "used code")

    unknown = dot.token(_exchange("no-such-code", "dot-public", verifier))
    assert (unknown.status_code, unknown.json()) == (400, {"error": "invalid_grant"})
    dot.expect([failed("verifier_mismatch", "dot-public")], "unknown code")
    unknown = dot.token(_exchange("no-such-code", "dot-public", None))
    assert unknown.status_code == 400
    dot.expect([], "unknown code, no verifier")
    stranger = dot.token(_exchange("no-such-code", "no-such-client", verifier))
    assert (stranger.status_code, stranger.json()) == (401, {"error": "invalid_client"})
    dot.expect([], "unknown client at the token endpoint")

    code, verifier = _code(dot, "dot-public-auto", "expired-" + server.config.name)
    server.expire_grants()
    expired = dot.token(_exchange(code, "dot-public-auto", verifier))
    assert (expired.status_code, expired.json()) == (400, {"error": "invalid_grant"})
    dot.expect([failed("verifier_mismatch", "dot-public-auto")], "expired code")

    code, verifier = _code(dot, "dot-public", "foreign-" + server.config.name)
    foreign = dot.token(_exchange(code, "dot-public-auto", verifier))
    assert (foreign.status_code, foreign.json()) == (400, {"error": "invalid_grant"})
    dot.expect([failed("verifier_mismatch", "dot-public-auto")], "code of another client")

    mismatch = dot.token(_exchange(code, "dot-public", verifier, redirect_uri="http://x.test/cb"))
    assert (mismatch.status_code, mismatch.json()["error"]) == (400, "invalid_request")
    dot.expect([], "redirect_uri mismatch, right verifier")


def test_language_does_not_matter(servers: dict[str, DotServer]) -> None:
    """The German server really answers in German (Django's login form), while its
    DOT/oauthlib error codes and descriptions stay the same; the other tests run the
    whole flow set on it with the same expected events."""
    dot = DotClient(servers["asgi-idp-de"])
    try:
        page = dot.http.get("/accounts/login/")
        form = {"csrfmiddlewaretoken": dot.http.cookies["csrftoken"], "username": "alice"}
        answer = dot.http.post("/accounts/login/", data={**form, "password": "wrong"})
        assert answer.status_code == 200
        assert "Benutzername" in answer.text, answer.text
        assert page.headers.get("content-language") == "de"
        dot.expect([], "failed login, in German")
        dot.login()
        query = dot.authorize_query("dot-public-auto")
        location = dot.authorize(query).headers["location"]
        assert "error_description=Code+challenge+required." in location, location
        dot.expect([failed("challenge_missing", "dot-public-auto")], "German, no challenge")
    finally:
        dot.close()


# --- PKCE not required, and codes crossing the setting --------------------------------


def test_pkce_optional(servers: dict[str, DotServer]) -> None:
    """PKCE_REQUIRED false: a code without a challenge is no PKCE event, its exchange
    neither, nor a redirect_uri mismatch without a verifier; PKCE used is still seen."""
    dot = DotClient(servers["optional"])
    try:
        dot.login()
        plain_query = dot.authorize_query("dot-public-auto")
        code = code_of(dot.authorize(plain_query))
        dot.expect([], "code without a challenge")
        mismatch = dot.token(
            _exchange(code, "dot-public-auto", None, redirect_uri="http://x.test/cb")
        )
        assert (mismatch.status_code, mismatch.json()["error"]) == (400, "invalid_request")
        dot.expect([], "redirect_uri mismatch, no PKCE")
        ok = dot.token(_exchange(code, "dot-public-auto", None))
        assert ok.status_code == 200, ok.text
        dot.expect([], "exchange without PKCE")

        code, verifier = _code(dot, "dot-public-auto", "optional")
        missing = dot.token(_exchange(code, "dot-public-auto", None))
        assert missing.status_code == 400
        dot.expect(
            [failed("verifier_missing", "dot-public-auto")], "challenge on file, no verifier"
        )
        ok = dot.token(_exchange(code, "dot-public-auto", verifier))
        assert ok.status_code == 200, ok.text
        dot.expect([exchanged("dot-public-auto")], "PKCE used though optional")

        _, challenge = pkce_pair("optional-s512")
        query = dot.authorize_query(
            "dot-public-auto", code_challenge=challenge, code_challenge_method="S512"
        )
        assert redirect_error(dot.authorize(query)) == "invalid_request"
        dot.expect([failed("challenge_method_unsupported", "dot-public-auto")], "S512, optional")
    finally:
        dot.close()


@pytest.mark.produces(
    PACK,
    "pkce_failed",
    via="400 invalid_grant with error_description + verifier sent (challenge_missing at token)",
)
def test_code_without_challenge_at_a_server_requiring_pkce(servers: dict[str, DotServer]) -> None:
    """A code issued while PKCE was optional, redeemed once it is required (the same
    database): with a verifier oauthlib says "Challenge not found" (challenge_missing),
    without one "Code verifier required." (verifier_missing)."""
    issuer, redeemer = DotClient(servers["optional"]), DotClient(servers["wsgi"])
    try:
        issuer.login()
        first = code_of(issuer.authorize(issuer.authorize_query("dot-public-auto")))
        second = code_of(issuer.authorize(issuer.authorize_query("dot-public-auto")))
        issuer.expect([], "codes without a challenge")
        verifier, _ = pkce_pair("late")
        answer = redeemer.token(_exchange(first, "dot-public-auto", verifier))
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"
        assert "error_description" in answer.json()
        redeemer.expect([failed("challenge_missing", "dot-public-auto")], "verifier, no challenge")
        answer = redeemer.token(_exchange(second, "dot-public-auto", None))
        assert answer.status_code == 400
        redeemer.expect(
            [failed("verifier_missing", "dot-public-auto")], "no verifier, no challenge"
        )
    finally:
        issuer.close()
        redeemer.close()


def test_verifier_ignored_for_a_code_without_challenge(servers: dict[str, DotServer]) -> None:
    """Known limit: PKCE optional, a code issued without a challenge, and a verifier
    sent anyway: oauthlib ignores the verifier and answers 200, so the pack counts a
    PKCE exchange that did not check anything (HTTP cannot tell)."""
    dot = DotClient(servers["optional"])
    try:
        dot.login()
        code = code_of(dot.authorize(dot.authorize_query("dot-public-auto")))
        dot.expect([], "code without a challenge")
        answer = dot.token(_exchange(code, "dot-public-auto", pkce_pair("ignored")[0]))
        assert answer.status_code == 200, answer.text
        dot.expect([exchanged("dot-public-auto")], "verifier nobody checked")
    finally:
        dot.close()


@pytest.mark.skipif(not HAS_S256_ONLY, reason="COMPLIANT_BCP_RFC9700_PKCE_METHOD is DOT 3.4+")
@pytest.mark.produces(
    PACK,
    "pkce_failed",
    via="302 error=invalid_request + method plain or none, S256 enforced",
)
def test_plain_refused_when_s256_is_enforced(servers: dict[str, DotServer]) -> None:
    """COMPLIANT_BCP_RFC9700_PKCE_METHOD: plain (or no method) is refused when the code
    would be issued; S256 still works."""
    dot = DotClient(servers["s256-only"])
    try:
        dot.login()
        verifier, challenge = pkce_pair("strict")
        for method in ("plain", None):
            query = dot.authorize_query(
                "dot-public-auto", code_challenge=verifier, code_challenge_method=method
            )
            assert redirect_error(dot.authorize(query)) == "invalid_request"
            dot.expect([failed("challenge_method_unsupported", "dot-public-auto")], f"{method}")
        query = dot.authorize_query(
            "dot-public-auto", code_challenge=challenge, code_challenge_method="S256"
        )
        code = code_of(dot.authorize(query))
        dot.expect([authorized("dot-public-auto")], "S256 still works")
        assert dot.token(_exchange(code, "dot-public-auto", verifier)).status_code == 200
        dot.expect([exchanged("dot-public-auto")], "S256 exchange")
    finally:
        dot.close()


@pytest.mark.not_possible(
    PACK,
    "pkce_failed.reason=challenge_invalid",
    why="DOT/oauthlib accept any code_challenge (even 'abc'): a code is issued, the "
    "verifier then fails as verifier_mismatch",
)
def test_malformed_challenge_is_accepted(signed_in: DotClient) -> None:
    """A challenge far from RFC 7636's shape gets a code: no challenge_invalid exists here."""
    dot = signed_in
    query = dot.authorize_query(
        "dot-public-auto", code_challenge="abc", code_challenge_method="S256"
    )
    code = code_of(dot.authorize(query))
    dot.expect([authorized("dot-public-auto")], "challenge 'abc'")
    answer = dot.token(_exchange(code, "dot-public-auto", pkce_pair("any")[0]))
    assert answer.status_code == 400
    dot.expect([failed("verifier_mismatch", "dot-public-auto")], "no verifier can match 'abc'")
