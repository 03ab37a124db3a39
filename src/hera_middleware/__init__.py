"""hera-middleware: audit analytics events for existing Python auth servers.

Wire it in with one line and a rule file::

    from hera_middleware import HeraEvents, HeraEventsWSGI

    app.add_middleware(HeraEvents, rules="hera.yaml")            # ASGI
    app.wsgi_app = HeraEventsWSGI(app.wsgi_app, rules="hera.yaml")  # WSGI

Each exchange that a rule matches writes one JSON line such as
``{"type":"audit","event":"pkce_authorize","client_id":"web","domain":"ciam","ts":"..."}``.
"""

from __future__ import annotations

from .adapters.asgi import HeraEvents
from .adapters.wsgi import HeraEventsWSGI
from .catalog import CATALOG, EventType, declare_event
from .emit import emit_event, flush, stats
from .errors import HeraConfigError, Problem
from .rules.loader import load_rules
from .rules.model import Rule, Rules

__all__ = [
    "CATALOG",
    "EventType",
    "HeraConfigError",
    "HeraEvents",
    "HeraEventsWSGI",
    "Problem",
    "Rule",
    "Rules",
    "declare_event",
    "emit_event",
    "flush",
    "load_rules",
    "stats",
]

__version__ = "0.1.0"
