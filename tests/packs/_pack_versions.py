"""Run a pack's tests again under other versions of the library it is written for.

A rule pack names the library versions it is tested with (its README). The suite's
own environment holds the newest; where a library changed its answers across
versions, a pack's test module also calls :func:`run_under` for the oldest supported
one. That installs the requirements once into a directory of their own (``pip install
--target``, kept in ``.venv/hera-versions/`` between runs) and runs the given test
files in a new pytest process whose ``sys.path`` starts with that directory, so the
pinned versions shadow the environment's. The inner run sees ``HERA_PACK_VERSIONS``
(the requirements, space-separated), and :data:`INNER` is true there, so a module
can skip the version test itself.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".venv" / "hera-versions"

#: True inside a run started by :func:`run_under`.
INNER = bool(os.environ.get("HERA_PACK_VERSIONS"))


def install(requirements: list[str]) -> Path:
    """A directory holding ``requirements`` and what they need (installed once)."""
    key = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:16]
    target = CACHE / key
    done = target / ".complete"
    if done.is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [*pip, "--upgrade", "--target", str(target), *requirements],
        check=True,
        timeout=600,
    )
    done.write_text("\n".join(requirements) + "\n")
    return target


def run_under(requirements: list[str], *test_files: Path, timeout: float = 600) -> str:
    """Run ``test_files`` with ``requirements`` first on ``sys.path``; return the output.

    Fails (AssertionError with pytest's output) unless every test there passed and at
    least one ran.
    """
    target = install(requirements)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), env.get("PYTHONPATH")]))
    env["HERA_PACK_VERSIONS"] = " ".join(requirements)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q"]
    command += [str(f) for f in test_files]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"under {' '.join(requirements)}:\n{output}"
    assert " passed" in output, output
    return output
