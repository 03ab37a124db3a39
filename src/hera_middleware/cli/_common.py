"""What the subcommands share: showing paths and rule origins, loading rules."""

from __future__ import annotations

from pathlib import Path

from ..errors import HeraConfigError, Problem
from ..rules.presets import available_presets, preset_path

__all__ = ["format_problem", "print_problems", "shown_origin", "shown_path"]


def shown_path(file: str) -> str:
    """A preset's file as ``preset:<name>``; a file below the working directory relative."""
    for name in available_presets():
        path = preset_path(name)
        if path is not None and str(path) == file:
            return f"preset:{name}"
    try:
        relative = Path(file).relative_to(Path.cwd())
    except ValueError:
        return file
    return str(relative) if not str(relative).startswith("..") else file


def shown_origin(origin: str) -> str:
    """``/abs/hera.yaml:12`` as ``hera.yaml:12``, a preset's as ``preset:authlib:12``."""
    file, sep, line = origin.rpartition(":")
    if not sep or not line.isdigit():
        return shown_path(origin)
    return f"{shown_path(file)}:{line}"


def format_problem(problem: Problem) -> str:
    """``file:line:col: code: message (hint: ...)``, the file shown as :func:`shown_path`."""
    text = f"{shown_path(problem.file)}:{problem.line}:{problem.col}: {problem.code}: "
    text += problem.message
    return text + (f" (hint: {problem.hint})" if problem.hint else "")


def print_problems(error: HeraConfigError) -> None:
    """Each problem on its own line of stdout, as :func:`format_problem` writes it."""
    for problem in error.problems:
        print(format_problem(problem))
