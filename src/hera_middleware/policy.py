"""The privacy and secrets policy: what rules may extract, test, and emit (never configurable off).

Four checks, all driven by one table, :data:`FORBIDDEN_KEYS`:

- at load, :func:`field_source_problem` refuses a rule whose field copies a secret,
  an identifier of a person, an email or an IP address into an event;
- at load, :func:`condition_problem` lets conditions test a secret only for presence,
  length or format, never against a literal value (cookies: presence only);
- at run time, :func:`clean_value` limits the shape of every emitted value, so that
  whatever slips past the table (an email in a ``next`` parameter, an IP in a custom
  field) becomes ``"redacted"``;
- for custom events, :func:`field_name_problem` refuses a field named after a secret
  or personal data (``password``, ``email``, ``token``, ``code``, ...).

Keys are compared case-insensitively, with ``-``, ``_``, ``.``, any other punctuation
and camelCase boundaries all splitting words: ``X-Real-IP``, ``x_real_ip`` and
``xRealIp`` are one key. Accents are folded (``contraseña`` is ``contrasena``) and a
number at the end of a word is cut off too (``otp1``, ``code_2``, ``totp2``).
``word`` patterns match whole words only, so ``footprint`` is no ``otp`` key,
``description`` is no ``ip`` key and ``cellular`` is no ``cell`` key.

Decisions worth knowing:

- ``code_challenge`` and ``code_challenge_method`` are public PKCE parameters and
  stay allowed; ``code``, ``code_verifier`` and every key ending in ``_code`` or
  ``_codes`` are refused. That includes harmless keys such as ``status_code`` and
  ``error_code``: a wrongly refused key costs a rule author a load error with the
  reason, a wrongly allowed one leaks an MFA code into every log. For the same reason
  ``key`` is refused as a word (``idempotency_key`` and ``key_id`` too), ``mobile``,
  ``tel`` and ``cell`` as words (``Sec-CH-UA-Mobile`` too), ``location`` as a word
  (``Content-Location`` too), and ``refresh`` and ``access`` as exact keys
  (djangorestframework-simplejwt's token pair).
- ``state`` is refused as an exact key only, so Flask-Security's ``tf_state`` stays
  testable; ``token``, ``secret``, ``password``, ``email``, ``csrf``, ``username`` and
  ``cookie`` are refused wherever they occur in a key (``token_type`` too).
- People are named in more ways than ``username``: Ory Kratos's login
  ``identifier``, ``uname``, ``usr``, a Kerberos or Azure ``principal``, a WebAuthn
  ``userHandle`` or social ``handle``, and the user headers of authenticating proxies
  (``X-Forwarded-User``, ``Remote-User``, ``X-Auth-Request-User``, ``X-WebAuth-User``,
  ``X-User``, ``X-Amzn-Oidc-*``); all are refused.
- Validation errors echo what was submitted: FastAPI/pydantic 422 bodies carry the
  value under ``detail.N.input`` and may quote it in ``detail.N.ctx``, and Ory
  Kratos and SCIM carry values under ``value``. ``input`` (a word), ``ctx`` and
  ``value`` (exact keys) are refused everywhere.
- ``redirect_uri`` is allowed: it is client configuration, registered in advance and
  shown in every browser address bar, not user data. A value carrying a query,
  a fragment or percent-encoding fails the run-time charset, and one with an IP
  literal host (RFC 8252 loopback redirects) looks like an IP address: both become
  ``"redacted"``.
- Whole URLs are secrets: ``response.headers.location``, ``headers.referer``, the
  proxies' ``X-Original-URI``/``X-Original-URL``/``X-Forwarded-URI`` and the whole
  ``response.location`` carry codes, states and tokens in their query, so conditions
  may test them only for presence, length or format; rules compare
  ``response.location.path`` and ``response.location.query.<name>`` instead, which
  are checked key by key. ``headers.origin`` stays allowed: an origin is a scheme, a
  host and a port, never a path or a query (an IP literal host is redacted at run
  time).
- Never extracted whatever the key, though conditions may test them with any
  matcher: the raw ``path`` and ``response.location.path`` (identifiers in path
  segments; name a part with ``path.<param>``), ``response.body`` (rules need
  ``contains`` and ``regex`` on error texts), and whole collections such as ``json``
  alone.
- ``basic_auth.username`` is the OAuth client_id and is allowed.
- In ``response.json``, below an error container (a segment ending in ``error`` or
  ``errors``) the server's error codes may be compared: names that match only the
  generic code entries (``code``, ``codes``, ``error_code``, ``status_code``, and so
  ``mfa_code``) take every matcher in a condition, so ``response.json.errors.0.code``
  (allauth) can be tested for ``incorrect_code``; they are still never copied into
  an event. Every other forbidden name below a container stays a secret:
  ``response.json.response.field_errors.password`` (Flask-Security) takes ``present``,
  ``response.json.errors.access_token`` takes no ``regex``, and names with a more
  specific entry (``otp_code``, ``recovery_code``, ``user_code``) are no error codes.
  The container's own name and everything above it are checked as usual;
  ``response.json.meta.code`` stays refused.
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
    "field_name_problem",
    "field_source_problem",
    "looks_personal",
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
_PASSWORD = "a password"
_ONE_TIME = "a one-time password"
_USER_ID = "a user id"
_USER = "a user identifier"
_LOGIN = "a login identifier"
_USER_NAME = "a user name"
_NAME = "a person's name"
_SESSION = "a session identifier"
_PHONE = "a phone number"
_CLIENT_ADDR = "a client address"
_REQUEST_URL = "a request URL (which may carry codes and tokens)"
_CARD = "a payment card number"
_CARD_CODE = "a card security code"
_BIRTH = "a date of birth"
_ACCOUNT = "a bank account number"

#: The one table of keys whose values are never copied into an event. First match wins,
#: so specific entries come before the general ones that would also match.
FORBIDDEN_KEYS: tuple[ForbiddenKey, ...] = (
    # passwords, in the languages login forms are written in
    _F("password", "contains", _PASSWORD),
    _F("passwd", "contains", _PASSWORD),
    _F("passphrase", "contains", _PASSWORD),
    _F("pwd", "word", _PASSWORD),
    _F("pw", "word", _PASSWORD),
    _F("pswd", "contains", _PASSWORD),
    _F("pass", "word", _PASSWORD),
    _F("passwort", "contains", _PASSWORD),
    _F("kennwort", "contains", _PASSWORD),
    _F("senha", "contains", _PASSWORD),
    _F("contrasena", "contains", _PASSWORD),
    _F("motdepasse", "contains", _PASSWORD),
    _F("mot_de_passe", "word", _PASSWORD),
    _F("passcode", "contains", "a passcode"),
    # MFA
    _F("otp", "word", _ONE_TIME),
    _F("totp", "word", _ONE_TIME),
    _F("hotp", "word", _ONE_TIME),
    _F("2fa", "exact", "a second-factor code"),
    _F("pin", "word", "a PIN"),
    _F("answer", "word", "a security or captcha answer"),
    # OAuth client credentials and grants
    _F("client_secret", "exact", "an OAuth client secret"),
    _F("client_assertion", "exact", "a signed client assertion"),
    _F("assertion", "exact", "a signed assertion"),
    _F("saml_response", "exact", "a SAML response"),
    _F("code_verifier", "exact", "a PKCE code verifier"),
    _F("verifier", "word", "a flow verifier"),
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
    _F("refresh", "exact", "a refresh token (or a Refresh header's redirect)"),
    _F("access", "exact", "an access token"),
    _F("csrf", "contains", "a CSRF token"),
    _F("xsrf", "contains", "a CSRF token"),
    _F("token", "contains", "a token"),
    _F("jwt", "word", "a JSON Web Token"),
    _F("ticket", "word", "an authentication ticket"),
    _F("amzn_oidc", "word", "a load balancer's identity claims"),
    # captcha responses
    _F("captcha_response", "suffix", "a captcha response"),
    _F("turnstile_response", "suffix", "a captcha response"),
    _F("captcha_solution", "suffix", "a captcha response"),
    # OAuth / OIDC / SAML correlation values
    _F("state", "exact", "an OAuth state value"),
    _F("session_state", "exact", "an OpenID Connect session state"),
    _F("relay_state", "exact", "a SAML relay state"),
    _F("nonce", "word", "a nonce"),
    # URLs that carry the codes, states and tokens above in their query
    _F("location", "word", "a redirect target or location"),
    _F("referer", "exact", "a referring URL (which may carry codes and tokens)"),
    _F("referrer", "exact", "a referring URL (which may carry codes and tokens)"),
    _F("original_url", "word", _REQUEST_URL),
    _F("original_uri", "word", _REQUEST_URL),
    _F("forwarded_uri", "word", _REQUEST_URL),
    _F("rewrite_url", "word", _REQUEST_URL),
    # people: login identifiers, ids, names, contact details
    _F("login_hint", "exact", "a login hint (a user identifier)"),
    _F("login", "exact", _LOGIN),
    _F("login_id", "word", _LOGIN),
    _F("login_name", "word", _LOGIN),
    _F("identifier", "word", _LOGIN),
    _F("username", "contains", _USER_NAME),
    _F("user_name", "word", _USER_NAME),
    _F("uname", "word", _USER_NAME),
    _F("usr", "word", _USER_NAME),
    _F("user", "exact", _USER),
    _F("x_user", "exact", _USER),
    _F("remote_user", "word", _USER),
    _F("forwarded_user", "word", _USER),
    _F("auth_request_user", "word", _USER),
    _F("webauth_user", "word", _USER),
    _F("authenticated_user", "word", _USER),
    _F("principal", "word", "a user principal (a user identifier)"),
    _F("handle", "word", "a user handle (a user identifier)"),
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
    _F("remote_name", "word", _NAME),
    _F("nickname", "word", _NAME),
    _F("birth", "contains", _BIRTH),
    _F("dob", "word", _BIRTH),
    _F("phone", "word", _PHONE),
    _F("phonenumber", "contains", _PHONE),
    _F("telephone", "contains", _PHONE),
    _F("cellphone", "contains", _PHONE),
    _F("mobile_number", "word", _PHONE),
    _F("mobile", "word", _PHONE),
    _F("tel", "word", _PHONE),
    _F("cell", "word", _PHONE),
    _F("msisdn", "exact", _PHONE),
    _F("ssn", "word", "a social security number"),
    _F("iban", "word", _ACCOUNT),
    _F("account_number", "word", _ACCOUNT),
    _F("card_number", "word", _CARD),
    _F("cardnumber", "contains", _CARD),
    _F("credit_card", "word", _CARD),
    _F("cvv", "word", _CARD_CODE),
    _F("cvc", "word", _CARD_CODE),
    # submitted values that validation errors echo back (FastAPI/pydantic 422, Kratos, SCIM)
    _F("input", "word", "a submitted value"),
    _F("ctx", "exact", "an error context (which may quote a submitted value)"),
    _F("value", "exact", "a submitted value"),
    # other secrets
    _F("secret", "contains", "a secret"),
    _F("api_key", "word", "an API key"),
    _F("apikey", "contains", "an API key"),
    _F("private_key", "word", "a private key"),
    _F("credential", "contains", "a credential"),
    _F("session", "exact", _SESSION),
    _F("x_session", "exact", _SESSION),
    _F("session_id", "word", _SESSION),
    _F("session_key", "word", _SESSION),
    _F("sessionid", "contains", _SESSION),
    _F("sessid", "contains", _SESSION),
    _F("sid", "word", _SESSION),
    _F("key", "word", "a key"),
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
_TRAILING_DIGITS = re.compile(r"[0-9]+$")


def _normalized_forms(key: str) -> tuple[str, ...]:
    # Flat and camelCase-split ("IPv4" splits badly, "userId" flat misses), each also with
    # trailing digit runs cut off words ("otp1", "code_1"); accents folded ("contraseña").
    text = "".join(c for c in unicodedata.normalize("NFKD", key) if not unicodedata.combining(c))
    words = [w for w in _SEPARATORS.split(text) if w]
    camel = [p for w in words for p in _CAMEL.split(w) if p]
    forms: list[str] = []
    for split in (words, camel):
        for parts in (split, [c for c in (_TRAILING_DIGITS.sub("", w) for w in split) if c]):
            form = "_".join(parts).lower()
            if form not in forms:
                forms.append(form)
    return tuple(forms)


@functools.lru_cache(maxsize=4096)  # rule files repeat the same few keys; checks run at load
def _entry(key: str) -> ForbiddenKey | None:
    forms = _normalized_forms(key)
    for entry in FORBIDDEN_KEYS:
        if any(entry.matches(form) for form in forms):
            return entry
    return None


def secret_reason(key: str) -> str | None:
    """Say what a request or response key holds when it is forbidden, else None.

    The answer is the table entry's noun phrase, for example
    ``secret_reason("X-Forwarded-For") == "a forwarded client address"``.
    Case, ``-``/``_``/``.``, camelCase, accents and a trailing number (``otp1``,
    ``code_2``) do not matter; ``secret_reason("code_challenge")`` is None.
    """
    found = _entry(key)
    return None if found is None else found.what


def field_name_problem(name: str) -> str | None:
    """Say why a custom event field may not be called ``name``, or None when it may.

    The name is checked against :data:`FORBIDDEN_KEYS` like a request key, so
    ``field_name_problem("password")`` is ``"a field named 'password' would carry a
    password; events never carry secrets or personal data"`` and
    ``field_name_problem("reason")`` is None. Only the meaning is checked here; the
    name's syntax is :func:`hera_middleware.catalog.field_name_problem`'s business.
    """
    what = secret_reason(name)
    if what is None:
        return None
    return f"a field named {name!r} would carry {what}; events never carry secrets or personal data"


#: The entries whose names an error body uses for the server's own error codes.
_ERROR_CODE_ENTRIES = frozenset(
    e for e in FORBIDDEN_KEYS if e.pattern in ("code", "codes", "_code", "_codes")
)


def _is_error_container(segment: str) -> bool:
    return any(
        form.rsplit("_", 1)[-1] in ("error", "errors") for form in _normalized_forms(segment)
    )


def _is_error_code(segment: str) -> bool:
    # "code", "error_code", "codes": the generic code entries, not otp_code or recovery_code.
    return _entry(segment) in _ERROR_CODE_ENTRIES


def _parts_reason(parts: list[str]) -> str | None:
    # The innermost name says best what the value is ("a.client_secret" is a client secret),
    # the whole catches "user.id", the outer names catch values inside "user.profile".
    for candidate in (parts[-1], ".".join(parts), *reversed(parts[:-1])):
        found = secret_reason(candidate)
        if found is not None:
            return found
    return None


_Kind = Literal["secret", "cookie", "error_code"]


def _key_reason(key: str, *, response: bool = False) -> tuple[str, _Kind] | None:
    parts = key.split(".")
    if response:
        for i, part in enumerate(parts[:-1]):
            if not _is_error_container(part):
                continue
            # The container and everything above it are checked as usual; below it only
            # the server's error codes ("errors.0.code") may still be compared.
            found = _parts_reason(parts[: i + 1])
            if found is not None:
                return found, "secret"
            below = parts[i + 1 :]
            rest = [p for p in below if not _is_error_code(p)]
            found = _parts_reason(rest) if rest else None
            if found is not None:
                return found, "secret"
            codes = [e for e in map(_entry, below) if e in _ERROR_CODE_ENTRIES]
            return (codes[-1].what, "error_code") if codes else None
    found = _parts_reason(parts)
    return None if found is None else (found, "secret")


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
_LOCATION = "a redirect target, which may carry codes, tokens and user identifiers"
_LOCATION_PARTS = "test response.location.path or response.location.query.<name> instead"


def _split(fact: str) -> tuple[str, str | None]:
    """Split a fact path into its family and the key after it (None for no key)."""
    for family in _KEYED:
        if fact == family:
            return family, None
        if fact.startswith(family) and fact[len(family) : len(family) + 1] == ".":
            return family, fact[len(family) + 1 :]
    return "", fact


def _secret(fact: str) -> tuple[str, _Kind] | None:
    """(what it is, how it may be tested) for a fact holding a secret, else None."""
    family, key = _split(fact)
    if family == "cookies":
        if key is None:
            return "the request's cookies", "cookie"
        what = secret_reason(key)
        return (f"{what} in a cookie" if what and what != _COOKIE else _COOKIE), "cookie"
    if family in ("response.location", "response.location.query") and key is None:
        return _LOCATION, "secret"  # the whole redirect URL, or its whole query
    if fact == "basic_auth.username" or key is None or fact in _SCALARS:
        return None
    if family == "signal":
        # The signal's name is code, not data: only the argument path is checked.
        key = key.partition(".")[2]
        if not key:
            return None
    found = _key_reason(key, response=family == "response.json")
    if found is not None and found[0] == _COOKIE:
        return _COOKIE, "cookie"
    return found


_LOCATION_ENTRY = next(e for e in FORBIDDEN_KEYS if e.pattern == "location")


def _instead(fact: str) -> str:
    """What to test instead of a whole redirect URL, as a sentence tail ("" for nothing)."""
    family, key = _split(fact)
    if family.startswith("response.location") and key is None:
        return "; " + _LOCATION_PARTS
    if family == "response.headers" and key and _entry(key) is _LOCATION_ENTRY:
        return "; " + _LOCATION_PARTS
    return ""


_NEVER_COPIED = " but never copy it into an event"
_SOURCE_ONLY_TESTED = ": rules may test it in `if`" + _NEVER_COPIED


def _unextractable(fact: str) -> str | None:
    """Why a fact that is no secret is still never a field source, else None."""
    family, key = _split(fact)
    if fact == "path":
        what = "the raw request path, which may carry user identifiers"
        return f"{fact} is {what}{_SOURCE_ONLY_TESTED}; name the part with path.<param>"
    if fact == "response.body":
        what = "the response body, which may carry secrets and personal data"
        tests = "rules may test it in `if` (contains, regex) but never copy it into an event"
        return f"{fact} is {what}: {tests}"
    if family == "response.location":
        return f"{fact} is {_LOCATION}{_SOURCE_ONLY_TESTED}"
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
    if secret is None:
        return _unextractable(fact)
    what, kind = secret
    if kind == "error_code":
        per_code = "; write one rule per code with a {value: ...} field"
        return f"{fact} is named like {what}{_SOURCE_ONLY_TESTED}{per_code}"
    tests = "present, absent" if kind == "cookie" else "present, absent, length, format"
    return f"{fact} is {what}: rules may test it in `if` ({tests}){_NEVER_COPIED}"


_SECRET_MATCHERS = frozenset({"present", "absent", "length", "format", "not"})
_COOKIE_MATCHERS = frozenset({"present", "absent", "not"})
_COMPARING = frozenset({"equals", "any_of", "prefix", "suffix", "contains", "regex"})


def condition_problem(fact: str, matcher: str) -> str | None:
    """Say why ``matcher`` may not test ``fact`` in a condition, or None when it may.

    A secret (a forbidden key, the Authorization header, a whole redirect URL such as
    ``response.headers.location``) takes only ``present``, ``absent``, ``length`` and
    ``format``; a cookie only ``present`` and ``absent``. ``not`` is allowed: the
    caller checks the matcher inside it on its own. Facts that hold no secret, and a
    response's error codes below an error container (``response.json.errors.0.code``),
    take every matcher.
    """
    secret = _secret(fact)
    if secret is None or secret[1] == "error_code":
        return None
    what, kind = secret
    allowed = _COOKIE_MATCHERS if kind == "cookie" else _SECRET_MATCHERS
    if matcher in allowed:
        return None
    only = "present or absent" if kind == "cookie" else "present, absent, length or format"
    why = "compare it to a value with" if matcher in _COMPARING else "test it with"
    return f"{fact} is {what}: rules may test it only with {only}, never {why} `{matcher}`" + (
        _instead(fact)
    )


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


def looks_personal(s: str) -> bool:
    """Whether ``s`` holds what looks like an e-mail address or an IPv4 or IPv6 address."""
    if "@" in s and _EMAIL.search(s):
        return True
    if "." in s and _IPV4.search(s):
        return True
    return ":" in s and ("::" in s or _IPV6_FULL.search(s) is not None)


def _clean_str(field: str, s: str) -> str:
    if field in _SLUG_FIELDS:
        if s.isascii():
            s = s.lower()
            if _SLUG.fullmatch(s):
                return s
        return REDACTED
    if len(s) > 128 or not _SAFE.fullmatch(s) or looks_personal(s):
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
