"""`hera-middleware check`: every problem as file:line:col: code: message, exit 1; else ok."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hera_middleware.cli import main

ROOT = Path(__file__).resolve().parent.parent
BAD = """\
extends: [preset:authlib]
rules:
  - id: pkce-x
    event: pkce_authorise
    match: GET /oauth/authorize
    if: {response.stauts: 302}
    fields: {client_id: form.password}
disable: [authlib-nope]
"""


@pytest.fixture(autouse=True)
def _at_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def test_valid_files_and_presets_are_ok(capsys: pytest.CaptureFixture[str]) -> None:
    """Each valid file or preset gives one `ok` line with its rule count, and exit 0."""
    assert main(["check", "tests/fixtures/tooling/hera.yaml", "preset:authlib"]) == 0
    assert capsys.readouterr().out == (
        "tests/fixtures/tooling/hera.yaml: ok, 16 rules\npreset:authlib: ok, 8 rules\n"
    )


def test_every_problem_of_every_file_is_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All problems come at once, located and hinted, then a count per file; exit 1."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    assert main(["check", str(bad), "tests/fixtures/tooling/hera.yaml"]) == 1
    assert capsys.readouterr().out == (
        f"{bad}:4:12: unknown-event: unknown event 'pkce_authorise'"
        " (hint: did you mean 'pkce_authorize'?)\n"
        f"{bad}:6:10: unknown-fact: 'response.stauts' is no fact"
        " (hint: did you mean 'response.status'?)\n"
        f"{bad}:7:25: secret-field: form.password is a password: rules may test it in `if`"
        " (present, absent, length, format) but never copy it into an event\n"
        f"{bad}:8:11: unknown-rule: no inherited rule has the id 'authlib-nope'\n"
        f"{bad}: 4 problems\n"
        "tests/fixtures/tooling/hera.yaml: ok, 16 rules\n"
    )


def test_paths_below_the_working_directory_are_shown_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Errors name files as the user typed them when they are below the working directory."""
    (tmp_path / "hera.yaml").write_text("rules:\n  - {event: pkce_authorize}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["check", "hera.yaml", "missing.yaml"]) == 1
    assert capsys.readouterr().out == (
        "hera.yaml:2:5: missing-key: a rule needs `match` (METHOD /path) or `route`"
        " (a route name) (hint: for example `match: POST /oauth/token`)\n"
        "hera.yaml:2:5: missing-field: pkce_authorize needs the field 'client_id'"
        " (hint: when the exchange cannot tell it, write `client_id: {value: null}`)\n"
        "hera.yaml: 2 problems\n"
        f"missing.yaml:1:1: file-not-found: no rule file at {tmp_path / 'missing.yaml'}"
        f" (hint: paths in rules= are relative to the working directory ({tmp_path}))\n"
        "missing.yaml: 1 problem\n"
    )


def test_the_console_script_and_python_m_run_the_command() -> None:
    """`hera-middleware` (the console script) and `python -m hera_middleware` both work."""
    script = Path(sys.executable).parent / "hera-middleware"
    for command in ([str(script)], [sys.executable, "-m", "hera_middleware"]):
        done = subprocess.run(
            [*command, "check", "preset:authlib"],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
        assert (done.returncode, done.stdout, done.stderr) == (
            0,
            "preset:authlib: ok, 8 rules\n",
            "",
        )


@pytest.mark.parametrize("command", ["check", "explain", "replay", "report", "schema"])
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`--help` works on every subcommand and exits 0."""
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: hera-middleware {command} ")
