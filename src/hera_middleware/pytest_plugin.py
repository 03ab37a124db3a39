"""The pytest plugin of hera-middleware: the ``hera_events`` fixture.

Installed with the package and registered through the ``pytest11`` entry point, so a
test of your own server only names the fixture::

    def test_token_exchange_is_counted(client, hera_events):
        client.post("/oauth/token", data={...})
        hera_events.assert_events(
            [{"event": "pkce_token_exchange", "client_id": "web"}]
        )
        assert hera_events.stats["fields_nulled"] == 0

The fixture sees every event emitted in the test process while the test runs —
from any adapter (ASGI, WSGI, Flask, Django) or ``emit_event``, whatever the
output — exactly as it was serialized; events still reach their output too. Run
``pytest -p no:hera_middleware`` to turn the plugin off.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest

from . import _stats
from .testing import capture_events

__all__ = ["HeraEventsCapture", "hera_events"]

_ENVELOPE = ("type", "domain")


class HeraEventsCapture:
    """The events of one test, and helpers to check them (what ``hera_events`` gives).

    ``events`` is the list of event dicts, ``ts`` included, in the order they were
    emitted; it keeps growing while the test runs.
    """

    def __init__(self, events: list[dict[str, object]], before: Mapping[str, int]) -> None:
        self.events = events
        self._before = dict(before)

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[dict[str, object]]:
        return iter(self.events)

    def named(self, *names: str) -> list[dict[str, object]]:
        """The events whose ``event`` is one of ``names``, in order."""
        return [e for e in self.events if e.get("event") in names]

    @property
    def stats(self) -> dict[str, int]:
        """The :func:`hera_middleware.stats` counters this test added (now minus at start)."""
        now = _stats.snapshot()
        return {key: now[key] - self._before.get(key, 0) for key in now}

    def clear(self) -> None:
        """Forget the events so far (counters are not reset)."""
        del self.events[:]

    def assert_events(self, expected: Iterable[Mapping[str, Any]], *, ordered: bool = True) -> None:
        """Assert that the test emitted exactly ``expected``.

        Each expected dict is compared with an event without its ``ts``; ``type`` and
        ``domain`` are compared only when the expected dict has them, so
        ``{"event": "pkce_authorize", "client_id": "web"}`` is enough. Every other key
        must be there with an equal value, and no other key may be. With
        ``ordered=False`` the order of events does not matter.

        Raises:
            AssertionError: listing the expected and the emitted events.
        """
        __tracebackhide__ = True  # a failure points at the user's test, not at this helper
        wanted = [dict(e) for e in expected]
        got = [self._comparable(event, want) for event, want in _pairs(self.events, wanted)]
        if ordered:
            ok = got == wanted
        else:
            ok = len(got) == len(wanted) and _same_items(self.events, wanted, self._comparable)
        if not ok:
            raise AssertionError(_difference(wanted, self.events))

    @staticmethod
    def _comparable(event: Mapping[str, object], want: Mapping[str, Any]) -> dict[str, object]:
        return {k: v for k, v in event.items() if k != "ts" and (k not in _ENVELOPE or k in want)}


def _pairs(
    events: list[dict[str, object]], wanted: list[dict[str, Any]]
) -> Iterator[tuple[dict[str, object], dict[str, Any]]]:
    for i, event in enumerate(events):
        yield event, wanted[i] if i < len(wanted) else {}


def _same_items(events: list[dict[str, object]], wanted: list[dict[str, Any]], view: Any) -> bool:
    left = list(wanted)
    for event in events:
        for i, want in enumerate(left):
            if view(event, want) == want:
                del left[i]
                break
        else:
            return False
    return not left


def _difference(wanted: list[dict[str, Any]], events: list[dict[str, object]]) -> str:
    lines = [f"hera_events: expected {len(wanted)} event(s), got {len(events)}"]
    lines += ["expected:", *[f"  {w!r}" for w in wanted], "emitted (ts left out):"]
    lines += [f"  { ({k: v for k, v in e.items() if k != 'ts'})!r}" for e in events]
    return "\n".join(lines)


@pytest.fixture
def hera_events() -> Iterator[HeraEventsCapture]:
    """The hera-middleware events emitted during this test (see :class:`HeraEventsCapture`)."""
    before = _stats.snapshot()
    with capture_events() as events:
        yield HeraEventsCapture(events, before)
