"""The event catalog: documented events, their fields in order, and vocabularies."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from . import policy
from .errors import did_you_mean

__all__ = [
    "BREACH_CHECK_FAILED_REASONS",
    "CAPTCHA_FAILED_REASONS",
    "CATALOG",
    "FLOWS",
    "MFA_METHODS",
    "PKCE_FAILED_REASONS",
    "EventType",
    "declare_event",
    "declared_events",
    "domain_problem",
    "event_name_problem",
    "field_name_problem",
    "lookup_event",
]


@dataclass(frozen=True)
class EventType:
    """An event name and its field names, in the order they are written."""

    name: str
    fields: tuple[str, ...]
    documented: bool = False


def _catalog(*entries: tuple[str, tuple[str, ...]]) -> Mapping[str, EventType]:
    return MappingProxyType({n: EventType(n, f, documented=True) for n, f in entries})


#: The 14 documented events of the specification, in catalog order.
CATALOG: Mapping[str, EventType] = _catalog(
    ("pkce_authorize", ("client_id",)),
    ("pkce_token_exchange", ("client_id",)),
    ("pkce_failed", ("reason", "client_id")),
    ("social_login_initiated", ("provider",)),
    ("social_login_completed", ("provider", "first_login")),
    ("social_link_initiated", ("provider",)),
    ("mfa_challenge_displayed", ("method",)),
    ("mfa_challenge_succeeded", ("method",)),
    ("mfa_challenge_failed", ("method",)),
    ("captcha_displayed", ("flow",)),
    ("captcha_succeeded", ("flow",)),
    ("captcha_failed", ("flow", "reason")),
    ("breach_check_passed", ()),
    ("breach_check_failed", ("reason",)),
)

#: Written by the library itself when events were lost; not for rules.
EVENTS_DROPPED = EventType("events_dropped", ("count",))

PKCE_FAILED_REASONS = (
    "verifier_mismatch",
    "verifier_missing",
    "challenge_missing",
    "challenge_method_unsupported",
    "challenge_invalid",
)
CAPTCHA_FAILED_REASONS = ("timeout", "invalid", "missing")
BREACH_CHECK_FAILED_REASONS = ("in_hibp",)
MFA_METHODS = ("totp", "sms", "email", "webauthn", "recovery_code", "push")
FLOWS = ("login", "registration", "password_reset", "password_change")

_EVENT_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)+")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_DOMAIN = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
RESERVED_KEYS = frozenset({"type", "event", "domain", "ts"})


def event_name_problem(name: object) -> str | None:
    """Say what is wrong with a custom event name, or None when it is fine."""
    if not isinstance(name, str) or not _EVENT_NAME.fullmatch(name):
        return (
            f"event name {name!r} is not of the form <noun>_<verb> "
            "(lowercase words joined by '_', for example 'password_reset_requested')"
        )
    if name == EVENTS_DROPPED.name:
        return f"event name {name!r} is reserved for the library's own loss reports"
    return None


def field_name_problem(name: object) -> str | None:
    """Say what is wrong with a field name, or None when it is fine."""
    if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
        return f"field name {name!r} must be a lowercase identifier (letters, digits, '_')"
    if name in RESERVED_KEYS:
        return f"field name {name!r} is part of the event envelope"
    return None


def domain_problem(domain: object) -> str | None:
    """Say what is wrong with a ``domain`` value, or None when it is fine.

    A domain is a short name: 1 to 64 letters, digits, ``_``, ``.`` or ``-``
    (``"ciam"``, ``"shop.eu-1"``).
    """
    if isinstance(domain, str) and _DOMAIN.fullmatch(domain):
        return None
    return (
        f"domain {domain!r} is not valid: use a short name of letters, digits, "
        "'_', '.' or '-' (at most 64 characters, for example 'ciam')"
    )


#: Custom events declared in this process, by name (replaced whole: readers need no lock).
_declared: Mapping[str, EventType] = MappingProxyType({})
_declare_lock = threading.Lock()


def declare_event(name: str, fields: Sequence[str]) -> EventType:
    """Declare a custom event and its fields, in the order they are written.

    :func:`hera_middleware.emit_event` accepts only catalog events and declared ones;
    a rule file's ``events:`` declares its events this way too. Declaring a name again
    replaces its fields (the most recent declaration wins). The checks are the rule
    file's: a ``<noun>_<verb>`` name that is not a catalog event, and lowercase field
    names that are neither envelope keys nor names of secrets or personal data.

    Raises:
        ValueError: saying what is wrong with the name or a field.

    Example::

        declare_event("password_reset_requested", ["flow", "channel"])
    """
    problem = event_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    if name in CATALOG:
        raise ValueError(f"{name!r} is a documented event; its fields are fixed")
    if isinstance(fields, (str, bytes)) or not isinstance(fields, Sequence):
        raise ValueError(
            f"the fields of {name!r} are a list of field names, not {type(fields).__name__}"
        )
    names: list[str] = []
    for field in fields:
        problem = field_name_problem(field)
        if problem is None:
            problem = _meaning_problem(field)
        if problem is not None:
            raise ValueError(f"event {name!r}: {problem}")
        if field in names:
            raise ValueError(f"event {name!r}: the field {field!r} appears twice")
        names.append(field)
    global _declared
    etype = EventType(name, tuple(names))
    with _declare_lock:
        if _declared.get(name) != etype:
            _declared = MappingProxyType({**_declared, name: etype})
        return _declared[name]


def _meaning_problem(field: str) -> str | None:
    # policy.field_name_problem is the policy's own wording; secret_reason until it lands.
    check = getattr(policy, "field_name_problem", None)
    if check is not None:
        problem: str | None = check(field)
        return problem
    what = policy.secret_reason(field)
    if what is None:
        return None
    return (
        f"a field named {field!r} would carry {what}; events never carry secrets or personal data"
    )


def declared_events() -> Mapping[str, EventType]:
    """The custom events declared in this process so far, by name (a read-only view)."""
    return _declared


def lookup_event(name: object) -> EventType:
    """The catalog or declared event called ``name``.

    Raises:
        ValueError: for a malformed name, or an unknown one (with a did-you-mean).
    """
    etype = CATALOG.get(name) if isinstance(name, str) else None
    if etype is None and isinstance(name, str):
        etype = _declared.get(name)
    if etype is not None:
        return etype
    problem = event_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    assert isinstance(name, str)  # event_name_problem refuses everything else
    hint = did_you_mean(name, [*CATALOG, *_declared])
    raise ValueError(
        f"unknown event {name!r}" + (f" ({hint})" if hint else "") + " — declare custom events"
        " with hera_middleware.declare_event(name, fields) or under `events:` in a rule file"
    )


def _after_fork_in_child() -> None:
    # A lock held by another thread at fork time would never be released in the child.
    global _declare_lock
    _declare_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
