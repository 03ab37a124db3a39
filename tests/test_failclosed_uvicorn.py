"""Fail closed under a real server: a bad rule file stops uvicorn from starting, loudly.

The app is a FastAPI module wired as documented, ``app.add_middleware(HeraEvents,
rules="bad.yaml")``. Starlette builds its middleware stack on the first ASGI call, the
lifespan startup, so the error must travel through the lifespan protocol: in uvicorn's
``auto`` mode an exception raised there would be logged and swallowed, and the server
would start and answer every request with a 500.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

APP = """
from fastapi import FastAPI

from hera_middleware import HeraEvents

app = FastAPI()
app.add_middleware(HeraEvents, rules="bad.yaml", output="stderr")


@app.post("/oauth/token")
async def token() -> dict[str, str]:
    return {"result": "ok"}
"""

BAD_RULES = """rules:
  - event: pkce_authorise
    match: POST /oauth/token
    fields: {client_id: form.client_id}
"""

#: How long uvicorn may take to give up; it imports FastAPI first.
EXIT_WITHIN = 15.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize(
    "lifespan",
    [
        pytest.param([], id="lifespan-default"),
        pytest.param(["--lifespan", "auto"], id="lifespan-auto"),
        pytest.param(["--lifespan", "on"], id="lifespan-on"),
    ],
)
def test_bad_rule_file_stops_uvicorn(lifespan: list[str], tmp_path: Path) -> None:
    """uvicorn serving a FastAPI app with a bad rule file exits non-zero within seconds, printing
    `file:line:col: code: message`.
    """
    root = tmp_path.resolve()
    (root / "bad.yaml").write_text(BAD_RULES)
    (root / "hera_failclosed_app.py").write_text(APP)
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "hera_failclosed_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *lifespan,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERA_")}
    started = time.monotonic()
    # A server that starts anyway never exits: the timeout kills it and fails the test.
    proc = subprocess.run(
        command,
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXIT_WITHIN + 15,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode != 0, proc.stderr
    assert elapsed < EXIT_WITHIN
    line = (
        f"{root / 'bad.yaml'}:2:12: unknown-event: unknown event 'pkce_authorise' "
        "(hint: did you mean 'pkce_authorize'?)"
    )
    assert line in proc.stderr.splitlines()
    assert "Uvicorn running on" not in proc.stderr
    assert proc.stdout == ""
