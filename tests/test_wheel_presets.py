"""The wheel ships the rule packs: ``preset:authlib`` loads from a clean virtualenv.

The test builds the wheel from this checkout (``pip wheel --no-deps``), installs it
with ``pip install --no-deps --no-index`` into a new virtualenv and runs Python there
in isolated mode. The new environment has no access to the checkout or to this
interpreter's packages: only the wheel's own dependencies (orjson, PyYAML,
google-re2) are lent to it, by linking this interpreter's installed copies into a
directory its site-packages points at, so the test needs no network and the
dependency set is exactly what the wheel's metadata asks for (``pip check``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import venv
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from hera_middleware import load_rules

ROOT = Path(__file__).resolve().parents[1]
PACKS = sorted(p.parent.name for p in (ROOT / "adapters").glob("*/rules.yaml"))

CHECK = """
import json, sys
import hera_middleware
from hera_middleware import load_rules
from hera_middleware.rules.presets import available_presets, preset_path

rules = load_rules("preset:authlib")
extended = load_rules(text="extends: [preset:authlib]\\nvars: {oauth: /auth/v2}\\n")
packs = {
    name: {
        "file": str(preset_path(name)),
        "rules": [r.id for r in load_rules("preset:" + name).rules],
    }
    for name in available_presets()
}
print(json.dumps({
    "packs": packs,
    "module": hera_middleware.__file__,
    "presets": available_presets(),
    "authlib_file": str(preset_path("authlib")),
    "authlib_rules": [rule.id for rule in rules.rules],
    "extended_rules": [rule.id for rule in extended.rules],
    "sys_path": sys.path,
}))
"""


def _run(*command: str | Path, timeout: float = 120, **kwargs: object) -> str:
    done = subprocess.run(
        [str(c) for c in command],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,  # type: ignore[arg-type]
    )
    assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _build_wheel(out: Path) -> Path:
    command: list[str | Path] = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q"]
    # Build with this environment's hatchling when it has one (no download); else pip
    # fetches the build backend into an isolated build environment as usual.
    if importlib.util.find_spec("hatchling") is not None:
        command.append("--no-build-isolation")
    _run(*command, "-w", out, ROOT, timeout=180)
    wheels = list(out.glob("hera_middleware-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _requirements(wheel: Path) -> list[Requirement]:
    """The wheel's own dependencies: Requires-Dist without an extra marker."""
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(name).decode("utf-8"))
    found = [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]
    return [r for r in found if r.marker is None or r.marker.evaluate({"extra": ""})]


def _lend(requirements: list[Requirement], target: Path) -> None:
    """Link this interpreter's installed copy of each requirement into ``target``."""
    target.mkdir()
    for requirement in requirements:
        dist = importlib.metadata.distribution(requirement.name)
        assert dist.version in requirement.specifier, (requirement, dist.version)
        tops = {f.parts[0] for f in dist.files or () if f.parts[0] not in ("..", "__pycache__")}
        assert tops, f"{requirement.name} lists no files"
        for top in sorted(tops):
            source = Path(str(dist.locate_file(top)))
            if source.exists() and not (target / top).exists():
                (target / top).symlink_to(source, target_is_directory=source.is_dir())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(tmp_path_factory.mktemp("dist"))


def test_wheel_ships_every_rule_pack(wheel: Path) -> None:
    """Each adapters/<name>/ pack is in the wheel under hera_middleware/presets/,
    byte for byte, with its README."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for pack in PACKS:
            for file in ("rules.yaml", "README.md"):
                inside = f"hera_middleware/presets/{pack}/{file}"
                assert inside in names, f"{inside} missing from {wheel.name}"
                assert archive.read(inside) == (ROOT / "adapters" / pack / file).read_bytes()
    assert "authlib" in PACKS


def test_preset_loads_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    """In a clean virtualenv with only the wheel and its dependencies, the package is
    the installed one, ``load_rules("preset:authlib")`` works, alone and extended, and
    every pack loads as ``preset:<name>`` with the rules of the checkout."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(
        _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    deps = tmp_path / "deps"
    _lend(_requirements(wheel), deps)
    (site / "_lent_dependencies.pth").write_text(f"{deps}\n", encoding="utf-8")

    pip = [python, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    clean_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_", "HERA_"))
    }
    _run(*pip, "install", "--no-deps", "--no-index", "-q", wheel, env=clean_env)
    assert "No broken requirements found" in _run(*pip, "check", env=clean_env)

    out = _run(python, "-I", "-c", CHECK, cwd=tmp_path, env=clean_env)
    found = json.loads(out)
    assert Path(found["module"]).is_relative_to(site / "hera_middleware"), found["module"]
    assert not any(str(ROOT) in entry for entry in found["sys_path"]), found["sys_path"]
    assert (
        Path(found["authlib_file"])
        == site / "hera_middleware" / "presets" / "authlib" / "rules.yaml"
    )
    assert sorted(found["presets"]) == PACKS
    assert found["authlib_rules"][0] == "authlib-pkce-authorize"
    assert found["extended_rules"] == found["authlib_rules"]
    # Every pack loads as preset:<name> from the installed copy, with the checkout's rules.
    for pack in PACKS:
        installed = found["packs"][pack]
        assert Path(installed["file"]) == site / "hera_middleware" / "presets" / pack / "rules.yaml"
        here = load_rules(f"preset:{pack}")
        assert installed["rules"] == [rule.id for rule in here.rules], pack
        assert installed["rules"], pack
