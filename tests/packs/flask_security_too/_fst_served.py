"""The Flask-Security-Too test app as a real server loads it: ``_fst_served:create()``.

gunicorn imports this module in its worker (``--chdir`` puts this folder on
``sys.path``) and calls ``create()``: the app of ``_fst_app.make_app`` with CSRF
protection on, as a deployed FST has it, and ``preset:flask-security-too`` through the
Flask extension, writing where ``HERA_OUTPUT`` says. The environment names the
database folder (``FST_SERVED_DIR``) and the fake provider / Pwned Passwords server
(``FST_SERVED_REMOTE``, its base URL); the worker's urllib opener sends FST's range
requests there, and the authenticator key of the two-factor user is left in
``totp.key`` in that folder for the test to compute codes from.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from _fst_app import Remote, _PwnedToLoopback, make_app
from flask import Flask

from hera_middleware.flask import HeraEvents

PRESET = "preset:flask-security-too"


class _RemoteAt(Remote):
    """What ``make_app`` reads of a ``Remote`` (its URL, the identity), for a server
    running in another process."""

    def __init__(self, url: str) -> None:  # no server of its own
        self._url = url
        self.identity = "social.user@example.test"

    @property
    def url(self) -> str:
        return self._url


def create() -> Flask:
    """The app, wired and ready to serve (the gunicorn factory)."""
    directory = Path(os.environ["FST_SERVED_DIR"])
    remote = _RemoteAt(os.environ["FST_SERVED_REMOTE"])
    urllib.request.install_opener(urllib.request.build_opener(_PwnedToLoopback(remote.url)))
    app = make_app(
        directory,
        remote,
        WTF_CSRF_ENABLED=True,
        SECURITY_CSRF_IGNORE_UNAUTH_ENDPOINTS=False,
    )
    HeraEvents(app, rules=PRESET)
    (directory / "totp.key").write_text(app.extensions["fst_harness"]["totp"].secret)
    return app
