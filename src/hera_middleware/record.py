"""The opt-in ``record`` option: cleaned exchanges in the JSON-lines format ``replay`` reads.

Browsers never see back-channel calls (a confidential client's token request), so a
HAR cannot hold them; with ``record="exchanges.jsonl"`` (or ``HERA_RECORD``) the
middleware writes every exchange it sees, rules or not, as one line each.

What is written is cleaned, never configurable off:

- values under a forbidden key of the privacy policy (query, form, JSON at every level,
  response JSON, ``Location`` query, a query inside any value) are masked: each letter
  becomes ``x``, each digit ``0``, so presence, length and format — all that rules may
  test of a secret — survive and nothing else does; e-mail addresses and IP addresses
  anywhere are masked the same way;
- of the request headers only ``content-type``, ``accept``, ``authorization`` (a Basic
  client id is kept, its secret and any other credential are masked) and the cookie
  *names* are kept; of the response headers ``content-type``, ``location`` (cleaned),
  ``www-authenticate`` and the ``set-cookie`` names;
- an HTML or text body keeps its text, with the values of inputs named like a secret
  (``csrf_token``, ``password``) masked, and e-mail and IP addresses masked; a
  multipart body is not kept.

Each record also holds ``expected_events``: the events the rules emitted for it, to be
reviewed and kept for ``replay --expect``; and, when the rules declare signals,
``signals``: the declared signals sent while the request was handled, each with its
kept arguments (single values only, cleaned as the rest), ``{}`` when none was sent.
Recording copies every body up to the caps, so it costs; it is for development and
staging, and says so loudly on stderr.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import dataclasses
import json
import math
import os
import queue
import re
import threading
from typing import Any
from urllib.parse import parse_qs

from ._diagnostics import write_stderr
from .exchange import UNKNOWN, BodyState, Exchange
from .matching import Candidates, RuleSet
from .policy import secret_reason

__all__ = ["Recorder", "RecordingRuleSet", "mask"]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")
_IPV4 = re.compile(r"(?<![0-9.])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Za-z:])")
_QUERY_PAIR = re.compile(r"([?&;]|&amp;)([^=&#\s\"'<>]+)=([^&#\s\"'<>]*)")
_INPUT = re.compile(r"<input\b[^>]*>", re.IGNORECASE)
_NAME = re.compile(r"""\bname\s*=\s*(["']?)([^"'\s>]+)\1""", re.IGNORECASE)
_VALUE = re.compile(r"""(\bvalue\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
_DIGIT = re.compile(r"\d")
_KEPT_REQUEST = ("content-type", "accept")
_KEPT_RESPONSE = ("content-type", "www-authenticate")
_QUEUE = 1000


def mask(value: str) -> str:
    """``value`` with each letter as ``x`` and each digit as ``0`` (length and format kept)."""
    return _DIGIT.sub("0", _LETTER.sub("x", value))


def _clean_text(text: str) -> str:
    """Mask e-mail and IP addresses, and query values under forbidden keys, in free text."""

    def pair(m: re.Match[str]) -> str:
        key = m.group(2)
        value = mask(m.group(3)) if secret_reason(key) else m.group(3)
        return f"{m.group(1)}{key}={value}"

    text = _QUERY_PAIR.sub(pair, text)
    for pattern in (_EMAIL, _IPV4, _IPV6):
        text = pattern.sub(lambda m: mask(m.group(0)), text)
    return text


def _clean_html(text: str) -> str:
    def one_input(m: re.Match[str]) -> str:
        tag = m.group(0)
        name = _NAME.search(tag)
        if name and secret_reason(name.group(2)):
            tag = _VALUE.sub(lambda v: v.group(1) + v.group(2) + mask(v.group(3)) + v.group(2), tag)
        return tag

    return _clean_text(_INPUT.sub(one_input, text))


def _clean_json(value: Any, secret: bool = False) -> Any:
    if isinstance(value, dict):
        return {
            k: _clean_json(v, secret or secret_reason(str(k)) is not None) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_clean_json(v, secret) for v in value]
    if isinstance(value, str):
        return mask(value) if secret else _clean_text(value)
    if secret and isinstance(value, (int, float)) and not isinstance(value, bool):
        return mask(str(value))
    return value


def _clean_pairs(pairs: dict[str, list[str]]) -> dict[str, list[str]]:
    return {
        key: [mask(v) if secret_reason(key) else _clean_text(v) for v in values]
        for key, values in pairs.items()
    }


def _authorization(value: str) -> str:
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() == "basic":
        try:
            user, sep, _secret = base64.b64decode(credentials).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return f"{scheme} {mask(credentials)}"
        kept = f"{user}{sep}<redacted>".encode()
        return f"{scheme} {base64.b64encode(kept).decode('ascii')}"
    return f"{scheme} {mask(credentials)}" if credentials else mask(scheme)


def _text(data: bytes | bytearray) -> str:
    return bytes(data).decode("utf-8", "replace")


def _cookie_names(value: str, response: bool) -> list[str]:
    if response:
        return [value.split("=", 1)[0].strip()]
    return [part.split("=", 1)[0].strip() for part in value.split(";") if part.strip()]


def _headers(raw: list[tuple[bytes, bytes]], response: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kept = _KEPT_RESPONSE if response else _KEPT_REQUEST
    cookie = "set-cookie" if response else "cookie"
    for name_b, value_b in raw:
        name, value = name_b.decode("latin-1").lower(), value_b.decode("latin-1")
        if name in kept:
            out[name] = value
        elif name == cookie:
            out.setdefault(cookie, []).extend(_cookie_names(value, response))
        elif name == "authorization" and not response:
            out[name] = _authorization(value)
        elif name == "location" and response:
            out[name] = _clean_text(value)
    return out


def _request_body(ex: Exchange, headers: dict[str, Any]) -> tuple[str, Any]:
    if ex.body_state == BodyState.EMPTY or (ex.body_state == BodyState.COMPLETE and not ex.body):
        return "empty", ""
    if ex.body_state != BodyState.COMPLETE:
        return "unknown", ""  # unread, cut at the cap, or not teed: not replayable as is
    media = str(headers.get("content-type", "")).split(";", 1)[0].strip().lower()
    text = _text(ex.body)
    if media == "application/x-www-form-urlencoded":
        return "form", _clean_pairs(parse_qs(text, keep_blank_values=True))
    if media.endswith("json"):
        try:
            return "json", _clean_json(json.loads(text))
        except ValueError:
            return "text", _clean_text(text)
    if media.startswith("multipart/"):
        return "unknown", ""
    return "text", _clean_text(text)


def _response_body(ex: Exchange, headers: dict[str, Any]) -> str:
    if ex.response_state != BodyState.COMPLETE:
        return ""
    media = str(headers.get("content-type", "")).split(";", 1)[0].strip().lower()
    text = _text(ex.response_body)
    if media.endswith("json"):
        try:
            return json.dumps(_clean_json(json.loads(text)))
        except ValueError:
            pass
    return _clean_html(text)


def _writable(value: Any) -> bool:
    """A kept value JSON can hold: no object, NaN, infinity, nor an int too long to write."""
    if value is UNKNOWN:
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and value.bit_length() > 64:
        try:
            str(value)  # beyond sys.get_int_max_str_digits() Python refuses to write it
        except ValueError:
            return False
    return True


def _signals(log: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The sent signals with their kept single values (an object was never kept)."""
    return {
        name: _clean_json({k: v for k, v in kept.items() if _writable(v)})
        for name, kept in log.items()
    }


class RecordingRuleSet:
    """A :class:`RuleSet` that makes every request a candidate, bodies included."""

    def __init__(self, inner: RuleSet) -> None:
        self.inner = inner
        self.rules = inner.rules
        self._everything = Candidates((), request_body=True, response_body=True)

    def candidates(self, method: str, path: str) -> Candidates:
        """The rules' candidates (or none) with both bodies teed, for the recording."""
        found = self.inner.candidates(method, path)
        if found is None:
            return self._everything
        return dataclasses.replace(found, request_body=True, response_body=True)


class Recorder:
    """Writes each finished exchange, cleaned, as one JSON line appended to ``path``.

    A writer thread (started on first use, again after ``fork``) does the I/O; when its
    queue of 1000 lines is full, records are dropped, with one warning.
    """

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path.removeprefix("file:"))
        self._queue: queue.Queue[bytes | None] = queue.Queue(_QUEUE)
        self._lock = threading.Lock()
        self._pid = -1
        self._thread: threading.Thread | None = None
        self._warned_full = False
        write_stderr(
            f"hera-middleware: WARNING: recording every exchange to {self.path}: secrets,"
            " cookies and personal data are masked, but the file holds your traffic; review"
            " it before sharing it, and never record in production"
        )
        atexit.register(self.close)

    def wrap(self, ruleset: RuleSet) -> RecordingRuleSet:
        """``ruleset`` with every request a candidate (what the middleware then looks up)."""
        return RecordingRuleSet(ruleset)

    def record(self, ex: Exchange, events: list[dict[str, Any]]) -> None:
        """Clean and queue one exchange with the events its rules emitted; never raises."""
        try:
            line = json.dumps(self.as_record(ex, events), ensure_ascii=False) + "\n"
            self._start()
            self._queue.put_nowait(line.encode("utf-8", "replace"))
        except queue.Full:
            if not self._warned_full:
                self._warned_full = True
                write_stderr(f"hera-middleware: warning: recording to {self.path} fell behind")
        except Exception as exc:  # a recording must never change the app's response
            write_stderr(f"hera-middleware: warning: recording failed ({type(exc).__name__})")

    def as_record(self, ex: Exchange, events: list[dict[str, Any]]) -> dict[str, Any]:
        """The cleaned record of ``ex`` in the JSON-lines exchange format."""
        request_headers = _headers(ex.header_list(), response=False)
        response_headers = _headers(ex.response_headers, response=True)
        kind, body = _request_body(ex, request_headers)
        root = ex.root_path.rstrip("/")
        record: dict[str, Any] = {
            "method": ex.method,
            "path": root + ex.path if root else ex.path,
            "root_path": ex.root_path,
            "query": _clean_pairs(parse_qs(_text(ex.query_string), keep_blank_values=True)),
            "request_headers": request_headers,
            "request_body_kind": kind,
            "request_body": body,
            "status": ex.status,
            "response_headers": response_headers,
            "response_body": _response_body(ex, response_headers),
            "expected_events": events,
        }
        if ex.route is not None:
            record["route"] = ex.route
        if ex.signals is not None:  # watched: what was sent, so replay knows, not guesses
            record["signals"] = _signals(ex.signals)
        return record

    def _start(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked worker
                self._queue = queue.Queue(_QUEUE)
                self._thread = threading.Thread(target=self._write, name="hera-record", daemon=True)
                self._thread.start()
                self._pid = os.getpid()

    def _write(self) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o600)
        try:
            while True:
                line = self._queue.get()
                if line is None:
                    return
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued and stop the writer thread (at exit, and in tests)."""
        thread = self._thread
        if thread is None or self._pid != os.getpid() or not thread.is_alive():
            return
        self._queue.put(None)
        thread.join(timeout)
        self._pid = -1
