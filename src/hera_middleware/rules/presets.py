"""Rule packs shipped with the package, loadable as ``preset:<name>``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["available_presets", "preset_path"]

_PACKAGE = Path(__file__).resolve().parent.parent
# In a wheel the packs live in hera_middleware/presets; in a source checkout, adapters/.
_ROOTS = (_PACKAGE / "presets", _PACKAGE.parent.parent / "adapters")


def _roots() -> list[Path]:
    return [root for root in _ROOTS if root.is_dir()]


def available_presets() -> list[str]:
    """Names of every rule pack found."""
    names = {p.parent.name for root in _roots() for p in root.glob("*/rules.yaml")}
    return sorted(names)


def preset_path(name: str) -> Path | None:
    """The rule file of the pack ``name``, or None when there is none."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    for root in _roots():
        candidate = root / name / "rules.yaml"
        if candidate.is_file():
            return candidate
    return None
