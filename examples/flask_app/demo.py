"""Drive the Flask example over real HTTP and show the audit events it emits.

Run ``python examples/flask_app/demo.py``. It starts ``app.py`` under gunicorn on
127.0.0.1 (a free port, one worker) with stdout piped, walks every flow (success and
failure), stops the server with SIGTERM, then prints the event lines and a summary per
event type. The exit status is 1 when one of the 14 documented event types is missing
or stdout carried anything but events.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp

HERE = Path(__file__).resolve().parent
EVENT_TYPES = (
    "pkce_authorize",
    "pkce_token_exchange",
    "pkce_failed",
    "social_login_initiated",
    "social_login_completed",
    "social_link_initiated",
    "mfa_challenge_displayed",
    "mfa_challenge_succeeded",
    "mfa_challenge_failed",
    "captcha_displayed",
    "captcha_succeeded",
    "captcha_failed",
    "breach_check_passed",
    "breach_check_failed",
)
# What the demo client knows out of band, as a real client or user would.
TOTP_SECRET = pyotp.random_base32()
RECOVERY_CODE = "k2m4-7xq9"
USERNAME, PASSWORD = "demo", "hera-demo-pass-2026"
CAPTCHA_TTL = 1.0
SPA = ("flask-spa", "https://spa.example.test/callback")
BACKEND = ("flask-backend", "https://backend.example.test/oauth/callback", "backend-s3cret-2026")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def run_server(env: dict[str, str]) -> Iterator[tuple[str, list[str]]]:
    """Run the example under gunicorn; yield its base URL and the stdout lines so far."""
    port = free_port()
    # One worker: the example keeps its state in memory. gunicorn writes no access log
    # unless asked to, and its error log goes to stderr, so stdout is for events only.
    command = [sys.executable, "-m", "gunicorn", "--chdir", str(HERE), "--workers", "1"]
    command += ["--bind", f"127.0.0.1:{port}", "--log-level", "warning", "app:app"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, env={**os.environ, **env}, cwd=HERE, text=True
    )
    assert proc.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the example exited with status {proc.returncode}")
            try:
                if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the example did not become ready within 20 s")
            time.sleep(0.05)
        yield base, lines
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)


# --- Flows ---------------------------------------------------------------------------


class FlowError(RuntimeError):
    """The example answered a step differently from what the flow expects."""


def expect(response: httpx.Response, status: int, location: str | None = None) -> httpx.Response:
    """Check a step's status (and Location prefix); return the response."""
    got = response.headers.get("location", "")
    if response.status_code != status or (location is not None and not got.startswith(location)):
        raise FlowError(
            f"{response.request.method} {response.request.url.path}: expected {status} "
            f"{location or ''}, got {response.status_code} {got}"
        )
    return response


def search(pattern: str, text: str) -> re.Match[str]:
    """Find ``pattern`` in a page or fail the flow."""
    found = re.search(pattern, text)
    if found is None:
        raise FlowError(f"page lacks {pattern!r}")
    return found


def captcha_fields(page: str, *, solve: bool = True) -> dict[str, str]:
    """Read the captcha token and question from a login page and answer it."""
    token = search(r'name="captcha-token" value="([^"]+)"', page)[1]
    question = search(r'id="captcha-question">(\d+) \+ (\d+)<', page)
    answer = int(question[1]) + int(question[2]) + (0 if solve else 1)
    return {"captcha-token": token, "captcha-answer": str(answer)}


def login_form(page: str, password: str = PASSWORD, *, solve: bool = True) -> dict[str, str]:
    """The login form's fields for the demo user, with the captcha answered."""
    return {"username": USERNAME, "password": password, **captcha_fields(page, solve=solve)}


def password_login(client: httpx.Client, password: str = PASSWORD) -> httpx.Response:
    """Show the login page and submit it with a solved captcha."""
    page = expect(client.get("/login"), 200).text
    return client.post("/login", data=login_form(page, password))


def captcha_flows(base: str) -> None:
    """Captcha: wrong answer, missing, expired, solved (with a wrong password)."""
    with httpx.Client(base_url=base) as client:
        page = client.get("/login").text
        expect(client.post("/login", data=login_form(page, solve=False)), 200)
        client.get("/login")
        expect(client.post("/login", data={"username": USERNAME, "password": PASSWORD}), 200)
        page = client.get("/login").text
        time.sleep(CAPTCHA_TTL + 0.2)
        expect(client.post("/login", data=login_form(page)), 200)
        expect(password_login(client, "not-the-password"), 200)


def mfa_flows(client: httpx.Client) -> None:
    """TOTP: a wrong code then the right one; a recovery code on a second sign-in."""
    expect(password_login(client), 302, "/mfa/totp")
    expect(client.get("/mfa/totp"), 200)
    totp = pyotp.TOTP(TOTP_SECRET)
    valid = {totp.at(time.time() + d) for d in (-30, 0, 30)}
    wrong = next(c for c in ("000000", "111111", "222222") if c not in valid)
    expect(client.post("/mfa/totp", data={"otp": wrong}), 200)
    expect(client.post("/mfa/totp", data={"otp": totp.now()}), 302, "/")
    with httpx.Client(base_url=client.base_url) as second:
        expect(password_login(second), 302, "/mfa/totp")
        expect(second.get("/mfa/totp"), 200)
        expect(second.post("/mfa/recovery", data={"recovery_code": "0000-0000"}), 200)
        expect(second.post("/mfa/recovery", data={"recovery_code": RECOVERY_CODE}), 302, "/")


def registration_flows(base: str) -> None:
    """Registration: a breached password, then one no breach knows."""
    with httpx.Client(base_url=base) as client:
        expect(client.get("/register"), 200)
        form = {"username": "carol", "password": "password123"}
        expect(client.post("/register", data=form), 200)
        form["password"] = secrets.token_urlsafe(12)
        expect(client.post("/register", data=form), 302, "/login")


def social(client: httpx.Client, start: str, *, deny: bool = False) -> httpx.Response:
    """Follow a social login or link from its start URL through the fake provider."""
    provider_url = expect(client.get(start), 302, "/fake-provider/").headers["location"]
    if deny:
        provider_url += "&decision=deny"
    callback = expect(client.get(provider_url), 302).headers["location"]
    return client.get(callback)


def social_flows(base: str) -> None:
    """Social: first and returning login, a denial, an account link used to sign in."""
    with httpx.Client(base_url=base) as client:
        expect(social(client, "/login/google?login_hint=alice"), 302, "/welcome")
        expect(social(client, "/login/google?login_hint=alice"), 302, "/")
        expect(social(client, "/login/github?login_hint=alice", deny=True), 302, "/login?error=")
        expect(social(client, "/account/link/github?login_hint=alice"), 302, "/account")
    with httpx.Client(base_url=base) as other_browser:
        expect(social(other_browser, "/login/github?login_hint=alice"), 302, "/")


def pkce_pair(method: str = "S256") -> tuple[str, str]:
    """Return a fresh (verifier, challenge) pair for ``method``."""
    verifier = secrets.token_urlsafe(48)
    if method == "plain":
        return verifier, verifier
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(client: httpx.Client, client_id: str, redirect_uri: str, **extra: str) -> str:
    """Send the authorization request (consenting when asked); return the Location."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "profile",
        "state": secrets.token_urlsafe(8),
        **extra,
    }
    response = client.get("/oauth/authorize", params=params)
    if response.status_code == 200:  # the consent page, posted back to the same URL
        csrf = search(r'name="csrf_token" value="([^"]+)"', response.text)[1]
        form = {"csrf_token": csrf, "confirm": "yes"}
        response = client.post("/oauth/authorize", params=params, data=form)
    return expect(response, 302, redirect_uri).headers["location"]


def code_of(location: str) -> str:
    """Return the authorization code in a redirect to the client."""
    return parse_qs(urlsplit(location).query)["code"][0]


def token(
    client: httpx.Client, form: dict[str, str], basic: tuple[str, str] | None = None
) -> httpx.Response:
    """POST an authorization_code grant to the token endpoint."""
    auth = httpx.BasicAuth(*basic) if basic is not None else None
    return client.post("/oauth/token", data={"grant_type": "authorization_code", **form}, auth=auth)


def pkce_flows(client: httpx.Client) -> None:
    """PKCE: S256 and plain, each failure reason Authlib has, the confidential client."""
    spa_id, spa_uri = SPA
    for method in ("S256", "plain"):
        verifier, challenge = pkce_pair(method)
        pkce = {"code_challenge": challenge, "code_challenge_method": method}
        code = code_of(authorize(client, spa_id, spa_uri, **pkce))
        form = {"code": code, "client_id": spa_id, "redirect_uri": spa_uri}
        expect(token(client, {**form, "code_verifier": verifier}), 200)
        expect(token(client, {**form, "code_verifier": verifier}), 400)  # a used code
    verifier, challenge = pkce_pair()
    pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
    form = {"code": code_of(authorize(client, spa_id, spa_uri, **pkce)), "client_id": spa_id}
    form["redirect_uri"] = spa_uri
    expect(token(client, {**form, "code_verifier": pkce_pair()[0]}), 400)  # wrong verifier
    expect(token(client, {**form, "code_verifier": "too-short"}), 400)  # malformed verifier
    expect(token(client, form), 400)  # no verifier
    expect(token(client, {**form, "code_verifier": verifier}), 200)  # the code survived
    # A public client without a challenge gets a code; Authlib refuses it at the token.
    form = {"code": code_of(authorize(client, spa_id, spa_uri)), "client_id": spa_id}
    form["redirect_uri"] = spa_uri
    expect(token(client, form), 400)
    expect(token(client, {**form, "code_verifier": verifier}), 400)
    for extra in (
        {"code_challenge_method": "S256"},  # a method without a challenge
        {"code_challenge": challenge, "code_challenge_method": "S512"},
        {"code_challenge": "too-short", "code_challenge_method": "S256"},
    ):
        authorize(client, spa_id, spa_uri, **extra)

    backend_id, backend_uri, backend_secret = BACKEND
    for how in ("client_secret_basic", "client_secret_post"):
        verifier, challenge = pkce_pair()
        pkce = {"code_challenge": challenge, "code_challenge_method": "S256"}
        form = {"code": code_of(authorize(client, backend_id, backend_uri, **pkce))}
        form |= {"redirect_uri": backend_uri, "code_verifier": verifier}
        if how == "client_secret_basic":
            expect(token(client, form, basic=(backend_id, "wrong secret")), 401)
            expect(token(client, form, basic=(backend_id, backend_secret)), 200)
        else:
            secret = {"client_id": backend_id, "client_secret": backend_secret}
            expect(token(client, form | secret | {"code_verifier": "x" * 43}), 400)
            expect(token(client, form | secret), 200)
    form = {
        "code": code_of(authorize(client, backend_id, backend_uri)),
        "redirect_uri": backend_uri,
    }
    expect(token(client, form, basic=(backend_id, backend_secret)), 200)  # no PKCE, no event


def main() -> int:
    """Run every flow against a fresh server and report the events; 0 when all 14 appear."""
    started = time.monotonic()
    env = {"EXAMPLE_TOTP_SECRET": TOTP_SECRET, "EXAMPLE_CAPTCHA_TTL": str(CAPTCHA_TTL)}
    with run_server(env) as (base, lines):
        captcha_flows(base)
        with httpx.Client(base_url=base) as signed_in:
            mfa_flows(signed_in)
            pkce_flows(signed_in)
        registration_flows(base)
        social_flows(base)
    events, stray = [], []
    for line in lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            stray.append(line)
    sys.stdout.writelines(lines)
    # stdout carries the events only (pipe it to jq); the summary goes to stderr.
    print(f"\n{len(events)} events in {time.monotonic() - started:.1f} s", file=sys.stderr)
    shapes: dict[str, Counter[str]] = defaultdict(Counter)
    for event in events:
        skip = ("type", "event", "domain", "ts")
        fields = " ".join(f"{k}={json.dumps(v)}" for k, v in event.items() if k not in skip)
        shapes[str(event.get("event"))][fields or "-"] += 1
    for name in EVENT_TYPES:
        seen = shapes.get(name)
        detail = ", ".join(f"{f} x{n}" for f, n in seen.items()) if seen else "MISSING"
        print(f"  {name:<24} {sum(seen.values()) if seen else 0:>3}  {detail}", file=sys.stderr)
    missing = [name for name in EVENT_TYPES if name not in shapes]
    if stray:
        print(f"stdout carried {len(stray)} lines that are not events", file=sys.stderr)
    if missing:
        print(f"missing event types: {', '.join(missing)}", file=sys.stderr)
    return 1 if missing or stray else 0


if __name__ == "__main__":
    sys.exit(main())
