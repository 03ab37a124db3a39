"""End to end: the FastAPI example under uvicorn (1 worker) on 127.0.0.1, driven by the load
generator of :mod:`benchmarks.loadgen` in its own process.

Both servers (with and without the middleware) run side by side on two ports; rounds
alternate between them, each a fixed number of token requests over keep-alive
connections. Events go to a file.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import orjson

from . import e2e_app
from ._timing import Series

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(middleware: bool, port: int, events: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["HERA_BENCH_MIDDLEWARE"] = "1" if middleware else "0"
    env["HERA_OUTPUT"] = f"file:{events}"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [
        sys.executable, "-m", "uvicorn", "benchmarks.e2e_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    with open(log, "wb") as err:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=err, stderr=subprocess.STDOUT)


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("uvicorn did not start in 30 s")


def _load(port: int, requests: int, connections: int) -> dict[str, float]:
    cmd = [
        sys.executable, "-m", "benchmarks.loadgen", str(port), "/oauth/token",
        e2e_app.BODY, str(requests), str(connections),
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=600)
    result = orjson.loads(out.stdout)
    if result["statuses"] != {"200": requests}:
        raise RuntimeError(f"the token endpoint answered {result['statuses']}")
    return result  # type: ignore[no-any-return]


def run(
    workdir: Path, rounds: int, requests: int, connections: int, progress: Callable[[str], None]
) -> tuple[dict[str, dict[str, Series]], dict[str, int]]:
    """Per variant: rps, p50 (ms), p99 (ms) series; and the event line count."""
    names = {"without the middleware": False, "with HeraEvents": True}
    events = workdir / "e2e-events.jsonl"
    events.unlink(missing_ok=True)
    out: dict[str, dict[str, Series]] = {
        name: {k: Series(f"{name} {k}", []) for k in ("rps", "p50", "p99")} for name in names
    }
    with ExitStack() as stack:
        ports: dict[str, int] = {}
        for name, middleware in names.items():
            port = ports[name] = _free_port()
            log = workdir / f"uvicorn-{'with' if middleware else 'without'}.log"
            proc = _start(middleware, port, events, log)
            stack.callback(_stop, proc)
            _wait_ready(port, proc)
        for name in names:  # warm-up
            _load(ports[name], max(1000, requests // 10), connections)
        order = list(names)
        for r in range(rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                result = _load(ports[name], requests, connections)
                for k in ("rps", "p50", "p99"):
                    out[name][k].values.append(result[k])
            progress(f"  round {r + 1}/{rounds}")
    lines = events.read_bytes().count(b"\n") if events.exists() else 0
    events.unlink(missing_ok=True)
    return out, {"event_lines": lines}


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
