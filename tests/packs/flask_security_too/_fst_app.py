"""A real Flask-Security-Too server and the remote services it calls, faked on 127.0.0.1.

``make_app`` builds an unedited Flask-Security-Too application: the fsqla models on
sqlite in a temporary directory, two-factor with the authenticator app, registration
and password change with the breached-password check, and OAuth social login with a
provider registered through FST's own ``oauthglue.register_provider_ext``. ``Remote``
is one threaded HTTP server on 127.0.0.1 that plays the OAuth provider (authorize,
token, userinfo) and the Pwned Passwords range API, each with switchable failures.

FST calls the range API at a fixed URL (``flask_security.utils.pwned`` builds
``https://api.pwnedpasswords.com/range/<prefix>`` and opens it with
``urllib.request.urlopen``); there is no setting for it. ``pwned_api`` installs a
urllib opener (``urllib.request.install_opener``) whose handler sends exactly that
host's requests to the fake server, so FST's own code runs unchanged.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp

# passlib 1.7 (what FST before 5.5 pulls in) imports the crypt module at import time.
warnings.filterwarnings("ignore", "'crypt' is deprecated", DeprecationWarning)
from flask import Flask  # noqa: E402
from flask_security import (  # noqa: E402
    FsOAuthProvider,
    Security,
    SQLAlchemyUserDatastore,
    hash_password,
)
from flask_security.models import fsqla_v3 as fsqla  # noqa: E402
from flask_sqlalchemy import SQLAlchemy  # noqa: E402

PWNED_HOST = "api.pwnedpasswords.com"
PASSWORD = "Harness-Pass-4821!"
CLEAN_PASSWORD = "Vq7-harness-clean-2931"
BREACHED_PASSWORD = "password123"
CLIENT_ID = "fst-client-id"


class Remote:
    """The OAuth provider and the Pwned Passwords API on one loopback port.

    ``deny`` makes the authorize step answer ``error=access_denied``; ``token_status``
    and ``range_status`` other than 200 make those endpoints fail; ``identity`` is the
    e-mail address the userinfo endpoint returns.
    """

    def __init__(self) -> None:
        self.deny = False
        self.token_status = 200
        self.range_status = 200
        self.identity = "social.user@example.test"
        self.breached = {hashlib.sha1(BREACHED_PASSWORD.encode()).hexdigest().upper()}
        self.range_calls = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Remote:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def reset(self) -> None:
        self.deny = False
        self.token_status = self.range_status = 200

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read events, not access logs."""

            def _send(self, status: int, body: bytes, ctype: str, **headers: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/oauth/authorize":
                    answer = {"state": query["state"]}
                    if remote.deny:
                        answer["error"] = "access_denied"
                    else:
                        answer["code"] = "code-" + secrets.token_hex(8)
                    location = query["redirect_uri"] + "?" + urlencode(answer)
                    self._send(302, b"", "text/plain", Location=location)
                elif url.path == "/api/user":
                    body = json.dumps({"email": remote.identity}).encode()
                    self._send(200, body, "application/json")
                elif url.path.startswith("/range/"):
                    remote.range_calls += 1
                    if remote.range_status != 200:
                        self._send(remote.range_status, b"down", "text/plain")
                        return
                    prefix = url.path.rsplit("/", 1)[1]
                    lines = [f"{h[5:]}:42" for h in remote.breached if h.startswith(prefix)]
                    lines.append("0000000000000000000000000000000000A:3")
                    self._send(200, "\r\n".join(lines).encode(), "text/plain")
                else:
                    self._send(404, b"", "text/plain")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                if urlsplit(self.path).path != "/oauth/token":
                    self._send(404, b"", "text/plain")
                elif remote.token_status == 400:
                    refusal = json.dumps({"error": "invalid_grant"}).encode()
                    self._send(400, refusal, "application/json")
                elif remote.token_status != 200:
                    self._send(remote.token_status, b"provider down", "text/plain")
                else:
                    token = {"access_token": secrets.token_hex(12), "token_type": "Bearer"}
                    self._send(200, json.dumps(token).encode(), "application/json")

        return Handler


class _PwnedToLoopback(urllib.request.BaseHandler):
    """Opens FST's Pwned Passwords requests on the fake server instead."""

    handler_order = 100  # before urllib's own HTTPSHandler

    def __init__(self, base: str) -> None:
        self.base = base

    def https_open(self, req: urllib.request.Request) -> Any:
        if req.host != PWNED_HOST:
            return None
        local = urllib.request.Request(self.base + req.selector, headers=dict(req.header_items()))
        assert self.parent is not None
        return self.parent.open(local, timeout=5)


@contextmanager
def pwned_api(remote: Remote) -> Iterator[None]:
    """While active, FST's range requests reach ``remote`` (see the module docstring)."""
    urllib.request.install_opener(urllib.request.build_opener(_PwnedToLoopback(remote.url)))
    try:
        yield
    finally:
        urllib.request.install_opener(None)  # type: ignore[arg-type]


def _identity(oauth: Any, token: Any) -> tuple[str, Any]:
    profile = oauth.fakehub.get("api/user", token=token).json()
    return "email", profile["email"]


def make_app(directory: Path, remote: Remote, **config: Any) -> Flask:
    """A Flask-Security-Too app, its database in ``directory``; ``config`` overrides."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secrets.token_hex(16),
        SECURITY_PASSWORD_SALT=secrets.token_hex(8),
        SECURITY_PASSWORD_HASH="plaintext",  # fast; hashing is not under test
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{directory / 'fst.db'}",
        WTF_CSRF_ENABLED=False,
        SECURITY_CSRF_IGNORE_UNAUTH_ENDPOINTS=True,
        SECURITY_TWO_FACTOR=True,
        SECURITY_TWO_FACTOR_ENABLED_METHODS=["authenticator"],
        SECURITY_TOTP_SECRETS={"1": "harness-totp-secret-key-for-tests-0001"},
        SECURITY_TOTP_ISSUER="hera",
        SECURITY_REGISTERABLE=True,
        SECURITY_SEND_REGISTER_EMAIL=False,
        SECURITY_CHANGEABLE=True,
        SECURITY_SEND_PASSWORD_CHANGE_EMAIL=False,
        SECURITY_PASSWORD_CHECK_BREACHED=True,
        SECURITY_PASSWORD_BREACHED_COUNT=1,
        SECURITY_OAUTH_ENABLE=True,
        SECURITY_OAUTH_BUILTIN_PROVIDERS=[],
        SECURITY_EMAIL_VALIDATOR_ARGS={"check_deliverability": False, "test_environment": True},
    )
    app.config.update(config)
    db = SQLAlchemy(app)
    fsqla.FsModels.set_db_info(db)

    class Role(db.Model, fsqla.FsRoleMixin):  # type: ignore[name-defined, misc]
        pass

    class User(db.Model, fsqla.FsUserMixin):  # type: ignore[name-defined, misc]
        pass

    class WebAuthn(db.Model, fsqla.FsWebAuthnMixin):  # type: ignore[name-defined, misc]
        pass

    datastore = SQLAlchemyUserDatastore(db, User, Role)
    security = Security(app, datastore)
    assert security.oauthglue is not None
    security.oauthglue.register_provider_ext(
        FsOAuthProvider(
            "fakehub",
            registration_info={
                "client_id": CLIENT_ID,
                "client_secret": "fst-client-secret",
                "authorize_url": remote.url + "/oauth/authorize",
                "access_token_url": remote.url + "/oauth/token",
                "api_base_url": remote.url + "/",
                "client_kwargs": {"scope": "user:email", "timeout": 5},
            },
            fetch_identity_cb=_identity,
        )
    )

    @app.route("/")
    def home() -> str:
        return "home"

    with app.app_context():
        db.create_all()
        totp = datastore.create_user(
            email="totp.user@example.test", password=hash_password(PASSWORD), active=True
        )
        secret = security._totp_factory.generate_totp_secret()
        datastore.tf_set(totp, "authenticator", totp_secret=secret)
        datastore.create_user(
            email="plain.user@example.test", password=hash_password(PASSWORD), active=True
        )
        datastore.create_user(email=remote.identity, password=hash_password(PASSWORD), active=True)
        db.session.commit()
    # The key an authenticator app would hold (the stored secret is encrypted JSON).
    key = security._totp_factory._totp.from_source(secret).base32_key
    app.extensions["fst_harness"] = {"datastore": datastore, "totp": pyotp.TOTP(key)}
    return app


def totp_code(app: Flask) -> str:
    """The code the user's authenticator app shows now."""
    return str(app.extensions["fst_harness"]["totp"].now())


def wrong_code(app: Flask) -> str:
    """A well-formed code that no time step within two minutes of now gives."""
    totp: pyotp.TOTP = app.extensions["fst_harness"]["totp"]
    now = time.time()
    near = {totp.at(now + step * 30) for step in range(-4, 5)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)
