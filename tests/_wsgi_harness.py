"""Shared helpers for the WSGI tests: hand-built environs, a recording server, strict streams.

- :func:`wsgi_environ` builds the environ a PEP 3333 server would pass, secrets included;
- :class:`Server` plays the server: a recording ``start_response`` that follows PEP 3333
  (``exc_info`` re-raises once headers are out), a ``write`` callable, iteration of the
  response, an optional early stop (the client went away) and ``close()``;
- :class:`Stream` is a ``wsgi.input`` that records every call and raises
  :class:`Blocked` where a socket would block (a read past the body), so a test fails
  instead of hanging when anyone reads ahead of the app;
- :func:`assert_same_wire` runs an app bare and wrapped and compares everything the
  server saw: status, header list, chunks and written data.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from hera_middleware._types import Environ, StartResponse, WSGIApp

__all__ = ["Environ", "StartResponse", "WSGIApp"]  # re-exported for the tests

SECRET_HEADERS = {
    "HTTP_HOST": "idp.example",
    "HTTP_COOKIE": "sid=sid-SECRET-cookie",
    "HTTP_X_FORWARDED_FOR": "203.0.113.9",
    "HTTP_AUTHORIZATION": "Basic d2ViOnMzY3JldA==",
}
FORM = "application/x-www-form-urlencoded"


class Blocked(AssertionError):
    """A read a socket would block on: past the body, with no end-of-file to give."""


class Stream:
    """A ``wsgi.input`` over ``data`` that records each call as ``(method, args)``.

    With ``terminated`` it answers like a file at the end (``b""``), as servers that
    set ``wsgi.input_terminated`` or limit the stream to ``CONTENT_LENGTH`` do;
    without, any read the remaining bytes cannot satisfy raises :class:`Blocked`.
    """

    def __init__(self, data: bytes, *, terminated: bool = True) -> None:
        self._buf = io.BytesIO(data)
        self._left = len(data)
        self.terminated = terminated
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.closed = 0

    def _guard(self, size: int | None, line: bool = False) -> None:
        if self.terminated:
            return
        rest = self._buf.getvalue()[self._buf.tell() :]
        if line and b"\n" in rest[: None if size is None or size < 0 else size]:
            return
        if size is None or size < 0 or size > len(rest):
            raise Blocked(f"a read of {size} with {len(rest)} bytes left would block")

    def read(self, *args: Any) -> bytes:
        self.calls.append(("read", args))
        size = args[0] if args else None
        self._guard(size)
        return self._buf.read(*args)

    def readline(self, *args: Any) -> bytes:
        self.calls.append(("readline", args))
        self._guard(args[0] if args else None, line=True)
        return self._buf.readline(*args)

    def readlines(self, *args: Any) -> list[bytes]:
        self.calls.append(("readlines", args))
        self._guard(None)
        return self._buf.readlines(*args)

    def readinto(self, buffer: Any) -> int:
        self.calls.append(("readinto", (len(buffer),)))
        self._guard(len(buffer))
        return self._buf.readinto(buffer)

    def __iter__(self) -> Stream:
        self.calls.append(("iter", ()))
        return self

    def __next__(self) -> bytes:
        self.calls.append(("next", ()))
        self._guard(None, line=True)
        line = self._buf.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        self.calls.append(("close", ()))
        self.closed += 1


class FileWrapper:
    """A server's ``wsgi.file_wrapper`` type (iterable in blocks, like wsgiref's)."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike = filelike
        self.blksize = blksize
        self.closed = 0

    def __iter__(self) -> Any:
        return iter(lambda: self.filelike.read(self.blksize), b"")

    def close(self) -> None:
        self.closed += 1
        self.filelike.close()


def wsgi_environ(
    method: str = "POST",
    path: str = "/oauth/token",
    *,
    body: bytes = b"",
    content_type: str | None = None,
    content_length: str | None = None,
    query: str = "",
    script_name: str = "",
    headers: dict[str, str] | None = None,
    stream: Any = None,
    terminated: bool | None = None,
) -> Environ:
    """A hand-built PEP 3333 environ (native strings are latin-1 decoded bytes)."""
    environ: Environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "idp.example",
        "SERVER_PORT": "443",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "203.0.113.9",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https",
        "wsgi.input": stream if stream is not None else Stream(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        **SECRET_HEADERS,
        **(headers or {}),
    }
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if content_length is not None:
        environ["CONTENT_LENGTH"] = content_length
    elif body:
        environ["CONTENT_LENGTH"] = str(len(body))
    if terminated is not None:
        environ["wsgi.input_terminated"] = terminated
    return environ


@dataclass(eq=False)
class Server:
    """The server side of one WSGI exchange, recording what it got.

    ``stop_after`` stops iterating after that many chunks (the client went away);
    ``on_chunk`` is called with each chunk as it arrives.
    """

    stop_after: int | None = None
    on_chunk: Callable[[bytes], None] | None = None
    starts: list[tuple[Any, ...]] = field(default_factory=list)
    start_kwargs: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    written: list[bytes] = field(default_factory=list)
    headers_sent: bool = False
    result: Any = None
    closes: int = 0

    def __post_init__(self) -> None:
        # Bound once, so that tests can check the app got this very callable with `is`.
        self.start: StartResponse = self.start_response

    def start_response(
        self, status: str, headers: list[tuple[str, str]], *args: Any, **kw: Any
    ) -> Any:
        exc_info = args[0] if args else kw.get("exc_info")
        if exc_info is not None:
            if self.headers_sent:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.starts:
            raise AssertionError("start_response called twice without exc_info")
        self.starts.append((status, headers, *args))
        self.start_kwargs.append(kw)
        return self.write

    def write(self, data: bytes) -> None:
        assert self.starts, "write() before start_response"
        self.headers_sent = True
        self.written.append(data)

    def run(self, app: WSGIApp, environ: Environ) -> Server:
        """Call ``app``, iterate its response as a server does, then close it."""
        result = self.result = app(environ, self.start)
        try:
            for chunk in result:
                if chunk:
                    self.headers_sent = True
                self.chunks.append(chunk)
                if self.on_chunk is not None:
                    self.on_chunk(chunk)
                if self.stop_after is not None and len(self.chunks) >= self.stop_after:
                    break
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
                self.closes += 1
        return self

    @property
    def status(self) -> str:
        return str(self.starts[-1][0])

    def body(self) -> bytes:
        return b"".join(self.written) + b"".join(self.chunks)

    def wire(self) -> tuple[Any, ...]:
        """Everything a client could see: status lines, header lists, chunks, writes."""
        return (
            [(s[0], list(s[1])) for s in self.starts],
            list(self.chunks),
            list(self.written),
        )


def assert_same_wire(bare: Server, wrapped: Server) -> None:
    """The wrapped exchange gave the server exactly what the bare one did, same objects."""
    assert wrapped.wire() == bare.wire()
    assert [type(c) for c in wrapped.chunks] == [type(c) for c in bare.chunks]


def run_both(
    make_app: Callable[[], WSGIApp],
    wrap: Callable[[WSGIApp], WSGIApp],
    make_environ: Callable[[], Environ],
    **server: Any,
) -> tuple[Server, Server]:
    """Run a fresh app bare and wrapped on fresh environs; return both servers."""
    bare = Server(**server).run(make_app(), make_environ())
    wrapped = Server(**server).run(wrap(make_app()), make_environ())
    return bare, wrapped


def list_app(
    status: str = "200 OK",
    headers: Iterable[tuple[str, str]] = (("Content-Type", "application/json"),),
    chunks: Iterable[bytes] = (b'{"result":"ok","access_token":"tok-SECRET-999"}',),
) -> WSGIApp:
    """A WSGI app answering with a list of chunks (fresh header list on every call)."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, list(headers))
        return list(chunks)

    return app


def reading_app(read: Callable[[Any], bytes], then: WSGIApp | None = None) -> WSGIApp:
    """An app reading the body with ``read(wsgi.input)``, storing it in ``environ["test.seen"]``."""

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        environ["test.seen"] = read(environ["wsgi.input"])
        return (then or list_app())(environ, start_response)

    return app
