"""Helpers for testing code that emits hera-middleware events."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import _capture
from .adapters._signals import offline

__all__ = ["capture_events", "signals_unknown"]


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


@contextmanager
def signals_unknown() -> Iterator[None]:
    """Middleware built while the block runs watches no signal: every signal fact is unknown.

    For replaying recorded traffic through the real adapters, as ``hera-middleware
    replay`` does: a recording cannot say whether the server sent a signal, so a
    condition on one does not hold and a field taken from one is ``null`` (not the
    ``false`` an unsent signal gives on a live server). Nothing is imported.

    Example::

        with signals_unknown():
            app = HeraEvents(replaying_app, rules="preset:django-allauth")
    """
    with offline():
        yield
