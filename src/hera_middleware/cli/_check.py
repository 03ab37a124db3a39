"""``hera-middleware check FILE...``: validate rule files, for CI and deploy pipelines."""

from __future__ import annotations

import argparse

from ..adapters._signals import resolve_signals
from ..errors import HeraConfigError
from ..rules.loader import load_rules
from ._common import print_problems, shown_path

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Load each file on its own; print ``FILE: ok, N rules`` or every problem."""
    failed = 0
    for spec in args.files:
        name = spec if spec.startswith("preset:") else shown_path(spec)
        try:
            rules = load_rules(spec)
            resolve_signals(rules.signals)  # as the server will at start
        except HeraConfigError as exc:
            failed += 1
            print_problems(exc)
            count = len(exc.problems)
            print(f"{name}: {count} problem{'s' if count != 1 else ''}")
            continue
        print(f"{name}: ok, {len(rules)} rule{'s' if len(rules) != 1 else ''}")
    return 1 if failed else 0
