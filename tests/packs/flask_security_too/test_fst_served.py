"""``preset:flask-security-too`` on a real server: gunicorn on 127.0.0.1, a browser's flows.

The FST app of ``_fst_served.create()`` (CSRF on, the Flask extension, events to the
file ``HERA_OUTPUT`` names) runs under gunicorn with one sync worker; httpx plays the
browser: it keeps the session cookie, reads each form's ``csrf_token`` and posts it
back. The file must hold exactly the expected lines, in order, after the server has
stopped (so every line is flushed): nothing for the login page, the password step, a
post without the CSRF token, a wrong password or a too-short one.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from _fst_app import BREACHED_PASSWORD, CLEAN_PASSWORD, PASSWORD, Remote
from _fst_client import PACK

HERE = Path(__file__).parent
TIMEOUT = httpx.Timeout(10.0)
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
TS = re.compile(r'"ts":"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"')

pytest.importorskip("gunicorn")


def line(event: str, **fields: object) -> str:
    """An event line as the writer puts it, ``ts`` replaced by a placeholder."""
    body = {"type": "audit", "event": event, **fields, "domain": "ciam", "ts": "TS"}
    return json.dumps(body, separators=(",", ":"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Served:
    """gunicorn serving ``_fst_served:create()``; ``lines()`` reads the event file."""

    def __init__(self, directory: Path, remote: Remote) -> None:
        self.directory = directory
        self.events = directory / "events.jsonl"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERA_")}
        env.update(
            HERA_OUTPUT=f"file:{self.events}",
            FST_SERVED_DIR=str(directory),
            FST_SERVED_REMOTE=remote.url,
            PYTHONWARNINGS="ignore",
        )
        command = [sys.executable, "-m", "gunicorn", "--workers", "1", "--chdir", str(HERE)]
        command += ["--bind", f"127.0.0.1:{self.port}", "--timeout", "30"]
        command += ["--graceful-timeout", "5", "_fst_served:create()"]
        self.log = (directory / "gunicorn.log").open("w+")
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=self.log)

    def wait_up(self, deadline: float) -> None:
        while True:
            try:
                if httpx.get(self.url + "/login", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError("gunicorn did not come up:\n" + self.output())
            time.sleep(0.1)

    def totp(self) -> pyotp.TOTP:
        return pyotp.TOTP((self.directory / "totp.key").read_text())

    def stop(self) -> None:
        """SIGTERM (a graceful stop: the writer flushes), SIGKILL after 15 seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()

    def output(self) -> str:
        return (self.directory / "gunicorn.log").read_text()

    def lines(self) -> list[str]:
        text = self.events.read_text() if self.events.exists() else ""
        return [TS.sub('"ts":"TS"', raw) for raw in text.splitlines()]

    def wait_lines(self, count: int, deadline: float) -> list[str]:
        """The file's lines once it has ``count`` of them (the writer is a thread)."""
        while len(got := self.lines()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return got


@pytest.fixture
def served(tmp_path: Path, remote: Remote) -> Iterator[Served]:
    server = Served(tmp_path, remote)
    try:
        server.wait_up(time.monotonic() + 30)
        yield server
    finally:
        server.stop()


@pytest.fixture
def browser(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=TIMEOUT, follow_redirects=False) as client:
        yield client


def csrf(page: httpx.Response) -> str:
    """The form's CSRF token, as a browser submits the hidden input."""
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


def wrong_code(totp: pyotp.TOTP) -> str:
    now = time.time()
    near = {totp.at(now + step * 30) for step in range(-4, 5)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


@pytest.mark.produces(
    PACK, "mfa_challenge_failed", via="HTML tf-validate answer (served by gunicorn)"
)
@pytest.mark.produces(
    PACK, "mfa_challenge_succeeded", via="signal tf_code_confirmed (served by gunicorn)"
)
def test_two_factor_sign_in_on_gunicorn(served: Served, browser: httpx.Client) -> None:
    """Login page, a wrong password, the password step, the challenge page, a code
    without the CSRF token, a wrong code, the right code: three lines."""
    login = browser.get("/login")
    assert login.status_code == 200
    user = {"email": "totp.user@example.test", "csrf_token": csrf(login)}
    wrong = browser.post("/login", data={**user, "password": "Not-The-Password-1"})
    assert wrong.status_code == 200
    step = browser.post("/login", data={**user, "password": PASSWORD})
    assert step.status_code == 302
    assert step.headers["location"].startswith("/tf-validate")
    page = browser.get(step.headers["location"])
    assert page.status_code == 200
    token = csrf(page)
    totp = served.totp()
    forged = browser.post("/tf-validate", data={"code": totp.now()})
    # Refused without a word under the code field (FST's page shows no CSRF error).
    assert forged.status_code == 200
    assert 'name="two_factor_verify_code_form"' in forged.text
    bad = browser.post("/tf-validate", data={"code": wrong_code(totp), "csrf_token": token})
    assert bad.status_code == 200
    assert "Invalid code" in bad.text
    good = browser.post("/tf-validate", data={"code": totp.now(), "csrf_token": token})
    assert good.status_code == 302
    assert good.headers["location"] == "/"
    assert browser.get("/").text == "home"
    expected = [
        line("mfa_challenge_displayed", method="totp"),
        line("mfa_challenge_failed", method="totp"),
        line("mfa_challenge_succeeded", method="totp"),
    ]
    assert served.wait_lines(3, time.monotonic() + 10) == expected
    served.stop()
    assert served.lines() == expected, served.output()


@pytest.mark.produces(PACK, "breach_check_failed", via="HTML register answer (served by gunicorn)")
@pytest.mark.produces(
    PACK, "breach_check_passed", via="signal user_registered (served by gunicorn)"
)
def test_registration_with_a_breached_password_on_gunicorn(
    served: Served, browser: httpx.Client, remote: Remote
) -> None:
    """The registration page, a breached password (refused), a too-short one (no check),
    a post without the CSRF token, then a clean one (registered): two lines."""
    page = browser.get("/register")
    assert page.status_code == 200
    token = csrf(page)

    def form(password: str) -> dict[str, str]:
        return {"email": "new@example.test", "password": password, "password_confirm": password}

    calls = remote.range_calls
    refused = browser.post("/register", data={**form(BREACHED_PASSWORD), "csrf_token": token})
    assert refused.status_code == 200
    assert "Password on breached list" in refused.text
    assert remote.range_calls == calls + 1
    short = browser.post("/register", data={**form("short1"), "csrf_token": csrf(refused)})
    assert short.status_code == 200
    forged = browser.post("/register", data=form(CLEAN_PASSWORD))
    assert forged.status_code in (200, 400)
    assert "CSRF" in forged.text
    done = browser.post("/register", data={**form(CLEAN_PASSWORD), "csrf_token": token})
    assert done.status_code == 302, done.text[:500]
    expected = [line("breach_check_failed", reason="in_hibp"), line("breach_check_passed")]
    assert served.wait_lines(2, time.monotonic() + 10) == expected
    served.stop()
    assert served.lines() == expected, served.output()
