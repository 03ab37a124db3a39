"""Option values in effect, and where each came from.

Precedence: constructor arguments > ``HERA_*`` environment > framework config (Flask
config, Django settings) > rule file > preset > default.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .catalog import domain_problem
from .errors import HeraConfigError, Problem
from .rules.loader import OPTION_DEFAULTS, output_problem
from .rules.model import Rules

__all__ = ["Options", "resolve_options"]


@dataclass(frozen=True)
class Options:
    """The options of one middleware instance; ``origins`` says where each came from."""

    domain: str
    output: str | Callable[[dict[str, Any]], None] | Any
    on_full: str
    max_request_body: int
    max_response_body: int
    origins: Mapping[str, str]


def _check(name: str, value: Any) -> str | None:
    if name == "output":
        if callable(value) or hasattr(value, "write"):
            return None
        return output_problem(value)
    if name == "on_full":
        return None if value in ("drop", "block") else "on_full is 'drop' or 'block'"
    if name == "domain":
        return domain_problem(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return None
    return f"{name} is a number of bytes"


def _from_env(name: str, raw: str) -> Any:
    if name.startswith("max_"):
        try:
            return int(raw)
        except ValueError:
            return raw
    return raw


def resolve_options(
    rules: Rules,
    given: Mapping[str, Any],
    framework: Mapping[str, Any] | None = None,
    framework_name: str = "framework config",
    environ: Mapping[str, str] | None = None,
) -> Options:
    """Combine every layer of options; raise HeraConfigError for a bad value."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    problems: list[Problem] = []
    for name, default in OPTION_DEFAULTS.items():
        env_name = "HERA_" + name.upper()
        if given.get(name) is not None:
            value, origin = given[name], "argument"
        elif env.get(env_name):
            value, origin = _from_env(name, env[env_name]), f"environment {env_name}"
        elif framework is not None and framework.get(env_name) is not None:
            value, origin = framework[env_name], f"{framework_name} {env_name}"
        elif name in rules.options:
            value, origin = rules.options[name]
        else:
            value, origin = default, "default"
        problem = _check(name, value)
        if problem:
            problems.append(Problem(f"<{origin}>", 1, 1, "bad-option", f"{problem}, not {value!r}"))
        values[name] = value
        origins[name] = origin
    if problems:
        raise HeraConfigError(problems)
    return Options(origins=origins, **values)
