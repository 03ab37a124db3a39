"""The facts a rule can test or extract, parsed once into getters.

A getter takes an :class:`~hera_middleware.exchange.Exchange` and returns the value,
:data:`ABSENT` or :data:`UNKNOWN`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import did_you_mean
from ..exchange import ABSENT, UNKNOWN, Exchange, _Truncated, decoded

__all__ = ["FACT_FAMILIES", "Fact", "parse_fact"]

Getter = Callable[[Exchange], Any]


@dataclass(frozen=True)
class Fact:
    """A parsed fact path such as ``query.client_id`` or ``response.json.error``."""

    text: str
    family: str
    key: tuple[str, ...]
    get: Getter
    request_body: bool = False
    response_body: bool = False

    @property
    def is_body_text(self) -> bool:
        return self.family == "response.body"


def _first(values: dict[str, list[str]], key: str) -> Any:
    """The key's value; a key sent twice is unknown (servers disagree which one counts)."""
    found = values.get(key)
    if not found:
        return ABSENT
    return decoded(found) if len(found) == 1 else UNKNOWN


def _walk(value: Any, key: tuple[str, ...]) -> Any:
    if value is ABSENT or value is UNKNOWN:
        return value
    for part in key:
        if isinstance(value, dict):
            if part not in value:
                return ABSENT
            value = value[part]
        elif isinstance(value, list) and part.isdigit():
            index = int(part)
            if index >= len(value):
                return ABSENT
            value = value[index]
        else:
            return ABSENT
    return value


def _form_value(ex: Exchange, key: str) -> Any:
    form = ex.form()
    if form is ABSENT or form is UNKNOWN:
        return form
    assert isinstance(form, dict)
    found = form.get(key)
    if found:
        return decoded(found) if len(found) == 1 else UNKNOWN
    return UNKNOWN if isinstance(form, _Truncated) else ABSENT


def _params_value(ex: Exchange, key: str) -> Any:
    value = _form_value(ex, key)
    # The query decides when the form lacks the key or the body was never read; a form
    # value sent twice, or maybe in a part cut off, is unknown: the server may take it.
    if value is ABSENT or ex.form() is UNKNOWN:
        from_query = _first(ex.query(), key)
        if from_query is not ABSENT:
            return from_query
    return value


def _path_param(ex: Exchange, key: str) -> Any:
    if key in ex.template_params:
        return ex.template_params[key]
    if key in ex.path_params:
        return ex.path_params[key]
    return ABSENT


def _signal(ex: Exchange, key: tuple[str, ...]) -> Any:
    if ex.signals is None:
        return UNKNOWN
    fired = ex.signals.get(key[0], ABSENT)
    if fired is ABSENT or len(key) == 1:
        return True if fired is not ABSENT else ABSENT
    return _walk(fired, key[1:])


def _location_path(ex: Exchange) -> Any:
    loc = ex.location()
    return loc if loc is ABSENT else loc[0]  # type: ignore[index]


def _location_query(ex: Exchange, key: str) -> Any:
    loc = ex.location()
    return loc if loc is ABSENT else _first(loc[1], key)  # type: ignore[index]


def _status(ex: Exchange) -> Any:
    return UNKNOWN if ex.status is None else ex.status


#: Fact families: name -> (takes a key, dotted key, request body, response body).
FACT_FAMILIES: dict[str, tuple[bool, bool, bool, bool]] = {
    "method": (False, False, False, False),
    "path": (False, False, False, False),
    "route": (False, False, False, False),
    "raised": (False, False, False, False),
    "basic_auth.username": (False, False, False, False),
    "response.status": (False, False, False, False),
    "response.location.path": (False, False, False, False),
    "response.body": (False, False, False, True),
    "path.": (True, False, False, False),
    "query.": (True, False, False, False),
    "form.": (True, False, True, False),
    "params.": (True, False, True, False),
    "json.": (True, True, True, False),
    "headers.": (True, False, False, False),
    "cookies.": (True, False, False, False),
    "response.headers.": (True, False, False, False),
    "response.json.": (True, True, False, True),
    "response.location.query.": (True, False, False, False),
    "signal.": (True, True, False, False),
}


def _form_getter(k: str) -> Getter:
    # _form_value inlined: form facts are what token and login rules test most.
    def form_value(ex: Exchange) -> Any:
        form = ex.form()
        if form is ABSENT or form is UNKNOWN:
            return form
        found = form.get(k)  # type: ignore[union-attr]
        if found:
            return decoded(found) if len(found) == 1 else UNKNOWN
        return UNKNOWN if isinstance(form, _Truncated) else ABSENT

    return form_value


def _response_json_getter(key: tuple[str, ...]) -> Getter:
    if len(key) == 1:
        k = key[0]

        def top_level(ex: Exchange) -> Any:
            value = ex.response_json()
            if type(value) is dict:
                return value.get(k, ABSENT)
            return _walk(value, key)

        return top_level
    return lambda ex: _walk(ex.response_json(), key)


def _getter(family: str, key: tuple[str, ...]) -> Getter:
    k = key[0] if key else ""
    if family == "form.":
        return _form_getter(k)
    if family == "response.json.":
        return _response_json_getter(key)
    simple: dict[str, Getter] = {
        "method": lambda ex: ex.method,
        "path": lambda ex: ex.path,
        "route": lambda ex: UNKNOWN if ex.route is None else ex.route,
        "raised": lambda ex: ex.raised,
        "basic_auth.username": lambda ex: ex.basic_auth_username(),
        "response.status": _status,
        "response.location.path": _location_path,
        "response.body": lambda ex: ex.response_text(),
        "path.": lambda ex: _path_param(ex, k),
        "query.": lambda ex: _first(ex.query(), k),
        "form.": lambda ex: _form_value(ex, k),
        "params.": lambda ex: _params_value(ex, k),
        "json.": lambda ex: _walk(ex.json(), key),
        "headers.": lambda ex: ex.header(k),
        "cookies.": lambda ex: True if k in ex.cookie_names() else ABSENT,
        "response.headers.": lambda ex: ex.response_header(k),
        "response.json.": lambda ex: _walk(ex.response_json(), key),
        "response.location.query.": lambda ex: _location_query(ex, k),
        "signal.": lambda ex: _signal(ex, key),
    }
    return simple[family]


_NAMES = sorted({f.rstrip(".") if not f.endswith(".") else f + "<name>" for f in FACT_FAMILIES})


def parse_fact(text: str) -> Fact | tuple[str, str | None]:
    """Parse a fact path; on failure return ``(message, hint)``."""
    if text in FACT_FAMILIES and not FACT_FAMILIES[text][0]:
        family = text
        key: tuple[str, ...] = ()
    else:
        family = ""
        for prefix in sorted((f for f in FACT_FAMILIES if f.endswith(".")), key=len, reverse=True):
            if text.startswith(prefix):
                family = prefix
                break
        if not family:
            head = text.split(".", 1)[0]
            hint = did_you_mean(text, [f.rstrip(".") for f in FACT_FAMILIES]) or did_you_mean(
                head, [f.split(".")[0] for f in FACT_FAMILIES]
            )
            return f"{text!r} is no fact", hint or _fact_list_hint()
        rest = text[len(family) :]
        dotted = FACT_FAMILIES[family][1]
        key = tuple(rest.split(".")) if dotted else (rest,)
        if not rest or any(not part for part in key):
            return f"{text!r} needs a name after {family!r}", f"for example {family}client_id"
        if family in ("headers.", "response.headers."):
            key = (rest.lower(),)  # header names are case-insensitive
    _takes_key, _dotted, request_body, response_body = FACT_FAMILIES[family]
    return Fact(
        text,
        family,
        key,
        _getter(family, key),
        request_body=request_body,
        response_body=response_body,
    )


def _fact_list_hint() -> str:
    return "facts are " + ", ".join(_NAMES)
