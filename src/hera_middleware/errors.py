"""The one error type of hera-middleware: a configuration problem, located in its file."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["HeraConfigError", "Problem", "did_you_mean"]


@dataclass(frozen=True)
class Problem:
    """One problem in a rule file or in rule objects.

    ``file`` is the absolute path of the file (or ``<text>``, or the Python file that
    built the rule object), ``line`` and ``col`` are 1-based, ``code`` is stable
    (for example ``unknown-key``), ``keys`` is the path of keys to the bad node.
    """

    file: str
    line: int
    col: int
    code: str
    message: str
    hint: str | None = None
    keys: tuple[str | int, ...] = ()

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.code}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class HeraConfigError(ValueError):
    """A rule file, rule object or option is wrong; the app must not serve with it.

    ``problems`` holds every problem found, in file order; ``str()`` gives one
    ``file:line:col: code: message`` line for each.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """Return ``"did you mean 'x'?"`` for the closest of ``choices``, or None."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
