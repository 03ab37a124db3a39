"""Run the DOT test project (``dot_project``) under gunicorn or uvicorn, and read its events.

A :class:`DotServer` is one server process on 127.0.0.1 with its own settings (from the
environment, see ``dot_project/settings.py``) and an events file (``HERA_OUTPUT``).
:class:`DotClient` drives it like a browser and an OAuth client, and checks each step's
events: the lines a step adds to the file must be exactly the expected events, and a
step expected to emit nothing is followed by a *sync* request whose own event must be
the next line, so a stray event is caught at the step that caused it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

HERE = Path(__file__).resolve().parent
CALLBACK = "http://client.example.test/callback"
CONFIDENTIAL_SECRET = "conf-secret-dot"
MACHINE_SECRET = "machine-secret-dot"
PASSWORD = "correct horse battery"
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
#: The client a sync request names: an unsupported method answers it with an event.
SYNC_CLIENT = "dot-public-auto"
SYNC_EVENT = {
    "event": "pkce_failed",
    "reason": "challenge_method_unsupported",
    "client_id": SYNC_CLIENT,
}


def pkce_pair(seed: str) -> tuple[str, str]:
    """A (verifier, S256 challenge) pair, distinct per seed."""
    verifier = f"verifier-{seed}-" + hashlib.sha256(seed.encode()).hexdigest()[:40]
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERA_", "DOT_"))}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env["DJANGO_SETTINGS_MODULE"] = "dot_project.settings"
    env.update(extra)
    return env


def seed_database(directory: Path) -> Path:
    """A migrated database with the test user and clients (``dot_project.seed``)."""
    db = directory / "seed.sqlite3"
    subprocess.run(
        [sys.executable, "-m", "dot_project.seed"],
        cwd=HERE,
        env=_env(DOT_DB=str(db)),
        check=True,
        timeout=120,
    )
    return db


@dataclass
class Config:
    """How one server runs: ``kind`` wsgi (gunicorn) or asgi (uvicorn), and its settings."""

    name: str
    kind: str
    prefix: str = ""  # the mount: uvicorn --root-path, or SCRIPT_NAME under gunicorn
    hera: str = "middleware"  # or "wrapped"
    language: str = ""  # LANGUAGE_CODE, and the Accept-Language the clients send
    settings: dict[str, str] = field(default_factory=dict)
    db: str = ""  # the name of a database shared with another server, else its own


@dataclass
class DotServer:
    config: Config
    proc: subprocess.Popen[bytes]
    base: str  # scheme://host:port plus the mount prefix
    events_file: Path
    db: Path
    seen: int = 0
    stderr: bytes = b""
    sync_http: httpx.Client | None = None

    def lines(self) -> list[dict[str, Any]]:
        data = self.events_file.read_bytes() if self.events_file.exists() else b""
        complete = data[: data.rfind(b"\n") + 1]
        return [json.loads(line) for line in complete.splitlines()]

    def take(self, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """The next ``count`` event lines (waiting for the writer, bounded)."""
        deadline = time.monotonic() + timeout
        lines = self.lines()
        while len(lines) < self.seen + count and time.monotonic() < deadline:
            time.sleep(0.01)
            lines = self.lines()
        new = lines[self.seen : self.seen + count]
        self.seen += len(new)
        return new

    def sync(self) -> None:
        """A request whose one event marks that every earlier event was written."""
        if self.sync_http is None:
            self.sync_http = httpx.Client(base_url=self.base, timeout=15)
            sign_in(self.sync_http)
        query = {
            "response_type": "code",
            "client_id": SYNC_CLIENT,
            "redirect_uri": CALLBACK,
            "code_challenge": "sync-" + "s" * 43,
            "code_challenge_method": "S999",
        }
        answer = self.sync_http.get("/o/authorize/", params=query)
        assert answer.status_code == 302, answer.text
        assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["invalid_request"]

    def expire_grants(self) -> None:
        """Make every authorization code of this server's database expired (as time would)."""
        with sqlite3.connect(self.db, timeout=10) as con:
            con.execute("UPDATE oauth2_provider_grant SET expires = '2000-01-01 00:00:00'")


def _command(config: Config, port: int) -> list[str]:
    if config.kind == "wsgi":
        command = [sys.executable, "-m", "gunicorn", "dot_project.wsgi:application"]
        return [*command, "-b", f"127.0.0.1:{port}", "-w", "1", "--graceful-timeout", "5"]
    command = [sys.executable, "-m", "uvicorn", "dot_project.asgi:application"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    if config.prefix:
        command += ["--root-path", config.prefix]
    return command


def _wait_ready(server: DotServer) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            break
        try:
            if httpx.get(server.base + "/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    _stop(server)
    raise AssertionError(f"{server.config.name} did not start:\n{server.stderr.decode()}")


def sign_in(http: httpx.Client, next_url: str = "") -> httpx.Response:
    """Sign in through Django's login form (GET for the CSRF token, then POST)."""
    page = http.get("/accounts/login/", params={"next": next_url} if next_url else {})
    assert page.status_code == 200, page.text
    form = {
        "csrfmiddlewaretoken": http.cookies["csrftoken"],
        "username": "alice",
        "password": PASSWORD,
        "next": next_url,
    }
    done = http.post("/accounts/login/", data=form)
    assert done.status_code == 302, done.text
    assert "sessionid" in http.cookies
    return done


def _terminate(server: DotServer) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)


def _stop(server: DotServer) -> None:
    if server.sync_http is not None:
        server.sync_http.close()
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        _, server.stderr = server.proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        _, server.stderr = server.proc.communicate()


@contextmanager
def running(configs: list[Config], directory: Path, seed: Path) -> Iterator[dict[str, DotServer]]:
    """Every server of ``configs`` started (at once), each on a copy of ``seed``."""
    servers: dict[str, DotServer] = {}
    with ExitStack() as stack:
        for config in configs:
            db = directory / f"{config.db or config.name}.sqlite3"
            if not db.exists():
                shutil.copy(seed, db)
            events = directory / f"{config.name}.events.jsonl"
            extra = {
                "DOT_DB": str(db),
                "DOT_HERA": config.hera,
                "HERA_OUTPUT": f"file:{events}",
                **config.settings,
            }
            if config.language:
                extra["DOT_LANGUAGE"] = config.language
            if config.kind == "wsgi" and config.prefix:
                extra["SCRIPT_NAME"] = config.prefix
            port = _free_port()
            proc = subprocess.Popen(
                _command(config, port),
                cwd=HERE,
                env=_env(**extra),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            # gunicorn strips SCRIPT_NAME from the paths it is sent; uvicorn --root-path
            # is told the prefix a proxy in front of it already took away.
            mount = config.prefix if config.kind == "wsgi" else ""
            server = DotServer(config, proc, f"http://127.0.0.1:{port}{mount}", events, db)
            servers[config.name] = server
            stack.callback(_stop, server)
        # Unwound in reverse: every server is told to stop before any is waited for.
        for server in servers.values():
            stack.callback(_terminate, server)
        for server in servers.values():
            _wait_ready(server)
        yield servers
    for server in servers.values():
        assert server.proc.returncode in (0, -signal.SIGTERM), server.stderr.decode()
        assert b"Traceback" not in server.stderr, server.stderr.decode()


def _stripped(line: dict[str, Any]) -> list[tuple[str, Any]]:
    """An event line without its envelope, checked: type first, domain and ts last."""
    keys = list(line)
    assert keys[:2] == ["type", "event"], keys
    assert keys[-2:] == ["domain", "ts"], keys
    assert (line["type"], line["domain"]) == ("audit", "ciam"), line
    assert TS.fullmatch(line["ts"]), line["ts"]
    return [(k, v) for k, v in line.items() if k not in ("type", "domain", "ts")]


class DotClient:
    """A browser session and OAuth client against one :class:`DotServer`."""

    def __init__(self, server: DotServer) -> None:
        self.server = server
        headers = {"Accept-Language": server.config.language} if server.config.language else {}
        self.http = httpx.Client(base_url=server.base, headers=headers, timeout=15)

    def close(self) -> None:
        self.http.close()

    def expect(self, events: list[dict[str, Any]], step: str) -> None:
        """The lines since the last check are exactly ``events`` (then a sync, if none)."""
        wanted = [list(e.items()) for e in events] if events else [list(SYNC_EVENT.items())]
        if not events:
            self.server.sync()
        got = [_stripped(line) for line in self.server.take(len(wanted))]
        assert got == wanted, f"{self.server.config.name}: {step}: got {got}, wanted {wanted}"

    # --- browser -------------------------------------------------------------------

    def login(self, next_url: str = "") -> httpx.Response:
        """Sign in through the login form; neither page nor POST is an outcome."""
        done = sign_in(self.http, next_url)
        self.expect([], "login page and submit")
        return done

    def authorize_query(self, client: str, **params: str | None) -> dict[str, str]:
        """An authorize query for ``client``; a parameter given as None is left out."""
        query = {
            "response_type": "code",
            "client_id": client,
            "redirect_uri": CALLBACK,
            "scope": "read",
            "state": "st-" + client,
            **params,
        }
        return {k: v for k, v in query.items() if v is not None}

    def authorize(self, query: dict[str, str]) -> httpx.Response:
        return self.http.get("/o/authorize/", params=query)

    def consent(self, query: dict[str, str], allow: bool = True) -> httpx.Response:
        """Show the consent page (200, no event), then post the form DOT rendered."""
        page = self.authorize(query)
        assert page.status_code == 200, (page.status_code, page.text[:300])
        self.expect([], "consent page")
        form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        assert form["csrfmiddlewaretoken"]
        if allow:
            form["allow"] = "Authorize"
        return self.http.post("/o/authorize/?" + urlencode(query), data=form)

    # --- OAuth client --------------------------------------------------------------

    def token(self, form: dict[str, str], basic: tuple[str, str] | None = None) -> httpx.Response:
        auth = httpx.BasicAuth(*basic) if basic else None
        # The client is no browser: no cookies on the token endpoint.
        with httpx.Client(base_url=self.server.base, headers=self.http.headers) as c:
            return c.post("/o/token/", data=form, auth=auth, timeout=15)


def code_of(answer: httpx.Response) -> str:
    """The code a 302 to the client's callback hands out."""
    assert answer.status_code == 302, (answer.status_code, answer.text[:300])
    location = answer.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    return parse_qs(urlsplit(location).query)["code"][0]


def redirect_error(answer: httpx.Response) -> str:
    """The ``error`` of a 302 to the client's callback."""
    assert answer.status_code == 302, (answer.status_code, answer.text[:300])
    location = answer.headers["location"]
    assert location.startswith(CALLBACK + "?"), location
    return parse_qs(urlsplit(location).query)["error"][0]
