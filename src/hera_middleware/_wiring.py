"""What ``hera-middleware run`` puts around the user's app, and uvicorn's import target.

Under uvicorn the app argument is replaced by ``hera_middleware._wiring:app`` (or
``:factory`` with ``--factory``); this module imports the user's app from
``HERA_RUN_APP`` as uvicorn would and wraps it, with the rules and options of the
``HERA_*`` environment. Under gunicorn, :func:`wrap` is applied to each worker's app
(see ``_gunicorn_conf``).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

__all__ = ["is_asgi", "wrap"]


def is_asgi(app: Any) -> bool:
    """Whether ``app`` is an ASGI 3 app (a coroutine function, or one as ``__call__``)."""
    call = getattr(app, "__call__", None)  # noqa: B004 - a class's __call__ is what is called
    return inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(call)


def wrap(app: Any, interface: str = "auto") -> Any:
    """``app`` inside HeraEvents (ASGI) or HeraEventsWSGI (WSGI, or ``interface="wsgi"``)."""
    from .adapters.asgi import HeraEvents
    from .adapters.wsgi import HeraEventsWSGI

    if interface == "wsgi" or (interface == "auto" and not is_asgi(app)):
        return HeraEventsWSGI(app)
    return HeraEvents(app)


def _user_app() -> Any:
    from uvicorn.importer import import_from_string

    return import_from_string(os.environ["HERA_RUN_APP"])


def factory() -> Any:
    """uvicorn ``--factory`` target: call the user's factory, wrap what it returns."""
    return wrap(_user_app()(), os.environ.get("HERA_RUN_INTERFACE", "auto"))


def __getattr__(name: str) -> Any:
    # uvicorn's importer asks for `app`: import and wrap the user's app only then.
    if name == "app":
        app = wrap(_user_app(), os.environ.get("HERA_RUN_INTERFACE", "auto"))
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
