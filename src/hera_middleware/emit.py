"""Event building and hand-off: one orjson line per event, at most 4096 bytes.

:func:`send_event` builds the envelope, serializes it (redacting values orjson rejects,
trimming oversized lines field by field), hands the dict to capture listeners and
enqueues the line on an :class:`Emitter`. Nothing here raises into the caller except
argument errors of :func:`emit_event` and :func:`get_emitter`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import orjson

from . import _capture, _stats
from ._diagnostics import count, internal_error
from ._emitter import Emitter, flush_all, format_ts
from .catalog import RESERVED_KEYS, domain_problem, lookup_event
from .errors import did_you_mean
from .policy import REDACTED, clean_value
from .sinks import FileSink, Output

__all__ = [
    "MAX_EMITTERS",
    "MAX_LINE",
    "Emitter",
    "count",
    "emit_event",
    "flush",
    "format_ts",
    "get_emitter",
    "send_event",
    "set_default_target",
    "stats",
]

#: Longest line written, newline included: a write this size to a pipe is atomic.
MAX_LINE = 4096
TRIMMED = "trimmed"
_OPT = orjson.OPT_APPEND_NEWLINE
_dumps = orjson.dumps
_TRIMMED_SIZE = len(_dumps(TRIMMED))


def send_event(event: str, fields: Mapping[str, object], *, domain: str, emitter: Emitter) -> None:
    """Build, serialize and enqueue one event; never raises.

    ``fields`` are already cleaned by the policy and in catalog order. The line is
    ``{"type":"audit","event":...,<fields>,"domain":...,"ts":...}``; values orjson
    rejects become ``"redacted"``, and a line over :data:`MAX_LINE` bytes is trimmed
    field by field. Capture listeners get the dict exactly as serialized.
    """
    try:
        record: dict[str, object] = {
            "type": "audit",
            "event": event,
            **fields,
            "domain": domain,
            "ts": format_ts(time.time()),
        }
        if len(record) != len(fields) + 4:  # a field named like an envelope key
            record = _envelope_first(event, fields, domain, record["ts"])
        try:
            line = _dumps(record, option=_OPT)
        except orjson.JSONEncodeError:
            line = _redact(record)
        # orjson's result keeps the heap block of its 1 KiB buffer, shrunk in place: a
        # queue of such lines leaves a hole per line (+10 MiB RSS for a backlog of 10,000
        # lines). An exact-size copy comes from pymalloc and leaves none.
        line = _trim(record, len(line)) if len(line) > MAX_LINE else line[:-1] + b"\n"
        if _capture.listeners:
            _capture.publish(record)
        emitter.put(line)
    except Exception as exc:
        internal_error("send_event", exc)


def _envelope_first(
    event: str, fields: Mapping[str, object], domain: str, ts: object
) -> dict[str, object]:
    record: dict[str, object] = {"type": "audit", "event": event}
    record.update((k, v) for k, v in fields.items() if k not in RESERVED_KEYS)
    record["domain"] = domain
    record["ts"] = ts
    return record


def _redact(record: dict[Any, object]) -> bytes:
    # Find the values orjson rejects one by one, so one bad value costs one field.
    for key, value in list(record.items()):
        if not isinstance(key, str):
            del record[key]
        elif key != "type":
            try:
                _dumps(value)
            except orjson.JSONEncodeError:
                record[key] = REDACTED
    return _dumps(record, option=_OPT)


def _trim(record: dict[str, object], size: int) -> bytes:
    # Replace the largest values first; the envelope's event and domain only if needed.
    excess = size - MAX_LINE
    fields = [k for k in record if k not in RESERVED_KEYS]
    ranked = sorted(fields, key=lambda k: len(_dumps(record[k])), reverse=True)
    for key in [*ranked, "domain", "event"]:
        if excess <= 0:
            break
        value_size = len(_dumps(record[key]))
        if value_size > _TRIMMED_SIZE:
            record[key] = TRIMMED
            excess -= value_size - _TRIMMED_SIZE
    line = _dumps(record, option=_OPT)
    while len(line) > MAX_LINE and fields:  # only keys are left to blame: drop the last fields
        del record[fields.pop()]
        line = _dumps(record, option=_OPT)
    return line


#: Distinct emitters (outputs) a process may have; each has a queue and a writer thread.
MAX_EMITTERS = 32

_EMITTERS: dict[tuple[object, str], Emitter] = {}
_registry_lock = threading.Lock()
# (domain, emitter) of the most recently created middleware: emit_event's defaults.
_default_target: tuple[str, Emitter] | None = None


def get_emitter(output: Output, on_full: str = "drop") -> Emitter:
    """The process's emitter for ``(output, on_full)``, created on first use.

    At most :data:`MAX_EMITTERS` exist at once: an idle ``file:`` emitter is closed to
    make room (its file is reopened if it is used again); otherwise a new output beyond
    the limit is refused, since a new callable or sink object per call would start a
    new writer thread each time.

    Raises:
        ValueError: for an output or ``on_full`` value that is not valid, or one output
            too many.
    """
    try:
        key: tuple[object, str] = (output, on_full)  # equal bound methods share an emitter
        emitter = _EMITTERS.get(key)
    except TypeError:  # unhashable: by identity (the emitter keeps the object alive)
        key = (id(output), on_full)
        emitter = _EMITTERS.get(key)
    if emitter is not None:
        return emitter
    evicted: Emitter | None = None
    with _registry_lock:
        emitter = _EMITTERS.get(key)
        if emitter is None:
            if len(_EMITTERS) >= MAX_EMITTERS:
                evicted = _evict_one()
            emitter = _EMITTERS[key] = Emitter(output, on_full=on_full)
    if evicted is not None:
        evicted.close(timeout=1.0)  # outside the lock: idle, so this returns at once
    return emitter


def _evict_one() -> Emitter:
    # Called with the lock held. Only our own file sinks: they reopen identically, and
    # closing them runs no user code; an evicted emitter still works for its holder.
    for key, emitter in _EMITTERS.items():
        if type(emitter.sink) is FileSink and emitter.idle() and emitter is not _default_emitter():
            del _EMITTERS[key]
            return emitter
    raise ValueError(
        f"too many outputs: this process already has {MAX_EMITTERS} (each has its own "
        "queue and writer thread); create the output once and reuse it rather than "
        "passing a new callable or sink object each time"
    )


def _default_emitter() -> Emitter | None:
    target = _default_target
    return target[1] if target is not None else None


def set_default_target(domain: str, emitter: Emitter) -> None:
    """Make ``domain`` and ``emitter`` what :func:`emit_event` uses when not told.

    The middleware calls this when it is created, so ``emit_event`` writes where the
    most recently created middleware of the process writes.

    Raises:
        ValueError: for a ``domain`` that is not a short name (see ``domain_problem``).
    """
    problem = domain_problem(domain)
    if problem is not None:
        raise ValueError(problem)
    global _default_target
    _default_target = (domain, emitter)


def _clean(field: str, value: object) -> object:
    try:
        return clean_value(field, value)
    except Exception as exc:
        internal_error("clean_value", exc)
        return REDACTED


def emit_event(
    name: str, /, *, domain: str | None = None, output: Output | None = None, **fields: object
) -> None:
    """Emit one event directly, with the same envelope and privacy policy as rules.

    ``name`` is a catalog event or one declared with
    :func:`hera_middleware.declare_event` (or under ``events:`` in a loaded rule
    file). Its fields are exactly the declared ones, in declared order; a missing one is
    written as ``null`` (counted in ``fields_nulled``). Values pass the same run-time
    policy as rule fields.

    ``output`` and ``domain`` default to those of the most recently created middleware
    of this process, else to ``$HERA_OUTPUT`` / ``$HERA_DOMAIN``, else to ``"stdout"`` /
    ``"ciam"``. Pass one ``output`` object and reuse it: each distinct output has its
    own writer thread, and a process may have at most 32.

    Raises:
        ValueError: for an unknown or malformed event name, a field the event does not
            have, a domain that is not a short name, or a bad output.

    Example::

        emit_event("captcha_failed", flow="login", reason="timeout")
    """
    etype = lookup_event(name)
    names = etype.fields
    for field in fields:
        if field not in names:
            accepted = ", ".join(names) or "none"
            hint = did_you_mean(field, names)
            raise ValueError(
                f"event {name!r} has no field {field!r} (its fields: {accepted})"
                + (f"; {hint}" if hint else "")
            )
    target = _default_target
    if domain is None:
        domain = target[0] if target is not None else _env_domain()
    else:
        problem = domain_problem(domain)
        if problem is not None:
            raise ValueError(problem)
    if output is not None:
        emitter = get_emitter(output, os.environ.get("HERA_ON_FULL") or "drop")
    elif target is not None:
        emitter = target[1]
    else:
        emitter = get_emitter(
            os.environ.get("HERA_OUTPUT") or "stdout", os.environ.get("HERA_ON_FULL") or "drop"
        )
    cleaned: dict[str, object] = {}
    for field in names:
        cleaned[field] = _clean(field, fields[field]) if field in fields else None
    if len(names) > len(fields):
        count("fields_nulled", len(names) - len(fields))
    send_event(name, cleaned, domain=domain, emitter=emitter)


def _env_domain() -> str:
    domain = os.environ.get("HERA_DOMAIN") or "ciam"
    problem = domain_problem(domain)
    if problem is not None:
        raise ValueError(f"HERA_DOMAIN: {problem}")
    return domain


def stats() -> dict[str, int]:
    """This process's counters: events_written, events_dropped, fields_nulled,
    facts_unknown, internal_errors."""
    return _stats.snapshot()


def flush(timeout: float | None = 5.0) -> bool:
    """Flush every emitter of this process; False if ``timeout`` passed first."""
    return flush_all(timeout)


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()  # another thread may have held it at fork time


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
