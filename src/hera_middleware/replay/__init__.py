"""Replay recorded HTTP exchanges through the real ASGI adapter and a rule file.

Recordings are HAR 1.2 exports (a browser's network panel, "save all as HAR with
content") or the JSON-lines exchange format (one exchange per line, see
``docs/writing-rules.md``). Each exchange becomes raw ASGI messages run through
:class:`~hera_middleware.HeraEvents`, so what replay says is what the middleware
would emit for that traffic::

    from hera_middleware.replay import Replayer, read_recordings

    recordings = list(read_recordings("login.har"))
    for outcome in Replayer("hera.yaml", recordings).run_all(recordings):
        for fired in outcome.fired:
            print(fired.rule.id, fired.event)
"""

from __future__ import annotations

from ._formats import Recorded, ReplayError, read_exchanges, read_har, read_recordings
from ._runner import Fired, Outcome, Replayer
from ._why import NearMiss, near_misses

__all__ = [
    "Fired",
    "NearMiss",
    "Outcome",
    "Recorded",
    "ReplayError",
    "Replayer",
    "near_misses",
    "read_exchanges",
    "read_har",
    "read_recordings",
]
