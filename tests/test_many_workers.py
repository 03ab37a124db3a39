"""Many processes, one stdout: the examples under gunicorn, driven by concurrent clients.

The FastAPI example under gunicorn with uvicorn workers, and the Flask example under
gunicorn with 4 sync workers (with and without ``--preload``), serve ``GET /login``,
which emits one ``captcha_displayed`` event per request. N concurrent clients send M
requests over loopback; after a graceful stop, stdout holds exactly M event lines, each
one complete JSON event — none torn, interleaved or lost. Then SIGTERM arrives during
load: every response that completed has its event on stdout.

CI size: 20 clients, 1,000 requests. ``HERA_STRESS=1``: 200 clients, 20,000 requests.
A bad rule file stops gunicorn (with and without ``--preload``) instead of serving
without analytics. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import hera_middleware

ROOT = Path(__file__).resolve().parent.parent
STRESS = os.environ.get("HERA_STRESS") == "1"
CLIENTS = 200 if STRESS else 20
REQUESTS = 20_000 if STRESS else 1_000
START_BOUND = 30.0
STOP_BOUND = 30.0
LOAD_BOUND = 1800.0 if STRESS else 120.0

CONFIGS = {
    "fastapi-uvicorn-workers": (
        "fastapi_app",
        ["--workers", "2", "--worker-class", "uvicorn.workers.UvicornWorker"],
    ),
    "flask-4-sync": ("flask_app", ["--workers", "4"]),
    "flask-4-sync-preload": ("flask_app", ["--workers", "4", "--preload"]),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Gunicorn:
    """An example under gunicorn, stdout collected in full, stderr kept for failures."""

    def __init__(
        self, example: str, args: list[str], env: dict[str, str] | None = None, wait: bool = True
    ) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        src = str(Path(hera_middleware.__file__).resolve().parents[1])
        path = [src] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HERA_")},
            "PYTHONPATH": os.pathsep.join(path),
            "EXAMPLE_TOTP_SECRET": "JBSWY3DPEHPK3PXP",
            **(env or {}),
        }
        directory = ROOT / "examples" / example
        command = [sys.executable, "-m", "gunicorn", "--chdir", str(directory), *args]
        command += ["--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "10"]
        command += ["--log-level", "warning", "app:app"]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=directory
        )
        self.stdout = b""
        self.stderr = b""
        self._readers = [
            threading.Thread(target=self._read, args=("stdout",), daemon=True),
            threading.Thread(target=self._read, args=("stderr",), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        if wait:
            self._wait_ready()

    def _read(self, name: str) -> None:
        stream = getattr(self.proc, name)
        chunks = []
        while True:
            data = stream.read1(1 << 16) if hasattr(stream, "read1") else stream.read(1 << 16)
            if not data:
                break
            chunks.append(data)
        setattr(self, name, b"".join(chunks))

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_BOUND
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"gunicorn exited: {self.stderr.decode(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        self.stop()
        pytest.fail("gunicorn did not answer /healthz in time")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop gracefully; return the exit code; stdout and stderr are complete after."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(STOP_BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(STOP_BOUND)
        for reader in self._readers:
            reader.join(STOP_BOUND)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code


@pytest.fixture(params=sorted(CONFIGS))
def server(request: pytest.FixtureRequest) -> Iterator[Gunicorn]:
    example, args = CONFIGS[request.param]
    running = Gunicorn(example, args)
    try:
        yield running
    finally:
        running.stop()


def _drive(base: str, clients: int, total: int, stop: threading.Event | None = None) -> list[int]:
    """``total`` GET /login requests from ``clients`` threads; the count each completed."""
    done = [0] * clients
    per = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            with httpx.Client(base_url=base, timeout=20) as http:
                for _ in range(per[i]):
                    if stop is not None and stop.is_set():
                        return
                    response = http.get("/login")
                    assert response.status_code == 200, response.status_code
                    assert b"captcha" in response.content
                    done[i] += 1
        except (httpx.TransportError, AssertionError) as exc:
            if stop is None:
                errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + LOAD_BOUND
    for thread in threads:
        thread.join(max(0.1, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "the load did not finish in time"
    assert not errors, errors[:3]
    return done


def _events(stdout: bytes) -> list[dict[str, object]]:
    """Every stdout line as one event; a torn or interleaved line fails here."""
    assert not stdout or stdout.endswith(b"\n"), stdout[-300:]
    events = []
    for line in stdout.splitlines():
        assert len(line) < 4096
        event = json.loads(line)
        assert list(event)[:2] == ["type", "event"]
        assert event["type"] == "audit"
        assert list(event)[-2:] == ["domain", "ts"]
        events.append(event)
    return events


def test_every_request_has_exactly_one_intact_line(server: Gunicorn) -> None:
    done = _drive(server.base, CLIENTS, REQUESTS)
    assert sum(done) == REQUESTS
    assert server.stop() == 0, server.stderr.decode(errors="replace")[-3000:]
    events = _events(server.stdout)
    names = [e["event"] for e in events]
    assert "events_dropped" not in names
    assert names.count("captcha_displayed") == REQUESTS, (len(names), REQUESTS)
    assert len(events) == REQUESTS
    assert all(e["flow"] == "login" for e in events)


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_sigterm_during_load_keeps_every_completed_response(config: str) -> None:
    example, args = CONFIGS[config]
    running = Gunicorn(example, args)
    stop = threading.Event()
    result: list[list[int]] = []
    load = threading.Thread(
        target=lambda: result.append(_drive(running.base, CLIENTS, REQUESTS * 10, stop)),
        daemon=True,
    )
    load.start()
    time.sleep(1.0 if not STRESS else 5.0)
    running.proc.send_signal(signal.SIGTERM)
    load.join(LOAD_BOUND)
    stop.set()
    assert not load.is_alive()
    running.stop()
    completed = sum(result[0])
    assert completed > 0
    events = _events(running.stdout)
    displayed = [e for e in events if e["event"] == "captcha_displayed"]
    assert not [e for e in events if e["event"] == "events_dropped"]
    # Every response a client got has its line; a request cut short may have one too.
    assert len(displayed) >= completed, (len(displayed), completed)
    assert len(displayed) <= completed + CLIENTS


@pytest.mark.parametrize("preload", [False, True], ids=["sync", "preload"])
def test_bad_rule_file_stops_gunicorn(preload: bool, tmp_path: Path) -> None:
    """Fail closed: a mistake in the rule file stops gunicorn instead of serving blind."""
    bad = tmp_path / "hera.yaml"
    bad.write_text("rules:\n  - event: pkce_authorise\n    match: GET /x\n")
    args = ["--workers", "2", *(["--preload"] if preload else [])]
    running = Gunicorn("flask_app", args, env={"HERA_RULES": str(bad)}, wait=False)
    try:
        code = running.proc.wait(START_BOUND)
    except subprocess.TimeoutExpired:
        running.stop(signal.SIGKILL)
        pytest.fail("gunicorn kept running with a bad rule file")
    running.stop()
    assert code != 0
    err = running.stderr.decode(errors="replace")
    assert "unknown-event" in err, err[-3000:]
    assert running.stdout == b""
