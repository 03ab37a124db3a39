"""The privacy and secrets policy: forbidden keys, field sources, conditions, value shapes."""

from __future__ import annotations

import ipaddress
import random
import re
from typing import Any

import pytest

from hera_middleware import HeraConfigError, load_rules, policy
from hera_middleware.policy import (
    FORBIDDEN_KEYS,
    OTHER,
    REDACTED,
    ForbiddenKey,
    clean_value,
    condition_problem,
    field_name_problem,
    field_source_problem,
    secret_reason,
)

#: Every position a request or response key can take in a fact path.
POSITIONS = (
    "query.{}",
    "form.{}",
    "params.{}",
    "json.{}",
    "json.a.{}",
    "headers.{}",
    "cookies.{}",
    "path.{}",
    "response.json.{}",
    "response.location.query.{}",
    "response.headers.{}",
)

SECRET_TAIL = (
    ": rules may test it in `if` (present, absent, length, format) but never copy it into an event"
)
COOKIE_TAIL = ": rules may test it in `if` (present, absent) but never copy it into an event"
TESTED_TAIL = ": rules may test it in `if` but never copy it into an event"
COMPARING = ("equals", "any_of", "prefix", "suffix", "contains", "regex")
TESTING = ("present", "absent", "length", "format", "not")


def example_key(entry: ForbiddenKey) -> str:
    """A key that this entry, and no entry before it, matches."""
    return {
        "exact": entry.pattern,
        "contains": f"x{entry.pattern}x",
        "suffix": f"x{entry.pattern}",
        "prefix": f"{entry.pattern}x",
        "word": f"x_{entry.pattern}_x",
    }[entry.how]


def variants(key: str) -> list[str]:
    """The key as written, upper-cased, with dashes, with underscores, and in camelCase."""
    first, *rest = key.split("_")
    camel = first + "".join(word[:1].upper() + word[1:] for word in rest)
    return [key, key.upper(), key.replace("_", "-"), key.replace("-", "_"), camel]


def problems_in_every_position(key: str, what: str) -> list[str]:
    """Every way the policy fails to refuse ``key`` in any position, or names it wrongly."""
    failures = []
    for variant in variants(key):
        for position in POSITIONS:
            fact = position.format(variant)
            problem = field_source_problem(fact)
            if problem is None or not problem.startswith(f"{fact} is ") or what not in problem:
                failures.append(f"{fact}: {problem}")
            if condition_problem(fact, "equals") is None:
                failures.append(f"{fact}: compared with equals")
            if condition_problem(fact, "present") is not None:
                failures.append(f"{fact}: present refused")
    return failures


# -- the table ------------------------------------------------------------------------


def test_table_patterns_are_normalized_and_unique() -> None:
    """Every pattern is lowercase words joined by '_', each (pattern, how) appears once."""
    seen = [(e.pattern, e.how) for e in FORBIDDEN_KEYS]
    assert len(seen) == len(set(seen))
    for entry in FORBIDDEN_KEYS:
        assert re.fullmatch(r"_?[a-z0-9]+(?:_[a-z0-9]+)*", entry.pattern), entry
        assert re.fullmatch(r"(a|an|the) [A-Za-z][A-Za-z ()'-]*", entry.what), entry


@pytest.mark.parametrize(
    "entry", [pytest.param(e, id=f"{e.how}-{e.pattern}") for e in FORBIDDEN_KEYS]
)
def test_every_entry_is_refused_in_every_position(entry: ForbiddenKey) -> None:
    """Each entry is reachable, names what it is, and is refused in every position."""
    key = example_key(entry)
    assert [secret_reason(v) for v in variants(key)] == [entry.what] * 5
    assert problems_in_every_position(key, entry.what) == []


#: Every key DESIGN.md's privacy policy names, and what the reason must call it.
DESIGN_KEYS = [
    ("password", "a password"),
    ("new_password", "a password"),
    ("passwd", "a password"),
    ("client_secret", "an OAuth client secret"),
    ("client_assertion", "a signed client assertion"),
    ("code", "an authorization or one-time code"),
    ("code_verifier", "a PKCE code verifier"),
    ("refresh_token", "an OAuth refresh token"),
    ("access_token", "an OAuth access token"),
    ("id_token", "an OpenID Connect ID token"),
    ("id_token_hint", "an ID token hint"),
    ("token", "a token"),
    ("device_code", "an OAuth device code"),
    ("user_code", "an OAuth user code"),
    ("state", "an OAuth state value"),
    ("nonce", "a nonce"),
    ("otp", "a one-time password"),
    ("totp", "a one-time password"),
    ("hotp", "a one-time password"),
    ("otp_code", "a one-time password"),
    ("totp_code", "a one-time password"),
    ("mfa_code", "a verification code"),
    ("two_factor_code", "a verification code"),
    ("recovery_code", "a recovery code"),
    ("recovery_codes", "a recovery code"),
    ("csrf_token", "a CSRF token"),
    ("csrfmiddlewaretoken", "a CSRF token"),
    ("g-recaptcha-response", "a captcha response"),
    ("h-captcha-response", "a captcha response"),
    ("cf-turnstile-response", "a captcha response"),
    ("login_hint", "a login hint (a user identifier)"),
    ("login", "a login identifier"),
    ("username", "a user name"),
    ("user_name", "a user name"),
    ("email", "an email address"),
    ("user_id", "a user id"),
    ("sub", "a subject identifier (a user id)"),
    ("secret", "a secret"),
    ("otp_secret", "a one-time password"),
    ("api_token", "a token"),
    ("phone_number", "a phone number"),
    ("authorization", "an Authorization credential"),
    ("cookie", "a cookie"),
    ("set-cookie", "a cookie"),
    ("x-forwarded-for", "a forwarded client address"),
    ("forwarded", "a forwarded client address"),
    ("x-real-ip", "an IP address"),
    ("remote_addr", "a client address"),
    ("client_ip", "an IP address"),
    ("ip", "an IP address"),
]


@pytest.mark.parametrize(("key", "what"), [pytest.param(k, w, id=k) for k, w in DESIGN_KEYS])
def test_design_keys_are_refused_in_every_position(key: str, what: str) -> None:
    """Every key DESIGN.md names is refused everywhere, with its own reason."""
    assert secret_reason(key) == what
    assert problems_in_every_position(key, what) == []


#: Keys the security review found missing, and what the reason must call them.
REVIEW_KEYS = [
    # passwords, also in other languages
    ("pw", "a password"),
    ("new_pw", "a password"),
    ("pswd", "a password"),
    ("passwort", "a password"),
    ("kennwort", "a password"),
    ("senha", "a password"),
    ("nova_senha", "a password"),
    ("mot_de_passe", "a password"),
    ("motdepasse", "a password"),
    ("contrasena", "a password"),
    ("contraseña", "a password"),
    # login identifiers and user names
    ("identifier", "a login identifier"),
    ("password_identifier", "a password"),
    ("uname", "a user name"),
    ("usr", "a user name"),
    ("principal", "a user principal (a user identifier)"),
    ("x-ms-client-principal-name", "a user principal (a user identifier)"),
    ("handle", "a user handle (a user identifier)"),
    ("user_handle", "a user handle (a user identifier)"),
    # phones
    ("mobile", "a phone number"),
    ("mobile_phone", "a phone number"),
    ("tel", "a phone number"),
    ("home_tel", "a phone number"),
    ("cell", "a phone number"),
    ("cell_phone", "a phone number"),
    ("cellphone", "a phone number"),
    # the user headers of authenticating proxies
    ("x-forwarded-user", "a user identifier"),
    ("remote-user", "a user identifier"),
    ("x-remote-user", "a user identifier"),
    ("x-auth-request-user", "a user identifier"),
    ("x-auth-request-email", "an email address"),
    ("x-webauth-user", "a user identifier"),
    ("x-authenticated-user", "a user identifier"),
    ("x-user", "a user identifier"),
    ("x-email", "an email address"),
    ("remote-name", "a person's name"),
    ("x-amzn-oidc-data", "a load balancer's identity claims"),
    ("x-amzn-oidc-identity", "a load balancer's identity claims"),
    ("cf-access-jwt-assertion", "a JSON Web Token"),
    # sessions
    ("x-session", "a session identifier"),
    ("session_key", "a session identifier"),
    # one-time codes, numbered or not
    ("otp1", "a one-time password"),
    ("code_1", "an authorization or one-time code"),
    ("code1", "an authorization or one-time code"),
    ("totp2", "a one-time password"),
    ("pin_2", "a PIN"),
    ("mfa_code", "a verification code"),
    ("2fa", "a second-factor code"),
    ("login_verifier", "a flow verifier"),
    ("oauth_verifier", "a flow verifier"),
    # keys
    ("key", "a key"),
    ("api_key", "an API key"),
    ("x-api-key", "an API key"),
    ("idempotency-key", "a key"),
    ("reset_key", "a key"),
    # tokens under short names (djangorestframework-simplejwt)
    ("refresh", "a refresh token (or a Refresh header's redirect)"),
    ("access", "an access token"),
    # identity documents, payment data, dates of birth
    ("ssn", "a social security number"),
    ("iban", "a bank account number"),
    ("account_number", "a bank account number"),
    ("card_number", "a payment card number"),
    ("credit_card", "a payment card number"),
    ("cvv", "a card security code"),
    ("cvv2", "a card security code"),
    ("cvc", "a card security code"),
    ("dob", "a date of birth"),
    ("birthdate", "a date of birth"),
    # submitted values echoed back by validation errors
    ("input", "a submitted value"),
    ("ctx", "an error context (which may quote a submitted value)"),
    ("value", "a submitted value"),
    # URLs carrying codes and tokens
    ("location", "a redirect target or location"),
    ("content-location", "a redirect target or location"),
    ("referer", "a referring URL (which may carry codes and tokens)"),
    ("referrer", "a referring URL (which may carry codes and tokens)"),
    ("x-original-uri", "a request URL (which may carry codes and tokens)"),
    ("x-original-url", "a request URL (which may carry codes and tokens)"),
    ("x-forwarded-uri", "a request URL (which may carry codes and tokens)"),
    ("x-rewrite-url", "a request URL (which may carry codes and tokens)"),
]


@pytest.mark.parametrize(("key", "what"), [pytest.param(k, w, id=k) for k, w in REVIEW_KEYS])
def test_review_keys_are_refused_in_every_position(key: str, what: str) -> None:
    """Every key the security review named is refused everywhere, with its own reason."""
    assert secret_reason(key) == what
    assert problems_in_every_position(key, what) == []


@pytest.mark.parametrize(
    ("key", "what"),
    [
        pytest.param("sec-ch-ua-mobile", "a phone number", id="client-hint-mobile"),
        pytest.param("idempotency_key", "a key", id="idempotency-key"),
        pytest.param("key_id", "a key", id="key-id"),
        pytest.param("public_key", "a key", id="public-key"),
        pytest.param("content-location", "a redirect target or location", id="content-location"),
        pytest.param("error_code", "a verification code", id="error-code"),
        pytest.param("status_code", "a verification code", id="status-code"),
    ],
)
def test_harmless_keys_refused_on_purpose(key: str, what: str) -> None:
    """Some harmless keys share a forbidden word; the policy refuses them rather than guess."""
    assert secret_reason(key) == what


@pytest.mark.parametrize(
    ("key", "what"),
    [
        pytest.param("userId", "a user id", id="camel-user-id"),
        pytest.param("user.id", "a user id", id="dotted-user-id"),
        pytest.param("end_user.id", "a user id", id="dotted-end-user-id"),
        pytest.param("xRealIp", "an IP address", id="camel-real-ip"),
        pytest.param("X_REAL_IP", "an IP address", id="upper-real-ip"),
        pytest.param("IPv4", "an IP address", id="ipv4-acronym"),
        pytest.param("clientIPAddress", "an IP address", id="acronym-run"),
        pytest.param("CSRFToken", "a CSRF token", id="upper-acronym"),
        pytest.param("codeVerifier", "a PKCE code verifier", id="camel-verifier"),
        pytest.param("user[password]", "a password", id="bracketed-form-key"),
        pytest.param("ｐａｓｓｗｏｒｄ", "a password", id="fullwidth"),
        pytest.param("SAMLResponse", "a SAML response", id="saml"),
        pytest.param("uidb64", "an encoded user id", id="django-reset-uid"),
        pytest.param("preferred_username", "a user name", id="oidc-username"),
        pytest.param("email_verified", "an email address", id="email-anywhere"),
        pytest.param("token_type", "a token", id="token-anywhere"),
        pytest.param("status_code", "a verification code", id="any-code-suffix"),
        pytest.param("data.user.display", "a person's name", id="allauth-display"),
        pytest.param("user\ud800password", "a password", id="lone-surrogate"),
        pytest.param("CONTRASEÑA", "a password", id="accent-upper"),
        pytest.param("MotDePasse", "a password", id="camel-french"),
        pytest.param("Contrase\u0301na", "a password", id="combining-accent"),
        pytest.param("OTP1", "a one-time password", id="digits-upper"),
        pytest.param("totp_2", "a one-time password", id="digit-word"),
        pytest.param("otp123456", "a one-time password", id="digit-run"),
        pytest.param("code_1_2", "an authorization or one-time code", id="digit-words"),
        pytest.param("state2", "an OAuth state value", id="state-numbered"),
        pytest.param("x-real-ip2", "an IP address", id="numbered-header"),
    ],
)
def test_key_spellings_are_normalized(key: str, what: str) -> None:
    """Case, punctuation, camelCase, dots and Unicode width do not hide a forbidden key."""
    assert secret_reason(key) == what


#: Keys that must stay usable: public OAuth parameters and words that merely contain
#: the letters of a forbidden word.
ALLOWED_KEYS = [
    "client_id",
    "provider",
    "code_challenge",
    "code_challenge_method",
    "codeChallengeMethod",
    "CODE-CHALLENGE",
    "response_type",
    "grant_type",
    "error",
    "error_description",
    "redirect_uri",
    "scope",
    "next",
    "process",
    "client_assertion_type",
    "tf_state",
    "tf_method",
    "authentication_method",
    "login_methods",
    "method",
    "flow",
    "reason",
    "id",
    "footprint",
    "description",
    "subscription",
    "recipient",
    "membership",
    "hotpot",
    "statement",
    "codec",
    "barcode",
    "announce",
    "www-authenticate",
    "content-type",
    "origin",
    "user-agent",
    "referrer-policy",
    "sec-fetch-mode",
    "cellular",
    "cells",
    "telemetry",
    "hotel",
    "mobility",
    "keyboard",
    "monkey",
    "keys",
    "handler",
    "inputs",
    "values",
    "passport",
    "pwa",
    "new_user",
    "is_new_user",
    "session_lifetime",
    "oauth2",
    "sha256",
    "v2",
    "allocation",
]


@pytest.mark.parametrize("key", [pytest.param(k, id=k) for k in ALLOWED_KEYS])
def test_public_keys_stay_allowed(key: str) -> None:
    """Public parameters and look-alike words are allowed in every position but cookies."""
    assert secret_reason(key) is None
    refused = [
        p.format(v)
        for v in variants(key)
        for p in POSITIONS
        if p != "cookies.{}" and field_source_problem(p.format(v)) is not None
    ]
    assert refused == []
    assert condition_problem(f"query.{key}", "equals") is None


# -- field sources --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fact", "problem"),
    [
        pytest.param("form.password", "form.password is a password" + SECRET_TAIL, id="form"),
        pytest.param(
            "json.user.email", "json.user.email is an email address" + SECRET_TAIL, id="json"
        ),
        pytest.param(
            "json.data.user.id", "json.data.user.id is a user id" + SECRET_TAIL, id="json-user-id"
        ),
        pytest.param("cookies.theme", "cookies.theme is a cookie" + COOKIE_TAIL, id="cookie"),
        pytest.param(
            "cookies.sessionid",
            "cookies.sessionid is a session identifier in a cookie" + COOKIE_TAIL,
            id="cookie-secret",
        ),
        pytest.param(
            "cookies.set-cookie", "cookies.set-cookie is a cookie" + COOKIE_TAIL, id="cookie-cookie"
        ),
        pytest.param(
            "cookies", "cookies is the request's cookies" + COOKIE_TAIL, id="cookies-whole"
        ),
        pytest.param(
            "headers.authorization",
            "headers.authorization is an Authorization credential" + SECRET_TAIL,
            id="authorization",
        ),
        pytest.param(
            "headers.Proxy-Authorization",
            "headers.Proxy-Authorization is a proxy credential" + SECRET_TAIL,
            id="proxy-authorization",
        ),
        pytest.param("headers.cookie", "headers.cookie is a cookie" + COOKIE_TAIL, id="cookie-hdr"),
        pytest.param(
            "headers.x-forwarded-for",
            "headers.x-forwarded-for is a forwarded client address" + SECRET_TAIL,
            id="x-forwarded-for",
        ),
        pytest.param(
            "headers.Forwarded",
            "headers.Forwarded is a forwarded client address" + SECRET_TAIL,
            id="forwarded",
        ),
        pytest.param(
            "headers.x-real-ip", "headers.x-real-ip is an IP address" + SECRET_TAIL, id="real-ip"
        ),
        pytest.param(
            "response.headers.set-cookie",
            "response.headers.set-cookie is a cookie" + COOKIE_TAIL,
            id="set-cookie",
        ),
        pytest.param(
            "basic_auth.password",
            "basic_auth.password is a password" + SECRET_TAIL,
            id="basic-auth-password",
        ),
        pytest.param(
            "signal.user_signed_up.user",
            "signal.user_signed_up.user is a user identifier" + SECRET_TAIL,
            id="signal-argument",
        ),
        pytest.param(
            "session.password", "session.password is a password" + SECRET_TAIL, id="unknown-family"
        ),
        pytest.param(
            "json.user.profile", "json.user.profile is a user identifier" + SECRET_TAIL, id="outer"
        ),
        pytest.param(
            "path",
            "path is the raw request path, which may carry user identifiers"
            + TESTED_TAIL
            + "; name the part with path.<param>",
            id="raw-path",
        ),
        pytest.param(
            "response.body",
            "response.body is the response body, which may carry secrets and personal data: "
            "rules may test it in `if` (contains, regex) but never copy it into an event",
            id="response-body",
        ),
        pytest.param(
            "response.location.path",
            "response.location.path is a redirect target, which may carry codes, tokens and "
            "user identifiers" + TESTED_TAIL,
            id="location-path",
        ),
        pytest.param(
            "response.location",
            "response.location is a redirect target, which may carry codes, tokens and "
            "user identifiers" + SECRET_TAIL,
            id="location-whole",
        ),
        pytest.param(
            "response.headers.Location",
            "response.headers.Location is a redirect target or location" + SECRET_TAIL,
            id="location-header",
        ),
        pytest.param(
            "headers.referer",
            "headers.referer is a referring URL (which may carry codes and tokens)" + SECRET_TAIL,
            id="referer",
        ),
        pytest.param(
            "headers.X-Original-URI",
            "headers.X-Original-URI is a request URL (which may carry codes and tokens)"
            + SECRET_TAIL,
            id="original-uri",
        ),
        pytest.param(
            "json",
            "json is a whole collection that holds secrets" + TESTED_TAIL + "; name a key",
            id="json-whole",
        ),
        pytest.param(
            "response.location.query",
            "response.location.query is a redirect target, which may carry codes, tokens and "
            "user identifiers" + SECRET_TAIL,
            id="location-query-whole",
        ),
        pytest.param(
            "response.json.detail.0.input",
            "response.json.detail.0.input is a submitted value" + SECRET_TAIL,
            id="pydantic-input",
        ),
        pytest.param(
            "response.json.detail.0.ctx.error",
            "response.json.detail.0.ctx.error is an error context (which may quote a submitted "
            "value)" + SECRET_TAIL,
            id="pydantic-ctx",
        ),
        pytest.param(
            "response.json.ui.nodes.0.attributes.value",
            "response.json.ui.nodes.0.attributes.value is a submitted value" + SECRET_TAIL,
            id="kratos-node-value",
        ),
        pytest.param(
            "path.key",
            "path.key is a key" + SECRET_TAIL,
            id="allauth-reset-key",
        ),
    ],
)
def test_refused_sources(fact: str, problem: str) -> None:
    """Secrets, cookies, raw paths, bodies and redirect targets are never field sources."""
    assert field_source_problem(fact) == problem


@pytest.mark.parametrize(
    "fact",
    [
        "response.json.errors.0.message",
        "response.json.errors.0.param",
        "response.json.response.errors.0",
        "response.json.error.description",
        "response.json.fieldErrors.0.type",
        "response.json.errors",
    ],
)
def test_response_error_details_are_public(fact: str) -> None:
    """A response's error messages are no secret: any matcher, and they may be copied."""
    assert field_source_problem(fact) is None
    assert [condition_problem(fact, m) for m in (*TESTING, *COMPARING)] == [None] * 11


ERROR_CODE_TAIL = TESTED_TAIL + "; write one rule per code with a {value: ...} field"


@pytest.mark.parametrize(
    ("fact", "what"),
    [
        pytest.param(
            "response.json.errors.0.code", "an authorization or one-time code", id="allauth"
        ),
        pytest.param("response.json.error.code", "an authorization or one-time code", id="error"),
        pytest.param(
            "response.json.response.field_errors.code",
            "an authorization or one-time code",
            id="flask-security",
        ),
        pytest.param("response.json.errors.0.error_code", "a verification code", id="error-code"),
        pytest.param("response.json.errors.0.errorCode", "a verification code", id="camel"),
        pytest.param("response.json.errors.codes", "a list of one-time codes", id="codes"),
        pytest.param("response.json.errors.0.codes.0", "a list of one-time codes", id="in-list"),
        pytest.param(
            "response.json.errors.0.meta.code", "an authorization or one-time code", id="deep"
        ),
        pytest.param("response.json.errors.mfa_code", "a verification code", id="generic-suffix"),
        pytest.param("response.json.errors.code_1", "an authorization or one-time code", id="num"),
    ],
)
def test_error_codes_below_an_error_container_are_compared_not_copied(fact: str, what: str) -> None:
    """The server's error codes take every matcher, but are never copied into an event."""
    assert [condition_problem(fact, m) for m in (*TESTING, *COMPARING)] == [None] * 11
    assert field_source_problem(fact) == f"{fact} is named like {what}" + ERROR_CODE_TAIL


@pytest.mark.parametrize(
    ("fact", "what"),
    [
        pytest.param("response.json.errors.access_token", "an OAuth access token", id="token"),
        pytest.param("response.json.errors.0.access_token", "an OAuth access token", id="item"),
        pytest.param(
            "response.json.response.field_errors.password", "a password", id="flask-security"
        ),
        pytest.param("response.json.fieldErrors.email", "an email address", id="camel"),
        pytest.param("response.json.errors.otp_code", "a one-time password", id="otp-code"),
        pytest.param("response.json.errors.recovery_code", "a recovery code", id="recovery"),
        pytest.param("response.json.errors.user_code", "an OAuth user code", id="user-code"),
        pytest.param("response.json.errors.0.user.id", "a user id", id="joined"),
        pytest.param("response.json.errors.0.input", "a submitted value", id="echoed-input"),
        pytest.param("response.json.errors.code.password", "a password", id="below-a-code"),
        pytest.param("response.json.errors.password.code", "a password", id="code-of-a-secret"),
        pytest.param("response.json.errors.0.code.value", "a submitted value", id="code-value"),
    ],
)
def test_secrets_below_an_error_container_stay_secret(fact: str, what: str) -> None:
    """Below an error container a forbidden name other than an error code is a secret."""
    assert field_source_problem(fact) == f"{fact} is {what}" + SECRET_TAIL
    assert [condition_problem(fact, m) for m in TESTING] == [None] * 5
    assert [condition_problem(fact, m) for m in COMPARING] == [
        f"{fact} is {what}: rules may test it only with present, absent, length or format, "
        f"never compare it to a value with `{m}`"
        for m in COMPARING
    ]


@pytest.mark.parametrize(
    ("fact", "what"),
    [
        pytest.param("json.errors.0.code", "an authorization or one-time code", id="request"),
        pytest.param("response.json.meta.code", "an authorization or one-time code", id="meta"),
        pytest.param("response.json.password_errors.x", "a password", id="container-name"),
        pytest.param("response.json.user.errors.x", "a user identifier", id="above-container"),
        pytest.param("response.json.errors", None, id="container-itself"),
    ],
)
def test_error_containers_only_cover_what_is_below_them(fact: str, what: str | None) -> None:
    """Only response bodies, and only names below the container, are exempt."""
    problem = field_source_problem(fact)
    if what is None:
        assert problem is None
    else:
        assert problem == f"{fact} is {what}" + SECRET_TAIL


@pytest.mark.parametrize(
    "fact",
    [
        "basic_auth.username",
        "method",
        "route",
        "raised",
        "response.status",
        "path.provider",
        "params.client_id",
        "form.client_id",
        "query.redirect_uri",
        "response.json.error",
        "response.json.data.flows.id",
        "response.location.query.error",
        "response.location.query.error_description",
        "response.headers.content-type",
        "headers.user-agent",
        "signal.user_signed_up",
        "signal.social_account_added.provider",
    ],
)
def test_allowed_sources(fact: str) -> None:
    """The OAuth client_id (Basic user name included) and public facts may be extracted."""
    assert field_source_problem(fact) is None


# -- conditions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fact",
    [
        "form.password",
        "form.code",
        "query.state",
        "json.a.token",
        "headers.authorization",
        "response.location.query.code",
        "response.json.refresh_token",
        "path.token",
    ],
)
def test_secrets_are_tested_never_compared(fact: str) -> None:
    """A secret takes present, absent, length, format and not, and no comparing matcher."""
    assert [condition_problem(fact, m) for m in TESTING] == [None] * 5
    assert all(condition_problem(fact, m) is not None for m in COMPARING)


@pytest.mark.parametrize(
    "fact",
    [
        "response.headers.location",
        "response.headers.Location",
        "response.headers.content-location",
        "response.headers.refresh",
        "response.location",
        "response.location.query",
        "headers.referer",
        "headers.Referrer",
        "headers.x-original-uri",
        "headers.x-original-url",
        "headers.x-forwarded-uri",
        "headers.x-rewrite-url",
        "response.json.location",
        "response.json.redirect.location",
    ],
)
def test_whole_urls_are_tested_never_compared(fact: str) -> None:
    """A whole URL (its query carries codes and tokens) takes no comparing matcher."""
    assert [condition_problem(fact, m) for m in TESTING] == [None] * 5
    assert all(condition_problem(fact, m) is not None for m in COMPARING)
    assert field_source_problem(fact) is not None


def test_origin_is_no_url_with_a_query() -> None:
    """An Origin header is a scheme, host and port: every matcher, and it may be copied."""
    assert [condition_problem("headers.origin", m) for m in (*TESTING, *COMPARING)] == [None] * 11
    assert field_source_problem("headers.origin") is None


@pytest.mark.parametrize(
    "fact", ["cookies.sid", "cookies.theme", "headers.cookie", "response.headers.set-cookie"]
)
def test_cookies_are_presence_only(fact: str) -> None:
    """A cookie takes only present, absent and not."""
    allowed = [m for m in (*TESTING, *COMPARING) if condition_problem(fact, m) is None]
    assert allowed == ["present", "absent", "not"]


@pytest.mark.parametrize(
    "fact",
    [
        "response.body",
        "path",
        "response.location.path",
        "response.location.query.next",
        "headers.origin",
        "response.headers.content-type",
        "response.status",
        "response.json.error",
        "form.code_challenge_method",
        "basic_auth.username",
    ],
)
def test_non_secrets_take_every_matcher(fact: str) -> None:
    """Facts holding no secret may be compared to literals, even if never extracted."""
    assert [condition_problem(fact, m) for m in (*TESTING, *COMPARING)] == [None] * 11


@pytest.mark.parametrize(
    ("fact", "matcher", "problem"),
    [
        pytest.param(
            "form.password",
            "equals",
            "form.password is a password: rules may test it only with present, absent, "
            "length or format, never compare it to a value with `equals`",
            id="equals",
        ),
        pytest.param(
            "headers.authorization",
            "prefix",
            "headers.authorization is an Authorization credential: rules may test it only "
            "with present, absent, length or format, never compare it to a value with `prefix`",
            id="prefix",
        ),
        pytest.param(
            "cookies.sid",
            "length",
            "cookies.sid is a session identifier in a cookie: rules may test it only with "
            "present or absent, never test it with `length`",
            id="cookie-length",
        ),
        pytest.param(
            "response.headers.location",
            "prefix",
            "response.headers.location is a redirect target or location: rules may test it only "
            "with present, absent, length or format, never compare it to a value with `prefix`; "
            "test response.location.path or response.location.query.<name> instead",
            id="location-header",
        ),
        pytest.param(
            "response.location",
            "equals",
            "response.location is a redirect target, which may carry codes, tokens and user "
            "identifiers: rules may test it only with present, absent, length or format, never "
            "compare it to a value with `equals`; test response.location.path or "
            "response.location.query.<name> instead",
            id="location-whole",
        ),
        pytest.param(
            "headers.referer",
            "regex",
            "headers.referer is a referring URL (which may carry codes and tokens): rules may "
            "test it only with present, absent, length or format, never compare it to a value "
            "with `regex`",
            id="referer",
        ),
        pytest.param(
            "response.json.errors.access_token",
            "regex",
            "response.json.errors.access_token is an OAuth access token: rules may test it only "
            "with present, absent, length or format, never compare it to a value with `regex`",
            id="below-error-container",
        ),
        pytest.param(
            "form.otp",
            "frobnicate",
            "form.otp is a one-time password: rules may test it only with present, absent, "
            "length or format, never test it with `frobnicate`",
            id="unknown-matcher",
        ),
    ],
)
def test_condition_messages(fact: str, matcher: str, problem: str) -> None:
    """A refused condition says what the fact is and which matchers it takes."""
    assert condition_problem(fact, matcher) == problem


# -- values ---------------------------------------------------------------------------

CLIENT_128 = "c" * 128
CLIENT_129 = "c" * 129


class Weird(str):
    """A str subclass whose overrides all raise."""

    def __str__(self) -> str:
        raise RuntimeError("no")

    def __hash__(self) -> int:
        raise RuntimeError("no")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no")


class Unprintable:
    """An object whose every dunder raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no")

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        # client_id
        pytest.param("client_id", "authlib-public", "authlib-public", id="cid-plain"),
        pytest.param("client_id", "a.b_c~d:e/f+g-h@", "a.b_c~d:e/f+g-h@", id="cid-charset"),
        pytest.param("client_id", "client@tenant", REDACTED, id="cid-user-at-host"),
        pytest.param("client_id", CLIENT_128, CLIENT_128, id="cid-128"),
        pytest.param("client_id", CLIENT_129, REDACTED, id="cid-129"),
        pytest.param("client_id", "", REDACTED, id="cid-empty"),
        pytest.param("client_id", "my client", REDACTED, id="cid-space"),
        pytest.param("client_id", "a%40b", REDACTED, id="cid-percent"),
        pytest.param("client_id", "alice@example.com", REDACTED, id="cid-email"),
        pytest.param("client_id", "10.0.0.1", REDACTED, id="cid-ipv4"),
        pytest.param("client_id", "2001:db8::1", REDACTED, id="cid-ipv6"),
        pytest.param("client_id", 12345, REDACTED, id="cid-int"),
        pytest.param("client_id", True, REDACTED, id="cid-bool"),
        pytest.param("client_id", None, None, id="cid-none"),
        pytest.param(
            "client_id",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            id="cid-urn",
        ),
        pytest.param(
            "client_id",
            "https://client.example.test/metadata.json",
            "https://client.example.test/metadata.json",
            id="cid-url",
        ),
        # slugs
        pytest.param("provider", "github", "github", id="slug-plain"),
        pytest.param("provider", "GitHub", "github", id="slug-lowercased"),
        pytest.param("method", "recovery_code", "recovery_code", id="slug-underscore"),
        pytest.param("flow", "password-reset", "password-reset", id="slug-dash"),
        pytest.param("reason", "2fa", "2fa", id="slug-digit-first"),
        pytest.param("reason", "r" * 64, "r" * 64, id="slug-64"),
        pytest.param("reason", "r" * 65, REDACTED, id="slug-65"),
        pytest.param("reason", "_x", REDACTED, id="slug-underscore-first"),
        pytest.param("reason", "", REDACTED, id="slug-empty"),
        pytest.param("provider", "my provider", REDACTED, id="slug-space"),
        pytest.param("provider", "a.b", REDACTED, id="slug-dot"),
        pytest.param("provider", "Ｇoogle", REDACTED, id="slug-non-ascii"),
        pytest.param("provider", "KELVIN\u212a", REDACTED, id="slug-kelvin-sign"),
        pytest.param("provider", "alice@example.com", REDACTED, id="slug-email"),
        pytest.param("provider", "10.0.0.1", REDACTED, id="slug-ip"),
        pytest.param("method", 3, REDACTED, id="slug-int"),
        pytest.param("method", None, None, id="slug-none"),
        # first_login
        pytest.param("first_login", True, True, id="first-true"),
        pytest.param("first_login", False, False, id="first-false"),
        pytest.param("first_login", None, None, id="first-none"),
        pytest.param("first_login", 1, None, id="first-one"),
        pytest.param("first_login", "true", None, id="first-string"),
        # any other field
        pytest.param("count", 7, 7, id="int"),
        pytest.param("count", 2**63 - 1, 2**63 - 1, id="int-max"),
        pytest.param("count", -(2**63), -(2**63), id="int-min"),
        pytest.param("count", 2**63, REDACTED, id="int-over"),
        pytest.param("count", 2**64, REDACTED, id="int-2-64"),
        pytest.param("count", -(2**63) - 1, REDACTED, id="int-under"),
        pytest.param("flag", True, True, id="bool"),
        pytest.param("x", None, None, id="none"),
        pytest.param("x", "invalid_grant", "invalid_grant", id="str"),
        pytest.param("x", "Invalid code verifier", REDACTED, id="free-text"),
        pytest.param("x", "/authorize?code=abc&state=xyz", REDACTED, id="query-string"),
        pytest.param(
            "x", "https://client.example.test/cb", "https://client.example.test/cb", id="url"
        ),
        pytest.param("x", "alice@example.com", REDACTED, id="email"),
        pytest.param("x", "mailto:Alice.B+tag@mail.example.co.uk", REDACTED, id="email-inside"),
        pytest.param("x", "alice@mail_host.example.com", REDACTED, id="email-underscore-host"),
        pytest.param("x", "alice@localhost", REDACTED, id="email-dotless-host"),
        pytest.param("x", "a@b", REDACTED, id="email-shortest"),
        pytest.param("x", "client@tenant", REDACTED, id="user-at-host"),
        pytest.param("x", "https://alice:@localhost/cb", REDACTED, id="userinfo-in-url"),
        pytest.param("x", "https://social.example/@alice", REDACTED, id="handle-in-url"),
        pytest.param("x", "@alice", REDACTED, id="handle"),
        pytest.param("x", "a@_b", REDACTED, id="email-underscore-first"),
        pytest.param("x", "a@-b", REDACTED, id="email-dash-first"),
        pytest.param("x", "trailing@", "trailing@", id="at-at-end"),
        pytest.param("x", "a@/b", "a@/b", id="at-before-slash"),
        pytest.param("x", "a@.b", "a@.b", id="at-before-dot"),
        pytest.param("x", "@~x", "@~x", id="at-before-tilde"),
        pytest.param("x", "x:@example.com", REDACTED, id="email-odd-local-part"),
        pytest.param("x", "g:fe80::1", REDACTED, id="ipv6-after-colon"),
        pytest.param("x", "fe80::1:g", REDACTED, id="ipv6-before-colon"),
        pytest.param("x", "192.168.1.20", REDACTED, id="ipv4"),
        pytest.param("x", "10.0.0.1:8080", REDACTED, id="ipv4-port"),
        pytest.param("x", "http://127.0.0.1:8000/cb", REDACTED, id="ipv4-in-url"),
        pytest.param("x", "::1", REDACTED, id="ipv6-loopback"),
        pytest.param("x", "fe80::1ff:fe23:4567:890a", REDACTED, id="ipv6"),
        pytest.param("x", "2001:0db8:0000:0000:0000:ff00:0042:8329", REDACTED, id="ipv6-full"),
        pytest.param("x", "::ffff:192.0.2.1", REDACTED, id="ipv6-mapped"),
        pytest.param("x", "http://fe80::1/x", REDACTED, id="ipv6-in-text"),
        pytest.param("x", "fe80::1%eth0", REDACTED, id="ipv6-zone"),
        pytest.param("x", "urn:a:b", "urn:a:b", id="colons-not-ip"),
        pytest.param("x", "12:30:45", "12:30:45", id="time-not-ip"),
        pytest.param("x", "urn:2001:db8:85a3:0:0:8a2e:370:7334", REDACTED, id="ipv6-after-urn"),
        pytest.param("x", "x:::1", REDACTED, id="loopback-after-colon"),
        pytest.param("x", "ip:fe80::1", REDACTED, id="ipv6-after-ip-colon"),
        pytest.param("x", "Foo::Bar", REDACTED, id="any-double-colon"),
        pytest.param(
            "x",
            "urn:2001:db8:85a3:0:0:8a2e:370",
            "urn:2001:db8:85a3:0:0:8a2e:370",
            id="seven-groups",
        ),
        pytest.param("x", "00:1a:2b:3c:4d:5e", "00:1a:2b:3c:4d:5e", id="mac-not-ip"),
        pytest.param("x", "a:b:c:d:e:f:a", "a:b:c:d:e:f:a", id="seven-hex-letters"),
        pytest.param("x", "a:b:c:d:e:f:a:b", REDACTED, id="eight-hex-letters"),
        pytest.param("x", "x" * 128, "x" * 128, id="str-128"),
        pytest.param("x", "x" * 129, REDACTED, id="str-129"),
        pytest.param("x", "x" * 10_000_000, REDACTED, id="str-huge"),
        pytest.param("x", "", REDACTED, id="str-empty"),
        pytest.param("x", "\ud800", REDACTED, id="lone-surrogate"),
        pytest.param("x", "ok\udfff", REDACTED, id="trailing-surrogate"),
        pytest.param("x", "caf\u00e9", REDACTED, id="non-ascii"),
        pytest.param("x", "a\nb", REDACTED, id="newline"),
        pytest.param("x", "a\x00b", REDACTED, id="nul"),
        pytest.param("x", b"bytes", REDACTED, id="bytes"),
        pytest.param("x", bytearray(b"b"), REDACTED, id="bytearray"),
        pytest.param("x", 1.5, REDACTED, id="float"),
        pytest.param("x", float("nan"), REDACTED, id="nan"),
        pytest.param("x", ["a"], REDACTED, id="list"),
        pytest.param("x", {"email": "a@b.c"}, REDACTED, id="dict"),
        pytest.param("x", ipaddress.ip_address("10.0.0.1"), REDACTED, id="ip-object"),
        pytest.param("x", Unprintable(), REDACTED, id="hostile-object"),
        pytest.param("x", Weird("fine"), "fine", id="str-subclass"),
        pytest.param("provider", Weird("GitHub"), "github", id="str-subclass-slug"),
    ],
)
def test_clean_value(field: str, value: object, expected: object) -> None:
    """Each value gets exactly its field's shape, or "redacted"."""
    got = clean_value(field, value)
    assert got == expected
    assert type(got) is type(expected)


IPV6_ADDRESSES = [
    "2001:db8:85a3:0:0:8a2e:370:7334",
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
    "2001:db8:85a3::8a2e:370:7334",
    "fe80::1",
    "::1",
    "::",
    "1::",
    "::ffff:c000:201",
]
#: Text of the client_id charset around an address: at the start, the end, after letters,
#: after a colon (which must not be taken as part of the address), between both.
IPV6_CONTEXTS = [
    "{}",
    "x{}",
    "{}x",
    "zz{}zz",
    "x:{}",
    "ip:{}",
    "urn:{}",
    "urn:ietf:{}",
    ":{}",
    "{}:",
    "{}:g",
    "{}:zz:1",
    "g:{}:g",
    "http://[{}]/cb",
    "a/b:{}/c",
    "~{}~",
    "-{}-",
    "+{}@",
]


@pytest.mark.parametrize("context", [pytest.param(c, id=c) for c in IPV6_CONTEXTS])
@pytest.mark.parametrize("address", [pytest.param(a, id=a) for a in IPV6_ADDRESSES])
def test_ipv6_is_redacted_wherever_it_sits(address: str, context: str) -> None:
    """An IPv6 address inside an otherwise clean token makes the whole value "redacted"."""
    value = context.format(address)
    if "[" in value:
        value = value.replace("[", "").replace("]", "")  # brackets are outside the charset
    assert OUTPUTS.fullmatch(value)
    assert clean_value("x", value) == REDACTED
    assert clean_value("client_id", value) == REDACTED


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        pytest.param("method", "totp", "totp", id="listed"),
        pytest.param("method", "TOTP", "totp", id="listed-after-lowercasing"),
        pytest.param("method", "yubikey", OTHER, id="unlisted"),
        pytest.param("method", "Bad Slug", REDACTED, id="redacted-stays"),
        pytest.param("method", None, None, id="none-stays"),
        pytest.param("client_id", "spa", OTHER, id="client-id"),
        pytest.param("count", 3, 3, id="int-stays"),
        pytest.param("flag", False, False, id="bool-stays"),
        pytest.param("first_login", True, True, id="first-login-stays"),
    ],
)
def test_allow_list_maps_the_rest_to_other(field: str, value: object, expected: object) -> None:
    """With an allow-list, a clean string outside it becomes "other", nothing else changes."""
    allow = frozenset({"totp", "sms"})
    assert clean_value(field, value, allow) == expected


class RaisingSet(frozenset[str]):
    """An allow-list whose membership test raises."""

    def __contains__(self, item: object) -> bool:
        raise RuntimeError("no")


def test_hostile_field_names_and_allow_lists_do_not_raise() -> None:
    """An unhashable field name or a raising allow-list still gives "redacted"."""
    assert clean_value([], "x") == REDACTED  # type: ignore[arg-type]
    assert clean_value("x", "y", RaisingSet({"y"})) == REDACTED


def test_values_never_reach_ipaddress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Slugs, ids, URNs and addresses are cleaned by regexes alone, with no exception raised."""

    def boom(value: object) -> None:
        raise AssertionError(f"ipaddress called for {value!r}")

    monkeypatch.setattr(ipaddress, "IPv6Address", boom)
    monkeypatch.setattr(ipaddress, "ip_address", boom)
    values = ["github", "authlib-public", "urn:ietf:params:oauth:grant-type:device_code", "a:b:c"]
    assert [clean_value("client_id", v) for v in values] == values
    assert [clean_value("client_id", v) for v in ("urn:fe80::1", "x:10.0.0.1")] == [REDACTED] * 2


OUTPUTS = re.compile(r"[A-Za-z0-9._~:/@+\-]{1,128}")
# Characters that make values interesting: separators of emails, IPs and URLs, hex digits,
# a lone surrogate, non-ASCII letters and spaces.
ALPHABET = "abcdefABCDEF0123456789.:@/-_+~%? \n\ud800éK"
FIELDS = ["client_id", "provider", "method", "flow", "reason", "first_login", "x"]


def fuzz_values(seed: int, n: int) -> list[object]:
    """Reproducible values of every kind clean_value may be handed."""
    rng = random.Random(seed)
    found: list[object] = [None, True, False, 0, 2**64, -(2**80), 1.0, b"", [], {}]
    for _ in range(n):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 40)))
        found += [
            text,
            str(ipaddress.IPv4Address(rng.getrandbits(32))),
            str(ipaddress.IPv6Address(rng.getrandbits(128))),
            f"{text}{ipaddress.IPv6Address(rng.getrandbits(128)).compressed}{text}",
            f"{text}:{ipaddress.IPv6Address(rng.getrandbits(128)).exploded}:{text}",
            f"{text}:{ipaddress.IPv6Address(rng.getrandbits(16)).compressed}",
            f"{text}@{text}.example",
            f"{text}a@b{text}",
            rng.getrandbits(70) - 2**69,
            text.encode("utf-8", "surrogatepass"),
            [text],
        ]
    return found


@pytest.mark.parametrize("field", [pytest.param(f, id=f) for f in FIELDS])
def test_clean_value_output_is_always_safe(field: str) -> None:
    """Whatever comes in, the output is None, a bool, a 64-bit int or a safe token."""
    unsafe = []
    for value in fuzz_values(seed=len(field), n=500):
        got = clean_value(field, value)
        if got is None or type(got) is bool:
            continue
        if type(got) is int and -(2**63) <= got < 2**63:
            continue
        if (
            type(got) is str
            and OUTPUTS.fullmatch(got)
            and not re.search(r"@[A-Za-z0-9_-]", got)
            and not re.search(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+", got)
            and not holds_ipv6(got)
        ):
            continue
        unsafe.append((value, got))
    assert unsafe == []


def holds_ipv6(text: str) -> bool:
    """Whether any part of the text parses as an IPv6 address (the slow, obvious way)."""
    for run in re.findall(r"[0-9A-Fa-f:]+", text):
        for start in range(len(run)):
            for end in range(start + 2, len(run) + 1):
                try:
                    ipaddress.IPv6Address(run[start:end])
                except ValueError:
                    continue
                return True
    return False


def test_key_checks_never_raise() -> None:
    """Any text, lone surrogates included, gives a reason or None from every check."""
    whats = {e.what for e in FORBIDDEN_KEYS}
    for key in fuzz_values(seed=7, n=60):
        if not isinstance(key, str):
            continue
        for position in POSITIONS:
            fact = position.format(key)
            field_source_problem(fact)
            condition_problem(fact, "equals")
        assert secret_reason(key) in whats | {None}


@pytest.mark.parametrize(
    ("how", "key", "matched"),
    [
        pytest.param("exact", "ab_cd", True, id="exact"),
        pytest.param("exact", "x_ab_cd", False, id="exact-miss"),
        pytest.param("contains", "xab_cdx", True, id="contains"),
        pytest.param("suffix", "x_ab_cd", True, id="suffix"),
        pytest.param("suffix", "ab_cd_x", False, id="suffix-miss"),
        pytest.param("prefix", "ab_cd_x", True, id="prefix"),
        pytest.param("prefix", "x_ab_cd", False, id="prefix-miss"),
        pytest.param("word", "x_ab_cd_y", True, id="word"),
        pytest.param("word", "xab_cd", False, id="word-miss-left"),
        pytest.param("word", "ab_cdy", False, id="word-miss-right"),
    ],
)
def test_match_kinds(how: Any, key: str, matched: bool) -> None:
    """Each kind of match meets a normalized key as documented."""
    assert ForbiddenKey("ab_cd", how, "a thing").matches(key) is matched


@pytest.mark.parametrize(
    ("pattern", "how"),
    [
        pytest.param("Password", "contains", id="upper-case"),
        pytest.param("x-y", "exact", id="dash"),
        pytest.param("pass", "glob", id="unknown-how"),
    ],
)
def test_bad_entries_are_rejected(pattern: str, how: Any) -> None:
    """An entry that could never match a normalized key is an error at import."""
    with pytest.raises(ValueError, match="bad forbidden-key entry"):
        ForbiddenKey(pattern, how, "a thing")


def test_public_names() -> None:
    """Everything in __all__ exists and the two sentinels have their documented values."""
    assert all(hasattr(policy, name) for name in policy.__all__)
    assert (REDACTED, OTHER) == ("redacted", "other")


# -- custom event field names ---------------------------------------------------------

FIELD_NAME_TAIL = "; events never carry secrets or personal data"


@pytest.mark.parametrize(
    "entry", [pytest.param(e, id=f"{e.how}-{e.pattern}") for e in FORBIDDEN_KEYS]
)
def test_every_entry_refuses_a_field_name(entry: ForbiddenKey) -> None:
    """A custom event field named after any table entry is refused with what it would carry."""
    name = example_key(entry)
    assert field_name_problem(name) == f"a field named {name!r} would carry {entry.what}" + (
        FIELD_NAME_TAIL
    )


@pytest.mark.parametrize(
    ("name", "what"),
    [pytest.param(k, w, id=k) for k, w in (*DESIGN_KEYS, *REVIEW_KEYS)],
)
def test_named_keys_refuse_a_field_name(name: str, what: str) -> None:
    """Every key DESIGN.md and the review name is refused as a field name too."""
    assert field_name_problem(name) == f"a field named {name!r} would carry {what}" + (
        FIELD_NAME_TAIL
    )


def test_field_name_message() -> None:
    """The message names the field and what it would carry, in one sentence."""
    assert field_name_problem("password") == (
        "a field named 'password' would carry a password; "
        "events never carry secrets or personal data"
    )
    assert field_name_problem("email") == (
        "a field named 'email' would carry an email address; "
        "events never carry secrets or personal data"
    )


@pytest.mark.parametrize(
    "name",
    [
        *(pytest.param(k, id=k) for k in ALLOWED_KEYS),
        *(pytest.param(f, id=f"custom-{f}") for f in ("attempts", "plan", "tenant", "outcome")),
    ],
)
def test_public_field_names_are_fine(name: str) -> None:
    """Public parameters, look-alike words and ordinary custom field names are allowed."""
    assert field_name_problem(name) is None


def test_catalog_field_names_are_all_fine() -> None:
    """No field of a documented event is named like a secret."""
    from hera_middleware.catalog import CATALOG

    names = sorted({f for event in CATALOG.values() for f in event.fields})
    assert [n for n in names if field_name_problem(n) is not None] == []


# -- through the rule loader ----------------------------------------------------------


def load_errors(condition: str) -> list[str]:
    """The error lines for a one-rule file testing ``condition`` (empty when it loads)."""
    text = f"rules:\n  - {{event: breach_check_passed, match: POST /r, if: {{{condition}}}}}\n"
    try:
        load_rules(text=text, filename="hera.yaml")
    except HeraConfigError as error:
        return str(error).splitlines()
    return []


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param("response.json.errors.0.code: incorrect_code", id="allauth-error-code"),
        pytest.param("response.json.errors.0.code: {regex: '^incorrect'}", id="error-code-regex"),
        pytest.param("response.json.response.field_errors.password: present", id="field-error"),
        pytest.param("response.location.path: {prefix: /welcome}", id="location-path"),
        pytest.param("response.location.query.error: access_denied", id="location-query"),
        pytest.param("response.headers.location: present", id="location-present"),
        pytest.param("headers.origin: 'https://app.example.test'", id="origin"),
    ],
)
def test_loader_accepts(condition: str) -> None:
    """Error codes, location parts and presence tests on whole URLs load."""
    assert load_errors(condition) == []


@pytest.mark.parametrize(
    ("condition", "error"),
    [
        pytest.param(
            "response.json.errors.access_token: {regex: '^ey'}",
            "hera.yaml:2:98: secret-compared: response.json.errors.access_token is an OAuth "
            "access token: rules may test it only with present, absent, length or format, never "
            "compare it to a value with `regex`",
            id="token-below-errors",
        ),
        pytest.param(
            "response.headers.location: {prefix: 'https://client.example.test/cb?code='}",
            "hera.yaml:2:91: secret-compared: response.headers.location is a redirect target or "
            "location: rules may test it only with present, absent, length or format, never "
            "compare it to a value with `prefix`; test response.location.path or "
            "response.location.query.<name> instead",
            id="location-header",
        ),
        pytest.param(
            "headers.referer: {contains: 'code='}",
            "hera.yaml:2:83: secret-compared: headers.referer is a referring URL (which may carry "
            "codes and tokens): rules may test it only with present, absent, length or format, "
            "never compare it to a value with `contains`",
            id="referer",
        ),
    ],
)
def test_loader_refuses(condition: str, error: str) -> None:
    """A comparison on a secret below an error container or on a whole URL is a load error."""
    assert load_errors(condition) == [error]
