"""The allauth test project served in a subprocess, and a browser-like client for it.

Django is configured once per process (the suite's own project holds that), so the
project runs elsewhere: ``seed`` migrates a fresh sqlite database and makes the users,
then uvicorn (ASGI) or gunicorn (WSGI) serves it on a socket this process bound, with
events written to a file. Each test step ends with a request to ``/_marker/<step>/``,
whose view emits a ``test_step_ended`` event through the same output queue: the lines
before it are exactly the step's events, so no test waits on a clock.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")

#: name -> (server command before the app, application, socket option)
SERVERS = {
    "asgi": (["uvicorn", "--no-access-log", "--lifespan", "off"], "allauth_project.asgi"),
    "wsgi": (["gunicorn", "--workers", "1", "--log-level", "warning"], "allauth_project.wsgi"),
    "asgi-wrapped": (
        ["uvicorn", "--no-access-log", "--lifespan", "off"],
        "allauth_project.asgi_wrapped",
    ),
}
MFA_USERS = 24


def closed_port_url() -> str:
    """An OIDC server URL on a port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/oidc"


@dataclass
class Server:
    """One served copy of the project, with its own database, users and event file."""

    kind: str
    tmp: Path
    oidc_url: str
    dead_url: str
    url: str = ""
    users: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    offset: int = 0
    steps: int = 0
    _next_mfa: int = 0

    @property
    def events_file(self) -> Path:
        return self.tmp / "events.jsonl"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            ALLAUTH_DB=str(self.tmp / "db.sqlite3"),
            ALLAUTH_OIDC_URL=self.oidc_url,
            ALLAUTH_DEAD_URL=self.dead_url,
            HERA_OUTPUT=f"file:{self.events_file}",
            DJANGO_SETTINGS_MODULE="allauth_project.settings",
        )
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        return env

    def start(self) -> Server:
        seeded = subprocess.run(
            [sys.executable, "-m", "allauth_project.seed", str(MFA_USERS)],
            cwd=HERE,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert seeded.returncode == 0, seeded.stderr
        self.users = json.loads(seeded.stdout.strip().splitlines()[-1])
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        sock.set_inheritable(True)
        fd = sock.fileno()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        command, app = SERVERS[self.kind]
        if command[0] == "uvicorn":
            argv = [*command, "--fd", str(fd), f"{app}:application"]
        else:
            argv = [*command, "--bind", f"fd://{fd}", f"{app}:application"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", *argv], cwd=HERE, env=self.env(), pass_fds=[fd]
        )
        sock.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        for _ in range(300):
            assert self.process is not None
            assert self.process.poll() is None, "server exited"
            try:
                httpx.get(f"{self.url}/_marker/ready/", timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)
                continue
            self.step_events("ready")
            return
        raise AssertionError(f"{self.kind} server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def mfa_user(self) -> dict[str, Any]:
        """A user with TOTP and recovery codes no earlier test has used."""
        user: dict[str, Any] = self.users["mfa"][self._next_mfa]
        self._next_mfa += 1
        return user

    def step_events(self, step: str) -> list[dict[str, Any]]:
        """The events emitted since the last step, in order, without ``type``/``domain``/``ts``."""
        self.steps += 1
        name = f"{step}-{self.steps}"
        response = httpx.get(f"{self.url}/_marker/{name}/", timeout=10)
        assert response.status_code == 200, response.status_code
        lines: list[dict[str, Any]] = []
        for _ in range(400):
            with self.events_file.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            lines += [json.loads(line) for line in complete.splitlines()]
            self.offset += len(complete)
            if lines and lines[-1] == {**lines[-1], "event": "test_step_ended", "step": name}:
                return [_stripped(event) for event in lines[:-1]]
            time.sleep(0.025)
        raise AssertionError(f"no marker for {name}; lines so far: {lines}")


def _stripped(event: dict[str, Any]) -> dict[str, Any]:
    assert event["type"] == "audit", event
    assert event["domain"] == "ciam", event
    assert TS.fullmatch(event["ts"]), event
    assert list(event)[:2] == ["type", "event"]
    assert list(event)[-2:] == ["domain", "ts"]
    return {k: v for k, v in event.items() if k not in ("type", "domain", "ts")}


@contextmanager
def served(kind: str, tmp: Path, oidc_url: str) -> Iterator[Server]:
    """Serve the project (``kind`` as in :data:`SERVERS`) until the block ends."""
    tmp.mkdir(parents=True, exist_ok=True)
    server = Server(kind, tmp, oidc_url, closed_port_url())
    try:
        yield server.start()
    finally:
        server.stop()


class Browser:
    """A cookie-keeping client that never follows redirects (each hop is a step)."""

    def __init__(self, server: Server, language: str = "en") -> None:
        self.server = server
        self.http = httpx.Client(
            base_url=server.url,
            headers={"Accept-Language": language},
            follow_redirects=False,
            timeout=20,
        )

    def close(self) -> None:
        self.http.close()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(url, **kwargs)

    def csrf(self) -> str:
        if "csrftoken" not in self.http.cookies:
            self.http.get("/accounts/login/")
        return str(self.http.cookies["csrftoken"])

    def post(self, url: str, data: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        form = {"csrfmiddlewaretoken": self.csrf(), **(data or {})}
        return self.http.post(url, data=form, **kwargs)

    def post_json(self, url: str, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        headers = {"X-CSRFToken": self.csrf(), **kwargs.pop("headers", {})}
        return self.http.post(url, json=body, headers=headers, **kwargs)

    def follow_provider(self, response: httpx.Response) -> str:
        """Send the browser through the fake provider; the callback URL it comes back to."""
        assert response.status_code == 302, response.text[:500]
        back = httpx.get(response.headers["location"], follow_redirects=False, timeout=10)
        assert back.status_code == 302
        location = back.headers["location"]
        return location.removeprefix(self.server.url)
