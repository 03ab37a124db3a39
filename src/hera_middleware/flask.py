"""The Flask extension of hera-middleware.

::

    from hera_middleware.flask import HeraEvents

    HeraEvents(app, rules="hera.yaml")      # or: ext = HeraEvents(); ext.init_app(app)
"""

from __future__ import annotations

from .adapters.flask import HeraEvents

__all__ = ["HeraEvents"]
