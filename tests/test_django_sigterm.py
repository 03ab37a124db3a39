"""SIGTERM under uvicorn loses no event of the Django project, in both documented wirings.

uvicorn ends a SIGTERM by restoring the handler it found (``SIG_DFL``) and raising the
signal again, so ``atexit`` never runs; and Django's ASGI handler does not take part in
the lifespan protocol, so no lifespan shutdown flushes either. The test project is
served by a real uvicorn on 127.0.0.1 with the default ``--lifespan auto``:

- ``settings``: ``HeraEventsMiddleware`` in ``MIDDLEWARE`` (``django_project.asgi``);
- ``wrapped``: ``HeraEvents(get_asgi_application())`` (``django_project.asgi_wrapped``).

N requests each write one event to stdout, a pipe the test shrinks (where the platform
lets it) and does not read until SIGTERM is sent, so most lines are still queued in the
server when the signal arrives; then the test reads 4 KiB every 20 ms. Every one of the
N lines must arrive, whole, and the exit summary must be on stderr. Every wait is
bounded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import hera_middleware

TESTS = Path(__file__).resolve().parent
SRC = Path(hera_middleware.__file__).resolve().parents[1]
#: Requests sent, one event each.
N = 400
#: The slow reader: this many bytes, then a pause.
CHUNK = 4096
PAUSE = 0.02
START_BOUND = 20.0
STOP_BOUND = 20.0

RULES = """\
events:
  user_seen: [pk]
rules:
  - event: user_seen
    match: GET /users/{pk:int}/
    fields: {pk: path.pk}
"""

#: name -> (uvicorn app, environment, uvicorn options)
WIRINGS: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "settings": ("django_project.asgi:application", {}, []),
    "wrapped": ("django_project.asgi_wrapped:application", {"DJANGO_PROJECT_MIDDLEWARE": "0"}, []),
    # No lifespan at all: HeraEvents flushes when SIGTERM arrives.
    "wrapped-lifespan-off": (
        "django_project.asgi_wrapped:application",
        {"DJANGO_PROJECT_MIDDLEWARE": "0"},
        ["--lifespan", "off"],
    ),
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _shrink_pipe(fd: int) -> int:
    """Make the pipe as small as the platform allows; return its capacity in bytes."""
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    get_size = getattr(fcntl, "F_GETPIPE_SZ", None)
    if set_size is None or get_size is None:
        return 65536  # the usual capacity where it cannot be asked
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, set_size, 4096)
    return int(fcntl.fcntl(fd, get_size))


class _Reader:
    """Collects a stream in a thread: fast, or, once ``start`` is set, slowly."""

    def __init__(self, stream: object, *, slow: bool) -> None:
        self.stream = stream
        self.slow = slow
        self.start = threading.Event()
        self.data = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        chunks = []
        if self.slow:
            self.start.wait(START_BOUND + STOP_BOUND)
        read = self.stream.read1  # type: ignore[attr-defined]
        while True:
            data = read(CHUNK)
            if not data:
                break
            chunks.append(data)
            if self.slow:
                time.sleep(PAUSE)
        self.data = b"".join(chunks)


@pytest.mark.parametrize("wiring", list(WIRINGS))
def test_sigterm_under_uvicorn_writes_every_queued_event(wiring: str, tmp_path: Path) -> None:
    """Every event of the N requests reaches a slowly read stdout after SIGTERM, with the
    exit summary on stderr.
    """
    app, extra, options = WIRINGS[wiring]
    rules = tmp_path / "sigterm.yaml"
    rules.write_text(RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERA_", "DJANGO_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]),
        DJANGO_SETTINGS_MODULE="django_project.settings",
        HERA_RULES=str(rules),
        WRAP_RULES=str(rules),
        HERA_OUTPUT="stdout",
        **extra,
    )
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1"]
    command += ["--port", str(port), "--no-access-log", *options]
    proc = subprocess.Popen(
        command, cwd=TESTS, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        assert proc.stderr is not None
        capacity = _shrink_pipe(proc.stdout.fileno())
        out = _Reader(proc.stdout, slow=True)
        err = _Reader(proc.stderr, slow=False)
        deadline = time.monotonic() + START_BOUND
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        assert proc.poll() is None, "uvicorn exited at start-up"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            statuses = [client.get(f"/users/{i}/").status_code for i in range(N)]
        assert statuses == [200] * N
        proc.send_signal(signal.SIGTERM)
        out.start.set()
        code = proc.wait(STOP_BOUND)
        out.thread.join(STOP_BOUND)
        err.thread.join(STOP_BOUND)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(STOP_BOUND)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    stderr = err.data.decode(errors="replace")
    assert code in (0, -signal.SIGTERM), stderr
    assert "Traceback" not in stderr
    lines = out.data.splitlines(keepends=True)
    # Nothing was read before SIGTERM: the pipe held at most `capacity` bytes, the rest
    # of the lines were still in the server's queue when the signal arrived.
    assert len(out.data) > 2 * capacity
    assert all(line.endswith(b"\n") for line in lines)
    events = [json.loads(line) for line in lines]
    assert [e["event"] for e in events] == ["user_seen"] * N
    assert sorted(int(e["pk"]) for e in events) == list(range(N))
    assert f"hera-middleware: {N} events written, 0 dropped, " in stderr, stderr
