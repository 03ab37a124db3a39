"""Instructions per request, counted by valgrind's callgrind: the same count on a busy
machine as on an idle one, where timings are not.

Each variant runs in a fresh process under ``valgrind --tool=callgrind`` twice, with
``FEW`` and ``MANY`` requests; the difference divided by ``MANY - FEW`` is what one
request costs (start-up, imports and warm-up cancel out). The writer thread's
instructions are counted too, since the events are flushed before the process ends.

Run by the suite as ``python -m benchmarks.instructions VARIANT N``: serve N requests
through VARIANT, flush, exit.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import hera_middleware

from . import apps

HERE = Path(__file__).resolve().parent
FEW, MANY = 200, 1_200
_COLLECTED = re.compile(r"Collected : (\d+)")
_CALLGRIND = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]


def _app(variant: str) -> tuple[Any, str]:
    """The app a variant names ("asgi hera match"), and the path it is called on."""
    kind, _, what = variant.partition(" ")
    asgi = kind == "asgi"
    bare = apps.starlette_app if asgi else apps.flask_app
    if what == "bare":
        return bare(), apps.TOKEN_PATH
    if what == "no-op":
        return (apps.NoopASGI if asgi else apps.NoopWSGI)(bare()), apps.TOKEN_PATH
    if what == "otel":
        from opentelemetry.sdk.trace import TracerProvider

        otel = importlib.import_module(f"opentelemetry.instrumentation.{kind}")
        middleware = otel.OpenTelemetryMiddleware(bare(), tracer_provider=TracerProvider())
        return middleware, apps.TOKEN_PATH
    hera = hera_middleware.HeraEvents if asgi else hera_middleware.HeraEventsWSGI
    app = hera(bare(), rules=apps.EXAMPLE_RULES, output="file:/dev/null")
    return app, apps.OTHER_PATH if what == "hera miss" else apps.TOKEN_PATH


#: variant -> what the table calls it; bare apps first.
VARIANTS = {
    "asgi bare": "Starlette, bare app",
    "asgi no-op": "Starlette, no-op pure ASGI middleware",
    "asgi hera miss": "Starlette, HeraEvents, no candidate rule",
    "asgi hera match": "Starlette, HeraEvents, rule matches, one event written",
    "asgi otel": "Starlette, OpenTelemetry ASGI (SDK tracer provider)",
    "wsgi bare": "Flask, bare app",
    "wsgi no-op": "Flask, no-op WSGI middleware",
    "wsgi hera miss": "Flask, HeraEventsWSGI, no candidate rule",
    "wsgi hera match": "Flask, HeraEventsWSGI, rule matches, one event written",
    "wsgi otel": "Flask, OpenTelemetry WSGI (SDK tracer provider)",
}


def serve(variant: str, n: int) -> None:
    """Serve ``n`` requests through ``variant`` and wait for the events to be written."""
    app, path = _app(variant)
    if variant.startswith("asgi"):
        asyncio.run(apps.asgi_loop(app, path, n))
    else:
        apps.wsgi_loop(app, path, n)
    hera_middleware.flush()


def available() -> bool:
    return shutil.which("valgrind") is not None


def _count(variant: str, n: int) -> int:
    done = subprocess.run(
        [*_CALLGRIND, sys.executable, "-m", "benchmarks.instructions", variant, str(n)],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    found = _COLLECTED.search(done.stderr)
    if found is None:
        raise RuntimeError(f"callgrind printed no count for {variant}:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def measure(log: Callable[[str], None]) -> dict[str, int]:
    """Variant -> instructions per request."""
    per: dict[str, int] = {}
    # Two processes at a time: the counts do not depend on what else runs.
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = {v: (pool.submit(_count, v, FEW), pool.submit(_count, v, MANY)) for v in VARIANTS}
        for variant, (few, many) in counts.items():
            per[variant] = (many.result() - few.result()) // (MANY - FEW)
            log(f"  {VARIANTS[variant]}: {per[variant]:,} instructions/request")
    return per


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
