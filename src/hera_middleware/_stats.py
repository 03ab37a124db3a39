"""Process-wide counters behind :func:`hera_middleware.stats`."""

from __future__ import annotations

__all__ = ["COUNTER_NAMES", "count", "snapshot"]

COUNTER_NAMES = (
    "events_written",
    "events_dropped",
    "fields_nulled",
    "facts_unknown",
    "internal_errors",
)

_counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 0)


def count(key: str, n: int = 1) -> None:
    """Add ``n`` to a counter (an int update under the GIL; no lock on the hot path)."""
    _counters[key] += n


def snapshot() -> dict[str, int]:
    """A copy of every counter."""
    return dict(_counters)


def _reset_for_tests() -> None:
    for key in COUNTER_NAMES:
        _counters[key] = 0
