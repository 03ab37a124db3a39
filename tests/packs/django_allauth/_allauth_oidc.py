"""A fake OpenID Connect provider on 127.0.0.1, for allauth's ``openid_connect`` provider.

allauth reads its discovery document from ``<url>/.well-known/openid-configuration``,
sends the browser to ``authorization_endpoint``, then exchanges the code at
``token_endpoint`` and reads ``userinfo_endpoint`` (no ID token, so no JWKS). The test
sets what the next authorization answers: who signs in (``identity``), or a denial;
``token_status`` makes the token endpoint fail.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit


class FakeOIDC:
    """The provider's state, shared by its request handlers."""

    def __init__(self) -> None:
        self.identity: dict[str, Any] = {"sub": "nobody"}
        self.deny = False
        self.token_status = 200
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/oidc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeOIDC:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def authorize(self, query: dict[str, str]) -> str:
        """Where the provider sends the browser back: the client's redirect URI."""
        back = {"state": query.get("state", "")}
        if self.deny:
            back["error"] = "access_denied"
        else:
            code = "code-" + secrets.token_hex(8)
            self.codes[code] = dict(self.identity)
            back["code"] = code
        return f"{query['redirect_uri']}?{urlencode(back)}"


def _handler(fake: FakeOIDC) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests print what they need."""

        def _json(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/oidc/.well-known/openid-configuration":
                self._json(200, fake.discovery())
            elif url.path == "/oidc/authorize":
                self.send_response(302)
                self.send_header("Location", fake.authorize(query))
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif url.path == "/oidc/userinfo":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if token in fake.tokens:
                    self._json(200, fake.tokens[token])
                else:
                    self._json(401, {"error": "invalid_token"})
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if urlsplit(self.path).path != "/oidc/token":
                self._json(404, {"error": "not_found"})
            elif fake.token_status != 200:
                self._json(fake.token_status, {"error": "server_error"})
            elif form.get("code") not in fake.codes:
                self._json(400, {"error": "invalid_grant"})
            else:
                token = "at-" + secrets.token_hex(8)
                fake.tokens[token] = fake.codes.pop(form["code"])
                self._json(200, {"access_token": token, "token_type": "Bearer"})

    return Handler
