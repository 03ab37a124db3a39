"""``hera-middleware run --rules hera.yaml -- uvicorn|gunicorn ...``: zero-code wiring.

The server command is started as given, with the same interpreter, except:

- uvicorn: the app argument (``myapp:app``) becomes ``hera_middleware._wiring:app``
  (``:factory`` with ``--factory``), which imports the original from ``HERA_RUN_APP``
  and wraps it; ``--interface wsgi`` apps get the WSGI middleware.
- gunicorn: the configuration becomes ``python:hera_middleware._gunicorn_conf``, which
  loads the user's own (``-c FILE``, else ``./gunicorn.conf.py`` when present) and
  wraps each worker's app in ``post_worker_init`` — WSGI, or ASGI under an ASGI worker.

Rules and options go to the server through ``HERA_*`` environment variables.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import HeraConfigError
from ..options import resolve_options
from ..rules.loader import load_rules
from ._common import print_problems

__all__ = ["RunError", "plan", "run"]

_OPTIONS = ("rules", "domain", "output", "on_full", "record")


class RunError(ValueError):
    """The server command cannot be wired (unknown server, no app argument)."""


def _server(command: Sequence[str]) -> tuple[str, list[str]]:
    """("uvicorn" or "gunicorn", the arguments after it)."""
    if not command:
        raise RunError("give the server command after --, for example: -- uvicorn app:app")
    name = Path(command[0]).name
    if name.startswith("python") and len(command) > 2 and command[1] == "-m":
        name, rest = command[2], list(command[3:])
    else:
        rest = list(command[1:])
    if name not in ("uvicorn", "gunicorn"):
        raise RunError(f"run wires uvicorn and gunicorn, not {name!r}")
    return name, rest


def _uvicorn(args: list[str], env: dict[str, str]) -> list[str]:
    from uvicorn.main import main as uvicorn_command

    context = uvicorn_command.make_context("uvicorn", list(args), resilient_parsing=True)
    app = context.params.get("app")
    if not app or app not in args:
        raise RunError("no app argument found in the uvicorn command (uvicorn myapp:app)")
    interface = str(context.params.get("interface") or "auto")
    if interface == "asgi2":
        raise RunError("ASGI 2 apps (--interface asgi2) cannot be wrapped; use asgi3")
    at = len(args) - 1 - args[::-1].index(app)
    target = "factory" if context.params.get("factory") else "app"
    env.update(HERA_RUN_APP=app, HERA_RUN_INTERFACE=interface)
    return [*args[:at], f"hera_middleware._wiring:{target}", *args[at + 1 :]]


def _gunicorn(args: list[str], env: dict[str, str], cwd: Path) -> list[str]:
    out: list[str] = []
    config: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-c", "--config") and i + 1 < len(args):
            config, i = args[i + 1], i + 2
            continue
        if arg.startswith("--config="):
            config = arg.split("=", 1)[1]
        elif arg.startswith("-c") and len(arg) > 2:
            config = arg[2:]
        else:
            out.append(arg)
        i += 1
    if config is None and (cwd / "gunicorn.conf.py").is_file():
        config = "gunicorn.conf.py"  # what gunicorn itself reads when not told
    if config and not config.startswith("python:"):
        config = str(cwd / config.removeprefix("file:"))
    env["HERA_RUN_GUNICORN_CONFIG"] = config or ""
    return ["-c", "python:hera_middleware._gunicorn_conf", *out]


def plan(
    command: Sequence[str], options: Mapping[str, str | None], environ: Mapping[str, str], cwd: Path
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment that start ``command`` with the middleware around its app.

    Raises:
        RunError: for a command that is not uvicorn or gunicorn, or has no app argument.
    """
    env = dict(environ)
    for name in _OPTIONS:
        value = options.get(name)
        if value is not None:
            env["HERA_" + name.upper()] = value
    server, args = _server(command)
    args = _uvicorn(args, env) if server == "uvicorn" else _gunicorn(args, env, cwd)
    return [sys.executable, "-m", server, *args], env


def run(args: argparse.Namespace) -> int:
    """Check the rules and options, then replace this process with the wired server."""
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    options = {name: getattr(args, name) for name in _OPTIONS}
    try:
        argv, env = plan(command, options, os.environ, Path.cwd())
    except RunError as exc:
        print(f"hera-middleware run: {exc}")
        return 2
    if not env.get("HERA_RULES"):
        print("hera-middleware run: give --rules FILE (or set HERA_RULES)")
        return 2
    try:
        resolve_options(load_rules(env["HERA_RULES"]), {}, environ=env)
    except HeraConfigError as exc:
        print_problems(exc)  # fail before the server starts, not in each worker
        return 1
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)  # returns only by raising
