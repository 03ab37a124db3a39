"""A Flask OAuth 2 server on Authlib whose audit events come from hera-middleware.

The server knows nothing of hera: ``HeraEvents(app)`` reads ``HERA_RULES`` from the app
config (the rule file ``hera.yaml`` beside this file, which builds on ``preset:authlib``)
and turns the server's HTTP exchanges into events on stdout.

What it serves (all state in memory, for demonstration only):

- OAuth 2 authorization code grant with PKCE on Authlib's ``AuthorizationServer`` and
  its ``CodeChallenge`` extension: ``/oauth/authorize`` (GET, and POST from the consent
  page) and ``/oauth/token``. ``flask-spa`` is a public client (PKCE enforced by
  ``CodeChallenge(required=True)``); ``flask-backend`` a confidential one that
  authenticates with ``client_secret_basic`` or ``client_secret_post``.
- Session login (Flask's signed cookie) with a captcha, then TOTP MFA (pyotp) or a
  recovery code.
- Social login against a fake provider served here, and account linking.
- Registration with an offline, k-anonymity style breached-password check.

Run it with ``python examples/flask_app/app.py`` (Werkzeug on 127.0.0.1:5000) or under
gunicorn (``gunicorn --chdir examples/flask_app app:app``, one worker: the state is in
this process). Logs go to stderr, so stdout carries only events. Sign in as ``demo`` /
``hera-demo-pass-2026``; the TOTP secret is ``EXAMPLE_TOTP_SECRET``.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlencode, urlsplit

import pyotp
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response

from hera_middleware.flask import HeraEvents

__all__ = [
    "CLIENTS",
    "Captcha",
    "Client",
    "PwnedRanges",
    "Settings",
    "Store",
    "app",
    "create_app",
    "is_breached",
    "safe_next",
]

HERE = Path(__file__).resolve().parent
PROVIDERS = {"google": "Google", "github": "GitHub"}
SCOPES = ("openid", "profile", "email")
DEMO_USER = "demo"
DEMO_PASSWORD = "hera-demo-pass-2026"
DEFAULT_TOTP_SECRET = "HERAFLASK" * 3 + "HERAF"  # 32 base32 characters
DEFAULT_RECOVERY_CODES = ("k2m4-7xq9", "p8d3-r6tw", "z5n1-c0hv")
MFA_MAX_ATTEMPTS = 5
_USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{2,31}")

CaptchaProblem = Literal["missing", "invalid", "expired"]


# --- Captcha ----------------------------------------------------------------------------


class Captcha:
    """A small arithmetic captcha whose tokens are signed, expire and work once.

    A token carries a nonce, its issue time and an HMAC over both and the answer, so
    the server keeps no per-page state; it remembers only the nonces used within the
    lifetime (older tokens are refused as expired anyway).
    """

    def __init__(self, key: bytes, ttl: float) -> None:
        self._key = key
        self.ttl = ttl
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def _mac(self, nonce: str, issued: str, answer: str) -> str:
        message = f"{nonce}.{issued}.{answer}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:32]

    def issue(self) -> tuple[str, str]:
        """Return a fresh ``(token, question)``."""
        a, b = secrets.randbelow(9) + 1, secrets.randbelow(9) + 1
        nonce, issued = secrets.token_urlsafe(12), str(int(time.time() * 1000))  # ms
        return f"{nonce}.{issued}.{self._mac(nonce, issued, str(a + b))}", f"{a} + {b}"

    def check(self, token: str | None, answer: str | None) -> CaptchaProblem | None:
        """Return None when ``answer`` solves ``token``, else why not."""
        if not token or not answer or not answer.strip():
            return "missing"
        nonce, _, rest = token.partition(".")
        issued, _, mac = rest.partition(".")
        try:
            age = time.time() - int(issued) / 1000
        except ValueError:
            return "invalid"
        if not hmac.compare_digest(mac.encode(), self._mac(nonce, issued, answer.strip()).encode()):
            return "invalid"
        with self._lock:
            now = time.time()
            for old in [n for n, at in self._used.items() if now - at > self.ttl]:
                del self._used[old]
            if age > self.ttl:
                return "expired"
            if nonce in self._used:
                return "invalid"
            self._used[nonce] = now - age
        return None


# --- Breached passwords, k-anonymity style -----------------------------------------------


class PwnedRanges:
    """A local stand-in for the Have I Been Pwned range API over a ``HASH:COUNT`` file.

    ``range(prefix)`` answers what ``GET https://api.pwnedpasswords.com/range/{prefix}``
    answers: every ``SUFFIX:COUNT`` line of the hashes starting with those five hex
    digits. The file is kept sorted, so a range is a bisection.
    """

    def __init__(self, path: Path) -> None:
        entries = []
        for raw in path.read_text(encoding="ascii").splitlines():
            line = raw.strip()
            if line and not line.startswith("#"):
                digest, _, count = line.partition(":")
                entries.append((digest.upper(), int(count or "1")))
        entries.sort()
        self._hashes = [digest for digest, _ in entries]
        self._counts = [count for _, count in entries]

    def range(self, prefix: str) -> str:
        """The range API's answer for ``prefix``: ``SUFFIX:COUNT`` lines, CRLF-separated."""
        prefix = prefix.upper()
        if not re.fullmatch(r"[0-9A-F]{5}", prefix):
            raise ValueError("a range prefix is five hex digits")
        start = bisect.bisect_left(self._hashes, prefix)
        end = bisect.bisect_left(self._hashes, prefix + "G")  # just past every hex digit
        return "\r\n".join(f"{self._hashes[i][5:]}:{self._counts[i]}" for i in range(start, end))


def is_breached(password: str, range_query: Callable[[str], str]) -> bool:
    """Tell whether ``password`` appears in a breach, sending only its hash's prefix.

    ``range_query(prefix)`` is the range API: it sees five hex digits of the SHA-1 and
    answers ``SUFFIX:COUNT`` lines; the match on the suffix happens here.
    """
    digest = hashlib.sha1(password.encode("utf-8")).hexdigest().upper()
    prefix, suffix = digest[:5], digest[5:]
    found = False
    for line in range_query(prefix).splitlines():
        known, _, count = line.strip().partition(":")
        # Compare every line in constant time; padding lines have a count of 0.
        if hmac.compare_digest(known.upper(), suffix) and count.strip() not in ("", "0"):
            found = True
    return found


# --- Small helpers -------------------------------------------------------------------------


def safe_next(target: str | None) -> str:
    """Return ``target`` when it is a path on this site, else ``/`` (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


def _add_query(url: str, **params: str | None) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{url}{'&' if urlsplit(url).query else '?'}{query}"


def _hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1)


def _page(
    template: str, title: str, *, error: tuple[str, str] | None = None, **context: Any
) -> str:
    """Render a page; ``error`` is ``(code, text)``, shown with a ``data-error`` code."""
    shown = {"code": error[0], "text": error[1]} if error else None
    return render_template(template, title=title, error=shown, providers=PROVIDERS, **context)


def _message(title: str, text: str, status: int = 200) -> tuple[str, int]:
    return _page("base.html", title, message=text), status


# --- Model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client(ClientMixin):  # type: ignore[misc]
    """A registered OAuth client; ``secret`` is None for a public client."""

    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    auth_methods: tuple[str, ...] = ("none",)
    secret: str | None = None

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in (scope or "").split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.secret is None:
            return False
        return hmac.compare_digest(client_secret.encode(), self.secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint != "token" or method in self.auth_methods

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


#: Demo clients (secrets in source for the demo only).
CLIENTS: Mapping[str, Client] = {
    c.client_id: c
    for c in (
        Client("flask-spa", "Flask SPA", ("https://spa.example.test/callback",)),
        Client(
            "flask-backend",
            "Flask Backend",
            ("https://backend.example.test/oauth/callback",),
            auth_methods=("client_secret_basic", "client_secret_post"),
            secret="backend-s3cret-2026",
        ),
    )
}


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):  # type: ignore[misc]
    """An issued code, with the PKCE challenge Authlib's CodeChallenge reads back."""

    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    username: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass(frozen=True)
class Settings:
    """Everything the demo and the tests may change; defaults come from ``EXAMPLE_*``."""

    totp_secret: str = DEFAULT_TOTP_SECRET
    recovery_codes: tuple[str, ...] = DEFAULT_RECOVERY_CODES
    captcha_ttl: float = 120.0
    code_ttl: float = 60.0
    pkce_required: bool = True
    pwned_file: Path = HERE / "pwned-passwords.txt"
    secret_key: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Build settings from ``EXAMPLE_TOTP_SECRET``, ``EXAMPLE_CAPTCHA_TTL`` and
        ``EXAMPLE_SECRET_KEY`` (a random key when unset: sessions end with the process)."""
        return cls(
            totp_secret=env.get("EXAMPLE_TOTP_SECRET", DEFAULT_TOTP_SECRET),
            captcha_ttl=float(env.get("EXAMPLE_CAPTCHA_TTL", "120")),
            secret_key=env.get("EXAMPLE_SECRET_KEY", ""),
        )


@dataclass
class User:
    username: str
    salt: bytes = b""
    password_hash: bytes | None = None
    totp_secret: str | None = None
    last_totp_step: int = -1
    recovery_hashes: set[str] = field(default_factory=set)


@dataclass
class PendingMfa:
    username: str
    next: str
    expires_at: float
    attempts: int = 0


@dataclass(frozen=True)
class SocialState:
    provider: str
    intent: Literal["login", "link"]
    username: str | None
    expires_at: float


@dataclass(frozen=True)
class ProviderGrant:
    provider: str
    subject: str
    redirect_uri: str
    expires_at: float


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(code.strip().lower().replace(" ", "").encode("utf-8")).hexdigest()


class Store:
    """All server state, in memory (one process; dict operations used are atomic)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        salt = secrets.token_bytes(16)
        demo = User(
            DEMO_USER,
            salt=salt,
            password_hash=_hash_password(DEMO_PASSWORD, salt),
            totp_secret=settings.totp_secret,
            recovery_hashes={_recovery_hash(c) for c in settings.recovery_codes},
        )
        self.users: dict[str, User] = {DEMO_USER: demo}
        self.clients = dict(CLIENTS)
        self.codes: dict[str, AuthorizationCode] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.consents: set[tuple[str, str]] = set()
        self.pending_mfa: dict[str, PendingMfa] = {}
        self.social_states: dict[str, SocialState] = {}
        self.social_links: dict[tuple[str, str], str] = {}  # (provider, subject) -> user
        self.provider_grants: dict[str, ProviderGrant] = {}
        self.captcha = Captcha(secrets.token_bytes(32), settings.captcha_ttl)
        self.pwned = PwnedRanges(settings.pwned_file)
        self._totp_lock = threading.Lock()

    def authenticate(self, username: str, password: str) -> User | None:
        user = self.users.get(username)
        # Hash even for unknown users so timing does not tell which names exist.
        digest = _hash_password(password, user.salt if user else b"\0" * 16)
        if user is None or user.password_hash is None:
            return None
        return user if hmac.compare_digest(digest, user.password_hash) else None

    def check_totp(self, user: User, code: str) -> bool:
        """Accept the code of the current 30 s step or a neighbour, each step only once."""
        if user.totp_secret is None or not re.fullmatch(r"\d{6}", code):
            return False
        totp = pyotp.TOTP(user.totp_secret)
        now_step = int(time.time()) // totp.interval
        with self._totp_lock:
            for step in (now_step - 1, now_step, now_step + 1):
                if step > user.last_totp_step and hmac.compare_digest(
                    totp.generate_otp(step), code
                ):
                    user.last_totp_step = step  # RFC 6238 5.2: never accept a code twice
                    return True
        return False

    def use_recovery_code(self, user: User, code: str) -> bool:
        digest = _recovery_hash(code)
        try:
            user.recovery_hashes.remove(digest)  # each recovery code works once
        except KeyError:
            return False
        return True


def _store() -> Store:
    store: Store = current_app.extensions["example_store"]
    return store


def _current_user() -> User | None:
    username = session.get("user")
    return _store().users.get(username) if isinstance(username, str) else None


def _sign_in(username: str) -> None:
    session.clear()  # a new session on every sign-in (no fixation)
    session["user"] = username


def _csrf_token() -> str:
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(16)
    return token


def _csrf_ok(sent: str | None) -> bool:
    expected = session.get("csrf")
    return isinstance(expected, str) and hmac.compare_digest(
        (sent or "").encode(), expected.encode()
    )


# --- OAuth 2 on Authlib ------------------------------------------------------------------


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """Authlib's authorization code grant, backed by the in-memory store."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        _store().codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope or "",
            username=request.user.username,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            expires_at=time.monotonic() + _store().settings.code_ttl,
        )

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        item = _store().codes.get(code)
        if item is None or item.client_id != client.client_id:
            return None
        if time.monotonic() > item.expires_at:
            return None
        return item

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        _store().codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        return _store().users.get(authorization_code.username)


def _save_token(token: dict[str, Any], request: Any) -> None:
    owner = request.user.username if request.user else None
    _store().tokens[token["access_token"]] = {
        "client_id": request.client.client_id,
        "username": owner,
        "scope": token.get("scope", ""),
        "expires_at": time.time() + token.get("expires_in", 0),
    }


def _create_server(app: Flask, settings: Settings) -> AuthorizationServer:
    server = AuthorizationServer(
        app,
        query_client=lambda client_id: _store().clients.get(client_id),
        save_token=_save_token,
    )
    server.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=settings.pkce_required)])
    return server


oauth = Blueprint("oauth", __name__, url_prefix="/oauth")


@oauth.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response | str | tuple[str, int]:
    server: AuthorizationServer = current_app.extensions["example_oauth"]
    user = _current_user()
    # Validate first: a bad request goes back to the client (or gets a 400) at once.
    try:
        grant = server.get_consent_grant(end_user=user)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)
    if user is None:
        back = request.full_path.rstrip("?")
        return redirect(url_for("auth.login", next=back))
    client = grant.request.client
    client_id = client.get_client_id()
    if request.method == "GET":
        if (user.username, client_id) in _store().consents:
            return server.create_authorization_response(grant_user=user, grant=grant)
        return _page(
            "consent.html",
            f"Authorize {client.name}?",
            client=client,
            scope=grant.request.scope,
            csrf_token=_csrf_token(),
        )
    if not _csrf_ok(request.form.get("csrf_token")):
        return _message("Invalid request", "The form expired; try again.", 400)
    if request.form.get("confirm") != "yes":
        return server.create_authorization_response(grant_user=None, grant=grant)
    _store().consents.add((user.username, client_id))
    return server.create_authorization_response(grant_user=user, grant=grant)


@oauth.route("/token", methods=["POST"])
def issue_token() -> Response:
    server: AuthorizationServer = current_app.extensions["example_oauth"]
    return server.create_token_response()


# --- Password sign-in with captcha, MFA, registration -----------------------------------------

auth = Blueprint("auth", __name__)

_CAPTCHA_ERRORS = {
    "missing": ("captcha-missing", "Please answer the captcha."),
    "invalid": ("captcha-invalid", "The captcha answer is wrong; try this one."),
    "expired": ("captcha-expired", "The captcha expired; try this one."),
}


def _login_page(error: tuple[str, str] | None = None, next_url: str = "/") -> str:
    token, question = _store().captcha.issue()
    captcha = {"token": token, "question": question}
    return _page("login.html", "Sign in", error=error, captcha=captcha, next_url=next_url)


def _mfa_page(error: tuple[str, str] | None = None) -> str:
    return _page("mfa.html", "Two-factor authentication", error=error)


@auth.route("/login", methods=["GET", "POST"])
def login() -> Response | str:
    store = _store()
    if request.method == "GET":
        if _current_user() is not None:
            return redirect(safe_next(request.args.get("next")))
        return _login_page(next_url=safe_next(request.args.get("next")))
    form = request.form
    next_url = safe_next(form.get("next"))
    problem = store.captcha.check(form.get("captcha-token"), form.get("captcha-answer"))
    if problem is not None:
        return _login_page(_CAPTCHA_ERRORS[problem], next_url)
    user = store.authenticate(form.get("username", ""), form.get("password", ""))
    if user is None:
        return _login_page(("invalid-credentials", "Invalid username or password."), next_url)
    if user.totp_secret is None:
        _sign_in(user.username)
        return redirect(next_url)
    pid = secrets.token_urlsafe(24)
    store.pending_mfa[pid] = PendingMfa(user.username, next_url, time.monotonic() + 300)
    session.clear()
    session["mfa"] = pid
    return redirect(url_for("auth.mfa_totp"))


def _pending() -> PendingMfa | None:
    pid = session.get("mfa")
    entry = _store().pending_mfa.get(pid) if isinstance(pid, str) else None
    if entry is None or time.monotonic() > entry.expires_at:
        return None
    return entry


def _finish_mfa(value: str, verify: Callable[[User, str], bool], what: str) -> Response | str:
    pending = _pending()
    if pending is None:
        return redirect(url_for("auth.login"))
    user = _store().users[pending.username]
    if not verify(user, value.strip()):
        pending.attempts += 1
        if pending.attempts >= MFA_MAX_ATTEMPTS:
            # Too many guesses: this sign-in is over; the next POST goes back to /login.
            _store().pending_mfa.pop(session.pop("mfa", ""), None)
            return _mfa_page(("mfa-invalid", f"Invalid {what}; too many attempts, sign in again."))
        return _mfa_page(("mfa-invalid", f"Invalid {what}."))
    _store().pending_mfa.pop(session.get("mfa", ""), None)
    _sign_in(user.username)
    return redirect(pending.next)


@auth.route("/mfa/totp", methods=["GET", "POST"])
def mfa_totp() -> Response | str:
    if request.method == "GET":
        return _mfa_page() if _pending() is not None else redirect(url_for("auth.login"))
    return _finish_mfa(request.form.get("otp", ""), _store().check_totp, "code")


@auth.route("/mfa/recovery", methods=["POST"])
def mfa_recovery() -> Response | str:
    code = request.form.get("recovery_code", "")
    return _finish_mfa(code, _store().use_recovery_code, "recovery code")


@auth.route("/register", methods=["GET", "POST"])
def register() -> Response | str:
    if request.method == "GET":
        return _page("register.html", "Create an account", username="")
    store = _store()
    username = request.form.get("username", "").strip().lower()
    password = request.form.get("password", "")

    def again(code: str, text: str) -> str:
        return _page("register.html", "Create an account", error=(code, text), username=username)

    if not _USERNAME.fullmatch(username) or username in store.users:
        return again("username-unavailable", "That username is not available.")
    if len(password) < 8:
        return again("password-short", "Use at least 8 characters.")
    if is_breached(password, store.pwned.range):
        return again(
            "password-breached", "This password appeared in a data breach; choose another."
        )
    salt = secrets.token_bytes(16)
    store.users[username] = User(username, salt, _hash_password(password, salt))
    return redirect(url_for("auth.login", registered="1"))


@auth.route("/logout", methods=["POST"])
def logout() -> Response:
    session.clear()
    return redirect(url_for("pages.home"))


# --- Social login, account linking and the fake provider ----------------------------------

social = Blueprint("social", __name__)


def _callback_uri(provider: str) -> str:
    return url_for("social.callback", provider=provider, _external=True)


def _to_provider(provider: str, state: SocialState) -> Response:
    token = secrets.token_urlsafe(24)
    _store().social_states[token] = state
    session["social_state"] = token  # binds the state to this browser (RFC 6749 10.12)
    query = {
        "response_type": "code",
        "client_id": "hera-flask-example",
        "redirect_uri": _callback_uri(provider),
        "scope": "openid profile",
        "state": token,
        "provider": provider,
    }
    if hint := request.args.get("login_hint"):
        query["login_hint"] = hint
    return redirect(f"{url_for('social.fake_provider')}?{urlencode(query)}")


@social.route("/login/<provider>")
def start(provider: str) -> Response | tuple[str, int]:
    if provider not in PROVIDERS:
        return _message("Unknown provider", "No such provider.", 404)
    return _to_provider(provider, SocialState(provider, "login", None, time.monotonic() + 600))


@social.route("/account/link/<provider>")
def link(provider: str) -> Response | tuple[str, int]:
    user = _current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    if provider not in PROVIDERS:
        return _message("Unknown provider", "No such provider.", 404)
    state = SocialState(provider, "link", user.username, time.monotonic() + 600)
    return _to_provider(provider, state)


@social.route("/fake-provider/authorize")
def fake_provider() -> Response | tuple[str, int]:
    # Stands in for Google/GitHub: the user is signed in there and approves at once.
    q = request.args
    provider, redirect_uri = q.get("provider", ""), q.get("redirect_uri", "")
    # Like a real provider: only the exact redirect URI registered for this app.
    if provider not in PROVIDERS or redirect_uri != _callback_uri(provider):
        return _message("Bad request", "Unknown provider or redirect_uri.", 400)
    if q.get("decision") == "deny":
        denied = _add_query(redirect_uri, error="access_denied", state=q.get("state"))
        return redirect(denied)
    hint = q.get("login_hint", "demo")
    subject = hashlib.sha256(f"{provider}:{hint}".encode()).hexdigest()[:20]
    code = secrets.token_urlsafe(24)
    _store().provider_grants[code] = ProviderGrant(
        provider, subject, redirect_uri, time.monotonic() + 60
    )
    return redirect(_add_query(redirect_uri, code=code, state=q.get("state")))


def _provider_exchange(provider: str, code: str) -> str | None:
    # The provider's token endpoint, called in-process: code -> the user's subject.
    grant = _store().provider_grants.pop(code, None)
    if grant is None or time.monotonic() > grant.expires_at:
        return None
    if grant.provider != provider or grant.redirect_uri != _callback_uri(provider):
        return None
    return grant.subject


@social.route("/login/<provider>/callback")
def callback(provider: str) -> Response:
    store = _store()
    token, bound = request.args.get("state", ""), session.pop("social_state", "")
    state = None
    if token and isinstance(bound, str) and hmac.compare_digest(token.encode(), bound.encode()):
        state = store.social_states.pop(token, None)
    if state is None or state.provider != provider or time.monotonic() > state.expires_at:
        return redirect(url_for("auth.login", error="invalid_state"))
    back = "pages.account" if state.intent == "link" else "auth.login"
    if request.args.get("error"):
        return redirect(url_for(back, error="access_denied"))
    subject = _provider_exchange(provider, request.args.get("code", ""))
    if subject is None:
        return redirect(url_for(back, error="exchange_failed"))
    key = (provider, subject)
    if state.intent == "link":
        user = _current_user()
        if user is None or user.username != state.username:
            return redirect(url_for("auth.login"))
        owner = store.social_links.setdefault(key, user.username)
        if owner != user.username:
            return redirect(url_for("pages.account", error="already_linked"))
        return redirect(url_for("pages.account", linked=provider))
    username = store.social_links.get(key)
    first_login = username is None
    if username is None:
        username = f"{provider}-{subject[:8]}"
        store.users.setdefault(username, User(username))
        store.social_links[key] = username
    _sign_in(username)
    # A first login goes on to the welcome page, a returning user straight home.
    return redirect(url_for("pages.welcome" if first_login else "pages.home"))


# --- Plain pages ----------------------------------------------------------------------------

pages = Blueprint("pages", __name__)


@pages.route("/healthz")
def healthz() -> tuple[str, int, dict[str, str]]:
    return "ok", 200, {"Content-Type": "text/plain"}


@pages.route("/")
def home() -> tuple[str, int]:
    user = _current_user()
    if user is None:
        return _message("Home", "Not signed in.")
    return _message("Home", f"Signed in as {user.username}.")


@pages.route("/welcome")
def welcome() -> tuple[str, int]:
    return _message("Welcome", "Your account has been created.")


@pages.route("/account")
def account() -> Response | str:
    user = _current_user()
    if user is None:
        return redirect(url_for("auth.login", next=request.path))
    links = _store().social_links
    linked = sorted(PROVIDERS[p] for (p, _), owner in links.items() if owner == user.username)
    return _page("account.html", "Account", username=user.username, linked=linked)


# --- The application --------------------------------------------------------------------------


def create_app(settings: Settings | None = None, config: Mapping[str, Any] | None = None) -> Flask:
    """Build the example server with fresh in-memory state.

    ``config`` is applied to ``app.config`` last, so ``{"HERA_RULES": "preset:authlib"}``
    swaps the rule file and ``{"HERA_OUTPUT": ...}`` the output.
    """
    settings = settings or Settings()
    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=None)
    app.config.update(
        SECRET_KEY=settings.secret_key or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",  # not Secure: the demo runs on plain http://127.0.0.1
        OAUTH2_SCOPES_SUPPORTED=list(SCOPES),
        HERA_RULES=str(HERE / "hera.yaml"),
    )
    app.config.update(config or {})
    app.extensions["example_store"] = Store(settings)
    app.extensions["example_oauth"] = _create_server(app, settings)
    for blueprint in (pages, auth, social, oauth):
        app.register_blueprint(blueprint)
    HeraEvents(app)
    return app


app = create_app(Settings.from_env())

if __name__ == "__main__":
    from werkzeug.serving import run_simple

    # Not app.run(): its banner goes to stdout. Werkzeug's own log goes to stderr, so
    # stdout carries audit events only.
    run_simple("127.0.0.1", int(os.environ.get("PORT", "5000")), app, threaded=False)
