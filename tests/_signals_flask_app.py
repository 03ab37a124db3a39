"""A Flask app whose views send blinker signals, for the signal-fact tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from blinker import Namespace, Signal
from flask import Flask, Response

signals = Namespace()
#: Sent by the login view, with keyword arguments of every kind.
logged_in = signals.signal("logged-in")
#: Sent nowhere by a request: only at import, from the test, or from a background thread.
elsewhere = Signal()
#: Not a signal: a rule file naming it is refused.
not_a_signal = "logged-in"
elsewhere.send(None, provider="import-time")  # nothing is connected yet, and no request runs

#: Two interleaved requests wait here: one sends logged_in, the other must not see it.
barrier: threading.Barrier | None = None


class Upper(str):
    """A str subclass (as template engines' safe strings are)."""


def create_app() -> Flask:
    """The app: /login sends logged_in, /quiet sends nothing, the rest probe the edges."""
    app = Flask(__name__)

    @app.post("/login")
    def login() -> str:
        logged_in.send(
            app,
            provider="github",
            attempts=2,
            ratio=0.5,
            remember=True,
            method=Upper("totp"),
            user=object(),
            scopes=["openid", "email"],
        )
        return "welcome"

    @app.post("/quiet")
    def quiet() -> str:
        return "nothing sent"

    @app.post("/twice")
    def twice() -> str:
        logged_in.send(app, provider="first", attempts=1)
        logged_in.send(app, provider="second")
        return "two sends"

    @app.post("/objects")
    def objects() -> str:
        logged_in.send(app, provider=["github"], attempts=object(), remember=None)
        return "objects only"

    @app.post("/background")
    def background() -> str:
        worker = threading.Thread(target=lambda: elsewhere.send(None, provider="thread"))
        worker.start()
        worker.join(timeout=10)
        return "sent from a thread"

    @app.post("/stream")
    def stream() -> Response:
        def body() -> Iterator[str]:
            yield "first chunk "
            logged_in.send(app, provider="streamed")
            yield "last chunk"

        response = Response(body())
        response.call_on_close(lambda: elsewhere.send(app, provider="after"))
        return response

    @app.post("/wait")
    def wait() -> str:
        assert barrier is not None
        barrier.wait(timeout=10)  # both requests are inside their views now
        barrier.wait(timeout=10)  # the other request has sent its signal
        return "waited"

    @app.post("/send-and-wait")
    def send_and_wait() -> str:
        assert barrier is not None
        barrier.wait(timeout=10)
        logged_in.send(app, provider="concurrent")
        barrier.wait(timeout=10)
        return "sent"

    return app


def receivers(signal: Any) -> int:
    """How many receivers a blinker signal has."""
    return len(signal.receivers)
