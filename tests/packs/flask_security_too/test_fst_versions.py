"""The pack's tests again under the oldest Flask-Security-Too it supports (5.4).

FST changed its answers within 5.x: 5.5 moved two-factor setup validation from
``/tf-validate`` to ``/tf-setup`` and renamed the form containers (``id="code"`` became
``id="code-ctr"``); JSON registration checks ``password_confirm`` only from 5.5 on; the
catalogs were reworded. The rules avoid all of these; this runs the two-factor, breach,
translated, signal and gunicorn tests with FST 5.4.3 first on ``sys.path`` (the gunicorn
worker inherits it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/packs
from _pack_versions import INNER, run_under

HERE = Path(__file__).parent
OLDEST = ["flask-security-too[fsqla,mfa]==5.4.3"]


@pytest.mark.skipif(INNER, reason="this is the run under the other version")
def test_under_the_oldest_supported_version() -> None:
    """Two-factor, breach, translated, signal and gunicorn tests pass with FST 5.4.3."""
    files = [
        "test_fst_mfa.py",
        "test_fst_breach.py",
        "test_fst_translated.py",
        "test_fst_signals.py",
        "test_fst_served.py",
    ]
    output = run_under(OLDEST, *(HERE / name for name in files), timeout=300)
    assert " failed" not in output
    assert "skipped" not in output.replace("1 skipped", "")  # only this test skips there
