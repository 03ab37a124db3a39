"""Outputs for event lines: stdout, stderr, an append-only file, a logger, a callable.

A sink receives complete lines (``bytes`` ending in ``b"\\n"``, at most 4096 bytes) from
the emitter's writer thread, never from the request path. ``write`` may raise: the
emitter counts the line as dropped and warns once per output.
"""

from __future__ import annotations

import errno
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
    "LineLost",
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


class LineLost(Exception):
    """Raised by :meth:`Sink.write` when the line cannot reach its output.

    The emitter counts the line as dropped and uses the message, which must carry no
    event data, as its rate-limited warning.
    """


class FdSink:
    """Write each line with one ``os.write`` to a duplicate of a file descriptor.

    The descriptor (1 for stdout) is duplicated once, on the first write, and lines go
    to the duplicate: if the app later closes descriptor 1 and the number is reused
    (by an accepted socket, say), events keep going where stdout went and never to a
    client. The duplicate is close-on-exec, so child processes do not inherit it; a
    forked child keeps writing to it. The original descriptor's flags are never
    changed. A descriptor that cannot be duplicated (already closed) is not tried
    again: by then its number may belong to something else. A short write (a full
    disk, a signal) is completed with further writes so the line is never left
    half-written.
    """

    def __init__(self, fd: int, name: str | None = None) -> None:
        self.fd = fd
        self.name = name if name is not None else f"fd {fd}"
        #: The descriptor lines are written to once open, else -1.
        self.out = -1
        self._lost_errno = 0  # why fd could not be duplicated, for good

    def open(self) -> int:
        """Duplicate :attr:`fd` (close-on-exec) into :attr:`out` and return it."""
        if self._lost_errno:
            raise OSError(self._lost_errno, os.strerror(self._lost_errno))
        try:
            out = os.dup(self.fd)  # non-inheritable (FD_CLOEXEC) since Python 3.4
        except OSError as exc:
            self._lost_errno = exc.errno or errno.EBADF
            raise
        os.set_inheritable(out, False)  # ours only; the original keeps its flags
        self.out = out
        return out

    def write(self, line: bytes) -> None:
        """Write ``line`` to the descriptor."""
        out = self.out if self.out >= 0 else self.open()
        n = os.write(out, line)
        if n != len(line):  # regular files and pipes under 4096 bytes never take this path
            self.write_rest(line, n)

    def write_rest(self, line: bytes, done: int) -> None:
        """Finish a short write of ``line`` of which ``done`` bytes were written."""
        view = memoryview(line)[done:]
        while view:
            view = view[os.write(self.out, view) :]

    def close(self) -> None:
        """Close the duplicate; the original belongs to whoever opened it."""
        out, self.out = self.out, -1
        if out >= 0:
            os.close(out)


class FileSink(FdSink):
    """Append lines to a file, opened lazily (``O_APPEND``, mode 0644) on first write.

    Several processes may append to the same file: each line is one ``write`` to an
    ``O_APPEND`` descriptor. A failed open is retried on the next line.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        super().__init__(-1, f"file {self.path}")

    def open(self) -> int:
        """Open the file for appending (close-on-exec) into :attr:`out` and return it."""
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self.out = os.open(self.path, flags, 0o644)
        return self.out

    def close(self) -> None:
        """Close the file; the next write reopens it."""
        super().close()


class LoggerSink:
    """Log each line (without its newline) at INFO on a :mod:`logging` logger.

    A logger that would drop INFO records (its level, ``logging.disable``, or no
    handler on its way to the root that takes INFO) loses the event: the line is
    counted as dropped with a rate-limited warning instead of vanishing unseen.
    """

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)
        self.name = f"logger {name}"
        self._lost = (
            f"logger {name!r} has no handler for INFO records; events written there are lost"
        )

    def write(self, line: bytes) -> None:
        """Log ``line`` as text."""
        logger = self.logger
        if not (logger.isEnabledFor(logging.INFO) and _handles_info(logger)):
            raise LineLost(self._lost)
        logger.info(line[:-1].decode("utf-8"))

    def close(self) -> None:
        """Do nothing: handlers belong to the logging configuration."""


def _handles_info(logger: logging.Logger) -> bool:
    # logging.Logger.callHandlers' walk: a handler at INFO or below on the way up.
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if handler.level <= logging.INFO:
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False


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

    Accepts ``"stdout"`` (fd 1) and ``"stderr"`` (fd 2), each duplicated on first write,
    ``"file:PATH"`` (relative to the working directory, opened on first write),
    ``"logger:NAME"``, an object with a ``write(line: bytes)`` method, or a callable
    that takes the event dict.

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
