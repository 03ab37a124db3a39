"""Fixtures the Flask-Security-Too pack tests share (a module may define its own).

``remote``: the fake OAuth provider and Pwned Passwords API on 127.0.0.1, with FST's
range requests sent to it (``_fst_app.pwned_api``); ``_environment``: no ``HERA_*``
variable of the caller's, and around each test the remote's failures switched off and
its identity restored; ``wiring``: each test once per wiring (the Flask extension and
``HeraEventsWSGI``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _fst_app import Remote, pwned_api
from _fst_client import WIRINGS, clean_environment


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    server = Remote().start()
    with pwned_api(server):
        yield server
    server.stop()


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, remote: Remote) -> Iterator[None]:
    clean_environment(monkeypatch)
    remote.reset()
    identity = remote.identity
    yield
    remote.reset()
    remote.identity = identity


@pytest.fixture(params=WIRINGS)
def wiring(request: pytest.FixtureRequest) -> str:
    return str(request.param)
