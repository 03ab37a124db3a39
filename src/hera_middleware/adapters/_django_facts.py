"""Exchange facts from Django's request and response objects, without reading a body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from ..exchange import BodyState, Exchange

__all__ = ["request_body", "request_exchange", "response_headers"]


def _native(text: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def request_exchange(request: HttpRequest) -> Exchange:
    """The request side of the exchange: method, ``path_info``, query, raw headers."""
    scope = getattr(request, "scope", None)  # ASGIRequest: the raw scope is at hand
    if isinstance(scope, Mapping):
        query = scope.get("query_string", b"")
        headers = list(scope.get("headers") or ())
    else:
        meta = request.META
        query = _native(meta.get("QUERY_STRING", ""))
        headers = []
        for key, value in meta.items():
            if key.startswith("HTTP_"):
                name = key[5:]
            elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
                name = key
            else:
                continue
            if isinstance(value, str):
                headers.append((name.replace("_", "-").lower().encode("latin-1"), _native(value)))
    path, full = request.path_info, request.path
    root = full[: len(full) - len(path)] if path and full.endswith(path) else ""
    return Exchange(request.method or "GET", path, query, headers, root)


def response_headers(response: HttpResponseBase) -> list[tuple[bytes, bytes]]:
    """The header list Django's handlers send, Set-Cookie lines included."""
    headers = [(_native(k), _native(v)) for k, v in response.items()]
    for cookie in response.cookies.values():
        headers.append((b"Set-Cookie", _native(cookie.output(header="").strip())))
    return headers


def request_body(ex: Exchange, request: HttpRequest, cap: int) -> None:
    """What the view read of the request body; never reads it."""
    if not ex.request_has_body():
        ex.body_state = BodyState.EMPTY
        return
    ex.body_state = BodyState.INCOMPLETE
    seen = request.__dict__  # never the properties: they would read the stream
    length = request.META.get("CONTENT_LENGTH")
    body = seen.get("_body")
    if isinstance(body, bytes):
        # A body cut at DATA_UPLOAD_MAX_MEMORY_SIZE raised in the view: not the whole body.
        if length and length.isdigit() and len(body) != int(length):
            return
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if not (length and length.isdigit()) and limit is not None and len(body) > limit:
            return
        ex.body += body[:cap]
        ex.body_state = BodyState.TRUNCATED if len(body) > cap else BodyState.COMPLETE
        return
    post = seen.get("_post")
    if (
        post is not None
        and seen.get("_read_started")
        and request.content_type == "multipart/form-data"
        and length
        and length.isdigit()
        and int(length) <= cap
    ):
        # Django parsed the multipart form as it streamed; its text fields are all we keep.
        form = _multipart(post, (request.content_params or {}).get("boundary", ""))
        if form is not None:
            ex.body += form
            ex.body_state = BodyState.COMPLETE


def _multipart(post: Any, boundary: str) -> bytes | None:
    """The text fields of a parsed multipart form, as a multipart body again."""
    if not boundary:
        return None
    delimiter = b"--" + boundary.encode("latin-1")
    out = bytearray()
    for key, values in post.lists():
        if any(c in key for c in '"\r\n'):
            return None
        head = b'\r\nContent-Disposition: form-data; name="' + key.encode("utf-8") + b'"\r\n\r\n'
        for value in values:
            out += delimiter + head + str(value).encode("utf-8") + b"\r\n"
    out += delimiter + b"--\r\n"
    return bytes(out)
