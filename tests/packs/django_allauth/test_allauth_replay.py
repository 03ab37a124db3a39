"""preset:django-allauth against the recorded django-allauth traffic, through the ASGI adapter.

Every exchange of ``real-servers/django-allauth.jsonl`` is replayed as tests/
test_real_servers.py does (raw ASGI messages, the recorded answer); the pack must give
its ``expected_events`` or one of ``also_accepted``, without leaking a secret. A
recording cannot say whether allauth sent its signals: signal facts are unknown there,
so the callbacks the pack decides by a signal give no event (test_real_servers'
SIGNAL_DECIDED); the live tests show their real events.
"""

from __future__ import annotations

import pytest
from test_real_servers import (
    RECORDS,
    Record,
    _replay_and_check,
    recorded_traffic,  # noqa: F401  (autouse: signal facts unknown, as in replay)
)

import hera_middleware

PACK = "django-allauth"
ALLAUTH = [r for r in RECORDS if r.source == "django-allauth"]


def _param(record: Record) -> object:
    return pytest.param(record, id=record.id)


def test_the_recording_is_there() -> None:
    """The recording holds the flows this pack is written for."""
    flows = {r.data["flow"] for r in ALLAUTH}
    assert {"mfa_totp_wrong_code", "social_connect_account", "headless_social_first_login"} <= flows
    assert len(ALLAUTH) == 36


@pytest.mark.not_possible(
    PACK,
    "social_login_completed.first_login",
    why="from HTTP alone: first and returning logins redirect alike (needs user_signed_up)",
)
@pytest.mark.parametrize("record", [_param(r) for r in ALLAUTH])
async def test_recorded_exchange(record: Record) -> None:
    """The pack turns each recorded exchange into exactly its expected events."""
    await _replay_and_check(record, record.data, "preset:django-allauth")


@pytest.mark.parametrize(
    "record",
    [_param(r) for r in ALLAUTH if r.data["path"].startswith("/accounts/")],
)
async def test_prefixes_come_from_vars(record: Record) -> None:
    """Under other prefixes set through `vars:` the same exchanges give the same events."""
    rules = hera_middleware.load_rules(
        text="extends: [preset:django-allauth]\nvars: {accounts: /auth, headless: /api/allauth}\n"
    )
    data = {**record.data, "path": "/auth" + record.data["path"].removeprefix("/accounts")}
    location = data["response_headers"].get("location") or ""
    if location.startswith("/accounts/"):
        headers = {**data["response_headers"], "location": "/auth" + location[len("/accounts") :]}
        data["response_headers"] = headers
    await _replay_and_check(record, data, rules)


def _recorded(flow: str, step: str) -> Record:
    return next(r for r in ALLAUTH if r.data["flow"] == flow and r.data["step"] == step)


@pytest.mark.parametrize(
    ("flow", "step", "typed"),
    [
        pytest.param("mfa_totp_correct_code", "submit_code", "619 484", id="totp-space"),
        pytest.param("mfa_totp_correct_code", "submit_code", "619-484", id="totp-hyphen"),
        pytest.param("mfa_totp_wrong_code", "submit_wrong_code", "000 000", id="totp-wrong"),
    ],
)
async def test_a_code_typed_in_groups_keeps_its_method(flow: str, step: str, typed: str) -> None:
    """allauth drops the separator of a code typed as an app shows it (123 456): the
    method is still read from the digits."""
    record = _recorded(flow, step)
    data = {**record.data, "request_body": {**record.data["request_body"], "code": [typed]}}
    assert record.data["expected_events"][0]["method"] == "totp"
    await _replay_and_check(record, data, "preset:django-allauth")
