"""``preset:django-oauth-toolkit`` against the recorded DOT traffic, through HeraEvents.

Both recordings (the server at the root, and under uvicorn ``--root-path /idp``) are
replayed exactly as ``tests/test_real_servers.py`` replays them, with the pack in
place of the starting-point rule file: every exchange gives its ``expected_events``
(or one of ``also_accepted``), in catalog key order, without a secret of the exchange.
The same exchanges moved under another prefix give the same events once the pack's
``oauth`` variable names it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import hera_middleware

TESTS = Path(__file__).resolve().parents[2]
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

import test_real_servers as real  # noqa: E402  (the replay helpers of the suite)

PACK = "preset:django-oauth-toolkit"
SOURCES = ("django-oauth-toolkit", "django-oauth-toolkit-root-path")
RECORDS = [r for r in real.RECORDS if r.source in SOURCES]


def test_both_recordings_are_there() -> None:
    """Both DOT recordings are read, with their 54 exchanges each."""
    counts = {source: sum(r.source == source for r in RECORDS) for source in SOURCES}
    assert counts == {"django-oauth-toolkit": 54, "django-oauth-toolkit-root-path": 54}


@pytest.mark.produces(
    "django-oauth-toolkit", "pkce_authorize", via="recorded 302 with code, challenge sent"
)
@pytest.mark.produces(
    "django-oauth-toolkit", "pkce_token_exchange", via="recorded 200 with verifier sent"
)
@pytest.mark.produces(
    "django-oauth-toolkit",
    "pkce_failed",
    via="recorded redirect error=invalid_request / 400 error codes + request facts",
)
@pytest.mark.parametrize("record", [pytest.param(r, id=r.id) for r in RECORDS])
async def test_recorded_exchange(record: real.Record) -> None:
    """The pack turns each recorded exchange into exactly its expected events, privately."""
    await real._replay_and_check(record, record.data, PACK)


ELSEWHERE = "extends: [preset:django-oauth-toolkit]\nvars: {oauth: /sso/oauth2}\n"


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(r, id=r.id)
        for r in RECORDS
        if r.data["path"].removeprefix(r.data["root_path"]).startswith("/o/")
    ],
)
async def test_recorded_exchange_under_another_prefix(record: real.Record) -> None:
    """With ``vars: {oauth: ...}`` the pack serves DOT's endpoints included elsewhere."""
    root = record.data["root_path"]
    path = record.data["path"].removeprefix(root).removeprefix("/o")
    data = {**record.data, "path": root + "/sso/oauth2" + path}
    await real._replay_and_check(record, data, hera_middleware.load_rules(text=ELSEWHERE))
