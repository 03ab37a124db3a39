"""Suite-wide: every event a test captures is kept, so one last test can check them all.

``test_every_event_the_suite_captured_validates`` (tests/test_cli_schema.py) runs after
every other test and validates what the suite's captures saw against the events schema.
"""

from __future__ import annotations

import orjson
import pytest

from hera_middleware import _capture

#: Distinct captured events (ts left out), at most LIMIT of them.
CAPTURED: dict[bytes, dict[str, object]] = {}
LIMIT = 50_000
LAST = "test_every_event_the_suite_captured_validates"

_real_publish = _capture.publish


def _publish(event: dict[str, object]) -> None:
    _real_publish(event)
    if len(CAPTURED) < LIMIT:
        key = orjson.dumps({k: v for k, v in event.items() if k != "ts"}, default=repr)
        CAPTURED.setdefault(key, dict(event))


@pytest.fixture(scope="session")
def suite_captured_events() -> dict[bytes, dict[str, object]]:
    """The distinct events captured by the tests that ran so far."""
    return CAPTURED


def pytest_configure(config: pytest.Config) -> None:
    _capture.publish = _publish


def pytest_unconfigure(config: pytest.Config) -> None:
    _capture.publish = _real_publish


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.name == LAST]
    items[:] = [item for item in items if item.name != LAST] + last
