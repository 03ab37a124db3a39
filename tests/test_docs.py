"""The rule files shown in the documentation load as they are written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hera_middleware import load_rules

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    ROOT / "README.md",
    *sorted(ROOT.glob("adapters/*/README.md")),
    *sorted(ROOT.glob("examples/*/README.md")),
]
TOP = re.compile(r"^(domain|output|extends|vars|rules|events|allow|disable):", re.MULTILINE)


def rule_files() -> list[object]:
    """Every ```yaml block of the docs that is a whole rule file (starts with a top key)."""
    found: list[object] = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", text, re.DOTALL)):
            first = next(
                (line for line in block.splitlines() if line.strip() and not line.startswith("#")),
                "",
            )
            if TOP.match(first):
                found.append(pytest.param(block, id=f"{doc.relative_to(ROOT)}-{i}"))
    return found


@pytest.mark.parametrize("text", rule_files())
def test_documented_rule_files_load(text: str) -> None:
    """A user copying a rule file from the docs gets one that loads, with its rules."""
    rules = load_rules(text=text, filename="doc.yaml")
    written = set(re.findall(r"event: ([a-z_]+)", text))
    assert written <= {rule.event.name for rule in rules}


def test_the_docs_show_rule_files() -> None:
    """The collection above is not empty (the README shows at least two rule files)."""
    assert len(rule_files()) >= 2
