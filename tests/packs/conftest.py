"""The pack tests' side of the coverage matrix (docs/coverage.md, ``_coverage_matrix.py``).

For every selected test carrying a ``produces`` or ``not_possible`` marker, the outcome
of its setup, call and teardown is recorded, so ``test_coverage_matrix.py`` (moved to the
end of the run) can check that each marker sits on a test that passed. The recorder is
a plugin of its own, registered when this file loads, so it also sees the marked tests
outside this folder (tests/test_authlib_preset.py).
"""

from __future__ import annotations

import pytest

KINDS = ("produces", "not_possible")
PHASES = ("setup", "call", "teardown")
PLUGIN = "hera-pack-coverage-outcomes"
LAST_FILE = "test_coverage_matrix.py"


class Outcomes:
    """The marked tests selected in this run and what each phase of them gave."""

    def __init__(self) -> None:
        self.selected: set[str] = set()
        self.phases: dict[str, dict[str, str]] = {}

    def passed(self, nodeid: str) -> bool:
        """Whether the test's setup, call and teardown all passed in this run."""
        got = self.phases.get(nodeid, {})
        return all(got.get(phase) == "passed" for phase in PHASES)

    def outcome(self, nodeid: str) -> str:
        """What happened to the test, phase by phase (``not run`` when nothing did)."""
        got = self.phases.get(nodeid)
        if not got:
            return "not run"
        return ", ".join(f"{phase} {got[phase]}" for phase in PHASES if phase in got)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.selected = {
            item.nodeid
            for item in session.items
            if any(True for kind in KINDS for _ in item.iter_markers(kind))
        }

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.nodeid in self.selected:
            self.phases.setdefault(report.nodeid, {})[report.when] = report.outcome


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin(PLUGIN):
        config.pluginmanager.register(Outcomes(), PLUGIN)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The matrix checks run after every marked test (the suite's own last test stays last)."""
    last = [item for item in items if item.path.name == LAST_FILE]
    items[:] = [item for item in items if item.path.name != LAST_FILE] + last


@pytest.fixture(scope="session")
def coverage_outcomes(pytestconfig: pytest.Config) -> Outcomes:
    """The outcomes of the marked tests that ran so far in this session."""
    outcomes = pytestconfig.pluginmanager.get_plugin(PLUGIN)
    assert isinstance(outcomes, Outcomes)
    return outcomes
