"""Per-request WSGI state: the exchange built from the environ, the teed response."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .._diagnostics import internal_error
from .._types import Environ, StartResponse, WSGIApp
from ..exchange import ABSENT, BodyState, Exchange, _Marker, copy_capped
from ..matching import Candidates
from ._engine import ACTIVE, Engine
from ._wsgi_input import TeeInput

__all__ = ["Facts", "Tee", "native_text"]

#: Called when an exchange is finished, before evaluation: framework facts from the environ.
Facts = Callable[[Environ, Exchange], None]


def native_text(native: str) -> str:
    """A WSGI native string (bytes as latin-1) as the text it encodes in UTF-8."""
    try:
        return native.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a server that already decoded it
        return native


def _bytes(native: str) -> bytes:
    try:
        return native.encode("latin-1")
    except UnicodeEncodeError:
        return native.encode("utf-8", "replace")


def _header_name(key: str) -> bytes | None:
    """The header an environ key carries (``HTTP_USER_AGENT``: ``user-agent``), or None."""
    if key.startswith("HTTP_"):
        if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
            return None
        name = key[5:]
    elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        name = key
    else:
        return None
    return name.replace("_", "-").lower().encode("latin-1")


# Environ key -> header name, for the keys servers send on every request; bounded, since
# clients choose header names.
_HEADER_NAMES: dict[str, bytes | None] = {}
_HEADER_NAMES_MAX = 1024
_UNSEEN = b"(not looked up)"  # compared by identity


def _request_headers(environ: Environ) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    names = _HEADER_NAMES
    for key, value in environ.items():
        name = names.get(key, _UNSEEN)
        if name is _UNSEEN:
            name = _header_name(key)
            if len(names) < _HEADER_NAMES_MAX:
                names[key] = name
        if name is None or not isinstance(value, str):
            continue
        if not value and (key == "CONTENT_TYPE" or key == "CONTENT_LENGTH"):
            continue
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "replace")
        headers.append((name, raw))
    return headers


# Header name -> environ key, bounded likewise.
_ENVIRON_KEYS: dict[str, str] = {}


def _environ_key(name: str) -> str | None:
    """The environ key a header arrives in (``user-agent``: ``HTTP_USER_AGENT``)."""
    key = _ENVIRON_KEYS.get(name)
    if key is None:
        if "_" in name or not name:
            return None  # environ names hold '-' as '_': no header name has one
        key = name.upper().replace("-", "_")
        if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            key = "HTTP_" + key
        if len(_ENVIRON_KEYS) < _HEADER_NAMES_MAX:
            _ENVIRON_KEYS[name] = key
    return key


class EnvironExchange(Exchange):
    """An Exchange that reads request headers from the WSGI environ when a rule asks.

    The server already joined repeated headers; most requests need two or three of
    them, so no header list is built unless something wants them all.
    """

    __slots__ = ("environ",)

    def __init__(self, environ: Environ, method: str, path: str, query: bytes, root: str):
        super().__init__(method, path, query, None, root)
        self.environ = environ

    def header(self, name: str) -> str | _Marker:
        key = _environ_key(name)
        value = self.environ.get(key) if key is not None else None
        if not isinstance(value, str) or (not value and key in _EMPTY_MEANS_ABSENT):
            return ABSENT
        return value

    def header_list(self) -> list[tuple[bytes, bytes]]:
        if not self.headers:
            self.headers = _request_headers(self.environ)
        return self.headers


_EMPTY_MEANS_ABSENT = ("CONTENT_TYPE", "CONTENT_LENGTH")


def _content_length(environ: Environ) -> int | None:
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None
    return length if length >= 0 else None


class Tee:
    """Per-request state: copies what the app reads and sends, up to the caps."""

    __slots__ = (
        "active",
        "candidates",
        "done",
        "engine",
        "environ",
        "ex",
        "facts",
        "input",
        "response_room",
    )

    def __init__(
        self,
        engine: Engine,
        candidates: Candidates,
        environ: Environ,
        path: str,
        facts: Facts | None,
        active: frozenset[str],
    ) -> None:
        self.engine = engine
        self.candidates = candidates
        self.environ = environ
        self.facts = facts
        self.active = active
        self.done = False
        self.input: TeeInput | None = None
        self.response_room = engine.options.max_response_body
        ex = self.ex = EnvironExchange(
            environ,
            environ.get("REQUEST_METHOD", "GET"),
            path,
            _bytes(environ.get("QUERY_STRING", "")),
            native_text(environ.get("SCRIPT_NAME", "")),
        )
        if candidates.request_body:
            length = _content_length(environ)
            if not ex.request_has_body():
                ex.body_state = BodyState.EMPTY
            elif length is None and not environ.get("wsgi.input_terminated"):
                # The app cannot tell where this body ends either: it stays unknown.
                ex.body_state = BodyState.INCOMPLETE
            else:
                stream = environ["wsgi.input"]
                room = engine.options.max_request_body
                self.input = TeeInput(stream, length, room, ex.body)
                ex.body_state = BodyState.INCOMPLETE

    def run(self, app: WSGIApp, start_response: StartResponse) -> Iterable[bytes]:
        environ = self.environ
        if self.input is not None:
            environ["wsgi.input"] = self.input

        def tee_start_response(status: str, headers: Any, *args: Any, **kwargs: Any) -> Any:
            write = start_response(status, headers, *args, **kwargs)
            try:
                self.on_start(status, headers)
                if self.ex.response_state != BodyState.INCOMPLETE:
                    return write
            except Exception as exc:
                internal_error("response start", exc)
                return write

            def tee_write(data: bytes) -> Any:
                try:
                    self.on_body(data)
                except Exception as exc:
                    internal_error("response copy", exc)
                return write(data)

            return tee_write

        token = ACTIVE.set(self.active)
        watch = self.engine.signals
        listening = None if watch is None else watch.enter(self.ex)
        try:
            result = app(environ, tee_start_response)
        except BaseException as exc:
            _safely(self.stop, exc)
            raise
        finally:
            ACTIVE.reset(token)
            if listening is not None:
                watch.leave(listening)  # type: ignore[union-attr]
        try:
            return self.respond(result)
        except Exception as exc:
            internal_error("response", exc)
            return result

    def respond(self, result: Iterable[bytes]) -> Iterable[bytes]:
        if not self.candidates.response_body and self.ex.status is not None:
            file_wrapper = self.environ.get("wsgi.file_wrapper")
            if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
                # Status and headers are known, the body stays the server's (sendfile).
                self.finish()
                return result
        if hasattr(result, "__len__"):  # servers may count the chunks (Content-Length)
            return _SizedResponse(self, result)
        return _Response(self, result)

    def on_start(self, status: str, headers: Any) -> None:
        ex = self.ex
        ex.status = int(status.split(None, 1)[0])
        # Lower-case names keep the header table on its fast path.
        ex.response_headers = [(_bytes(k.lower()), _bytes(v)) for k, v in headers]
        if self.candidates.response_body:
            # start_response again (exc_info, before any body was sent) starts over.
            ex.response_state = BodyState.INCOMPLETE
            ex.response_body.clear()
            self.response_room = self.engine.options.max_response_body

    def on_body(self, data: bytes) -> None:
        ex = self.ex
        if ex.response_state != BodyState.INCOMPLETE or not data:
            return
        if not copy_capped(ex.response_body, data, self.response_room):
            self.response_room = -1  # marks the copy as cut

    def complete(self) -> None:
        """The app's iterable is exhausted: every chunk reached the server."""
        self.ex.end_response(cut=self.response_room < 0)
        self.finish()

    def stop(self, exc: BaseException | None) -> None:
        """The exchange ended early: the app raised ``exc``, or the server let go (None):
        the client went away, or a BaseException such as a worker timeout."""
        if self.done:
            return
        self.ex.end_early(raised=isinstance(exc, Exception))
        self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        ex = self.ex
        try:
            if self.input is not None:
                ex.body_state = self.input.state()
            if self.facts is not None:
                self.facts(self.environ, ex)
        except Exception as exc:
            internal_error("request facts", exc)
        self.engine.finish(self.candidates, ex)


class _Response:
    """The app's response iterable, teed: chunks pass through as they come.

    ``close()`` calls the app's ``close()`` exactly once, however often it is called.
    """

    __slots__ = ("_closed", "_iterable", "_iterator", "_tee")

    def __init__(self, tee: Tee, iterable: Iterable[bytes]) -> None:
        self._tee = tee
        self._iterable = iterable
        self._iterator: Iterator[bytes] | None = None
        self._closed = False

    def __iter__(self) -> _Response:
        return self

    def __next__(self) -> bytes:
        tee = self._tee
        token = ACTIVE.set(tee.active)
        watch = tee.engine.signals
        listening = None if watch is None else watch.enter(tee.ex)
        try:
            iterator = self._iterator
            if iterator is None:
                iterator = self._iterator = iter(self._iterable)
            chunk = next(iterator)
        except StopIteration:
            _safely(tee.complete)
            raise
        except BaseException as exc:
            _safely(tee.stop, exc)
            raise
        finally:
            ACTIVE.reset(token)
            if listening is not None:
                watch.leave(listening)  # type: ignore[union-attr]
        try:
            tee.on_body(chunk)
        except Exception as exc:
            tee.ex.response_state = BodyState.UNREADABLE
            internal_error("response copy", exc)
        return chunk

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        tee = self._tee
        token = ACTIVE.set(tee.active)
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        except BaseException as exc:
            _safely(tee.stop, exc)
            raise
        finally:
            ACTIVE.reset(token)
        _safely(tee.stop, None)


class _SizedResponse(_Response):
    """A teed response whose app iterable has a length (a list, a tuple)."""

    __slots__ = ()

    def __len__(self) -> int:
        return len(self._iterable)  # type: ignore[arg-type]


def _safely(step: Callable[..., None], *args: Any) -> None:
    try:
        step(*args)
    except Exception as exc:
        internal_error("response end", exc)
