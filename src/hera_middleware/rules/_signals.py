"""The ``signals:`` section of a rule file, and the ``signal.*`` facts rules may use.

A declaration names a framework signal by import path and the keyword arguments of
its sends to keep as facts. Nothing is imported here: the adapters resolve the paths
when they start (``hera_middleware.adapters._signals``), ``check`` resolves them too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .. import policy
from ..errors import Problem, did_you_mean
from ._yaml import Node

__all__ = ["SIGNAL_KEYS", "SignalSpec", "read_signals", "signal_fact_problem"]

SIGNAL_KEYS = ("signal", "keep")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_EXAMPLE = "for example `user_signed_up: allauth.account.signals.user_signed_up`"


@dataclass(frozen=True)
class SignalSpec:
    """One declared signal: its fact name, import path, kept arguments, and position."""

    name: str
    path: str
    keep: tuple[str, ...]
    at: tuple[str, int, int]


def read_signals(node: Node, problems: list[Problem]) -> dict[str, SignalSpec]:
    """The declarations of one file's ``signals:`` mapping; problems are appended."""
    if not isinstance(node.value, dict):
        problems.append(node.at("bad-value", "`signals` maps names to import paths", _EXAMPLE))
        return {}
    out: dict[str, SignalSpec] = {}
    for name, value in node.value.items():
        if not _NAME.fullmatch(name):
            problems.append(
                node.key_at(
                    name,
                    "bad-signal-name",
                    f"{name!r} is no signal name (letters, digits and '_')",
                    "the name is what rules test: `signal.<name>: present`",
                )
            )
            continue
        spec = _one(name, value, problems)
        if spec is not None:
            out[name] = spec
    return out


def _one(name: str, value: Node, problems: list[Problem]) -> SignalSpec | None:
    path_node: Node | None = value
    keep: list[str] = []
    ok = True
    if isinstance(value.value, dict):
        keys: dict[str, Node] = value.value
        for key in keys:
            if key not in SIGNAL_KEYS:
                hint = did_you_mean(key, SIGNAL_KEYS) or "a signal takes `signal` and `keep`"
                problems.append(value.key_at(key, "unknown-key", f"unknown key {key!r}", hint))
                ok = False
        path_node = keys.get("signal")
        if path_node is None:
            problems.append(
                value.at(
                    "missing-key",
                    f"the signal {name!r} needs `signal` (its import path)",
                    "for example `signal: allauth.account.signals.user_signed_up`",
                )
            )
            ok = False
        if "keep" in keys:
            keep, kept_ok = _keep(name, keys["keep"], problems)
            ok = ok and kept_ok
    if path_node is not None and not (
        isinstance(path_node.value, str) and _PATH.fullmatch(path_node.value)
    ):
        problems.append(
            path_node.at(
                "bad-signal-path",
                f"the signal {name!r} is an import path module.attribute",
                _EXAMPLE,
            )
        )
        return None
    if not ok or path_node is None:
        return None
    at = (path_node.file, path_node.line, path_node.col)
    return SignalSpec(name, path_node.value, tuple(keep), at)


def _keep(name: str, node: Node, problems: list[Problem]) -> tuple[list[str], bool]:
    items = node.value if isinstance(node.value, list) else None
    if items is None:
        problems.append(
            node.at("bad-value", "`keep` is a list of keyword argument names", "keep: [provider]")
        )
        return [], False
    kept: list[str] = []
    ok = True
    for item in items:
        arg = item.value
        if not isinstance(arg, str) or not _NAME.fullmatch(arg):
            problems.append(item.at("bad-value", "`keep` takes keyword argument names"))
            ok = False
            continue
        what = policy.secret_reason(arg)
        if what is not None:
            problems.append(
                item.at(
                    "secret-signal-argument",
                    f"the argument {arg!r} of the signal {name!r} is named like {what}:"
                    " signal arguments that may hold secrets or personal data are never kept",
                    "keep only arguments such as a provider or a method; test the signal"
                    f" itself with `signal.{name}: present`",
                )
            )
            ok = False
        elif arg not in kept:
            kept.append(arg)
    return kept, ok


def signal_fact_problem(
    fact: str, signals: Mapping[str, SignalSpec]
) -> tuple[str, str, str | None] | None:
    """``(code, message, hint)`` when a ``signal.*`` fact names no declared signal or argument."""
    parts = fact.split(".")[1:]
    name = parts[0]
    spec = signals.get(name)
    if spec is None:
        # Every undeclared name is refused, close to a declared one or not: at run time
        # it would never be sent, so it would be absent wherever other signals are
        # watched (a condition on it false, an `{if:}` field false) without a word.
        declared = ", ".join(sorted(signals)) or "no signal"
        add = f"add `{name}: <module>.<attribute>` under `signals:`"
        close = difflib.get_close_matches(name, list(signals), n=1)
        hint = f"did you mean 'signal.{close[0]}'? or {add}" if close else add
        message = f"no signal {name!r} is declared; the rules declare {declared}"
        return "undeclared-signal", message, hint
    if len(parts) == 1:
        return None
    arg = parts[1]
    if len(parts) > 2:
        return (
            "bad-signal-fact",
            f"{fact} goes below the argument {arg!r}: kept arguments are single values",
            f"test signal.{name}.{arg}",
        )
    if arg not in spec.keep:
        hint = did_you_mean(arg, spec.keep) or f"add it to the `keep:` list of the signal {name!r}"
        return "signal-argument-not-kept", f"the signal {name!r} keeps no argument {arg!r}", hint
    return None
