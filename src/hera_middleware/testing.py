"""Helpers for testing code that emits hera-middleware events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import _capture

__all__ = ["capture_events"]


@contextmanager
def capture_events() -> Iterator[list[dict[str, object]]]:
    """Collect every event emitted in this process while the block runs.

    The list receives each event dict exactly as it was serialized (``ts`` included),
    synchronously when it is sent, whatever the output; events still go to their
    output too. Captures nest (an inner event reaches every enclosing list) and work
    across threads. ``events_dropped`` loss reports arrive from the writer thread
    when they are written.

    Example::

        with capture_events() as events:
            emit_event("breach_check_passed")
        assert events[0]["event"] == "breach_check_passed"
    """
    events: list[dict[str, object]] = []
    _capture.add(events)
    try:
        yield events
    finally:
        _capture.remove(events)
