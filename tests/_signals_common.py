"""What the signal-fact tests share."""

from __future__ import annotations

from typing import Any


def without_ts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events with ``ts`` checked for its format (RFC 3339, milliseconds, Z) and left out."""
    out = []
    for e in events:
        e = dict(e)
        ts = e.pop("ts")
        assert isinstance(ts, str)
        assert len(ts) == 24
        assert ts.endswith("Z")
        out.append(e)
    return out
