"""docs/coverage.md is what the pack tests' markers say, and the markers hold.

The markers are collected in a new pytest process (``_coverage_matrix.py --json``: a
``--collect-only`` of the pack tests, so the page never depends on what this run
selected), rendered and compared with the page. Each marker must name a pack folder of
``adapters/`` and a catalog event (field, value), and sit on a test that passed in this
run: ``conftest.py`` records the marked tests' outcomes and runs this module last. When
no marked test was selected, only the page and the markers' names are checked.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _coverage_matrix import (
    COMMAND,
    DOC,
    ROOT,
    Mark,
    mark_problem,
    marks_of,
    packs,
    problems,
    render,
)

if TYPE_CHECKING:
    from conftest import Outcomes

GENERATOR = Path(__file__).with_name("_coverage_matrix.py")


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The marked pack tests, collected afresh (no PYTEST_* options, no Django settings)."""
    out = tmp_path_factory.mktemp("coverage") / "markers.json"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PYTEST_") and k not in {"DJANGO_SETTINGS_MODULE", "HERA_PACK_VERSIONS"}
    }
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"collecting the pack tests failed:\n{done.stdout}{done.stderr}"
    items: list[dict[str, Any]] = json.loads(out.read_text(encoding="utf-8"))
    return items


def test_the_page_is_what_the_markers_say(collected: list[dict[str, Any]]) -> None:
    """docs/coverage.md is generated: any difference means it is out of date."""
    servers = packs()
    expected = render(marks_of(collected, servers), servers)
    actual = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if actual != expected:
        diff = difflib.unified_diff(
            actual.splitlines(), expected.splitlines(), "docs/coverage.md", "markers", lineterm=""
        )
        shown = "\n".join(list(diff)[:60])
        pytest.fail(f"docs/coverage.md is out of date: run `{COMMAND}`\n{shown}", pytrace=False)


def test_every_marker_names_a_pack_and_a_catalog_event(collected: list[dict[str, Any]]) -> None:
    """A marker naming no pack folder, no catalog event or no field of it is refused."""
    assert collected, "no pack test carries a produces or not_possible marker"
    found = problems(collected, packs())
    assert not found, "invalid coverage markers:\n" + "\n".join(found)


def test_every_marked_test_passed(coverage_outcomes: Outcomes) -> None:
    """A marker is only true on a test that passed: setup, call and teardown, in this run."""
    ran = sorted(coverage_outcomes.selected)
    if not ran:
        pytest.skip("no marked pack test was selected in this run: only the page is compared")
    failed = [
        f"{n}: {coverage_outcomes.outcome(n)}" for n in ran if not coverage_outcomes.passed(n)
    ]
    assert not failed, "marked tests that did not pass in this run:\n" + "\n".join(failed)


def _mark(*args: object, **kwargs: object) -> dict[str, Any]:
    return {"kind": "produces", "args": list(args), "kwargs": kwargs}


@pytest.mark.parametrize(
    "mark",
    [
        _mark("no-such-server", "pkce_authorize", via="x"),
        _mark("preset:authlib", "pkce_authorize", via="x"),
        _mark("authlib", "pkce_authorised", via="x"),
        _mark("authlib", "events_dropped", via="x"),
        _mark("authlib", "pkce_failed.method", via="x"),
        _mark("authlib", "pkce_failed.reason=verifier_wrong", via="x"),
        _mark("authlib", "pkce_failed reason", via="x"),
        _mark("authlib", "pkce_authorize", why="x"),
        _mark("authlib", "pkce_authorize", via=" "),
        _mark("authlib", via="x"),
        _mark(["authlib"], "pkce_authorize", via="x"),
        {"kind": "not_possible", "args": ["authlib", "pkce_authorize"], "kwargs": {"via": "x"}},
    ],
    ids=lambda mark: repr([*mark["args"], *mark["kwargs"]]),
)
def test_the_check_refuses_a_wrong_marker(mark: dict[str, Any]) -> None:
    """The name check above can fail: each of these is refused, saying why."""
    assert mark_problem(mark, packs()) is not None


@pytest.mark.parametrize(
    "target",
    [
        "pkce_failed",
        "pkce_failed.client_id",
        "pkce_failed.reason=challenge_invalid",
        "social_login_completed.first_login=true",
        "mfa_challenge_failed.method=recovery_code",
    ],
)
def test_the_check_accepts_catalog_targets(target: str) -> None:
    assert mark_problem(_mark("authlib", target, via="x"), packs()) is None


def test_the_page_tells_produced_limited_impossible_and_uncovered_apart() -> None:
    page = render(
        {
            Mark("produces", "authlib", "pkce_authorize", "a | b"),
            Mark("produces", "authlib", "pkce_failed", "z"),
            Mark("produces", "authlib", "pkce_failed", "y"),
            Mark("not_possible", "authlib", "pkce_failed.reason=challenge_invalid", "w"),
            Mark("not_possible", "authlib", "captcha_failed", "v"),
        },
        ["authlib", "flask-wtf-recaptcha"],
    )
    assert "| `pkce_authorize` | produced | — |" in page
    assert "| `pkce_failed` | produced, with limits | — |" in page
    assert "| `captcha_failed` | not possible | — |" in page
    assert "| `mfa_challenge_failed` | — | — |" in page
    assert "| `pkce_authorize` | produced, from a \\| b |" in page
    assert "| `pkce_failed` | produced, from y; z |" in page
    assert "| `pkce_failed.reason=challenge_invalid` | not possible: w |" in page
    assert page.count("Not covered") == 1
    assert COMMAND in page
