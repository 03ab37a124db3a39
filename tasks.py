#!/usr/bin/env python3
"""Set up a virtualenv and run a task: ``python3 tasks.py demo`` or ``python3 tasks.py test``.

``python3 tasks.py demo`` runs the FastAPI example, ``python3 tasks.py demo flask`` the
Flask one on Authlib. ``python3 tasks.py coverage`` rewrites docs/coverage.md from the
rule packs' tests.

Only the Python standard library is needed to start; everything else is installed
into ``.venv`` beside this file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def run(*args: str | Path) -> None:
    print("+", " ".join(str(a) for a in args), file=sys.stderr, flush=True)
    subprocess.run([str(a) for a in args], cwd=ROOT, check=True)


def setup(extra: str) -> None:
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    marker = VENV / f".installed-{extra}"
    stamp = str((ROOT / "pyproject.toml").stat().st_mtime)
    if marker.exists() and marker.read_text() == stamp:
        return
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    run(PY, "-m", "pip", "install", "--quiet", "-e", f".[{extra}]")
    marker.write_text(stamp)


#: ``python3 tasks.py demo [NAME]``: the example each name runs (the first is the default).
DEMOS = {"fastapi": "fastapi_app", "flask": "flask_app"}


def demo() -> None:
    name = sys.argv[2] if len(sys.argv) > 2 else next(iter(DEMOS))
    if name not in DEMOS or len(sys.argv) > 3:
        print(f"usage: python3 tasks.py demo [{'|'.join(DEMOS)}]", file=sys.stderr)
        sys.exit(2)
    setup("examples")
    run(PY, ROOT / "examples" / DEMOS[name] / "demo.py")


def test() -> None:
    setup("test")
    checked = ("src", "tests", "examples", "benchmarks", "tasks.py")
    paths = [p for p in checked if (ROOT / p).exists()]
    run(BIN / "ruff", "check", *paths)
    run(BIN / "ruff", "format", "--check", *paths)
    run(BIN / "mypy", "src")
    run(PY, "-m", "pytest", "-p", "no:cacheprovider", *sys.argv[2:])


def coverage() -> None:
    """Rewrite docs/coverage.md from the pack tests' markers (collected, not run)."""
    setup("test")
    run(PY, ROOT / "tests" / "packs" / "_coverage_matrix.py")


TASKS = {"demo": demo, "test": test, "coverage": coverage}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        usage = (
            f"python3 tasks.py demo [{'|'.join(DEMOS)}] | python3 tasks.py test [pytest args]"
            " | python3 tasks.py coverage"
        )
        print(f"usage: {usage}", file=sys.stderr)
        sys.exit(2)
    try:
        TASKS[sys.argv[1]]()
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode or 1)
