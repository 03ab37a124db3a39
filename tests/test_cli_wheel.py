"""The wheel ships the tooling: both JSON Schemas, the console script, the pytest11 plugin."""

from __future__ import annotations

import configparser
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out)]
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-build-isolation")
    subprocess.run([*command, str(ROOT)], check=True, capture_output=True, timeout=180)
    (found,) = out.glob("hera_middleware-*.whl")
    return found


def test_the_wheel_ships_both_schemas_byte_for_byte(wheel: Path) -> None:
    """hera_middleware/schemas/{rules,events}.schema.json are in the wheel as in the tree."""
    with zipfile.ZipFile(wheel) as archive:
        for kind in ("rules", "events"):
            inside = f"hera_middleware/schemas/{kind}.schema.json"
            source = ROOT / "src" / "hera_middleware" / "schemas" / f"{kind}.schema.json"
            assert archive.read(inside) == source.read_bytes()


def test_the_wheel_declares_the_command_and_the_pytest_plugin(wheel: Path) -> None:
    """entry_points.txt names `hera-middleware` and the `pytest11` plugin module."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = archive.read(name).decode()
    entry_points = configparser.ConfigParser()
    entry_points.read_string(text)
    assert dict(entry_points["console_scripts"]) == {"hera-middleware": "hera_middleware.cli:main"}
    assert dict(entry_points["pytest11"]) == {"hera_middleware": "hera_middleware.pytest_plugin"}
