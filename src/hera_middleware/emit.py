"""Event building and hand-off: one orjson line per event, at most 4096 bytes.

:func:`send_event` builds the envelope, serializes it (redacting values orjson rejects,
trimming oversized lines field by field), hands the dict to capture listeners and
enqueues the line on an :class:`Emitter`. Nothing here raises into the caller except
argument errors of :func:`emit_event`.
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
from ._emitter import Emitter, _default_domain, flush_all, format_ts
from .catalog import CATALOG, RESERVED_KEYS, event_name_problem, field_name_problem
from .errors import did_you_mean
from .policy import REDACTED, clean_value
from .sinks import Output

__all__ = [
    "MAX_LINE",
    "Emitter",
    "count",
    "emit_event",
    "flush",
    "format_ts",
    "get_emitter",
    "send_event",
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
        if len(line) > MAX_LINE:
            line = _trim(record, len(line))
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


_EMITTERS: dict[tuple[object, str], Emitter] = {}
_registry_lock = threading.Lock()


def get_emitter(output: Output, on_full: str = "drop") -> Emitter:
    """The process's emitter for ``(output, on_full)``, created on first use.

    Raises:
        ValueError: for an output or ``on_full`` value that is not valid.
    """
    try:
        key: tuple[object, str] = (output, on_full)  # equal bound methods share an emitter
        emitter = _EMITTERS.get(key)
    except TypeError:  # unhashable: by identity (the emitter keeps the object alive)
        key = (id(output), on_full)
        emitter = _EMITTERS.get(key)
    if emitter is None:
        with _registry_lock:
            emitter = _EMITTERS.get(key)
            if emitter is None:
                emitter = _EMITTERS[key] = Emitter(output, on_full=on_full)
    return emitter


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

    A catalog event gets its fields in catalog order, a missing one as ``null``
    (counted in ``fields_nulled``); a custom event keeps the order given. ``domain``
    defaults to ``$HERA_DOMAIN`` or ``"ciam"``, ``output`` to ``$HERA_OUTPUT`` or
    ``"stdout"``.

    Raises:
        ValueError: for a bad event name, a field a catalog event does not have, a bad
            field name, or a bad output.

    Example::

        emit_event("password_reset_requested", flow="password_reset")
    """
    problem = event_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    etype = CATALOG.get(name)
    if etype is not None:
        for field in fields:
            if field not in etype.fields:
                accepted = ", ".join(etype.fields) or "none"
                hint = did_you_mean(field, etype.fields)
                raise ValueError(
                    f"event {name!r} has no field {field!r} (its fields: {accepted})"
                    + (f"; {hint}" if hint else "")
                )
        names = etype.fields
    else:
        for field in fields:
            problem = field_name_problem(field)
            if problem is not None:
                raise ValueError(problem)
        names = tuple(fields)
    cleaned: dict[str, object] = {}
    for field in names:
        cleaned[field] = _clean(field, fields[field]) if field in fields else None
    if len(names) > len(fields):
        count("fields_nulled", len(names) - len(fields))
    emitter = get_emitter(
        output if output is not None else (os.environ.get("HERA_OUTPUT") or "stdout"),
        os.environ.get("HERA_ON_FULL") or "drop",
    )
    send_event(
        name, cleaned, domain=domain if domain is not None else _default_domain(), emitter=emitter
    )


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
