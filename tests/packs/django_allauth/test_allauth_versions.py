"""The live allauth tests again under the oldest allauth the pack supports: 64.0.0.

allauth changed a few answers between 64.0 and 65.22, none that the rules read: from
65.0 the login page redirects to a pending MFA stage (64 renders the login form again);
from 65.14 the social login error page answers 401 (200 before). The server-rendered
MFA form, the headless JSON (the pending ``mfa_authenticate`` flow, ``incorrect_code``),
the recovery codes (8 digits), the provider redirects and callbacks and the two
signals are the same. This runs ``test_allauth_live.py`` in a pytest process whose
``sys.path`` starts with allauth 64.0.0 on Django 4.2 LTS (fido2 1.x: allauth before
65.8.1 does not start with fido2 2), servers included, under uvicorn only; inside
that run this test skips itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/packs
from _pack_versions import INNER, run_under  # noqa: E402

OLDEST = ["django-allauth==64.0.0", "fido2<2", "Django>=4.2,<4.3"]


@pytest.mark.skipif(INNER, reason="already inside the run under the oldest versions")
def test_live_flows_under_the_oldest_version() -> None:
    """Every live flow gives the same events under allauth 64.0.0 / Django 4.2."""
    output = run_under(OLDEST, HERE / "test_allauth_live.py", timeout=300)
    assert " failed" not in output
    assert "skipped" not in output, output
    # test_allauth_live.test_servers_run_the_versions_asked_for checked the servers.
