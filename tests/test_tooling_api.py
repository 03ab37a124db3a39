"""The tooling's public modules: what `__all__` promises imports, and nothing private leaks."""

from __future__ import annotations

import importlib

import pytest

MODULES = {
    "hera_middleware.cli": ["main"],
    "hera_middleware.replay": [
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
    ],
    "hera_middleware.pytest_plugin": ["HeraEventsCapture", "hera_events"],
    "hera_middleware.record": ["Recorder", "RecordingRuleSet", "mask"],
}


@pytest.mark.parametrize(("module", "names"), list(MODULES.items()))
def test_all_is_the_documented_api(module: str, names: list[str]) -> None:
    """Each tooling module exports exactly its documented names, none private."""
    mod = importlib.import_module(module)
    assert mod.__all__ == names
    for name in names:
        assert getattr(mod, name) is not None
