"""The gunicorn configuration of ``hera-middleware run -- gunicorn ...``.

Loaded as ``-c python:hera_middleware._gunicorn_conf``: it takes over every setting of
the user's own configuration file (``HERA_RUN_GUNICORN_CONFIG``, else none), then adds
a ``post_worker_init`` hook that wraps each worker's app — WSGI or ASGI, a factory's
result included — before the worker serves, and runs the user's hook after it.
"""

from __future__ import annotations

import importlib
import os
import runpy
from typing import Any

from ._wiring import wrap as _wrap

_location = os.environ.get("HERA_RUN_GUNICORN_CONFIG", "")
_settings: dict[str, Any] = {}
if _location.startswith("python:"):
    _settings = dict(vars(importlib.import_module(_location[len("python:") :])))
elif _location:
    _settings = runpy.run_path(_location.removeprefix("file:"), run_name="__config__")
globals().update({k: v for k, v in _settings.items() if not k.startswith("_")})
_their_post_worker_init = _settings.get("post_worker_init")


def post_worker_init(worker: Any) -> None:
    """Wrap the worker's app in the middleware, then run the user's own hook."""
    worker.wsgi = _wrap(worker.wsgi)
    if callable(_their_post_worker_init):
        _their_post_worker_init(worker)
