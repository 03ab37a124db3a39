"""What each rule pack leaves out because its library has no such feature.

The coverage matrix (docs/coverage.md) shows these cells as *not possible*: each case
checks that the pack indeed has no rule for the event, so adding one without a test
that shows it produced fails here.
"""

from __future__ import annotations

import pytest

from hera_middleware import load_rules

PKCE = ("pkce_authorize", "pkce_token_exchange", "pkce_failed")
SOCIAL = ("social_login_initiated", "social_login_completed", "social_link_initiated")
MFA = ("mfa_challenge_displayed", "mfa_challenge_succeeded", "mfa_challenge_failed")
CAPTCHA = ("captcha_displayed", "captcha_succeeded", "captcha_failed")
BREACH = ("breach_check_passed", "breach_check_failed")

#: pack -> (events, why the library cannot produce them)
SCOPE: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "authlib": [
        (
            SOCIAL,
            "the pack is for Authlib's authorization server; Authlib's OAuth client leaves"
            " the login routes to the app (rules of your own, as examples/flask_app has)",
        ),
        (MFA, "Authlib has no multi-factor step"),
        (CAPTCHA, "Authlib has no captcha"),
        (BREACH, "Authlib checks no passwords"),
    ],
    "django-oauth-toolkit": [
        (SOCIAL, "django-oauth-toolkit is an OAuth provider: it signs nobody in elsewhere"),
        (MFA, "django-oauth-toolkit has no multi-factor step (sign-in is Django's)"),
        (CAPTCHA, "django-oauth-toolkit has no captcha"),
        (BREACH, "django-oauth-toolkit checks no passwords"),
    ],
    "django-allauth": [
        (CAPTCHA, "allauth has no captcha of its own (it comes from add-ons)"),
        (BREACH, "allauth has no breached-password check (Django's validators have none)"),
    ],
    "flask-security-too": [
        (PKCE, "Flask-Security-Too is no OAuth authorization server"),
        (
            ("social_link_initiated",),
            "Flask-Security-Too's OAuth glue signs in existing users only: no account linking",
        ),
        (CAPTCHA, "Flask-Security-Too has no captcha: preset:flask-wtf-recaptcha covers its forms"),
    ],
    "flask-wtf-recaptcha": [
        (PKCE, "a form field: no OAuth endpoints"),
        (SOCIAL, "a form field: no social login"),
        (MFA, "a form field: no multi-factor step"),
        (BREACH, "a form field: no password check"),
    ],
}

CASES = [
    pytest.param(
        pack,
        event,
        id=f"{pack}-{event}",
        marks=pytest.mark.not_possible(pack, event, why=why),
    )
    for pack, groups in SCOPE.items()
    for events, why in groups
    for event in events
]


@pytest.mark.parametrize(("pack", "event"), CASES)
def test_the_pack_has_no_rule_for_it(pack: str, event: str) -> None:
    emitted = {rule.event.name for rule in load_rules(f"preset:{pack}").rules}
    assert emitted, pack
    assert event not in emitted
