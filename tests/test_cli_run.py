"""`hera-middleware run -- uvicorn|gunicorn ...`: the middleware around an app no file names.

Unit tests of how the server command is rewritten, then end-to-end runs on loopback:
uvicorn (an ASGI app, a factory, a WSGI app) and gunicorn (a WSGI app; a config file
naming an app factory under uvicorn's worker, with a post_worker_init hook of its own).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hera_middleware.cli import main
from hera_middleware.cli._run import RunError, plan

PY = sys.executable
APP = """\
import flask
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def token(request):
    await request.form()
    return JSONResponse({"access_token": "x"})


app = Starlette(routes=[Route("/oauth/token", token, methods=["POST"], name="token")])


def create_app():
    return app


wsgi = flask.Flask(__name__)


@wsgi.post("/oauth/token")
def wsgi_token():
    flask.request.form
    return {"access_token": "x"}
"""
RULES = """\
rules:
  - event: pkce_token_exchange
    match: POST /oauth/token
    if: {response.status: 200}
    fields: {client_id: form.client_id}
"""
GUNICORN_CONF = """\
import sys

wsgi_app = "hera_run_app:create_app()"
worker_class = "uvicorn.workers.UvicornWorker"


def post_worker_init(worker):
    print("their post_worker_init ran", file=sys.stderr, flush=True)
"""


def _plan(command: list[str], **options: str) -> tuple[list[str], dict[str, str]]:
    argv, env = plan(command, options, {"PATH": "/bin"}, Path("/srv"))
    return argv, {k: v for k, v in env.items() if k != "PATH"}


@pytest.mark.parametrize(
    ("command", "argv", "env"),
    [
        pytest.param(
            ["uvicorn", "myapp:app", "--port", "8000"],
            [PY, "-m", "uvicorn", "hera_middleware._wiring:app", "--port", "8000"],
            {"HERA_RUN_APP": "myapp:app", "HERA_RUN_INTERFACE": "auto"},
            id="uvicorn",
        ),
        pytest.param(
            ["/venv/bin/uvicorn", "--factory", "--host", "::1", "myapp:create_app"],
            [PY, "-m", "uvicorn", "--factory", "--host", "::1", "hera_middleware._wiring:factory"],
            {"HERA_RUN_APP": "myapp:create_app", "HERA_RUN_INTERFACE": "auto"},
            id="uvicorn-factory",
        ),
        pytest.param(
            ["python3", "-m", "uvicorn", "--interface", "wsgi", "app:wsgi"],
            [PY, "-m", "uvicorn", "--interface", "wsgi", "hera_middleware._wiring:app"],
            {"HERA_RUN_APP": "app:wsgi", "HERA_RUN_INTERFACE": "wsgi"},
            id="python-m-uvicorn-wsgi",
        ),
        pytest.param(
            ["gunicorn", "-w", "4", "myapp:app"],
            [
                PY,
                "-m",
                "gunicorn",
                "-c",
                "python:hera_middleware._gunicorn_conf",
                "-w",
                "4",
                "myapp:app",
            ],
            {"HERA_RUN_GUNICORN_CONFIG": ""},
            id="gunicorn",
        ),
        pytest.param(
            ["gunicorn", "-c", "conf.py", "myapp:create_app()"],
            [
                PY,
                "-m",
                "gunicorn",
                "-c",
                "python:hera_middleware._gunicorn_conf",
                "myapp:create_app()",
            ],
            {"HERA_RUN_GUNICORN_CONFIG": "/srv/conf.py"},
            id="gunicorn-config",
        ),
        pytest.param(
            ["gunicorn", "--config=python:my.conf", "-cignored.py", "m:a"],
            [PY, "-m", "gunicorn", "-c", "python:hera_middleware._gunicorn_conf", "m:a"],
            {"HERA_RUN_GUNICORN_CONFIG": "/srv/ignored.py"},
            id="gunicorn-config-forms",
        ),
    ],
)
def test_the_server_command_is_rewritten(
    command: list[str], argv: list[str], env: dict[str, str]
) -> None:
    """uvicorn gets our import target, gunicorn our configuration; the originals go in env."""
    assert _plan(command) == (argv, env)


def test_options_become_hera_environment_variables() -> None:
    """--rules, --domain, --output, --on-full and --record reach the server as HERA_*."""
    options = {"rules": "hera.yaml", "domain": "shop", "on_full": "block", "record": "x.jsonl"}
    _, env = _plan(["gunicorn", "m:a"], **options)
    assert env == {
        "HERA_RULES": "hera.yaml",
        "HERA_DOMAIN": "shop",
        "HERA_ON_FULL": "block",
        "HERA_RECORD": "x.jsonl",
        "HERA_RUN_GUNICORN_CONFIG": "",
    }


def test_gunicorn_conf_py_in_the_working_directory_is_kept(tmp_path: Path) -> None:
    """Without -c, gunicorn reads ./gunicorn.conf.py: the wiring loads it instead."""
    (tmp_path / "gunicorn.conf.py").write_text("bind = '127.0.0.1:1'\n")
    _, env = plan(["gunicorn", "m:a"], {}, {}, tmp_path)
    assert env["HERA_RUN_GUNICORN_CONFIG"] == str(tmp_path / "gunicorn.conf.py")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        pytest.param([], "give the server command after --, for example: -- uvicorn app:app"),
        pytest.param(["hypercorn", "m:a"], "run wires uvicorn and gunicorn, not 'hypercorn'"),
        pytest.param(
            ["uvicorn", "--port", "1"],
            "no app argument found in the uvicorn command (uvicorn myapp:app)",
        ),
        pytest.param(
            ["uvicorn", "--interface", "asgi2", "m:a"],
            "ASGI 2 apps (--interface asgi2) cannot be wrapped; use asgi3",
        ),
    ],
)
def test_commands_that_cannot_be_wired(command: list[str], message: str) -> None:
    """Other servers, a uvicorn command without an app, and ASGI 2 apps are refused."""
    with pytest.raises(RunError) as caught:
        plan(command, {}, {}, Path("/srv"))
    assert str(caught.value) == message


def test_bad_rules_stop_run_before_the_server_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Missing or bad rules are reported by run itself, exit 2 or 1; nothing is started."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HERA_RULES", raising=False)
    assert main(["run", "--", "uvicorn", "m:a"]) == 2
    assert capsys.readouterr().out == "hera-middleware run: give --rules FILE (or set HERA_RULES)\n"
    (tmp_path / "bad.yaml").write_text("rules: [{event: pkce_authorise, match: /t}]\n")
    assert main(["run", "--rules", "bad.yaml", "--", "uvicorn", "m:a"]) == 1
    assert capsys.readouterr().out == (
        "bad.yaml:1:17: unknown-event: unknown event 'pkce_authorise'"
        " (hint: did you mean 'pkce_authorize'?)\n"
    )
    assert main(["run", "--rules", "bad.yaml", "--", "waitress-serve", "m:a"]) == 2
    assert (
        capsys.readouterr().out
        == "hera-middleware run: run wires uvicorn and gunicorn, not 'waitress-serve'\n"
    )


# --- end to end, on loopback -------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _post_when_up(port: int, deadline: float) -> bytes:
    while True:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/oauth/token", data=b"client_id=web", method="POST"
            )
            with urllib.request.urlopen(request, timeout=2) as response:
                return bytes(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _serve_one_request(tmp_path: Path, server: list[str], port: int) -> tuple[str, str]:
    (tmp_path / "hera_run_app.py").write_text(APP)
    (tmp_path / "hera.yaml").write_text(RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERA_", "UVICORN_"))}
    process = subprocess.Popen(
        [PY, "-m", "hera_middleware", "run", "--rules", "hera.yaml", "--", *server],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _post_when_up(port, time.monotonic() + 30).strip() == b'{"access_token":"x"}'
    finally:
        time.sleep(0.2)  # the event is written by a thread right after the response
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    return out, err


def _events(out: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [{k: v for k, v in e.items() if k != "ts"} for e in lines]


EVENT = {"type": "audit", "event": "pkce_token_exchange", "client_id": "web", "domain": "ciam"}


@pytest.mark.parametrize(
    "server",
    [
        pytest.param(["uvicorn", "hera_run_app:app", "--no-access-log"], id="uvicorn-asgi"),
        pytest.param(["uvicorn", "--factory", "hera_run_app:create_app"], id="uvicorn-factory"),
        pytest.param(["uvicorn", "--interface", "wsgi", "hera_run_app:wsgi"], id="uvicorn-wsgi"),
        pytest.param(["gunicorn", "hera_run_app:wsgi"], id="gunicorn-wsgi"),
    ],
)
def test_events_come_from_the_wired_server(tmp_path: Path, server: list[str]) -> None:
    """The app's own module is untouched; its token endpoint emits the event on stdout."""
    port = _free_port()
    if server[0] == "uvicorn":
        server = [*server, "--host", "127.0.0.1", "--port", str(port)]
    else:
        server = [server[0], "-b", f"127.0.0.1:{port}", *server[1:]]
    out, err = _serve_one_request(tmp_path, server, port)
    assert _events(out) == [EVENT], err


def test_gunicorn_config_file_with_a_factory_under_an_asgi_worker(tmp_path: Path) -> None:
    """gunicorn.conf.py's settings all apply (app factory, worker class, its own hook)."""
    port = _free_port()
    (tmp_path / "gunicorn.conf.py").write_text(GUNICORN_CONF + f'bind = "127.0.0.1:{port}"\n')
    out, err = _serve_one_request(tmp_path, ["gunicorn"], port)
    assert _events(out) == [EVENT], err
    assert "their post_worker_init ran" in err
    assert "Using worker: uvicorn.workers.UvicornWorker" in err
