"""End to end: the Flask example on Authlib under real gunicorn, driven over HTTP.

Each test starts ``examples/flask_app`` as a subprocess on 127.0.0.1 (gunicorn, one
worker) with stdout piped, walks one family of flows step by step and asserts, after
each step, the exact event lines it wrote (bytes, key order, domain, ``ts`` format),
then stops the server with SIGTERM and asserts that nothing else was written.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest

import hera_middleware

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "flask_app"
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
WAIT = 5.0  # seconds an expected line may take (writer thread, loaded CI machines)

USER, PASSWORD = "demo", "hera-demo-pass-2026"
RECOVERY_CODES = ("k2m4-7xq9", "p8d3-r6tw")
SPA, SPA_URI = "flask-spa", "https://spa.example.test/callback"
BACKEND, BACKEND_URI, BACKEND_SECRET = (
    "flask-backend",
    "https://backend.example.test/oauth/callback",
    "backend-s3cret-2026",
)

Event = tuple[str, dict[str, Any]]
#: The event of a marker exchange (GET /login) that proves no other line came before it.
MARKER: Event = ("captcha_displayed", {"flow": "login"})


def line_of(name: str, fields: dict[str, Any], ts: str) -> str:
    """The exact line the library writes for an event."""
    envelope = {"type": "audit", "event": name, **fields, "domain": "ciam", "ts": ts}
    return json.dumps(envelope, separators=(",", ":")) + "\n"


class Server:
    """The example running under gunicorn, with its stdout read line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.totp_secret = pyotp.random_base32()
        # The server must use the very library these tests import.
        path = [str(Path(hera_middleware.__file__).resolve().parents[1])]
        path += [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HERA_")},
            "PYTHONPATH": os.pathsep.join(path),
            "EXAMPLE_TOTP_SECRET": self.totp_secret,
            **env,
        }
        command = [sys.executable, "-m", "gunicorn", "--chdir", str(EXAMPLE), "--workers", "1"]
        command += ["--bind", f"127.0.0.1:{port}", "--log-level", "info", "app:app"]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=EXAMPLE
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.stderr = b""
        self._readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self._wait_ready()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"the example exited: {self.stderr.decode(errors='replace')}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        pytest.fail("the example did not answer /healthz within 20 s")

    def client(self) -> httpx.Client:
        """A fresh browser-like client (its own cookies), redirects not followed."""
        return httpx.Client(base_url=self.base, timeout=10)

    def expect(self, *events: Event) -> None:
        """The next lines on stdout are exactly these events, in this order."""
        for name, fields in events:
            try:
                raw = self.lines.get(timeout=WAIT)
            except queue.Empty:
                pytest.fail(f"no line for {name} {fields} within {WAIT} s")
            line = raw.decode("utf-8")
            ts = json.loads(line).get("ts", "")
            assert TS.fullmatch(ts), line
            assert line == line_of(name, fields, ts)

    def settle(self) -> None:
        """Nothing beyond what was expected: the next line is that of a marker exchange."""
        with self.client() as client:
            assert client.get("/login").status_code == 200
        self.expect(MARKER)

    def resync(self) -> None:
        """Skip whatever an earlier, failed test left unread, up to a marker's line."""
        with self.client() as client:
            assert client.get("/login").status_code == 200
        marker = line_of(*MARKER, "").rsplit('"ts"', 1)[0]
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                if self.lines.get(timeout=WAIT).decode().startswith(marker):
                    return
            except queue.Empty:
                break
        pytest.fail("the marker event never came")

    def stop(self) -> None:
        """SIGTERM, bounded wait, then kill; the readers drain what is left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def finish(self) -> None:
        """Stop the server; it exited cleanly and wrote no line beyond those expected."""
        self.stop()
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get_nowait().decode("utf-8", "replace"))
        assert rest == []
        log = self.stderr.decode(errors="replace")
        assert self.proc.returncode == 0, log
        assert "Shutting down: Master" in log
        assert "Traceback" not in log
        # The worker's counters reach stderr when it exits.
        assert re.search(
            r"^hera-middleware: [1-9]\d* events written, 0 dropped, \d+ fields nulled,"
            r" \d+ facts unknown, 0 internal errors$",
            log,
            re.MULTILINE,
        ), log


@pytest.fixture
def start() -> Iterator[Callable[..., Server]]:
    """Start the example (``start(EXAMPLE_CAPTCHA_TTL="1")`` for other settings)."""
    servers: list[Server] = []

    def starter(**env: str) -> Server:
        servers.append(Server(env))
        return servers[-1]

    yield starter
    for server in servers:
        server.stop()


@pytest.fixture
def server(start: Callable[..., Server]) -> Server:
    """The example with default settings, for this test alone."""
    return start()


@pytest.fixture(scope="module")
def _shared() -> Iterator[Server]:
    server = Server({})
    yield server
    server.finish()


@pytest.fixture
def shared(_shared: Server) -> Server:
    """One example for the tests whose flows leave no state others could see; each
    such test ends with ``settle()``."""
    _shared.resync()
    return _shared


# --- Flow helpers -------------------------------------------------------------------------


def captcha(page: str, *, solve: bool = True) -> dict[str, str]:
    """The captcha fields of a login page, answered (wrongly when ``solve`` is False)."""
    token = re.search(r'name="captcha-token" value="([^"]+)"', page)
    question = re.search(r'id="captcha-question">(\d+) \+ (\d+)<', page)
    assert token is not None
    assert question is not None
    answer = int(question[1]) + int(question[2]) + (0 if solve else 1)
    return {"captcha-token": token[1], "captcha-answer": str(answer)}


def show_login(server: Server, client: httpx.Client) -> str:
    """GET /login: the form with its captcha."""
    response = client.get("/login")
    assert response.status_code == 200
    server.expect(("captcha_displayed", {"flow": "login"}))
    return response.text


def sign_in_password(server: Server, client: httpx.Client) -> None:
    """Password step with a solved captcha, up to the MFA challenge page."""
    page = show_login(server, client)
    form = {"username": USER, "password": PASSWORD, **captcha(page)}
    response = client.post("/login", data=form)
    assert (response.status_code, response.headers["location"]) == (302, "/mfa/totp")
    server.expect(("captcha_succeeded", {"flow": "login"}))
    assert client.get("/mfa/totp").status_code == 200
    server.expect(("mfa_challenge_displayed", {"method": "totp"}))


def wrong_totp(secret: str) -> str:
    """A six-digit code the server accepts in no step of its window."""
    totp = pyotp.TOTP(secret)
    valid = {totp.at(time.time() + d) for d in (-60, -30, 0, 30, 60)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)


def social_login(client: httpx.Client, start: str, *, deny: bool = False) -> httpx.Response:
    """Start a social login or link, pass the fake provider, return the callback's answer."""
    to_provider = client.get(start)
    assert to_provider.status_code == 302
    provider = to_provider.headers["location"]
    assert provider.startswith("/fake-provider/authorize?")
    back = client.get(provider + ("&decision=deny" if deny else ""))
    assert back.status_code == 302
    return client.get(back.headers["location"])


@contextmanager
def signed_in_client(server: Server) -> Iterator[httpx.Client]:
    """A client with a session from a first social login (events asserted)."""
    with server.client() as client:
        hint = secrets.token_hex(8)  # a new user each time, so a fresh consent
        response = social_login(client, f"/login/google?login_hint={hint}")
        assert response.headers["location"] == "/welcome"
        server.expect(
            ("social_login_initiated", {"provider": "google"}),
            ("social_login_completed", {"provider": "google", "first_login": True}),
        )
        yield client


def s256(verifier: str) -> str:
    """BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_params(client_id: str, redirect_uri: str, **extra: str) -> dict[str, str]:
    """An authorization request for ``client_id``."""
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "profile",
        "state": secrets.token_urlsafe(8),
        **extra,
    }


def consent(client: httpx.Client, params: dict[str, str], confirm: str = "yes") -> httpx.Response:
    """GET the consent page (no event) and answer it by POST to the same URL."""
    page = client.get("/oauth/authorize", params=params)
    assert page.status_code == 200
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {"csrf_token": csrf[1], "confirm": confirm}
    return client.post("/oauth/authorize", params=params, data=form)


def code_from(response: httpx.Response, redirect_uri: str) -> str:
    """The code of a successful authorization redirect."""
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "?")
    return parse_qs(urlsplit(location).query)["code"][0]


def token(
    client: httpx.Client, form: dict[str, str], auth: tuple[str, str] | None = None
) -> httpx.Response:
    """POST an authorization_code grant to the token endpoint (Basic auth if given)."""
    data = {"grant_type": "authorization_code", **form}
    return client.post("/oauth/token", data=data, auth=httpx.BasicAuth(*auth) if auth else None)


# --- Captcha ------------------------------------------------------------------------------


def test_captcha_on_the_login_form(start: Callable[..., Server]) -> None:
    """Shown on GET /login; a wrong, missing, empty, expired, forged or replayed answer
    fails with its reason; a solved one succeeds whether or not the password is right."""
    server = start(EXAMPLE_CAPTCHA_TTL="1")
    with server.client() as client:

        def submit(password: str = PASSWORD, **answer: str) -> httpx.Response:
            return client.post("/login", data={"username": USER, "password": password, **answer})

        assert (
            'data-error="captcha-invalid"'
            in submit(**captcha(show_login(server, client), solve=False)).text
        )
        server.expect(("captcha_failed", {"flow": "login", "reason": "invalid"}))

        show_login(server, client)
        assert 'data-error="captcha-missing"' in submit().text
        server.expect(("captcha_failed", {"flow": "login", "reason": "missing"}))

        submit(**captcha(show_login(server, client)) | {"captcha-answer": " "})
        server.expect(("captcha_failed", {"flow": "login", "reason": "missing"}))

        forged = captcha(show_login(server, client))
        forged["captcha-token"] = forged["captcha-token"][:-4] + "0000"
        submit(**forged)
        server.expect(("captcha_failed", {"flow": "login", "reason": "invalid"}))

        page = show_login(server, client)
        time.sleep(1.3)
        assert 'data-error="captcha-expired"' in submit(**captcha(page)).text
        server.expect(("captcha_failed", {"flow": "login", "reason": "timeout"}))

        solved = captcha(show_login(server, client))
        assert 'data-error="invalid-credentials"' in submit("wrong", **solved).text
        server.expect(("captcha_succeeded", {"flow": "login"}))

        assert 'data-error="captcha-invalid"' in submit(**solved).text  # each works once
        server.expect(("captcha_failed", {"flow": "login", "reason": "invalid"}))

        response = submit(**captcha(show_login(server, client)))
        assert response.headers["location"] == "/mfa/totp"
        server.expect(("captcha_succeeded", {"flow": "login"}))
    server.finish()


# --- MFA ----------------------------------------------------------------------------------


def test_totp_challenge(server: Server) -> None:
    """Displayed after the password; a wrong or malformed code fails; the right one
    succeeds once; replaying it on the next sign-in fails."""
    with server.client() as client:
        assert client.get("/mfa/totp").headers["location"] == "/login"  # nothing pending
        sign_in_password(server, client)
        for code in (wrong_totp(server.totp_secret), "12345", "abcdef"):
            response = client.post("/mfa/totp", data={"otp": code})
            assert 'data-error="mfa-invalid"' in response.text
            server.expect(("mfa_challenge_failed", {"method": "totp"}))
        code = pyotp.TOTP(server.totp_secret).now()
        response = client.post("/mfa/totp", data={"otp": code})
        assert (response.status_code, response.headers["location"]) == (302, "/")
        server.expect(("mfa_challenge_succeeded", {"method": "totp"}))
        assert client.post("/mfa/totp", data={"otp": code}).headers["location"] == "/login"
    with server.client() as again:
        sign_in_password(server, again)
        assert again.post("/mfa/totp", data={"otp": code}).status_code == 200
        server.expect(("mfa_challenge_failed", {"method": "totp"}))
    server.finish()


def test_totp_lockout(server: Server) -> None:
    """Five failures end the sign-in: each is a failure, the sixth try goes to /login."""
    with server.client() as client:
        sign_in_password(server, client)
        for _ in range(5):
            assert client.post("/mfa/totp", data={"otp": "abc"}).status_code == 200
            server.expect(("mfa_challenge_failed", {"method": "totp"}))
        code = pyotp.TOTP(server.totp_secret).now()
        assert client.post("/mfa/totp", data={"otp": code}).headers["location"] == "/login"
    server.finish()


def test_recovery_codes(server: Server) -> None:
    """A wrong recovery code fails, a right one succeeds and is then used up."""
    with server.client() as client:
        sign_in_password(server, client)
        assert client.post("/mfa/recovery", data={"recovery_code": "0000-0000"}).status_code == 200
        server.expect(("mfa_challenge_failed", {"method": "recovery_code"}))
        response = client.post("/mfa/recovery", data={"recovery_code": RECOVERY_CODES[0].upper()})
        assert response.headers["location"] == "/"
        server.expect(("mfa_challenge_succeeded", {"method": "recovery_code"}))
    with server.client() as again:
        sign_in_password(server, again)
        again.post("/mfa/recovery", data={"recovery_code": RECOVERY_CODES[0]})
        server.expect(("mfa_challenge_failed", {"method": "recovery_code"}))
        again.post("/mfa/recovery", data={"recovery_code": RECOVERY_CODES[1]})
        server.expect(("mfa_challenge_succeeded", {"method": "recovery_code"}))
    server.finish()


# --- Registration -------------------------------------------------------------------------


def test_registration_breach_check(server: Server) -> None:
    """A breached password fails the check, an unknown one passes; other form errors
    happen before the check and emit nothing."""
    with server.client() as client:
        assert client.get("/register").status_code == 200
        short = client.post("/register", data={"username": "eve", "password": "x"})
        assert 'data-error="password-short"' in short.text
        taken = client.post("/register", data={"username": "demo", "password": "long enough pw"})
        assert 'data-error="username-unavailable"' in taken.text
        for breached in ("password123", "correcthorsebatterystaple"):
            response = client.post("/register", data={"username": "eve", "password": breached})
            assert 'data-error="password-breached"' in response.text
            server.expect(("breach_check_failed", {"reason": "in_hibp"}))
        fresh = {"username": "eve", "password": secrets.token_urlsafe(12)}
        assert client.post("/register", data=fresh).headers["location"] == "/login?registered=1"
        server.expect(("breach_check_passed", {}))
    server.finish()


# --- Social login -------------------------------------------------------------------------


def test_social_login_first_then_returning(server: Server) -> None:
    """Initiated on the start redirect; completed on the callback, first_login told by
    /welcome versus /; the fake provider's own hop emits nothing."""
    with server.client() as client:
        response = social_login(client, "/login/google?login_hint=alice")
        assert response.headers["location"] == "/welcome"
        server.expect(
            ("social_login_initiated", {"provider": "google"}),
            ("social_login_completed", {"provider": "google", "first_login": True}),
        )
        response = social_login(client, "/login/google?login_hint=alice")
        assert response.headers["location"] == "/"
        server.expect(
            ("social_login_initiated", {"provider": "google"}),
            ("social_login_completed", {"provider": "google", "first_login": False}),
        )
        response = social_login(client, "/login/github?login_hint=alice")
        assert response.headers["location"] == "/welcome"  # another provider, another account
        server.expect(
            ("social_login_initiated", {"provider": "github"}),
            ("social_login_completed", {"provider": "github", "first_login": True}),
        )
    server.finish()


def test_social_login_denied_or_forged(server: Server) -> None:
    """A provider denial, a forged state and an unknown provider complete nothing."""
    with server.client() as client:
        response = social_login(client, "/login/github", deny=True)
        assert response.headers["location"] == "/login?error=access_denied"
        server.expect(("social_login_initiated", {"provider": "github"}))
        client.get("/login/google")
        server.expect(("social_login_initiated", {"provider": "google"}))
        forged = client.get("/login/google/callback", params={"code": "x", "state": "forged"})
        assert forged.headers["location"] == "/login?error=invalid_state"
        assert client.get("/login/myspace").status_code == 404
        assert client.head("/login/google").status_code == 302  # HEAD is not GET for the rules
    server.finish()


def test_account_link(server: Server) -> None:
    """Linking needs a session; its start emits social_link_initiated, its callback
    nothing; the linked identity then signs in as a returning user."""
    with server.client() as client:
        assert client.get("/account/link/github").headers["location"].startswith("/login?")
        social_login(client, "/login/google?login_hint=bob")
        server.expect(
            ("social_login_initiated", {"provider": "google"}),
            ("social_login_completed", {"provider": "google", "first_login": True}),
        )
        response = social_login(client, "/account/link/github?login_hint=bob")
        assert response.headers["location"] == "/account?linked=github"
        server.expect(("social_link_initiated", {"provider": "github"}))
    with server.client() as other_browser:
        response = social_login(other_browser, "/login/github?login_hint=bob")
        assert response.headers["location"] == "/"
        server.expect(
            ("social_login_initiated", {"provider": "github"}),
            ("social_login_completed", {"provider": "github", "first_login": False}),
        )
    server.finish()


# --- PKCE on Authlib (preset:authlib) -----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "transform"),
    [
        pytest.param("S256", s256, id="S256"),
        pytest.param("plain", lambda v: v, id="plain"),
        pytest.param(None, lambda v: v, id="default-plain"),
    ],
)
def test_public_client_pkce(
    shared: Server, method: str | None, transform: Callable[[str], str]
) -> None:
    """pkce_authorize when the code is handed out (consent POST, then GET once
    consented), pkce_token_exchange on the token; the consent page and a used code
    emit nothing."""
    with signed_in_client(shared) as client:
        for first in (True, False):
            verifier = secrets.token_urlsafe(48)
            pkce = {"code_challenge": transform(verifier)}
            pkce |= {"code_challenge_method": method} if method else {}
            params = authorize_params(SPA, SPA_URI, **pkce)
            if first:
                response = consent(client, params)
            else:
                response = client.get("/oauth/authorize", params=params)
            code = code_from(response, SPA_URI)
            shared.expect(("pkce_authorize", {"client_id": SPA}))
            form = {"code": code, "client_id": SPA, "redirect_uri": SPA_URI}
            assert token(client, {**form, "code_verifier": verifier}).status_code == 200
            shared.expect(("pkce_token_exchange", {"client_id": SPA}))
            used = token(client, {**form, "code_verifier": verifier})
            assert used.json()["error_description"] == "Invalid 'code' in request."
    shared.settle()


def test_token_failures(shared: Server) -> None:
    """A wrong or malformed verifier is verifier_mismatch, a missing or empty one
    verifier_missing; Authlib keeps the code, so the right verifier then succeeds."""
    with signed_in_client(shared) as client:
        verifier = secrets.token_urlsafe(48)
        params = authorize_params(SPA, SPA_URI, code_challenge=s256(verifier))
        params["code_challenge_method"] = "S256"
        code = code_from(consent(client, params), SPA_URI)
        shared.expect(("pkce_authorize", {"client_id": SPA}))
        form = {"code": code, "client_id": SPA, "redirect_uri": SPA_URI}
        for sent, reason in (
            ({"code_verifier": secrets.token_urlsafe(48)}, "verifier_mismatch"),
            ({"code_verifier": "short"}, "verifier_mismatch"),
            ({}, "verifier_missing"),
            ({"code_verifier": ""}, "verifier_missing"),
        ):
            assert token(client, {**form, **sent}).status_code == 400
            shared.expect(("pkce_failed", {"reason": reason, "client_id": SPA}))
        assert token(client, {**form, "code_verifier": verifier}).status_code == 200
        shared.expect(("pkce_token_exchange", {"client_id": SPA}))
    shared.settle()


def test_public_client_without_challenge(shared: Server) -> None:
    """CodeChallenge(required=True) lets the authorize through (no event) and refuses
    the token: verifier_missing without a verifier, challenge_missing with one."""
    with signed_in_client(shared) as client:
        code = code_from(consent(client, authorize_params(SPA, SPA_URI)), SPA_URI)
        form = {"code": code, "client_id": SPA, "redirect_uri": SPA_URI}
        assert token(client, form).status_code == 400
        shared.expect(("pkce_failed", {"reason": "verifier_missing", "client_id": SPA}))
        assert token(client, {**form, "code_verifier": "v" * 43}).status_code == 400
        shared.expect(("pkce_failed", {"reason": "challenge_missing", "client_id": SPA}))
    shared.settle()


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        pytest.param({"code_challenge_method": "S256"}, "challenge_missing", id="no-challenge"),
        pytest.param(
            {"code_challenge": s256("v" * 43), "code_challenge_method": "S512"},
            "challenge_method_unsupported",
            id="S512",
        ),
        pytest.param(
            {"code_challenge": "too-short", "code_challenge_method": "S256"},
            "challenge_invalid",
            id="short",
        ),
    ],
)
def test_authorize_pkce_failures(shared: Server, extra: dict[str, str], reason: str) -> None:
    """Each PKCE error at the authorization endpoint, a 302 back to the client with
    error=invalid_request, is one pkce_failed (checked before sign-in)."""
    with shared.client() as anonymous:
        response = anonymous.get("/oauth/authorize", params=authorize_params(SPA, SPA_URI, **extra))
    assert response.status_code == 302
    assert response.headers["location"].startswith(SPA_URI + "?error=invalid_request&")
    shared.expect(("pkce_failed", {"reason": reason, "client_id": SPA}))


def test_confidential_client(shared: Server) -> None:
    """client_id comes from the Basic user name or, with client_secret_post, the form;
    failed client authentication and an exchange without PKCE emit nothing."""
    with signed_in_client(shared) as client:

        def code_for(verifier: str | None) -> str:
            pkce = {}
            if verifier is not None:
                pkce = {"code_challenge": s256(verifier), "code_challenge_method": "S256"}
            params = authorize_params(BACKEND, BACKEND_URI, **pkce)
            response = client.get("/oauth/authorize", params=params)
            if response.status_code == 200:
                response = consent(client, params)
            code = code_from(response, BACKEND_URI)
            if verifier is not None:
                shared.expect(("pkce_authorize", {"client_id": BACKEND}))
            return code

        v = secrets.token_urlsafe(48)
        form = {"code": code_for(v), "redirect_uri": BACKEND_URI, "code_verifier": v}
        assert token(client, form, (BACKEND, "wrong")).status_code == 401
        assert token(client, {**form, "client_id": BACKEND}).status_code == 401
        assert token(client, form, (BACKEND, BACKEND_SECRET)).status_code == 200
        shared.expect(("pkce_token_exchange", {"client_id": BACKEND}))

        v = secrets.token_urlsafe(48)
        form = {"code": code_for(v), "redirect_uri": BACKEND_URI, "client_id": BACKEND}
        form["client_secret"] = BACKEND_SECRET
        assert token(client, {**form, "code_verifier": "x" * 43}).status_code == 400
        shared.expect(("pkce_failed", {"reason": "verifier_mismatch", "client_id": BACKEND}))
        assert token(client, {**form, "code_verifier": v}).status_code == 200
        shared.expect(("pkce_token_exchange", {"client_id": BACKEND}))

        form = {"code": code_for(None), "redirect_uri": BACKEND_URI}
        assert token(client, form, (BACKEND, BACKEND_SECRET)).status_code == 200
    shared.settle()


def test_authorize_outcomes_without_events(shared: Server) -> None:
    """The sign-in redirect, the consent page, a denial, an unknown client, an
    unregistered redirect_uri, a bad scope and an unknown client at the token
    endpoint emit nothing."""
    challenge = {"code_challenge": s256("v" * 43), "code_challenge_method": "S256"}
    with shared.client() as anonymous:
        response = anonymous.get(
            "/oauth/authorize", params=authorize_params(SPA, SPA_URI, **challenge)
        )
        assert response.headers["location"].startswith("/login?next=")
        for params in (
            authorize_params("nobody", SPA_URI, **challenge),
            authorize_params(SPA, "https://evil.example/cb", **challenge),
        ):
            assert anonymous.get("/oauth/authorize", params=params).status_code == 400
        scope = authorize_params(SPA, SPA_URI, scope="admin", **challenge)
        assert (
            "error=invalid_scope"
            in anonymous.get("/oauth/authorize", params=scope).headers["location"]
        )
        unknown = {
            "code": "x",
            "client_id": "nobody",
            "redirect_uri": SPA_URI,
            "code_verifier": "v" * 43,
        }
        assert token(anonymous, unknown).json()["error"] == "invalid_client"
    with signed_in_client(shared) as client:
        params = authorize_params(SPA, SPA_URI, **challenge)
        denied = consent(client, params, confirm="no")
        assert "error=access_denied" in denied.headers["location"]
    shared.settle()


def test_pages_without_events(shared: Server) -> None:
    """Plain pages, the fake provider and already-signed-in redirects emit nothing."""
    with shared.client() as client:
        for path in ("/healthz", "/", "/welcome", "/register", "/account", "/mfa/totp"):
            assert client.get(path).status_code in (200, 302)
        assert client.get("/fake-provider/authorize", params={"provider": "x"}).status_code == 400
        assert client.post("/mfa/recovery", data={"recovery_code": "x"}).status_code == 302
        assert client.post("/oauth/token", json={"grant_type": "x"}).status_code == 400
        assert client.head("/login").status_code == 200  # HEAD is not GET for the rules
    with signed_in_client(shared) as client:
        assert client.get("/login").headers["location"] == "/"
    shared.settle()


def test_werkzeug_server_keeps_stdout_for_events() -> None:
    """``python app.py`` (Werkzeug's server) logs to stderr only: the first line on its
    stdout is the event of the first request, nothing follows, and Ctrl-C stops it
    cleanly."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = [str(Path(hera_middleware.__file__).resolve().parents[1])]
    path += [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERA_")}
    env |= {"PORT": str(port), "PYTHONPATH": os.pathsep.join(path)}
    proc = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    first: queue.Queue[bytes] = queue.Queue()
    reader = threading.Thread(target=lambda: first.put(proc.stdout.readline()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, "the server exited"
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/login", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start within 20 s"
                time.sleep(0.05)
        assert response.status_code == 200
        line = first.get(timeout=WAIT).decode()
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=15)
    assert line == line_of(*MARKER, json.loads(line)["ts"])
    assert rest == b""
    assert proc.returncode == 0, err
    assert b'"GET /login HTTP/1.1" 200' in err
    assert re.search(rb"^hera-middleware: 1 events written, 0 dropped", err, re.MULTILINE), err
