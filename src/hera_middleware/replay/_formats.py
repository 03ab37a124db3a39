"""Recorded exchanges from files: the JSON-lines exchange format and HAR 1.2 exports."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from ..errors import Problem

__all__ = ["Recorded", "ReplayError", "read_exchanges", "read_har", "read_recordings"]

Headers = tuple[tuple[bytes, bytes], ...]
# Hop-by-hop and framing headers: replay frames bodies itself, decoded (as HAR keeps them).
_FRAMING = frozenset({"content-length", "transfer-encoding", "content-encoding", "connection"})
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class ReplayError(ValueError):
    """A recording that cannot be read; ``problem`` locates it (``file:line:col``)."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


@dataclass(frozen=True)
class Recorded:
    """One recorded HTTP exchange, ready to be replayed as raw ASGI messages.

    ``where`` names it in output (``file:line`` or ``file:entry N``); ``expected`` is
    every event list the recording accepts (``expected_events``, then
    ``also_accepted`` when ``http_ambiguous``), or None when it says nothing;
    ``signals`` the declared signals the server sent (name -> kept arguments), or None
    when the recording cannot say (signal facts are then unknown).
    """

    where: str
    method: str
    path: str
    root_path: str
    query_string: bytes
    headers: Headers
    body: bytes
    status: int
    response_headers: Headers
    response_body: bytes
    route: str | None = None
    expected: tuple[tuple[dict[str, Any], ...], ...] | None = None
    signals: dict[str, dict[str, Any]] | None = None


def _latin1(text: object) -> bytes:
    return str(text).encode("latin-1", "replace")


def _expected(data: Mapping[str, Any], key: str = "expected_events") -> Any:
    if key not in data:
        return None
    lists = [data[key]]
    if data.get("http_ambiguous"):
        lists += list(data.get("also_accepted") or [])
    return tuple(tuple(dict(e) for e in events) for events in lists)


def _signals(data: Mapping[str, Any]) -> dict[str, dict[str, Any]] | None:
    """The record's ``signals`` (name -> kept arguments -> single value), checked."""
    if "signals" not in data:
        return None
    signals = data["signals"]
    if not isinstance(signals, dict):
        raise ValueError(
            f"signals is an object (signal name -> kept arguments), not {_json_kind(signals)}"
        )
    for name, kept in signals.items():
        if not isinstance(kept, dict):
            raise ValueError(
                f"signals.{_key(name)} is an object (argument -> value), not {_json_kind(kept)}"
            )
        for arg, value in kept.items():
            if isinstance(value, (dict, list)):
                raise ValueError(
                    f"signals.{_key(name)}.{_key(arg)} is a string, number, boolean or null,"
                    f" not {_json_kind(value)}"
                )
    return {name: dict(kept) for name, kept in signals.items()}


def _key(key: str) -> str:
    """A key of the record as a message shows it: quoted and escaped unless a plain name."""
    return key if _PLAIN_KEY.fullmatch(key) else json.dumps(key)[:80]


def _json_kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def _exchange_body(data: Mapping[str, Any]) -> bytes:
    kind = data.get("request_body_kind")
    body = data.get("request_body")
    content_type = str((data.get("request_headers") or {}).get("content-type") or "").lower()
    if kind == "empty" or body in ("", {}, None):
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (dict, list)) and "json" in content_type.split(";", 1)[0]:
        return json.dumps(body).encode("utf-8")
    if isinstance(body, dict):
        return urlencode(body, doseq=True).encode("ascii")
    raise ValueError(f"a request_body of {type(body).__name__} cannot be rebuilt")


def _exchange_headers(items: Mapping[str, Any]) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for name, value in items.items():
        if value is None or value == [] or name.lower() in _FRAMING:
            continue
        if name == "cookie" and isinstance(value, list):
            # Only cookie names are recorded; the values are dummies.
            value = "; ".join(f"{cookie}=dummy-{cookie}" for cookie in value)
        if name == "set-cookie" and isinstance(value, list):
            out += [(b"set-cookie", _latin1(f"{c}=dummy-{c}; Path=/; HttpOnly")) for c in value]
            continue
        out.append((_latin1(name.lower()), _latin1(value)))
    return out


def exchange_from_dict(data: Mapping[str, Any], where: str) -> Recorded:
    """A record of the JSON-lines exchange format as a :class:`Recorded`."""
    body = _exchange_body(data)
    headers = [(b"host", b"localhost"), *_exchange_headers(data.get("request_headers") or {})]
    if body:
        headers.append((b"content-length", str(len(body)).encode("ascii")))
    response_body = str(data.get("response_body") or "").encode("utf-8")
    response_headers = _exchange_headers(data.get("response_headers") or {})
    response_headers.append((b"content-length", str(len(response_body)).encode("ascii")))
    query = data.get("query") or {}
    return Recorded(
        where=where,
        method=str(data["method"]).upper(),
        path=str(data["path"]),
        root_path=str(data.get("root_path") or ""),
        query_string=urlencode(query, doseq=True).encode("ascii"),
        headers=tuple(headers),
        body=body,
        status=int(data["status"]),
        response_headers=tuple(response_headers),
        response_body=response_body,
        route=data.get("route") or None,
        expected=_expected(data),
        signals=_signals(data),
    )


def read_exchanges(path: str | Path) -> Iterator[Recorded]:
    """Each line of a JSON-lines exchange file (blank lines skipped), read as it goes.

    Raises:
        ReplayError: for a line that is no JSON object or lacks a key replay needs.
    """
    name = str(path)
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line.rstrip("\r\n"))
                if not isinstance(data, dict):
                    raise ValueError("a record is a JSON object")
                yield exchange_from_dict(data, f"{name}:{number}")
            except json.JSONDecodeError as exc:
                raise ReplayError(
                    Problem(name, number, exc.colno, "bad-exchange", f"invalid JSON: {exc.msg}")
                ) from None
            except RecursionError:
                raise ReplayError(
                    Problem(name, number, 1, "bad-exchange", "JSON nested too deeply")
                ) from None
            except (KeyError, ValueError, TypeError) as exc:
                message = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
                raise ReplayError(Problem(name, number, 1, "bad-exchange", message)) from None


def _har_headers(items: Any) -> list[tuple[bytes, bytes]]:
    out = []
    for header in items or []:
        name = str(header.get("name", "")).lower()
        if name and not name.startswith(":") and name not in _FRAMING:
            out.append((_latin1(name), _latin1(header.get("value", ""))))
    return out


def _har_entry(entry: Mapping[str, Any], where: str) -> Recorded:
    request, response = entry["request"], entry["response"]
    url = urlsplit(str(request["url"]))
    headers = _har_headers(request.get("headers"))
    if not any(name == b"host" for name, _ in headers):
        headers.insert(0, (b"host", _latin1(url.netloc or "localhost")))
    post = request.get("postData") or {}
    body = str(post.get("text") or "").encode("utf-8")
    if not body and post.get("params"):
        body = urlencode([(p["name"], p.get("value", "")) for p in post["params"]]).encode()
    if post.get("mimeType") and not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", _latin1(post["mimeType"])))
    if body:
        headers.append((b"content-length", str(len(body)).encode("ascii")))
    content = response.get("content") or {}
    text = str(content.get("text") or "")
    try:
        response_body = (
            base64.b64decode(text) if content.get("encoding") == "base64" else text.encode()
        )
    except (binascii.Error, ValueError):
        raise ValueError("response.content.text is not valid base64") from None
    response_headers = _har_headers(response.get("headers"))
    response_headers.append((b"content-length", str(len(response_body)).encode("ascii")))
    return Recorded(
        where=where,
        method=str(request["method"]).upper(),
        path=url.path or "/",
        root_path="",
        query_string=url.query.encode("latin-1", "replace"),
        headers=tuple(headers),
        body=body,
        status=int(response["status"]),
        response_headers=tuple(response_headers),
        response_body=response_body,
        expected=_expected(entry, "_expected_events"),
    )


def read_har(path: str | Path) -> Iterator[Recorded]:
    """Each entry of a HAR 1.2 export (a browser's "Save all as HAR with content").

    Pseudo-headers (``:authority``) and framing headers are left out; bodies are the
    decoded text the HAR holds. An entry's ``_expected_events`` (a custom HAR field)
    is what ``replay --expect`` compares with.

    Raises:
        ReplayError: for a file that is no HAR, or an entry without request/response.
    """
    name = str(path)
    try:
        with open(path, encoding="utf-8") as file:
            entries = json.load(file)["log"]["entries"]
    except json.JSONDecodeError as exc:
        raise ReplayError(
            Problem(name, exc.lineno, exc.colno, "bad-har", f"invalid JSON: {exc.msg}")
        ) from None
    except RecursionError:
        raise ReplayError(Problem(name, 1, 1, "bad-har", "JSON nested too deeply")) from None
    except (KeyError, TypeError):
        raise ReplayError(Problem(name, 1, 1, "bad-har", "a HAR file holds log.entries")) from None
    for number, entry in enumerate(entries, start=1):
        try:
            yield _har_entry(entry, f"{name}:entry {number}")
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            message = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
            raise ReplayError(
                Problem(name, 1, 1, "bad-har", f"entry {number}: {message}")
            ) from None


def read_recordings(path: str | Path) -> Iterator[Recorded]:
    """:func:`read_har` for ``*.har`` files, :func:`read_exchanges` for the rest."""
    if str(path).lower().endswith(".har"):
        return read_har(path)
    return read_exchanges(path)
