"""A small FastAPI auth server whose audit events come from hera-middleware.

The server knows nothing of hera: one ``add_middleware`` line and the rule file
``hera.yaml`` beside this file turn its HTTP exchanges into events on stdout.

What it serves (all state in memory, for demonstration only):

- OAuth 2 authorization code grant with PKCE (RFC 6749, RFC 7636): ``/oauth/authorize``
  (GET, and POST for the consent form) and ``/oauth/token``; public clients must use
  PKCE, confidential clients authenticate by HTTP Basic or ``client_secret_post``.
- Social login against a fake provider served here: ``/login/{provider}``,
  ``/fake-provider/authorize``, ``/login/{provider}/callback``, ``/account/link/{provider}``.
- Password login with a small self-made captcha (``/login``), then TOTP MFA
  (``/mfa/totp``) or a recovery code (``/mfa/recovery``).
- Registration with an offline, k-anonymity style breached-password check (``/register``).

Run it with ``python examples/fastapi_app/app.py`` (127.0.0.1:8000, access log off so that
stdout carries only events). Sign in as ``demo`` / ``hera-demo-pass-2026``; the TOTP
secret is ``EXAMPLE_TOTP_SECRET`` (default ``HERADEMO`` x 4) in any authenticator app.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import unquote_plus, urlencode, urlsplit

import pyotp
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from starlette.datastructures import FormData, QueryParams
from starlette.responses import Response

from hera_middleware import HeraEvents

__all__ = [
    "CLIENTS",
    "Client",
    "Settings",
    "Store",
    "app",
    "breach_found",
    "challenge_is_valid",
    "create_app",
    "load_breach_ranges",
    "parse_basic_auth",
    "s256_challenge",
    "safe_next",
    "verifier_matches",
]

HERE = Path(__file__).resolve().parent
PROVIDERS = {"google": "Google", "github": "GitHub"}
SCOPES = frozenset({"openid", "profile", "email"})
PKCE_METHODS = ("S256", "plain")
DEMO_USER = "demo"
DEMO_PASSWORD = "hera-demo-pass-2026"
DEFAULT_TOTP_SECRET = "HERADEMO" * 4
DEFAULT_RECOVERY_CODES = ("7f3a-91c2", "b04e-5d18", "c6d9-2e07")
MFA_MAX_ATTEMPTS = 5

# RFC 7636 4.1: a verifier (and a plain challenge) is 43-128 unreserved characters.
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# RFC 7636 4.2: an S256 challenge is BASE64URL(SHA256(verifier)) without padding.
_S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{2,31}")


# --- PKCE (RFC 7636) --------------------------------------------------------------------


def s256_challenge(verifier: str) -> str:
    """Return the S256 code challenge of ``verifier``: BASE64URL(SHA256(ASCII(verifier)))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def challenge_is_valid(challenge: str, method: str) -> bool:
    """Tell whether ``challenge`` has the shape RFC 7636 requires for ``method``."""
    pattern = _S256_CHALLENGE if method == "S256" else _VERIFIER
    return pattern.fullmatch(challenge) is not None


def verifier_matches(verifier: str, challenge: str, method: str) -> bool:
    """Tell whether ``verifier`` is well formed and transforms to ``challenge``."""
    if _VERIFIER.fullmatch(verifier) is None:
        return False
    expected = s256_challenge(verifier) if method == "S256" else verifier
    return hmac.compare_digest(expected.encode("ascii"), challenge.encode("ascii"))


# --- Client authentication (RFC 6749 2.3.1) ---------------------------------------------


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """Return ``(client_id, secret)`` from an ``Authorization: Basic`` header.

    Both parts are form-urlencoded before base64 (RFC 6749 2.3.1), so they are decoded
    with ``unquote_plus``. Returns None when there is no Basic header; raises ValueError
    when there is one but it cannot be decoded.
    """
    if header is None:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("Basic credentials are not base64 of UTF-8 text") from exc
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise ValueError("Basic credentials lack 'client_id:secret'")
    return unquote_plus(client_id), unquote_plus(secret)


# --- Breached passwords, k-anonymity style ----------------------------------------------


def load_breach_ranges(path: Path) -> dict[str, frozenset[str]]:
    """Read a file of SHA-1 hex hashes into 5-hex-digit prefix -> set of 35-digit suffixes."""
    ranges: dict[str, set[str]] = {}
    for raw in path.read_text(encoding="ascii").splitlines():
        digest = raw.strip().upper()
        if digest and not digest.startswith("#"):
            ranges.setdefault(digest[:5], set()).add(digest[5:])
    return {prefix: frozenset(suffixes) for prefix, suffixes in ranges.items()}


def breach_found(password: str, pwned_range: Callable[[str], Iterable[str]]) -> bool:
    """Tell whether ``password`` is a known breached one, sending only its hash's prefix.

    ``pwned_range(prefix)`` plays the range API (``GET /range/{prefix}`` of Have I Been
    Pwned): it sees five hex digits of the SHA-1 and answers every known suffix.
    """
    digest = hashlib.sha1(password.encode("utf-8")).hexdigest().upper()
    prefix, suffix = digest[:5], digest[5:]
    return any(hmac.compare_digest(suffix, known) for known in pwned_range(prefix))


# --- Small helpers ----------------------------------------------------------------------


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


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(doc, status_code=status)


def _error(message: str | None) -> str:
    return f'<p class="error">{html.escape(message)}</p>' if message else ""


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=302)


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="hera-example"'
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers=headers)


def _first(data: FormData | QueryParams, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) else None


# --- Model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """A registered OAuth client; ``secret`` is None for a public client."""

    client_id: str
    name: str
    redirect_uris: tuple[str, ...]
    secret: str | None = None

    @property
    def public(self) -> bool:
        """True for a public client (no secret, so PKCE is mandatory)."""
        return self.secret is None


#: Demo clients (secrets in source for the demo only). ``partner:reports`` has a colon in
#: its id, so its Basic credentials only work when URL-encoded as RFC 6749 2.3.1 says.
CLIENTS: Mapping[str, Client] = {
    c.client_id: c
    for c in (
        Client("demo-spa", "Demo SPA", ("https://spa.example.test/callback",)),
        Client(
            "demo-backend",
            "Demo Backend",
            ("https://backend.example.test/oauth/callback",),
            secret="s3cr:t/+%&=backend",
        ),
        Client(
            "partner:reports",
            "Partner Reports",
            ("https://reports.example.test/cb",),
            secret="reports secret",
        ),
    )
}


@dataclass(frozen=True)
class Settings:
    """Everything the demo and the tests may change; defaults come from ``EXAMPLE_*``."""

    totp_secret: str = DEFAULT_TOTP_SECRET
    recovery_codes: tuple[str, ...] = DEFAULT_RECOVERY_CODES
    captcha_ttl: float = 120.0
    code_ttl: float = 60.0
    pkce_required_for_public: bool = True
    breach_file: Path = HERE / "breached-sha1.txt"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        """Build settings from ``EXAMPLE_TOTP_SECRET`` and ``EXAMPLE_CAPTCHA_TTL``."""
        return cls(
            totp_secret=env.get("EXAMPLE_TOTP_SECRET", DEFAULT_TOTP_SECRET),
            captcha_ttl=float(env.get("EXAMPLE_CAPTCHA_TTL", "120")),
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
class Session:
    username: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(16))


@dataclass
class PendingMfa:
    username: str
    next: str
    expires_at: float
    attempts: int = 0


@dataclass
class AuthCode:
    client_id: str
    redirect_uri: str | None
    challenge: str | None
    method: str
    username: str
    scope: str
    expires_at: float
    used: bool = False
    tokens: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SocialState:
    provider: str
    intent: Literal["login", "link"]
    username: str | None
    expires_at: float


@dataclass(frozen=True)
class ProviderCode:
    provider: str
    subject: str
    redirect_uri: str
    expires_at: float


def _recovery_hash(code: str) -> str:
    return hashlib.sha256(code.strip().lower().replace(" ", "").encode("utf-8")).hexdigest()


class Store:
    """All server state, in memory."""

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
        self.sessions: dict[str, Session] = {}
        self.pending_mfa: dict[str, PendingMfa] = {}
        self.captchas: dict[str, tuple[str, float]] = {}
        self.codes: dict[str, AuthCode] = {}
        self.tokens: dict[str, str] = {}  # access token -> client_id
        self.consents: set[tuple[str, str]] = set()
        self.social_states: dict[str, SocialState] = {}
        self.social_links: dict[tuple[str, str], str] = {}  # (provider, subject) -> user
        self.provider_codes: dict[str, ProviderCode] = {}
        self.breach_ranges = load_breach_ranges(settings.breach_file)

    # The range "API": the only thing the breach check ever sends is a 5-digit prefix.
    def pwned_range(self, prefix: str) -> frozenset[str]:
        return self.breach_ranges.get(prefix.upper(), frozenset())

    def new_captcha(self) -> tuple[str, str]:
        now = time.monotonic()
        # Forget long-expired challenges, but keep recent ones to say "expired" not "invalid".
        for token in [t for t, (_, exp) in self.captchas.items() if exp < now - 600]:
            del self.captchas[token]
        a, b = secrets.randbelow(9) + 1, secrets.randbelow(9) + 1
        token = secrets.token_urlsafe(16)
        self.captchas[token] = (str(a + b), now + self.settings.captcha_ttl)
        return token, f"{a} + {b}"

    def check_captcha(self, token: str | None, answer: str | None) -> str | None:
        """Return None when solved, else the error text shown to the user."""
        if not token or not answer:
            return "captcha missing"
        entry = self.captchas.pop(token, None)  # single use
        if entry is None:
            return "captcha invalid"
        expected, expires_at = entry
        if time.monotonic() > expires_at:
            return "captcha expired"
        if not hmac.compare_digest(answer.strip().encode(), expected.encode()):
            return "captcha invalid"
        return None

    def authenticate(self, username: str, password: str) -> User | None:
        user = self.users.get(username)
        # Hash even for unknown users so timing does not tell which names exist.
        salt = user.salt if user else b"\0" * 16
        digest = _hash_password(password, salt)
        if user is None or user.password_hash is None:
            return None
        return user if hmac.compare_digest(digest, user.password_hash) else None

    def start_session(self, response: Response, username: str) -> None:
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = Session(username)
        # Not `secure` because the demo runs on plain http://127.0.0.1.
        response.set_cookie("session", sid, httponly=True, samesite="lax")

    def session(self, request: Request) -> Session | None:
        sid = request.cookies.get("session")
        return self.sessions.get(sid) if sid else None

    def pending(self, request: Request) -> PendingMfa | None:
        pid = request.cookies.get("mfa_pending")
        entry = self.pending_mfa.get(pid) if pid else None
        if entry is None or time.monotonic() > entry.expires_at:
            return None
        return entry

    def check_totp(self, user: User, code: str) -> bool:
        """Accept the code of the current 30 s step or a neighbour, each step only once."""
        if user.totp_secret is None or not re.fullmatch(r"\d{6}", code):
            return False
        totp = pyotp.TOTP(user.totp_secret)
        now_step = int(time.time()) // totp.interval
        for step in (now_step - 1, now_step, now_step + 1):
            if hmac.compare_digest(totp.generate_otp(step), code) and step > user.last_totp_step:
                user.last_totp_step = step  # RFC 6238 5.2: never accept the same code twice
                return True
        return False


# --- Pages ------------------------------------------------------------------------------


def _login_page(store: Store, *, error: str | None = None, next_url: str = "/") -> HTMLResponse:
    token, question = store.new_captcha()
    social = " ".join(f'<a href="/login/{p}">Sign in with {n}</a>' for p, n in PROVIDERS.items())
    return _page(
        "Sign in",
        _error(error) + '<form method="post" action="/login">'
        '<label>Username <input name="username" autocomplete="username"></label>'
        '<label>Password <input name="password" type="password"></label>'
        f'<div class="captcha"><span id="captcha-question">{html.escape(question)}</span> = '
        '<input name="captcha-response" inputmode="numeric" autocomplete="off">'
        f"{_hidden('captcha-token', token)}</div>"
        f"{_hidden('next', next_url)}<button>Sign in</button></form><p>{social}</p>"
        '<p><a href="/register">Create an account</a></p>',
    )


def _mfa_page(error: str | None = None) -> HTMLResponse:
    return _page(
        "Two-factor authentication",
        _error(error) + '<form method="post" action="/mfa/totp">'
        '<label>Code from your authenticator app <input name="code" inputmode="numeric" '
        'autocomplete="one-time-code"></label><button>Verify</button></form>'
        '<form method="post" action="/mfa/recovery">'
        '<label>Or a recovery code <input name="recovery_code" autocomplete="off"></label>'
        "<button>Use recovery code</button></form>",
    )


def _register_page(error: str | None = None, username: str = "") -> HTMLResponse:
    return _page(
        "Create an account",
        _error(error) + '<form method="post" action="/register">'
        f'<label>Username <input name="username" value="{html.escape(username)}"></label>'
        '<label>Password <input name="password" type="password"></label>'
        "<p>We check new passwords against known breaches without sending them anywhere.</p>"
        "<button>Register</button></form>",
    )


# --- The application --------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the example server with fresh in-memory state."""
    store = Store(settings or Settings())
    app = FastAPI(title="hera-middleware FastAPI example", docs_url=None, redoc_url=None)
    app.state.store = store  # for tests and debugging; the endpoints use the closure
    app.add_middleware(HeraEvents, rules=str(HERE / "hera.yaml"))

    @app.get("/healthz")
    async def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/")
    async def home(request: Request) -> HTMLResponse:
        session = store.session(request)
        if session is None:
            return _page("Home", '<p><a href="/login">Sign in</a></p>')
        return _page("Home", f"<p>Signed in as {html.escape(session.username)}.</p>")

    @app.get("/welcome")
    async def welcome() -> HTMLResponse:
        return _page("Welcome", "<p>Your account has been created.</p>")

    # --- Password login with captcha, then MFA ------------------------------------------

    @app.get("/login")
    async def login_form(request: Request) -> Response:
        if store.session(request) is not None:
            return _redirect("/")
        error = request.query_params.get("error")
        message = f"sign-in failed ({error})" if error else None
        next_url = safe_next(request.query_params.get("next"))
        return _login_page(store, error=message, next_url=next_url)

    @app.post("/login")
    async def login_submit(request: Request) -> Response:
        form = await request.form()
        next_url = safe_next(_first(form, "next"))
        problem = store.check_captcha(
            _first(form, "captcha-token"), _first(form, "captcha-response")
        )
        if problem is not None:
            return _login_page(store, error=problem, next_url=next_url)
        user = store.authenticate(_first(form, "username") or "", _first(form, "password") or "")
        if user is None:
            return _login_page(store, error="invalid username or password", next_url=next_url)
        if user.totp_secret is None:
            response = _redirect(next_url)
            store.start_session(response, user.username)
            return response
        pid = secrets.token_urlsafe(32)
        store.pending_mfa[pid] = PendingMfa(user.username, next_url, time.monotonic() + 300)
        response = _redirect("/mfa/totp")
        response.set_cookie("mfa_pending", pid, httponly=True, samesite="lax")
        return response

    @app.get("/mfa/totp")
    async def mfa_form(request: Request) -> Response:
        if store.pending(request) is None:
            return _redirect("/login")
        return _mfa_page()

    async def finish_mfa(
        request: Request, field_name: str, verify: Callable[[User, str], bool], error: str
    ) -> Response:
        pending = store.pending(request)
        if pending is None:
            return _redirect("/login")
        form = await request.form()
        user = store.users[pending.username]
        if not verify(user, _first(form, field_name) or ""):
            pending.attempts += 1
            if pending.attempts >= MFA_MAX_ATTEMPTS:
                # Too many guesses: this sign-in is over; the next POST goes back to /login.
                store.pending_mfa.pop(request.cookies.get("mfa_pending", ""), None)
                return _mfa_page(f"{error}; too many attempts, sign in again")
            return _mfa_page(error)
        store.pending_mfa.pop(request.cookies.get("mfa_pending", ""), None)
        response = _redirect(pending.next)
        response.delete_cookie("mfa_pending")
        store.start_session(response, user.username)
        return response

    def use_recovery_code(user: User, code: str) -> bool:
        digest = _recovery_hash(code)
        if digest not in user.recovery_hashes:
            return False
        user.recovery_hashes.discard(digest)  # each recovery code works once
        return True

    @app.post("/mfa/totp")
    async def mfa_verify(request: Request) -> Response:
        return await finish_mfa(request, "code", store.check_totp, "invalid code")

    @app.post("/mfa/recovery")
    async def mfa_recovery(request: Request) -> Response:
        return await finish_mfa(
            request, "recovery_code", use_recovery_code, "invalid recovery code"
        )

    # --- Registration with the breached-password check ----------------------------------

    @app.get("/register")
    async def register_form() -> HTMLResponse:
        return _register_page()

    @app.post("/register")
    async def register_submit(request: Request) -> Response:
        form = await request.form()
        username = (_first(form, "username") or "").strip().lower()
        password = _first(form, "password") or ""
        if not _USERNAME.fullmatch(username) or username in store.users:
            return _register_page("username not available", username)
        if len(password) < 8:
            return _register_page("password must be at least 8 characters", username)
        if breach_found(password, store.pwned_range):
            return _register_page("password found in a data breach, choose another", username)
        salt = secrets.token_bytes(16)
        store.users[username] = User(username, salt, _hash_password(password, salt))
        return _redirect("/login?registered=1")

    # --- Social login and account linking -----------------------------------------------

    def to_provider(request: Request, provider: str, state: SocialState) -> Response:
        token = secrets.token_urlsafe(24)
        store.social_states[token] = state
        query = {
            "response_type": "code",
            "client_id": "hera-example",
            "redirect_uri": str(request.url_for("social_callback", provider=provider)),
            "scope": "openid profile",
            "state": token,
            "provider": provider,
        }
        if hint := request.query_params.get("login_hint"):
            query["login_hint"] = hint
        response = _redirect(f"/fake-provider/authorize?{urlencode(query)}")
        # Binds the state to this browser (RFC 6749 10.12).
        response.set_cookie("social_state", token, httponly=True, samesite="lax", max_age=600)
        return response

    @app.get("/login/{provider}")
    async def social_start(request: Request, provider: str) -> Response:
        if provider not in PROVIDERS:
            return _page("Unknown provider", "", status=404)
        return to_provider(
            request, provider, SocialState(provider, "login", None, time.monotonic() + 600)
        )

    @app.get("/account/link/{provider}")
    async def link_start(request: Request, provider: str) -> Response:
        session = store.session(request)
        if session is None:
            return _redirect(f"/login?{urlencode({'next': request.url.path})}")
        if provider not in PROVIDERS:
            return _page("Unknown provider", "", status=404)
        state = SocialState(provider, "link", session.username, time.monotonic() + 600)
        return to_provider(request, provider, state)

    @app.get("/fake-provider/authorize")
    async def fake_provider(request: Request) -> Response:
        # Stands in for Google/GitHub: the user is signed in there and approves at once.
        q = request.query_params
        provider, redirect_uri = q.get("provider", ""), q.get("redirect_uri", "")
        # Like a real provider: only the exact redirect URI registered for this app.
        if provider not in PROVIDERS or redirect_uri != str(
            request.url_for("social_callback", provider=provider)
        ):
            return _page("Bad request", "<p>unknown provider or redirect_uri</p>", status=400)
        if q.get("decision") == "deny":
            return _redirect(
                _add_query(
                    redirect_uri,
                    error="access_denied",
                    error_description="The user denied the request",
                    state=q.get("state"),
                )
            )
        hint = q.get("login_hint", "demo")
        subject = hashlib.sha256(f"{provider}:{hint}".encode()).hexdigest()[:20]
        code = secrets.token_urlsafe(24)
        store.provider_codes[code] = ProviderCode(
            provider, subject, redirect_uri, time.monotonic() + 60
        )
        return _redirect(_add_query(redirect_uri, code=code, state=q.get("state")))

    def provider_exchange(provider: str, code: str, redirect_uri: str) -> str | None:
        # The provider's token endpoint, called in-process: code -> the user's subject.
        grant = store.provider_codes.pop(code, None)
        if grant is None or time.monotonic() > grant.expires_at:
            return None
        if grant.provider != provider or grant.redirect_uri != redirect_uri:
            return None
        return grant.subject

    @app.get("/login/{provider}/callback", name="social_callback")
    async def social_callback(request: Request, provider: str) -> Response:
        q = request.query_params
        token, cookie = q.get("state", ""), request.cookies.get("social_state", "")
        state = None
        if token and cookie and hmac.compare_digest(token.encode(), cookie.encode()):
            state = store.social_states.pop(token, None)
        if state is None or state.provider != provider or time.monotonic() > state.expires_at:
            return _redirect("/login?error=invalid_state")
        back = "/account" if state.intent == "link" else "/login"
        if q.get("error"):
            reason = "access_denied" if q.get("error") == "access_denied" else "provider_error"
            return _redirect(f"{back}?error={reason}")
        redirect_uri = str(request.url_for("social_callback", provider=provider))
        subject = provider_exchange(provider, q.get("code", ""), redirect_uri)
        if subject is None:
            return _redirect(f"{back}?error=exchange_failed")
        key = (provider, subject)
        if state.intent == "link":
            session = store.session(request)
            owner = store.social_links.get(key)
            if session is None or session.username != state.username:
                return _redirect("/login")
            if owner is not None and owner != session.username:
                return _redirect("/account?error=already_linked")
            store.social_links[key] = session.username
            response = _redirect(f"/account?linked={provider}")
        else:
            username = store.social_links.get(key)
            first_login = username is None
            if username is None:
                username = f"{provider}-{subject[:8]}"
                store.users[username] = User(username)
                store.social_links[key] = username
            response = _redirect("/welcome" if first_login else "/")
            store.start_session(response, username)
        response.delete_cookie("social_state")
        return response

    @app.get("/account")
    async def account(request: Request) -> Response:
        session = store.session(request)
        if session is None:
            return _redirect("/login?next=/account")
        linked = sorted(p for (p, _), u in store.social_links.items() if u == session.username)
        items = "".join(f"<li>{html.escape(PROVIDERS[p])}</li>" for p in linked)
        links = " ".join(f'<a href="/account/link/{p}">Link {n}</a>' for p, n in PROVIDERS.items())
        return _page("Account", f"<ul>{items}</ul><p>{links}</p>")

    # --- OAuth 2 authorization endpoint -------------------------------------------------

    @app.api_route("/oauth/authorize", methods=["GET", "POST"])
    async def authorize(request: Request) -> Response:
        params: FormData | QueryParams = (
            request.query_params if request.method == "GET" else await request.form()
        )
        client = CLIENTS.get(_first(params, "client_id") or "")
        if client is None:
            return _page("Invalid request", "<p>unknown client_id</p>", status=400)
        redirect_uri = _first(params, "redirect_uri")
        if redirect_uri is None and len(client.redirect_uris) == 1:
            target = client.redirect_uris[0]
        elif redirect_uri in client.redirect_uris:
            target = redirect_uri
        else:
            # RFC 6749 4.1.2.1: never redirect to an unverified URI.
            return _page("Invalid request", "<p>redirect_uri not registered</p>", status=400)
        state = _first(params, "state")

        def fail(error: str, description: str) -> Response:
            return _redirect(
                _add_query(target, error=error, error_description=description, state=state)
            )

        if _first(params, "response_type") != "code":
            return fail("unsupported_response_type", "only response_type=code is supported")
        challenge = _first(params, "code_challenge") or None
        method = _first(params, "code_challenge_method")
        if challenge is None:
            if method or (client.public and store.settings.pkce_required_for_public):
                return fail("invalid_request", "code challenge required")
        else:
            method = method or "plain"  # RFC 7636 4.3: the default method
            if method not in PKCE_METHODS:
                return fail("invalid_request", "unsupported code_challenge_method")
            if not challenge_is_valid(challenge, method):
                return fail("invalid_request", "invalid code_challenge")
        scope = _first(params, "scope") or "profile"
        if not set(scope.split()) <= SCOPES:
            return fail("invalid_scope", "unknown scope")

        session = store.session(request)
        if session is None:
            if request.method != "GET":
                return _redirect("/login")
            back = f"{request.url.path}?{request.url.query}"
            return _redirect(f"/login?{urlencode({'next': back})}")
        if request.method == "POST":
            csrf = _first(params, "csrf_token") or ""
            if not hmac.compare_digest(csrf.encode(), session.csrf.encode()):
                return _page("Invalid request", "<p>form expired, try again</p>", status=400)
            if _first(params, "confirm") != "yes":
                return fail("access_denied", "the user denied the request")
            store.consents.add((session.username, client.client_id))
        elif (session.username, client.client_id) not in store.consents:
            keep = ("response_type", "client_id", "redirect_uri", "scope", "state")
            hidden = "".join(_hidden(k, v) for k in keep if (v := _first(params, k)))
            if challenge is not None and method is not None:
                hidden += _hidden("code_challenge", challenge)
                hidden += _hidden("code_challenge_method", method)
            return _page(
                f"Authorize {client.name}?",
                f"<p>{html.escape(client.name)} asks for: {html.escape(scope)}</p>"
                f'<form method="post" action="/oauth/authorize">{hidden}'
                f"{_hidden('csrf_token', session.csrf)}"
                '<button name="confirm" value="yes">Allow</button>'
                '<button name="confirm" value="no">Deny</button></form>',
            )
        code = secrets.token_urlsafe(32)
        store.codes[code] = AuthCode(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            challenge=challenge,
            method=method or "plain",
            username=session.username,
            scope=scope,
            expires_at=time.monotonic() + store.settings.code_ttl,
        )
        return _redirect(_add_query(target, code=code, state=state))

    # --- OAuth 2 token endpoint ---------------------------------------------------------

    @app.post("/oauth/token")
    async def token(request: Request) -> Response:
        form = await request.form()
        try:
            basic = parse_basic_auth(request.headers.get("authorization"))
        except ValueError:
            return _oauth_error(401, "invalid_client", "malformed Basic credentials")
        form_id, form_secret = _first(form, "client_id"), _first(form, "client_secret")
        secret: str | None
        if basic is not None:
            if form_secret is not None:
                return _oauth_error(
                    400, "invalid_request", "use only one client authentication method"
                )
            if form_id is not None and form_id != basic[0]:
                return _oauth_error(400, "invalid_request", "client_id does not match")
            client_id, secret = basic
        else:
            client_id, secret = form_id or "", form_secret
        client = CLIENTS.get(client_id)
        if client is None:
            return _oauth_error(401, "invalid_client", "client authentication failed")
        if client.secret is None:
            if secret is not None:  # a public client has no secret to present
                return _oauth_error(401, "invalid_client", "client authentication failed")
        elif secret is None or not hmac.compare_digest(secret.encode(), client.secret.encode()):
            return _oauth_error(401, "invalid_client", "client authentication failed")

        grant_type = _first(form, "grant_type")
        if not grant_type:
            return _oauth_error(400, "invalid_request", "grant_type required")
        if grant_type != "authorization_code":
            return _oauth_error(400, "unsupported_grant_type", "only authorization_code")
        code = _first(form, "code")
        if not code:
            return _oauth_error(400, "invalid_request", "code required")
        grant = store.codes.get(code)
        if grant is None or time.monotonic() > grant.expires_at:
            return _oauth_error(400, "invalid_grant", "invalid or expired authorization code")
        if grant.used:
            # RFC 6749 4.1.2: a replayed code revokes what it was exchanged for.
            for issued in grant.tokens:
                store.tokens.pop(issued, None)
            return _oauth_error(400, "invalid_grant", "authorization code already used")
        grant.used = True  # single use, whatever the outcome of this attempt
        if grant.client_id != client.client_id:
            return _oauth_error(400, "invalid_grant", "authorization code issued to another client")
        if grant.redirect_uri != _first(form, "redirect_uri"):
            return _oauth_error(400, "invalid_grant", "redirect_uri does not match")
        verifier = _first(form, "code_verifier")
        if grant.challenge is not None:
            if not verifier:
                return _oauth_error(400, "invalid_request", "code_verifier required")
            if not verifier_matches(verifier, grant.challenge, grant.method):
                return _oauth_error(
                    400, "invalid_grant", "code_verifier does not match code_challenge"
                )
        elif verifier:
            # RFC 9700 2.1.1: a verifier without a challenge hints at a downgrade attack.
            return _oauth_error(400, "invalid_grant", "code_verifier sent but no code_challenge")
        access_token = secrets.token_urlsafe(32)
        store.tokens[access_token] = client.client_id
        grant.tokens.append(access_token)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 3600,
                "scope": grant.scope,
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    return app


app = create_app(Settings.from_env())

if __name__ == "__main__":
    import uvicorn

    # access_log=False: stdout carries audit events only (uvicorn logs go to stderr).
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "8000")), access_log=False)
