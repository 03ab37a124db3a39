"""The library's own stderr diagnostics: rate-limited warnings and internal errors.

Nothing here ever raises, and nothing here ever prints request data: an internal error
is reported by where it happened and the exception's type name only.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from . import _stats

__all__ = ["count", "internal_error", "summary", "warn"]

#: Seconds between two warnings with the same key.
WARN_INTERVAL = 60.0

_clock = time.monotonic  # patched by tests
_lock = threading.Lock()
_last_warned: dict[str, float] = {}
_suppressed: dict[str, int] = {}


def count(key: str, n: int = 1) -> None:
    """Add ``n`` to a counter under a lock (several threads may count the same key)."""
    with _lock:
        _stats.count(key, n)


def summary() -> str:
    """The counters as one human-readable phrase, as in the exit summary."""
    c = _stats.snapshot()
    return (
        f"{c['events_written']} events written, {c['events_dropped']} dropped, "
        f"{c['fields_nulled']} fields nulled, {c['facts_unknown']} facts unknown, "
        f"{c['internal_errors']} internal errors"
    )


def write_stderr(text: str) -> None:
    """Write one line to the current ``sys.stderr``; swallow every failure."""
    try:
        stream = sys.stderr
        if stream is None:  # pythonw, or interpreter teardown
            return
        stream.write(text + "\n")
        stream.flush()
    except Exception:  # a diagnostic must never become a new failure
        pass


def warn(key: str, message: str) -> None:
    """Write ``hera-middleware: warning: <message> (<counters>)`` to stderr.

    At most one warning per ``key`` every :data:`WARN_INTERVAL` seconds; the next one
    says how many were suppressed in between. ``message`` must carry no request data.
    """
    try:
        now = _clock()
        with _lock:
            last = _last_warned.get(key)
            if last is not None and now - last < WARN_INTERVAL:
                _suppressed[key] = _suppressed.get(key, 0) + 1
                return
            _last_warned[key] = now
            skipped = _suppressed.pop(key, 0)
        more = f"; {skipped} similar warnings suppressed" if skipped else ""
        write_stderr(f"hera-middleware: warning: {message} ({summary()}{more})")
    except Exception:  # never raise from a diagnostic
        pass


def internal_error(where: str, exc: BaseException) -> None:
    """Count an internal error and warn, naming ``where`` and the exception type only.

    ``str(exc)`` is never printed: it may carry request data.
    """
    try:
        count("internal_errors")
        warn(
            f"internal:{where}",
            f"internal error in {where}: {type(exc).__name__}; the response was not affected",
        )
    except Exception:  # never raise from a diagnostic
        pass


def _reset_for_tests() -> None:
    with _lock:
        _last_warned.clear()
        _suppressed.clear()


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would never be released in the child;
    # each worker process gets its own warnings.
    global _lock
    _lock = threading.Lock()
    _last_warned.clear()
    _suppressed.clear()
    # Counters are per process: a forked worker reports what it did, not its parent.
    for key, value in _stats.snapshot().items():
        _stats.count(key, -value)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
