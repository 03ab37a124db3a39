"""The public API: what `__all__` promises imports, and nothing private leaks."""

from __future__ import annotations

import importlib

import pytest

import hera_middleware

PUBLIC_MODULES = ["hera_middleware", "hera_middleware.flask", "hera_middleware.testing"]


def test_top_level_names() -> None:
    """The documented names are exported from the package."""
    assert hera_middleware.__all__ == [
        "CATALOG",
        "EventType",
        "HeraConfigError",
        "HeraEvents",
        "HeraEventsWSGI",
        "Problem",
        "Rule",
        "Rules",
        "declare_event",
        "emit_event",
        "flush",
        "load_rules",
        "stats",
    ]


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_all_names_import_and_none_is_private(module: str) -> None:
    """Every name in __all__ exists and none starts with an underscore."""
    mod = importlib.import_module(module)
    for name in mod.__all__:
        assert not name.startswith("_")
        assert getattr(mod, name) is not None


def test_catalog_has_the_fourteen_documented_events_in_order() -> None:
    """The catalog is the specification's, fields in the documented order."""
    assert [(e.name, e.fields) for e in hera_middleware.CATALOG.values()] == [
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
    ]
