"""Capture listeners: lists that receive every event dict at send time (tests only)."""

from __future__ import annotations

import os
import threading

__all__ = ["add", "publish", "remove"]

#: The active capture lists; a tuple replaced whole so readers never need the lock.
listeners: tuple[list[dict[str, object]], ...] = ()
_lock = threading.Lock()


def add(events: list[dict[str, object]]) -> None:
    """Start delivering every event dict to ``events``."""
    global listeners
    with _lock:
        listeners = (*listeners, events)


def remove(events: list[dict[str, object]]) -> None:
    """Stop delivering to ``events`` (the innermost registration of that very list)."""
    global listeners
    with _lock:
        current = list(listeners)
        for i in range(len(current) - 1, -1, -1):
            if current[i] is events:
                del current[i]
                break
        listeners = tuple(current)


def publish(event: dict[str, object]) -> None:
    """Hand a copy of ``event`` to every active capture list (list.append is atomic)."""
    for events in listeners:
        events.append(dict(event))


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would never be released in the child.
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
