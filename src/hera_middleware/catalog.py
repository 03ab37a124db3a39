"""The event catalog: documented events, their fields in order, and vocabularies."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

__all__ = [
    "BREACH_CHECK_FAILED_REASONS",
    "CAPTCHA_FAILED_REASONS",
    "CATALOG",
    "FLOWS",
    "MFA_METHODS",
    "PKCE_FAILED_REASONS",
    "EventType",
    "event_name_problem",
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
