"""docs/writing-rules.md shows real output: each ```console block is run and compared."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from hera_middleware.cli import main

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "writing-rules.md"
EXAMPLES = ROOT / "docs" / "examples"
BLOCK = re.compile(r"^```console\n\$ (?P<command>[^\n]*)\n(?P<output>.*?)^```$", re.M | re.S)
BLOCKS = [(m["command"], m["output"]) for m in BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))]


def test_the_guide_shows_every_subcommand() -> None:
    """check, explain, replay (--explain, --expect), report and its formats all appear."""
    commands = " | ".join(command for command, _ in BLOCKS)
    for part in ("check ", "explain ", "replay ", "--explain", "--expect", "report "):
        assert part in commands
    assert "--format markdown" in commands
    assert "--format json" in commands


@pytest.mark.parametrize(("command", "output"), [pytest.param(*b, id=b[0]) for b in BLOCKS])
def test_console_block_is_the_real_output(
    command: str,
    output: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Running the command in docs/examples prints exactly what the guide shows."""
    for name in ("HERA_RULES", "HERA_DOMAIN", "HERA_OUTPUT", "HERA_ON_FULL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HERA_MAX_REQUEST_BODY", raising=False)
    monkeypatch.delenv("HERA_MAX_RESPONSE_BODY", raising=False)
    monkeypatch.chdir(EXAMPLES)
    argv = shlex.split(command)
    assert argv[0] == "hera-middleware"
    main(argv[1:])
    assert capsys.readouterr().out == output


def test_the_example_rule_files_are_the_ones_the_guide_quotes() -> None:
    """The mfa-failed rule shown in the guide is the one in docs/examples/hera.yaml."""
    text = GUIDE.read_text(encoding="utf-8")
    quoted = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert quoted in (EXAMPLES / "hera.yaml").read_text(encoding="utf-8")
