"""A tee for ``wsgi.input``: the app reads the server's stream, the rules get a copy."""

from __future__ import annotations

from typing import Any

from .._diagnostics import internal_error
from ..exchange import BodyState

__all__ = ["TeeInput"]


def _size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The size argument of a read call, however it was passed (None: not given)."""
    if args:
        return args[0]
    return next(iter(kwargs.values()), None)


def _unbounded(size: Any) -> bool:
    return size is None or (isinstance(size, int) and size < 0)


class TeeInput:
    """Stands in for ``environ["wsgi.input"]`` while a rule needs the request body.

    Every call goes to the server's stream with the very arguments the app used, and
    its result is returned unchanged; nothing is ever read that the app did not ask
    for. What the app reads is copied into ``copy`` up to ``room`` bytes. ``read``,
    ``readline``, ``readlines``, iteration, ``read1``, ``readinto`` and ``readinto1``
    are copied; every other attribute (``close``, ``fileno``, a server's own extras)
    is the stream's own; a ``seek`` makes the copy unknown.

    ``length`` is the request's ``CONTENT_LENGTH``; None means the server terminates
    the stream (``wsgi.input_terminated``) and the body is complete at end of file.
    """

    __slots__ = ("_broken", "_eof", "_it", "_length", "_room", "_seen", "_stream", "copy")

    def __init__(self, stream: Any, length: int | None, room: int, copy: bytearray) -> None:
        self._stream = stream
        self._it: Any = stream
        self._length = length
        self._room = room
        self._seen = 0
        self._eof = False
        self._broken = False
        self.copy = copy

    def state(self) -> int:
        """The :class:`BodyState` of the copy so far."""
        if self._broken:
            return BodyState.INCOMPLETE
        done = self._eof if self._length is None else self._seen >= self._length
        if not done:
            return BodyState.INCOMPLETE
        return BodyState.TRUNCATED if self._seen > len(self.copy) else BodyState.COMPLETE

    def _copy(self, data: Any) -> int:
        n = len(data)
        if n:
            self._seen += n
            room = self._room - len(self.copy)
            if room > 0:
                self.copy += data if n <= room else data[:room]
        return n

    def _take(self, data: Any, size: Any, line: bool = False) -> None:
        """Copy what one call returned and note the end of the stream; never raises."""
        try:
            n = self._copy(data)
            if line:
                # A line that stops short of its newline ends the stream.
                short = _unbounded(size) or (isinstance(size, int) and n < size)
                eof = (not n and size != 0) or (short and not bytes(data).endswith(b"\n"))
            else:
                # A read of everything, or an empty answer to a read of some bytes.
                eof = _unbounded(size) or (not n and size != 0)
            if eof:
                self._eof = True
        except Exception as exc:
            self._broken = True
            internal_error("request copy", exc)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        data = self._stream.read(*args, **kwargs)
        self._take(data, _size(args, kwargs))
        return data

    def readline(self, *args: Any, **kwargs: Any) -> Any:
        line = self._stream.readline(*args, **kwargs)
        self._take(line, _size(args, kwargs), line=True)
        return line

    def readlines(self, *args: Any, **kwargs: Any) -> Any:
        lines = self._stream.readlines(*args, **kwargs)
        try:
            for one in lines:
                self._copy(one)
            hint = _size(args, kwargs)
            if (
                hint is None
                or (isinstance(hint, int) and hint <= 0)
                or not lines
                or not bytes(lines[-1]).endswith(b"\n")
            ):
                self._eof = True
        except Exception as exc:
            self._broken = True
            internal_error("request copy", exc)
        return lines

    def __iter__(self) -> TeeInput:
        self._it = iter(self._stream)
        return self

    def __next__(self) -> Any:
        try:
            line = next(self._it)
        except StopIteration:
            self._eof = True
            raise
        self._take(line, None, line=True)
        return line

    def _teed_read(self, read: Any) -> Any:
        def read1(*args: Any, **kwargs: Any) -> Any:
            data = read(*args, **kwargs)
            self._take(data, _size(args, kwargs))
            return data

        return read1

    def _teed_readinto(self, readinto: Any) -> Any:
        def teed(buffer: Any, *args: Any, **kwargs: Any) -> Any:
            n = readinto(buffer, *args, **kwargs)
            if n is None:  # a non-blocking stream with nothing yet
                return n
            try:
                view = memoryview(buffer).cast("B")
                data, size = bytes(view[:n]), len(view)
            except Exception as exc:
                self._broken = True
                internal_error("request copy", exc)
            else:
                self._take(data, size)
            return n

        return teed

    def _seek(self, seek: Any) -> Any:
        def teed(*args: Any, **kwargs: Any) -> Any:
            self._broken = True  # the copy no longer follows what the app reads
            return seek(*args, **kwargs)

        return teed

    def __getattr__(self, name: str) -> Any:
        if name in TeeInput.__slots__:  # not set yet (copy.copy, pickling)
            raise AttributeError(name)
        value = getattr(self._stream, name)
        if name == "read1":
            return self._teed_read(value)
        if name in ("readinto", "readinto1"):
            return self._teed_readinto(value)
        if name == "seek":
            return self._seek(value)
        return value
