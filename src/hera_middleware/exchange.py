"""One HTTP exchange as rules see it: framework-neutral, parsed lazily, three-state.

A fact is present (a value), absent (:data:`ABSENT`) or unknown (:data:`UNKNOWN`):
the body was not read by the app, was cut at the cap, was compressed, or the client
went away. Adapters fill the raw attributes; everything else is parsed on first use.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Final
from urllib.parse import unquote_to_bytes, urlsplit

import orjson

__all__ = ["ABSENT", "UNKNOWN", "BodyState", "Exchange"]


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __bool__(self) -> bool:
        return False


ABSENT: Final = _Marker("ABSENT")
UNKNOWN: Final = _Marker("UNKNOWN")


class BodyState:
    """How much of a body was seen (ints for speed)."""

    EMPTY = 0  # no body was sent
    COMPLETE = 1  # every byte seen and copied
    TRUNCATED = 2  # every byte seen, copy stopped at the cap
    INCOMPLETE = 3  # not every byte seen (app stopped reading, client gone)
    NOT_TEED = 4  # no rule asked for it
    UNREADABLE = 5  # compressed, or the app raised


Multi = dict[str, list[str]]


def _parse_pairs(data: bytes | bytearray, *, drop_last: bool) -> Multi:
    """Parse ``a=1&b=2`` (as urlencoded forms and query strings are) into lists.

    Undecodable bytes become U+FFFD; pairs are split on ``&`` (and ``;`` is kept as
    text, as browsers and Starlette do).
    """
    if drop_last:
        # A body cut at the cap: its last pair may be partial.
        cut = data.rfind(b"&")
        data = data[:cut] if cut >= 0 else b""
    out: Multi = {}
    if not data:
        return out
    text = data.decode("utf-8", "replace")
    for pair in text.split("&"):
        if not pair:
            continue
        key, _, value = pair.partition("=")
        if "%" in key or "+" in key:
            key = _unquote_plus(key)
        if "%" in value or "+" in value:
            value = Encoded(value)  # decoded by decoded() when a rule reads it
        found = out.get(key)
        if found is None:
            out[key] = [value]
        else:
            found.append(value)
    return out


def copy_capped(copy: bytearray, data: bytes, cap: int) -> bool:
    """Append ``data`` to ``copy`` while the copy holds at most ``cap`` bytes in all.

    Returns False when part of ``data`` was left out: the copy is cut. Adapters keep the
    cap at -1 from then on, so every later chunk is refused as well.
    """
    room = cap - len(copy)
    if len(data) <= room:
        copy += data
        return True
    if room > 0:
        copy += data[:room]
    return False


class Encoded(str):
    """A form or query value still percent-encoded: most values no rule ever reads."""

    __slots__ = ()


def decoded(values: list[str]) -> str:
    """The first of ``values``, percent-decoded (once: the list keeps the result)."""
    value = values[0]
    if type(value) is Encoded:
        value = values[0] = _unquote_plus(value)
    return value


_HEXDIGITS = "0123456789ABCDEFabcdef"
_HEX_BYTE = {(a + b).encode(): bytes.fromhex(a + b) for a in _HEXDIGITS for b in _HEXDIGITS}


def _unquote_plus(text: str) -> str:
    """Percent-decode form text ('+' is a space); bad UTF-8 becomes U+FFFD.

    The standard library's unquote_plus is several times slower on short values.
    """
    text = text.replace("+", " ")
    if "%" not in text:
        return text
    parts = text.encode("utf-8", "surrogatepass").split(b"%")
    out = [parts[0]]
    for part in parts[1:]:
        byte = _HEX_BYTE.get(part[:2])
        if byte is None:
            out.append(b"%")
            out.append(part)
        else:
            out.append(byte)
            out.append(part[2:])
    return b"".join(out).decode("utf-8", "replace")


_BOUNDARY = re.compile(r';\s*boundary\s*=\s*(?:"([^"]{1,200})"|([^\s;"]{1,200}))', re.IGNORECASE)
_DISPOSITION_NAME = re.compile(rb'(?:^|;)\s*name\s*=\s*(?:"([^"]*)"|([^\s;]+))', re.IGNORECASE)
_DISPOSITION_FILE = re.compile(rb"(?:^|;)\s*filename\*?\s*=", re.IGNORECASE)


def _boundary(content_type: str) -> bytes | None:
    m = _BOUNDARY.search(content_type)
    if m is None:
        return None
    return (m.group(1) or m.group(2)).encode("latin-1", "replace")


def _parse_multipart(body: bytes, boundary: bytes) -> Multi:
    """Text fields of a multipart/form-data body; file parts and partial parts are skipped.

    A part is complete only when the next delimiter follows it, so a body cut at the
    cap loses exactly its last, partial, part.
    """
    out: Multi = {}
    delimiter = b"--" + boundary
    chunks = body.split(delimiter)
    # chunks[0] is the preamble; the last chunk is either the epilogue or a partial part.
    for chunk in chunks[1:-1]:
        head, sep, value = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        disposition = b""
        for line in head.split(b"\r\n"):
            name_, _, rest = line.partition(b":")
            if name_.strip().lower() == b"content-disposition":
                disposition = rest
        m = _DISPOSITION_NAME.search(disposition)
        if m is None or _DISPOSITION_FILE.search(disposition):
            continue
        if value.endswith(b"\r\n"):
            value = value[:-2]
        key = (m.group(1) if m.group(1) is not None else m.group(2)).decode("utf-8", "replace")
        out.setdefault(key, []).append(value.decode("utf-8", "replace"))
    return out


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


class Exchange:
    """Request and response facts of one exchange.

    Adapters set ``method``, ``path`` (app-relative), ``root_path``, ``query_string``,
    ``headers`` (raw ``(bytes, bytes)`` pairs, as received), the request body copy and
    its :class:`BodyState`, and after the app ran ``status``, ``response_headers``,
    the response body copy and its state, ``raised``, ``route`` and ``path_params``.
    """

    __slots__ = (
        "_cache",
        "_has_body",
        "_headers",
        "_rheaders",
        "body",
        "body_state",
        "headers",
        "http_version",
        "method",
        "path",
        "path_params",
        "query_string",
        "raised",
        "response_body",
        "response_headers",
        "response_state",
        "root_path",
        "route",
        "signals",
        "status",
        "template_params",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query_string: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
        root_path: str = "",
        http_version: str = "1.1",
    ) -> None:
        self.method = method
        self.http_version = http_version
        self.path = path
        self.root_path = root_path
        self.query_string = query_string
        self.headers = headers if headers is not None else []
        self.body = bytearray()
        self.body_state = BodyState.NOT_TEED
        self.status: int | None = None
        self.response_headers: list[tuple[bytes, bytes]] = []
        self.response_body = bytearray()
        self.response_state = BodyState.NOT_TEED
        self.raised = False
        self.route: str | None = None
        self.path_params: dict[str, Any] = {}
        self.template_params: dict[str, str] = {}
        self.signals: dict[str, dict[str, Any]] | None = None
        self._cache: dict[str, Any] = {}
        self._headers: dict[bytes, bytes] | None = None
        self._rheaders: dict[bytes, bytes] | None = None
        self._has_body: bool | None = None

    # -- request -------------------------------------------------------------

    def header(self, name: str) -> str | _Marker:
        """A request header by lower-case name; repeated headers joined with ', '."""
        table = self._headers
        if table is None:
            table = self._headers = _header_table(self.headers)
        value = table.get(name.encode("latin-1", "replace"))
        return ABSENT if value is None else value.decode("latin-1")

    def end_response(self, cut: bool) -> None:
        """Every byte of the response passed: its copy is complete, or truncated if ``cut``."""
        if self.response_state == BodyState.INCOMPLETE:
            self.response_state = BodyState.TRUNCATED if cut else BodyState.COMPLETE

    def end_early(self, raised: bool) -> None:
        """The exchange ended before its response did: the app ``raised`` (a 500 whose
        body is unreadable), or the client or server let go (the copy is incomplete)."""
        if raised:
            self.raised = True
            self.status = 500
            self.response_state = BodyState.UNREADABLE
        elif self.response_state != BodyState.NOT_TEED:
            self.response_state = BodyState.INCOMPLETE

    def header_list(self) -> list[tuple[bytes, bytes]]:
        """Every request header as received, as ``(name, value)`` bytes pairs."""
        return self.headers

    def query(self) -> Multi:
        q = self._cache.get("query")
        if q is None:
            q = self._cache["query"] = _parse_pairs(self.query_string, drop_last=False)
        return q

    def request_has_body(self) -> bool:
        """Whether a body may follow: by Content-Length or Transfer-Encoding in HTTP/1,
        and for methods that carry one in HTTP/2 and 3, which frame bodies without them.
        """
        has = self._has_body
        if has is None:
            length = self.header("content-length")
            if isinstance(length, str):
                has = length.strip() not in ("", "0")
            elif isinstance(self.header("transfer-encoding"), str):
                has = True
            else:
                has = not self.http_version.startswith("1") and self.method not in _BODILESS
            self._has_body = has
        return has

    def _content_type(self) -> str:
        ct = self.header("content-type")
        return _media_type(ct) if isinstance(ct, str) else ""

    def form(self) -> Multi | _Marker:
        """The urlencoded form; ABSENT when the body is no form; UNKNOWN when unread."""
        if "form" in self._cache:
            return self._cache["form"]  # type: ignore[no-any-return]
        ct = self._content_type()
        result: Multi | _Marker
        if ct == "multipart/form-data" and self.request_has_body():
            result = self._multipart()
        elif ct != "application/x-www-form-urlencoded" or not self.request_has_body():
            result = ABSENT
        elif self.body_state == BodyState.COMPLETE:
            result = _parse_pairs(self.body, drop_last=False)
        elif self.body_state == BodyState.TRUNCATED:
            result = _Truncated(_parse_pairs(self.body, drop_last=True))
        else:
            result = UNKNOWN
        self._cache["form"] = result
        return result

    def _multipart(self) -> Multi | _Marker:
        if self.body_state not in (BodyState.COMPLETE, BodyState.TRUNCATED):
            return UNKNOWN
        ct = self.header("content-type")
        boundary = _boundary(ct) if isinstance(ct, str) else None
        if boundary is None:
            return UNKNOWN
        fields = _parse_multipart(bytes(self.body), boundary)
        return _Truncated(fields) if self.body_state == BodyState.TRUNCATED else fields

    def json(self) -> Any:
        """The parsed JSON request body; ABSENT when it is no JSON; UNKNOWN when unread."""
        if "json" not in self._cache:
            ct = self._content_type()
            if not _is_json(ct) or not self.request_has_body():
                self._cache["json"] = ABSENT
            else:
                self._cache["json"] = _load_json(self.body, self.body_state)
        return self._cache["json"]

    def basic_auth_username(self) -> str | _Marker:
        """The client id from ``Authorization: Basic``, URL-decoded (RFC 6749 2.3.1)."""
        value = self.header("authorization")
        if not isinstance(value, str):
            return ABSENT
        scheme, _, credentials = value.strip().partition(" ")
        if scheme.lower() != "basic":
            return ABSENT
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return ABSENT
        user, sep, _secret = decoded.partition(":")
        if not sep or not user:
            return ABSENT
        return _unquote_plus(user)  # form-urlencoded per RFC 6749 2.3.1: '+' is a space

    def cookie_names(self) -> set[str]:
        names = self._cache.get("cookies")
        if names is None:
            names = set()
            value = self.header("cookie")
            if isinstance(value, str):
                for part in value.replace(",", ";").split(";"):
                    name = part.split("=", 1)[0].strip()
                    if name:
                        names.add(name)
            self._cache["cookies"] = names
        return names

    # -- response ------------------------------------------------------------

    def response_header(self, name: str) -> str | _Marker:
        table = self._rheaders
        if table is None:
            table = self._rheaders = _header_table(self.response_headers)
        value = table.get(name.encode("latin-1", "replace"))
        return ABSENT if value is None else value.decode("latin-1")

    def _response_readable(self) -> bool:
        if self.raised:
            return False
        encoding = self.response_header("content-encoding")
        return not (isinstance(encoding, str) and encoding.strip().lower() not in ("", "identity"))

    def response_json(self) -> Any:
        if "rjson" not in self._cache:
            if self.status is None or not self._response_readable():
                self._cache["rjson"] = UNKNOWN
            else:
                ct = self.response_header("content-type")
                if not (isinstance(ct, str) and _is_json(_media_type(ct))):
                    self._cache["rjson"] = ABSENT
                else:
                    self._cache["rjson"] = _load_json(self.response_body, self.response_state)
        return self._cache["rjson"]

    def response_text(self) -> tuple[str, bool] | _Marker:
        """The response body as text and whether it is whole; UNKNOWN when unseen."""
        if self.status is None or not self._response_readable():
            return UNKNOWN
        state = self.response_state
        if state in (BodyState.COMPLETE, BodyState.EMPTY):
            whole = True
        elif state == BodyState.TRUNCATED:
            whole = False
        else:
            return UNKNOWN
        text = self._cache.get("rtext")
        if text is None:
            text = self._cache["rtext"] = self.response_body.decode("utf-8", "replace")
        return text, whole

    def location(self) -> tuple[str, Multi] | _Marker:
        """The Location header's app-relative path and query, or ABSENT."""
        if "location" not in self._cache:
            value = self.response_header("location")
            if not isinstance(value, str):
                self._cache["location"] = ABSENT
            else:
                parts = urlsplit(value.strip())
                path = unquote_to_bytes(parts.path).decode("utf-8", "replace")
                root = self.root_path.rstrip("/")
                if root and (path == root or path.startswith(root + "/")):
                    path = path[len(root) :] or "/"
                query = _parse_pairs(parts.query.encode("utf-8", "replace"), drop_last=False)
                self._cache["location"] = (path, query)
        result: tuple[str, Multi] | _Marker = self._cache["location"]
        return result


_BODILESS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE"})


class _Truncated(dict[str, list[str]]):
    """A form cut at the cap: keys it lacks are unknown, not absent."""


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _load_json(body: bytearray, state: int) -> Any:
    if state != BodyState.COMPLETE:
        return UNKNOWN
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # What Python servers accept and orjson refuses (NaN, Infinity, lone surrogates):
    # read it as the app's own json.loads would, so such a body cannot hide an event.
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return UNKNOWN


def _header_table(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Lower-case name -> value, a header sent several times joined with ', '."""
    table = dict(headers)
    if len(table) == len(headers) and b"".join(table).islower():
        return table  # the common case (ASGI servers send lower-case names), built in C
    table = {}
    repeated: dict[bytes, list[bytes]] | None = None
    for key, value in headers:
        name = key.lower()
        if name not in table:
            table[name] = value
            continue
        # Joined once at the end: a header sent many times costs linear time.
        if repeated is None:
            repeated = {}
        values = repeated.get(name)
        if values is None:
            repeated[name] = [table[name], value]
        else:
            values.append(value)
    if repeated is not None:
        for name, values in repeated.items():
            table[name] = b", ".join(values)
    return table
