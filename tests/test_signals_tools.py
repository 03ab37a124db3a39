"""Signal facts in the tools: replay sees them unknown, check refuses what cannot start,
and the guide's event lines are what the guide's rule file gives under Django."""

from __future__ import annotations

import json
import re
from pathlib import Path

import django_project
import pytest
from _signals_common import without_ts
from django.test import Client, override_settings

from hera_middleware.cli import main
from hera_middleware.testing import capture_events

django_project.setup()

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
GUIDE = ROOT / "docs" / "writing-rules.md"
CALLBACK = {
    "method": "GET",
    "path": "/accounts/fakeoidc/login/callback/",
    "root_path": "",
    "query": {},
    "request_headers": {},
    "request_body": "",
    "status": 302,
    "response_headers": {"location": "/welcome/"},
    "response_body": "",
    "expected_events": [
        {"event": "social_login_completed", "provider": "fakeoidc", "first_login": None}
    ],
}


def test_replay_sees_signal_facts_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A recording cannot say whether a signal was sent: first_login is null, not false."""
    recording = tmp_path / "callback.jsonl"
    recording.write_text(json.dumps(CALLBACK) + "\n", encoding="utf-8")
    monkeypatch.chdir(EXAMPLES)
    assert main(["replay", "signals.yaml", "--exchanges", str(recording), "--expect"]) == 0
    out = capsys.readouterr().out
    assert '  event social_login_completed {"provider":"fakeoidc","first_login":null}' in out


def test_check_refuses_a_signal_that_cannot_be_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The module's own import failing is reported with its exception, no traceback."""
    (tmp_path / "broken_signals_mod.py").write_text("raise RuntimeError('no database')\n")
    (tmp_path / "hera.yaml").write_text("signals:\n  x: broken_signals_mod.sent\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["check", "hera.yaml"]) == 1
    assert capsys.readouterr().out == (
        "hera.yaml:2:6: signal-import-failed: the signal 'x': importing broken_signals_mod"
        " failed: RuntimeError: no database\n"
        "hera.yaml: 1 problem\n"
    )


def test_the_guide_shows_the_events_its_rule_file_gives() -> None:
    """docs/examples/signals.yaml under the Django middleware gives the guide's two lines."""
    section = GUIDE.read_text(encoding="utf-8").split("## 11. Signals", 1)[1]
    block = re.search(r"differ only by the signal:\n\n```\n(.*?)```", section, re.S)
    assert block is not None
    shown = without_ts([json.loads(line) for line in block.group(1).splitlines()])
    with (
        override_settings(
            ROOT_URLCONF="signals_django_urls",
            HERA_RULES=str(EXAMPLES / "signals.yaml"),
            MIDDLEWARE=["hera_middleware.django.HeraEventsMiddleware"],
        ),
        capture_events() as events,
    ):
        client = Client()
        client.get("/accounts/fakeoidc/login/callback/?new=1")
        client.get("/accounts/fakeoidc/login/callback/")
    assert without_ts(events) == shown
