"""The recorded Flask-Security-Too traffic, replayed through the real ASGI adapter and the pack.

The same replay as ``tests/test_real_servers.py`` (its helpers are reused), with
``preset:flask-security-too`` instead of the hand-written rule file: every exchange
gives exactly its ``expected_events`` (or an ``also_accepted`` list), without secrets;
and again with every path moved under a ``SECURITY_URL_PREFIX`` set through ``vars:``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import hera_middleware

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for the replay helpers
from _fst_client import PRESET
from test_real_servers import RECORDS, Record, _replay_and_check

FST = [pytest.param(r, id=r.id) for r in RECORDS if r.source == "flask-security-too"]

PREFIXED = """
extends: [preset:flask-security-too]
vars:
  login: /auth/login
  tf_validate: /auth/tf-validate
  register: /auth/register
  change: /auth/change
  oauth_start: /auth/login/oauthstart
  oauth_response: /auth/login/oauthresponse
"""


def test_the_recording_is_there() -> None:
    """The recording holds the flows the pack is for."""
    flows = {r.values[0].data["flow"] for r in FST}  # type: ignore[union-attr]
    assert {
        "tf_totp_wrong_code",
        "register_breached_password_json",
        "oauth_provider_denied",
    } <= flows
    assert len(FST) == 36


@pytest.mark.parametrize("record", FST)
async def test_recorded_exchange(record: Record) -> None:
    """The pack turns each recorded exchange into exactly its expected events, privately."""
    await _replay_and_check(record, record.data, PRESET)


@pytest.mark.parametrize("record", FST)
async def test_recorded_exchange_under_a_prefix(record: Record) -> None:
    """With ``SECURITY_URL_PREFIX = "/auth"`` and the pack's vars set to match, the same
    events (redirect targets move with the prefix)."""
    data = dict(record.data)
    data["path"] = "/auth" + data["path"]
    headers = dict(data["response_headers"])
    location = headers.get("location")
    if location and location.startswith("/"):
        headers["location"] = "/auth" + location if location != "/" else "/"
    data["response_headers"] = headers
    await _replay_and_check(record, data, hera_middleware.load_rules(text=PREFIXED))
