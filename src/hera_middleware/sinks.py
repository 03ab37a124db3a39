"""Outputs for event lines: stdout, stderr, an append-only file, a logger, a callable.

A sink receives complete lines (``bytes`` ending in ``b"\\n"``, at most 4096 bytes) from
the emitter's writer thread, never from the request path. ``write`` may raise: the
emitter counts the line as dropped and warns once per output.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import orjson

from .errors import did_you_mean

__all__ = [
    "CallableSink",
    "FdSink",
    "FileSink",
    "LoggerSink",
    "Output",
    "Sink",
    "open_sink",
]


@runtime_checkable
class Sink(Protocol):
    """Where event lines go: any object with these two methods can be an output.

    ``write`` receives one complete line (with its ``\\n``) and should write it in one
    piece; it runs in the writer thread. ``close`` releases what the sink holds.
    """

    def write(self, line: bytes) -> None:
        """Write one complete event line."""

    def close(self) -> None:
        """Release the sink's resources; later writes may reopen them."""


#: What ``output=`` accepts: a spec string, a sink object, or a callable taking the dict.
Output = str | Sink | Callable[[dict[str, object]], None]

_FORMS = (
    '"stdout", "stderr", "file:PATH", "logger:NAME", a callable taking the event dict, '
    "or an object with a write(line: bytes) method"
)


class FdSink:
    """Write each line with one ``os.write`` to a file descriptor the process owns.

    The descriptor's flags are never changed. A short write (a full disk, a signal) is
    completed with further writes so the line is never left half-written.
    """

    def __init__(self, fd: int, name: str | None = None) -> None:
        self.fd = fd
        self.name = name if name is not None else f"fd {fd}"

    def write(self, line: bytes) -> None:
        """Write ``line`` to the descriptor."""
        n = os.write(self.fd, line)
        if n != len(line):  # regular files and pipes under 4096 bytes never take this path
            self.write_rest(line, n)

    def write_rest(self, line: bytes, done: int) -> None:
        """Finish a short write of ``line`` of which ``done`` bytes were written."""
        view = memoryview(line)[done:]
        while view:
            view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        """Do nothing: the descriptor belongs to whoever opened it."""


class FileSink(FdSink):
    """Append lines to a file, opened lazily (``O_APPEND``, mode 0644) on first write.

    Several processes may append to the same file: each line is one ``write`` to an
    ``O_APPEND`` descriptor. A failed open is retried on the next line.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        super().__init__(-1, f"file {self.path}")

    def write(self, line: bytes) -> None:
        """Open the file if needed, then append ``line``."""
        if self.fd < 0:
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
            self.fd = os.open(self.path, flags, 0o644)
        super().write(line)

    def close(self) -> None:
        """Close the file; the next write reopens it."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)


class LoggerSink:
    """Log each line (without its newline) at INFO on a :mod:`logging` logger."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)
        self.name = f"logger {name}"

    def write(self, line: bytes) -> None:
        """Log ``line`` as text."""
        self.logger.info(line[:-1].decode("utf-8"))

    def close(self) -> None:
        """Do nothing: handlers belong to the logging configuration."""


class CallableSink:
    """Call a function with each event as a dict, parsed back from its line."""

    def __init__(self, fn: Callable[[dict[str, object]], None]) -> None:
        self.fn = fn
        self.name = f"callable {getattr(fn, '__qualname__', type(fn).__name__)}"

    def write(self, line: bytes) -> None:
        """Call the function with the event dict."""
        self.fn(orjson.loads(line))

    def close(self) -> None:
        """Do nothing."""


class _WriterSink:
    """Adapt a user object that has ``write`` (and maybe ``close``) to :class:`Sink`."""

    def __init__(self, target: object) -> None:
        self.target = target
        self.text = isinstance(target, io.TextIOBase)
        self.flushes = isinstance(target, io.IOBase)
        self.name = f"output {getattr(target, 'name', type(target).__name__)}"

    def write(self, line: bytes) -> None:
        target: object = self.target
        target.write(line.decode("utf-8") if self.text else line)  # type: ignore[attr-defined]
        if self.flushes:  # a buffered file object would otherwise hold lines back
            target.flush()  # type: ignore[attr-defined]

    def close(self) -> None:
        """Do nothing: the object belongs to the caller."""


def open_sink(spec: object) -> Sink:
    """Turn an ``output=`` value into a :class:`Sink`, without doing any I/O.

    Accepts ``"stdout"`` (fd 1), ``"stderr"`` (fd 2), ``"file:PATH"`` (relative to the
    working directory, opened on first write), ``"logger:NAME"``, an object with a
    ``write(line: bytes)`` method, or a callable that takes the event dict.

    Raises:
        ValueError: for anything else, naming the accepted forms.

    Example::

        sink = open_sink("file:events.jsonl")
    """
    if isinstance(spec, str):
        if spec == "stdout":
            return FdSink(1, "stdout")
        if spec == "stderr":
            return FdSink(2, "stderr")
        kind, sep, rest = spec.partition(":")
        if sep and kind == "file":
            if not rest:
                raise ValueError(f"output {spec!r} names no file; use file:PATH")
            return FileSink(rest)
        if sep and kind == "logger":
            if not rest:
                raise ValueError(f"output {spec!r} names no logger; use logger:NAME")
            return LoggerSink(rest)
        hint = did_you_mean(spec, ("stdout", "stderr", "file:", "logger:"))
        raise ValueError(
            f"output {spec!r} is not valid; use {_FORMS}" + (f" ({hint})" if hint else "")
        )
    if callable(getattr(spec, "write", None)):
        if isinstance(spec, Sink) and not isinstance(spec, io.IOBase):
            return spec
        return _WriterSink(spec)
    if callable(spec):
        return CallableSink(spec)
    raise ValueError(f"output of type {type(spec).__name__} is not valid; use {_FORMS}")
