"""``python -m hera_middleware``: the ``hera-middleware`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
