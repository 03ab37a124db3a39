"""The reCAPTCHA pack's tests again under the oldest Flask-WTF it supports, 1.1.2.

Flask-WTF changed its answers in 1.3 (the widget's markup: an ``id`` and forwarded
attributes; ``RECAPTCHA_ENABLED``), so the plain-form and Flask-Security tests run once
more in a pytest process where Flask-WTF 1.1.2 shadows the environment's (installed
without dependencies: Flask, WTForms and Flask-Security-Too stay the suite's). 1.1.2 is
the oldest that imports on Werkzeug 3 (1.1.1 still uses ``werkzeug.urls.url_encode``)
and the oldest Flask-Security-Too 5.9 accepts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _pack_versions import INNER, run_under  # noqa: E402

OLDEST = ["--no-deps", "flask-wtf==1.1.2"]


@pytest.mark.skipif(INNER, reason="this is the run under the older version")
def test_pack_under_flask_wtf_1_1_2() -> None:
    """Every plain-form and Flask-Security flow gives the same events under Flask-WTF 1.1.2."""
    output = run_under(
        OLDEST, HERE / "test_wtf_plain_form.py", HERE / "test_wtf_security.py", timeout=300
    )
    assert " failed" not in output
    assert "skipped" not in output, output
