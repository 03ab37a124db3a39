"""The live DOT tests again under the oldest supported versions: DOT 2.4 on oauthlib 3.2.

oauthlib 3.2.2 and 4.0 (and DOT 2.4 and 3.4) give the same PKCE answers: the same
errors, status codes and descriptions, in the same order of checks (4.0 compares
challenges in constant time; DOT 3.4 adds the opt-in refusal of ``plain``, tested by
``test_dot_live.py`` on the newest only). This runs ``test_dot_live.py`` in a pytest
process whose ``sys.path`` starts with the old versions (Django 4.2 LTS, which DOT 2.4
supports), servers included; inside that run this test skips itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from _pack_versions import INNER, run_under  # noqa: E402

OLDEST = ["django-oauth-toolkit==2.4.0", "oauthlib==3.2.2", "Django>=4.2,<4.3"]


@pytest.mark.skipif(INNER, reason="already inside the run under the oldest versions")
def test_live_flows_under_the_oldest_versions() -> None:
    """Every live flow gives the same events under DOT 2.4.0 / oauthlib 3.2.2 / Django 4.2."""
    output = run_under(OLDEST, HERE / "test_dot_live.py")
    assert " failed" not in output
    # test_dot_live.test_servers_run_the_versions_asked_for checked the servers' versions.
    assert " 1 skipped" in output, output  # the plain refusal, absent before DOT 3.4
