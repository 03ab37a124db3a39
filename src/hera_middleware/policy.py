"""The privacy and secrets policy: what rules may extract, test, and emit (never configurable off).

Three checks, all driven by one table, :data:`FORBIDDEN_KEYS`:

- at load, :func:`field_source_problem` refuses a rule whose field copies a secret,
  an identifier of a person, an email or an IP address into an event;
- at load, :func:`condition_problem` lets conditions test a secret only for presence,
  length or format, never against a literal value (cookies: presence only);
- at run time, :func:`clean_value` limits the shape of every emitted value, so that
  whatever slips past the table (an email in a ``next`` parameter, an IP in a custom
  field) becomes ``"redacted"``.

Keys are compared case-insensitively, with ``-``, ``_``, ``.``, any other punctuation
and camelCase boundaries all splitting words: ``X-Real-IP``, ``x_real_ip`` and
``xRealIp`` are one key. ``word`` patterns match whole words only, so ``footprint``
is no ``otp`` key and ``description`` is no ``ip`` key.

Decisions worth knowing:

- ``code_challenge`` and ``code_challenge_method`` are public PKCE parameters and
  stay allowed; ``code``, ``code_verifier`` and every key ending in ``_code`` or
  ``_codes`` are refused. That includes harmless keys such as ``status_code`` and
  ``error_code``: a wrongly refused key costs a rule author a load error with the
  reason, a wrongly allowed one leaks an MFA code into every log.
- ``state`` is refused as an exact key only, so Flask-Security's ``tf_state`` stays
  testable; ``token``, ``secret``, ``password``, ``email``, ``csrf``, ``username`` and
  ``cookie`` are refused wherever they occur in a key (``token_type`` too).
- ``redirect_uri`` is allowed: it is client configuration, registered in advance and
  shown in every browser address bar, not user data. A value carrying a query,
  a fragment or percent-encoding fails the run-time charset, and one with an IP
  literal host (RFC 8252 loopback redirects) looks like an IP address: both become
  ``"redacted"``.
- Never extracted whatever the key, though conditions may test them with any
  matcher: the raw ``path`` and ``response.location.path`` (identifiers in path
  segments; name a part with ``path.<param>``), ``response.headers.location``,
  ``headers.referer`` and the whole ``response.location`` (codes and states in the
  query), ``response.body``, and whole collections such as ``json`` alone.
- ``basic_auth.username`` is the OAuth client_id and is allowed.
- In ``response.json``, names below an error container (a segment ending in ``error``
  or ``errors``) are not checked: ``response.json.errors.0.code`` (allauth) and
  ``response.json.response.field_errors.password`` (Flask-Security) are the server's
  error codes and messages about a field, not the field's value. The container's
  own name and everything above it still are; ``response.json.meta.code`` stays
  refused.
- A bare ``name`` stays allowed (providers and flows have names too); people's names
  are caught as ``given_name``, ``display_name``, ``user.name`` and the like.
- Values of fields other than the named ones are single tokens: no spaces, so free
  text such as an ``error_description`` or a space-separated ``scope`` is
  ``"redacted"`` rather than risk a user name inside a sentence. Any ``@`` followed by
  a host name, dotted or not (``alice@localhost``, ``a@b``, a ``@handle``), and any
  ``::`` or run of eight colon-separated hex groups (every IPv6 address, wherever it
  sits in the value) is ``"redacted"``, found by regexes alone.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FORBIDDEN_KEYS",
    "OTHER",
    "REDACTED",
    "ForbiddenKey",
    "clean_value",
    "condition_problem",
    "field_source_problem",
    "secret_reason",
]

#: The value written in place of anything the policy will not emit.
REDACTED = "redacted"
#: The value written in place of a clean value outside a dimension's allow-list.
OTHER = "other"

How = Literal["exact", "contains", "suffix", "prefix", "word"]
_HOWS = frozenset({"exact", "contains", "suffix", "prefix", "word"})
_PATTERN = re.compile(r"_?[a-z0-9]+(?:_[a-z0-9]+)*")


@dataclass(frozen=True)
class ForbiddenKey:
    """One entry of :data:`FORBIDDEN_KEYS`.

    ``pattern`` is lowercase words joined by ``_`` (a ``suffix`` may start with ``_``);
    ``how`` says how it meets a normalized key: ``exact``, ``contains``, ``suffix``,
    ``prefix``, or ``word`` (a run of whole words: ``user_id`` matches ``end_user_id``
    and ``user.id``, not ``superuser_idle``); ``what`` is the noun phrase users read,
    for example ``"a password"``.
    """

    pattern: str
    how: How
    what: str

    def __post_init__(self) -> None:
        if self.how not in _HOWS or not _PATTERN.fullmatch(self.pattern):
            raise ValueError(f"bad forbidden-key entry {self.pattern!r} ({self.how!r})")

    def matches(self, normalized: str) -> bool:
        """Tell whether a key already normalized (lowercase words joined by ``_``) matches."""
        p = self.pattern
        if self.how == "exact":
            return normalized == p
        if self.how == "contains":
            return p in normalized
        if self.how == "suffix":
            return normalized.endswith(p)
        if self.how == "prefix":
            return normalized.startswith(p)
        return f"_{p}_" in f"_{normalized}_"


_F = ForbiddenKey
_ONE_TIME = "a one-time password"
_USER_ID = "a user id"
_NAME = "a person's name"
_SESSION = "a session identifier"
_PHONE = "a phone number"
_CLIENT_ADDR = "a client address"

#: The one table of keys whose values are never copied into an event. First match wins,
#: so specific entries come before the general ones that would also match.
FORBIDDEN_KEYS: tuple[ForbiddenKey, ...] = (
    # passwords
    _F("password", "contains", "a password"),
    _F("passwd", "contains", "a password"),
    _F("passphrase", "contains", "a password"),
    _F("pwd", "word", "a password"),
    _F("pass", "word", "a password"),
    _F("passcode", "contains", "a passcode"),
    # MFA
    _F("otp", "word", _ONE_TIME),
    _F("totp", "word", _ONE_TIME),
    _F("hotp", "word", _ONE_TIME),
    _F("pin", "word", "a PIN"),
    _F("answer", "word", "a security or captcha answer"),
    # OAuth client credentials and grants
    _F("client_secret", "exact", "an OAuth client secret"),
    _F("client_assertion", "exact", "a signed client assertion"),
    _F("assertion", "exact", "a signed assertion"),
    _F("saml_response", "exact", "a SAML response"),
    _F("code_verifier", "exact", "a PKCE code verifier"),
    _F("device_code", "exact", "an OAuth device code"),
    _F("user_code", "exact", "an OAuth user code"),
    _F("recovery_code", "contains", "a recovery code"),
    _F("backup_code", "contains", "a recovery code"),
    _F("code", "exact", "an authorization or one-time code"),
    _F("codes", "exact", "a list of one-time codes"),
    _F("_code", "suffix", "a verification code"),
    _F("_codes", "suffix", "a list of verification codes"),
    # tokens
    _F("id_token_hint", "exact", "an ID token hint"),
    _F("refresh_token", "exact", "an OAuth refresh token"),
    _F("access_token", "exact", "an OAuth access token"),
    _F("id_token", "exact", "an OpenID Connect ID token"),
    _F("csrf", "contains", "a CSRF token"),
    _F("xsrf", "contains", "a CSRF token"),
    _F("token", "contains", "a token"),
    _F("jwt", "exact", "a JSON Web Token"),
    _F("ticket", "word", "an authentication ticket"),
    # captcha responses
    _F("captcha_response", "suffix", "a captcha response"),
    _F("turnstile_response", "suffix", "a captcha response"),
    _F("captcha_solution", "suffix", "a captcha response"),
    # OAuth / OIDC / SAML correlation values
    _F("state", "exact", "an OAuth state value"),
    _F("session_state", "exact", "an OpenID Connect session state"),
    _F("relay_state", "exact", "a SAML relay state"),
    _F("nonce", "word", "a nonce"),
    # people: login identifiers, ids, names, contact details
    _F("login_hint", "exact", "a login hint (a user identifier)"),
    _F("login", "exact", "a login identifier"),
    _F("login_id", "word", "a login identifier"),
    _F("login_name", "word", "a login identifier"),
    _F("username", "contains", "a user name"),
    _F("user_name", "word", "a user name"),
    _F("user", "exact", "a user identifier"),
    _F("email", "contains", "an email address"),
    _F("mail", "word", "an email address"),
    _F("user_id", "word", _USER_ID),
    _F("userid", "contains", _USER_ID),
    _F("uid", "word", _USER_ID),
    _F("uidb", "prefix", "an encoded user id"),
    _F("sub", "word", "a subject identifier (a user id)"),
    _F("subject", "exact", "a subject identifier (a user id)"),
    _F("account_id", "word", "an account id"),
    _F("identity_id", "word", "an identity id"),
    _F("given_name", "word", _NAME),
    _F("family_name", "word", _NAME),
    _F("first_name", "word", _NAME),
    _F("last_name", "word", _NAME),
    _F("full_name", "word", _NAME),
    _F("display_name", "word", _NAME),
    _F("user_display", "word", _NAME),
    _F("nickname", "word", _NAME),
    _F("birth", "contains", "a date of birth"),
    _F("phone", "word", _PHONE),
    _F("phonenumber", "contains", _PHONE),
    _F("telephone", "contains", _PHONE),
    _F("mobile_number", "word", _PHONE),
    _F("msisdn", "exact", _PHONE),
    # other secrets
    _F("secret", "contains", "a secret"),
    _F("api_key", "word", "an API key"),
    _F("apikey", "contains", "an API key"),
    _F("private_key", "word", "a private key"),
    _F("credential", "contains", "a credential"),
    _F("session", "exact", _SESSION),
    _F("session_id", "word", _SESSION),
    _F("sessionid", "contains", _SESSION),
    _F("sessid", "contains", _SESSION),
    _F("sid", "word", _SESSION),
    # HTTP credentials, cookies, client addresses
    _F("authorization", "exact", "an Authorization credential"),
    _F("proxy_authorization", "exact", "a proxy credential"),
    _F("cookie", "contains", "a cookie"),
    _F("forwarded_for", "suffix", "a forwarded client address"),
    _F("forwarded", "exact", "a forwarded client address"),
    _F("remote_addr", "exact", _CLIENT_ADDR),
    _F("addr", "word", _CLIENT_ADDR),
    _F("ip", "word", "an IP address"),
    _F("ipv4", "word", "an IP address"),
    _F("ipv6", "word", "an IP address"),
    _F("ipaddr", "contains", "an IP address"),
    _F("address", "word", "an address"),
)

_COOKIE = "a cookie"
_SEPARATORS = re.compile(r"[\W_]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def _normalized_forms(key: str) -> tuple[str, ...]:
    # Both the flat and the camelCase-split form: "IPv4" splits badly, "userId" flat misses.
    words = [w for w in _SEPARATORS.split(unicodedata.normalize("NFKC", key)) if w]
    flat = "_".join(words).lower()
    camel = "_".join(p for w in words for p in _CAMEL.split(w) if p).lower()
    return (flat,) if flat == camel else (flat, camel)


@functools.lru_cache(maxsize=4096)  # rule files repeat the same few keys; checks run at load
def secret_reason(key: str) -> str | None:
    """Say what a request or response key holds when it is forbidden, else None.

    The answer is the table entry's noun phrase, for example
    ``secret_reason("X-Forwarded-For") == "a forwarded client address"``.
    Case, ``-``/``_``/``.`` and camelCase do not matter; ``secret_reason("code_challenge")``
    is None.
    """
    forms = _normalized_forms(key)
    for entry in FORBIDDEN_KEYS:
        if any(entry.matches(form) for form in forms):
            return entry.what
    return None


def _is_error_container(segment: str) -> bool:
    return _normalized_forms(segment)[-1].rsplit("_", 1)[-1] in ("error", "errors")


def _key_reason(key: str, *, response: bool = False) -> str | None:
    # The innermost name says best what the value is ("a.client_secret" is a client secret),
    # the whole catches "user.id", the outer names catch values inside "user.profile".
    parts = key.split(".")
    if response:
        # Inside a response's errors the names are the server's words about a field
        # ("errors.0.code", "field_errors.password"), not the user's values.
        for i, part in enumerate(parts[:-1]):
            if _is_error_container(part):
                parts = parts[: i + 1]
                key = ".".join(parts)
                break
    for candidate in (parts[-1], key, *reversed(parts[:-1])):
        found = secret_reason(candidate)
        if found is not None:
            return found
    return None


_KEYED = (
    "response.location.query",
    "response.location",
    "response.headers",
    "response.json",
    "basic_auth",
    "cookies",
    "headers",
    "params",
    "signal",
    "query",
    "form",
    "json",
    "path",
)
_SCALARS = frozenset({"method", "path", "route", "raised", "response.status", "response.body"})


def _split(fact: str) -> tuple[str, str | None]:
    """Split a fact path into its family and the key after it (None for no key)."""
    for family in _KEYED:
        if fact == family:
            return family, None
        if fact.startswith(family) and fact[len(family) : len(family) + 1] == ".":
            return family, fact[len(family) + 1 :]
    return "", fact


def _secret(fact: str) -> tuple[str, bool] | None:
    """(what it is, presence only) for a fact holding a secret, else None."""
    family, key = _split(fact)
    if family == "cookies":
        if key is None:
            return "the request's cookies", True
        what = secret_reason(key)
        return (f"{what} in a cookie" if what and what != _COOKIE else _COOKIE), True
    if fact == "basic_auth.username" or key is None or fact in _SCALARS:
        return None
    if family == "signal":
        # The signal's name is code, not data: only the argument path is checked.
        key = key.partition(".")[2]
        if not key:
            return None
    what = _key_reason(key, response=family == "response.json")
    if what is None:
        return None
    return what, what == _COOKIE


_NEVER_COPIED = " but never copy it into an event"
_SOURCE_ONLY_TESTED = ": rules may test it in `if`" + _NEVER_COPIED
_LOCATION = "a redirect target, which may carry codes, tokens and user identifiers"


def _unextractable(fact: str) -> str | None:
    """Why a fact that is no secret is still never a field source, else None."""
    family, key = _split(fact)
    header = key.lower().replace("_", "-") if key and "headers" in family else None
    if fact == "path":
        what = "the raw request path, which may carry user identifiers"
        return f"{fact} is {what}{_SOURCE_ONLY_TESTED}; name the part with path.<param>"
    if fact == "response.body":
        what = "the response body, which may carry secrets and personal data"
        tests = "rules may test it in `if` (contains, regex) but never copy it into an event"
        return f"{fact} is {what}: {tests}"
    if (
        family == "response.location"
        or (family == "response.location.query" and key is None)
        or (family == "response.headers" and header == "location")
    ):
        return f"{fact} is {_LOCATION}{_SOURCE_ONLY_TESTED}"
    if family == "headers" and header in ("referer", "referrer"):
        return f"{fact} is the referring URL, which may carry codes and tokens{_SOURCE_ONLY_TESTED}"
    if key is None and family:
        return f"{fact} is a whole collection that holds secrets{_SOURCE_ONLY_TESTED}; name a key"
    return None


def field_source_problem(fact: str) -> str | None:
    """Say why a fact may not be copied into an event field, or None when it may.

    ``fact`` is a fact path as written in a rule (``query.password``,
    ``json.user.email``, ``headers.x-real-ip``, ``basic_auth.username``). Every key and
    every segment of a dotted path is checked against :data:`FORBIDDEN_KEYS`;
    ``cookies.*``, ``response.body``, the raw ``path`` and redirect locations are
    refused whatever the key. For example ``field_source_problem("form.password")`` is
    ``"form.password is a password: rules may test it in `if` (present, absent,
    length, format) but never copy it into an event"``.
    """
    secret = _secret(fact)
    if secret is not None:
        what, presence_only = secret
        tests = "present, absent" if presence_only else "present, absent, length, format"
        return f"{fact} is {what}: rules may test it in `if` ({tests}){_NEVER_COPIED}"
    return _unextractable(fact)


_SECRET_MATCHERS = frozenset({"present", "absent", "length", "format", "not"})
_COOKIE_MATCHERS = frozenset({"present", "absent", "not"})
_COMPARING = frozenset({"equals", "any_of", "prefix", "suffix", "contains", "regex"})


def condition_problem(fact: str, matcher: str) -> str | None:
    """Say why ``matcher`` may not test ``fact`` in a condition, or None when it may.

    A secret (a forbidden key, the Authorization header) takes only ``present``,
    ``absent``, ``length`` and ``format``; a cookie only ``present`` and ``absent``.
    ``not`` is allowed: the caller checks the matcher inside it on its own. Facts that
    hold no secret take every matcher.
    """
    secret = _secret(fact)
    if secret is None:
        return None
    what, presence_only = secret
    allowed = _COOKIE_MATCHERS if presence_only else _SECRET_MATCHERS
    if matcher in allowed:
        return None
    only = "present or absent" if presence_only else "present, absent, length or format"
    why = "compare it to a value with" if matcher in _COMPARING else "test it with"
    return f"{fact} is {what}: rules may test it only with {only}, never {why} `{matcher}`"


_CLIENT_ID = re.compile(r"[A-Za-z0-9._~:/@+\-]{1,128}")
# Generic values are single tokens of the client_id charset: no spaces, '?', '&', '=' or '%',
# so free text, query strings and percent-encoded data never pass.
_SAFE = _CLIENT_ID
_SLUG = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")
_SLUG_FIELDS = frozenset({"provider", "method", "flow", "reason"})
# "Looks like an email": an @ with a host name after it, dotted or not ("alice@localhost",
# "a@b", "x:@mail_host.example"); a "@handle" counts too, a lone "@" at the end does not.
_EMAIL = re.compile(r"@[A-Za-z0-9_\-]")
_IPV4 = re.compile(r"(?<![0-9])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])")
# Every compressed IPv6 address holds "::"; an uncompressed one is eight hex groups. Found
# anywhere in the value, whatever sticks to either end ("urn:2001:db8:...", "x:::1").
_IPV6_FULL = re.compile(r"[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){7}")
_INT64 = (-(2**63), 2**63 - 1)


def _clean_str(field: str, s: str) -> str:
    if field in _SLUG_FIELDS:
        if s.isascii():
            s = s.lower()
            if _SLUG.fullmatch(s):
                return s
        return REDACTED
    if len(s) > 128 or not _SAFE.fullmatch(s):
        return REDACTED
    if "@" in s and _EMAIL.search(s):
        return REDACTED
    if "." in s and _IPV4.search(s):
        return REDACTED
    if ":" in s and ("::" in s or _IPV6_FULL.search(s)):
        return REDACTED
    return s


def _clean(field: str, value: object) -> object:
    if value is None:
        return None
    if field == "first_login":
        return value if type(value) is bool else None
    if isinstance(value, str):
        # str.__str__ turns a str subclass into a plain str without calling its overrides.
        return _clean_str(field, value if type(value) is str else str.__str__(value))
    if field in _SLUG_FIELDS or field == "client_id":
        return REDACTED
    if type(value) is bool:
        return value
    if isinstance(value, int):
        number = int.__int__(value)
        return number if _INT64[0] <= number <= _INT64[1] else REDACTED
    return REDACTED


def clean_value(field: str, value: object, allow: frozenset[str] | None = None) -> object:
    """Return what may be written for ``value`` in event field ``field``.

    Shape limits, applied to every field of every event:

    - ``client_id``: a string of at most 128 characters of ``[A-Za-z0-9._~:/@+-]``;
    - ``provider``, ``method``, ``flow``, ``reason``: a slug of lowercase ASCII letters,
      digits, ``_`` and ``-``, starting with a letter or digit, at most 64 characters
      (ASCII input is lowercased first: ``"Google"`` gives ``"google"``);
    - ``first_login``: ``True``, ``False`` or ``None``; anything else gives ``None``;
    - any other field: ``None``, a bool, an int within signed 64 bits, or a string
      of the ``client_id`` charset and length;
    - a string that looks like an email address (an ``@`` followed by a host name,
      dotted or not: ``alice@localhost``, ``a@b``) or holds an IPv4 or IPv6 address
      anywhere (``urn:2001:db8::1``, ``x:::1``; any ``::`` counts), and anything not
      fitting its shape (an empty string included), gives ``"redacted"``; ``None``
      stays ``None``.

    With ``allow``, a clean string outside it gives ``"other"``. Never raises::

        clean_value("provider", "GitHub")                  # "github"
        clean_value("client_id", "alice@example.com")      # "redacted"
        clean_value("method", "yubikey", frozenset({"totp"}))  # "other"
    """
    try:
        cleaned = _clean(field, value)
        if allow is not None and type(cleaned) is str and cleaned != REDACTED:
            return cleaned if cleaned in allow else OTHER
        return cleaned
    except Exception:  # fail open for the app, closed for the data: never raise, never leak
        return REDACTED
